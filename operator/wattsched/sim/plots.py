"""The figures of a comparison, drawn with matplotlib's Agg backend (no display needed).

They sit apart from report.py because they answer to people, not to comparisons: colours,
layout and captions change with taste, while the data files and tables are what runs are
compared on, byte for byte. matplotlib is imported inside the drawing (`_pyplot`): it is slow to
import and nothing that only needs the numbers should pay for it. `PLOTS` is the one list of
figures, so report.md embeds exactly the files that were drawn, with their captions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wattsched.sim.result import EVICTION_REASONS, RunResult
from wattsched.sim.run import Comparison

POLICY_COLOURS = {"wattsched": "#1b7837", "power-blind": "#d6604d", "static-cap": "#4393c3"}


def _colour(policy: str) -> str:
    return POLICY_COLOURS.get(policy, "#777777")


def _top_last(comparison: Comparison) -> list[RunResult]:
    """Runs in drawing order: wattsched last, so its line is on top of the baselines'."""
    return sorted(comparison.runs, key=lambda run: run.policy == "wattsched")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _date_axis(axis: Any, months: tuple[int, ...] = (1, 4, 7, 10)) -> None:
    import matplotlib.dates as mdates

    locator = mdates.MonthLocator(bymonth=months)  # type: ignore[no-untyped-call]
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))  # type: ignore[no-untyped-call]
    axis.grid(True, alpha=0.3)


def plot_power(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    site = comparison.inputs.site
    scenario = comparison.inputs.scenario
    budgets = sorted(site.budgets, key=lambda n: (-site.budgets[n].steps[0].limit_watts, n))
    figure, axes = plt.subplots(
        len(budgets), 1, figsize=(11, 2.8 * len(budgets)), sharex=True, squeeze=False
    )
    end = scenario.end_at
    for axis, name in zip(axes[:, 0], budgets, strict=True):
        entry = site.budgets[name]
        times = [scenario.instant_at(step.at_seconds) for step in entry.steps] + [end]
        limits = [step.limit_watts / 1e6 for step in entry.steps]
        limits.append(limits[-1])
        reserve = entry.budget.reserve_percent
        allocatable = [watts * (100 - reserve) / 100 for watts in limits]
        for run in _top_last(comparison):
            xs = [scenario.instant_at(s.at_seconds) for s in run.samples]
            ys = [s.budget_watts[name] / 1e6 for s in run.samples]
            axis.plot(xs, ys, color=_colour(run.policy), linewidth=1.0, label=run.policy)
        axis.step(times, limits, where="post", color="black", linewidth=1.6, label="limit")
        axis.step(
            times,
            allocatable,
            where="post",
            color="black",
            linestyle="--",
            linewidth=1.0,
            label="allocatable (limit minus reserve)",
        )
        axis.set_title(
            f"PowerBudget {name} ({entry.budget.enforcement}, reserve {reserve} %)",
            loc="left",
            fontsize=10,
        )
        axis.set_ylabel("facility power (MW)")
        axis.set_ylim(bottom=0)
        _date_axis(axis)
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=3)
    axes[-1, 0].set_xlabel("date (UTC)")
    figure.suptitle(
        f"Power per budget against its limit (site at scale {scenario.scale:g}, "
        f"sampled every {scenario.sample_interval})",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_utilisation(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    scenario = comparison.inputs.scenario
    pools = sorted(comparison.inputs.site.pools)
    columns = 2
    rows = -(-len(pools) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(11, 2.6 * rows), sharex=True, sharey=True, squeeze=False
    )
    for index, name in enumerate(pools):
        axis = axes[index // columns, index % columns]
        for run in _top_last(comparison):
            xs = [scenario.instant_at(s.at_seconds) for s in run.samples]
            ys = [
                100 * s.pool_allocated[name] / s.pool_devices[name] if s.pool_devices[name] else 0
                for s in run.samples
            ]
            axis.plot(xs, ys, color=_colour(run.policy), linewidth=0.9, label=run.policy)
        pool = comparison.inputs.site.pools[name]
        axis.set_title(f"{name} ({pool.model})", loc="left", fontsize=10)
        axis.set_ylabel("devices allocated (%)")
        axis.set_ylim(0, 105)
        _date_axis(axis, months=(1, 7))
    for index in range(len(pools), rows * columns):
        axes[index // columns, index % columns].set_visible(False)
    axes[0, 0].legend(loc="lower right", fontsize=8)
    figure.suptitle("Device utilisation per pool", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_waits(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 4.5))
    floor_hours = 1 / 60
    for run in comparison.runs:
        waits = sorted(max(floor_hours, w / 3600) for w in run.waits_seconds)
        if not waits:
            continue
        fractions = [100 * (i + 1) / len(waits) for i in range(len(waits))]
        axis.step(waits, fractions, where="post", color=_colour(run.policy), label=run.policy)
    axis.set_xscale("log")
    axis.set_xlabel("queue wait until first start (hours, log scale; under 1 min drawn at 1 min)")
    axis.set_ylabel("jobs started within (%)")
    axis.set_ylim(0, 101)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="lower right")
    axis.set_title("Queue-wait distribution per policy (cumulative)", loc="left", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_evictions(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    scenario = comparison.inputs.scenario
    runs = comparison.runs
    figure, axes = plt.subplots(
        len(runs), 1, figsize=(11, 2.3 * len(runs)), sharex=True, sharey=True, squeeze=False
    )
    week = 7 * 86400
    weeks = scenario.horizon_seconds // week + 1
    colours = {"Preempted": "#762a83", "Shed": "#e08214", "Drained": "#4393c3"}
    xs = [scenario.instant_at(i * week) for i in range(weeks)]
    for axis, run in zip(axes[:, 0], runs, strict=True):
        bottom = [0] * weeks
        for reason in EVICTION_REASONS:
            counts = [0] * weeks
            for at, why, pods in run.eviction_times:
                if why == reason:
                    counts[at // week] += pods
            if any(counts):
                axis.bar(
                    xs,
                    counts,
                    width=6,
                    bottom=bottom,
                    align="edge",
                    color=colours[reason],
                    label=reason,
                )
                bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        axis.set_title(f"{run.policy}: {sum(bottom)} pods evicted", loc="left", fontsize=10)
        axis.set_ylabel("pods per week")
        if any(bottom):
            axis.legend(loc="upper left", fontsize=8)
        _date_axis(axis)
    axes[-1, 0].set_xlabel("date (UTC)")
    figure.suptitle("Evictions over time, by reason", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_queue(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    scenario = comparison.inputs.scenario
    figure, axis = plt.subplots(figsize=(11, 3.5))
    for run in comparison.runs:
        xs = [scenario.instant_at(s.at_seconds) for s in run.samples]
        axis.plot(
            xs,
            [s.queued_jobs for s in run.samples],
            color=_colour(run.policy),
            linewidth=0.9,
            label=run.policy,
        )
    axis.set_ylabel("jobs waiting")
    axis.set_xlabel("date (UTC)")
    _date_axis(axis)
    axis.legend(loc="upper left")
    axis.set_title("Queue length over time", loc="left", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


PLOTS = (
    (
        "power.png",
        plot_power,
        "Facility power drawn per budget against its limit (solid black) "
        "and allocatable watts (dashed).",
    ),
    ("utilisation.png", plot_utilisation, "Share of each pool's devices allocated."),
    (
        "waits.png",
        plot_waits,
        "Cumulative distribution of queue waits (submission to first start).",
    ),
    ("evictions.png", plot_evictions, "Pods evicted per week, by reason."),
    ("queue.png", plot_queue, "Jobs waiting in the queue."),
)
