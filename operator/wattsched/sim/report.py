"""The outputs of a comparison: timeseries.csv, summary.json, PNG plots, report.md, and the
one-screen summary for the terminal. Plots use matplotlib's Agg backend: no display needed."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from wattsched.power.watts import format_watts
from wattsched.sim.loop import RunResult
from wattsched.sim.metrics import PolicySummary
from wattsched.sim.policies import POLICIES
from wattsched.sim.run import Comparison

POLICY_COLOURS = {"wattsched": "#1b7837", "power-blind": "#d6604d", "static-cap": "#4393c3"}
EVICTION_REASONS = ("Preempted", "Shed", "Drained")


def _colour(policy: str) -> str:
    return POLICY_COLOURS.get(policy, "#777777")


def _top_last(comparison: Comparison) -> list[RunResult]:
    """Runs in drawing order: wattsched last, so its line is on top of the baselines'."""
    return sorted(comparison.runs, key=lambda run: run.policy == "wattsched")


def _instant(comparison: Comparison, seconds: int) -> datetime:
    return comparison.inputs.scenario.start_at + timedelta(seconds=seconds)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- timeseries.csv and summary.json ---------------------------------------------------------


def write_timeseries(comparison: Comparison, path: Path) -> None:
    site = comparison.inputs.site
    budgets = sorted(site.budgets)
    pools = sorted(site.pools)
    header = ["time", "policy", "queued_jobs", "running_jobs", "cordoned_nodes"]
    header += [f"evicted_{reason.lower()}_pods" for reason in EVICTION_REASONS]
    for name in budgets:
        header += [f"{name}_watts", f"{name}_limit_watts", f"{name}_allocatable_watts"]
    for name in pools:
        header += [f"{name}_allocated_devices", f"{name}_devices"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for run in comparison.runs:
            for sample in run.samples:
                row: list[Any] = [
                    _iso(_instant(comparison, sample.at_seconds)),
                    run.policy,
                    sample.queued_jobs,
                    sample.running_jobs,
                    sample.cordoned_nodes,
                ]
                row += [sample.evictions.get(reason, 0) for reason in EVICTION_REASONS]
                for name in budgets:
                    row += [
                        sample.budget_watts[name],
                        sample.budget_limit_watts[name],
                        sample.budget_allocatable_watts[name],
                    ]
                for name in pools:
                    row += [sample.pool_allocated[name], sample.pool_devices[name]]
                writer.writerow(row)


def summary_document(comparison: Comparison, summaries: list[PolicySummary]) -> dict[str, Any]:
    scenario = comparison.inputs.scenario
    return {
        "scenario": scenario.name,
        "start": scenario.start,
        "end": scenario.end,
        "seed": scenario.seed,
        "scale": scenario.scale,
        "nodes": len(comparison.inputs.site.all_nodes),
        "jobs": len(comparison.inputs.jobs),
        "policies": [summary.as_json() for summary in summaries],
    }


def write_summary(comparison: Comparison, summaries: list[PolicySummary], path: Path) -> None:
    document = summary_document(comparison, summaries)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


# -- the terminal summary -----------------------------------------------------------------------


def _hours(value: float) -> str:
    return f"{value:.2f} h" if value < 100 else f"{value:.0f} h"


def summary_table(comparison: Comparison, summaries: list[PolicySummary]) -> str:
    scenario = comparison.inputs.scenario
    lines = [
        f"{scenario.name}: {scenario.start[:10]} .. {scenario.end[:10]}, "
        f"{len(comparison.inputs.site.all_nodes)} nodes, {len(comparison.inputs.jobs)} jobs, "
        f"scale {scenario.scale:g}, seed {scenario.seed}",
        "",
        f"{'policy':<12} {'placed':>8} {'withdrawn':>9} {'mean wait':>10} {'p95 wait':>10} "
        f"{'violations':>10} {'over':>9} {'stranded':>12} {'evictions':>9}",
    ]
    for summary in summaries:
        over = sum(f.violation_hours for f in summary.budgets.values())
        lines.append(
            f"{summary.policy:<12} {summary.jobs_placed:>8} {summary.jobs_withdrawn:>9} "
            f"{_hours(summary.mean_wait_hours):>10} {_hours(summary.p95_wait_hours):>10} "
            f"{summary.violations:>10} {_hours(over):>9} {summary.stranded_mwh:>8.1f} MWh "
            f"{summary.evictions_total:>9}"
        )
    lines += ["", "violations per budget: episodes / hours over / worst overshoot"]
    budgets = sorted(comparison.inputs.site.budgets)
    width = max(len(name) for name in budgets)
    lines.append(f"{'':<{width}} " + " ".join(f"{s.policy:>24}" for s in summaries))
    for name in budgets:
        cells = []
        for summary in summaries:
            figures = summary.budgets[name]
            worst = format_watts(figures.worst_overshoot_watts) if figures.violations else "-"
            cells.append(
                f"{figures.violations:>5} / {_hours(figures.violation_hours):>8} / {worst:>7}"
            )
        lines.append(f"{name:<{width}} " + " ".join(f"{cell:>24}" for cell in cells))
    lines += [
        "",
        "evictions (pods): "
        + "; ".join(
            f"{s.policy} "
            + (", ".join(f"{r} {n}" for r, n in sorted(s.evictions.items())) or "none")
            for s in summaries
        ),
    ]
    walls = ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in comparison.wall_seconds.items()
    )
    lines.append(f"wall time: {walls}")
    return "\n".join(lines)


# -- plots ---------------------------------------------------------------------------------------


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
        times = [_instant(comparison, step.at_seconds) for step in entry.steps] + [end]
        limits = [step.limit_watts / 1e6 for step in entry.steps]
        limits.append(limits[-1])
        reserve = entry.budget.reserve_percent
        allocatable = [watts * (100 - reserve) / 100 for watts in limits]
        for run in _top_last(comparison):
            xs = [_instant(comparison, s.at_seconds) for s in run.samples]
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
    pools = sorted(comparison.inputs.site.pools)
    columns = 2
    rows = -(-len(pools) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(11, 2.6 * rows), sharex=True, sharey=True, squeeze=False
    )
    for index, name in enumerate(pools):
        axis = axes[index // columns, index % columns]
        for run in _top_last(comparison):
            xs = [_instant(comparison, s.at_seconds) for s in run.samples]
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
    runs = comparison.runs
    figure, axes = plt.subplots(
        len(runs), 1, figsize=(11, 2.3 * len(runs)), sharex=True, sharey=True, squeeze=False
    )
    week = 7 * 86400
    weeks = comparison.inputs.scenario.horizon_seconds // week + 1
    colours = {"Preempted": "#762a83", "Shed": "#e08214", "Drained": "#4393c3"}
    xs = [_instant(comparison, i * week) for i in range(weeks)]
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
    figure, axis = plt.subplots(figsize=(11, 3.5))
    for run in comparison.runs:
        xs = [_instant(comparison, s.at_seconds) for s in run.samples]
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


# -- report.md ------------------------------------------------------------------------------------


def write_report(
    comparison: Comparison, summaries: list[PolicySummary], out: Path, table: str
) -> None:
    scenario = comparison.inputs.scenario
    site = comparison.inputs.site
    lines = [
        f"# wattsched simulate: {scenario.name}",
        "",
        scenario.description or "",
        "",
        f"- Simulated time: {scenario.start} to {scenario.end}, sampled every "
        f"{scenario.sample_interval}; scheduling cycles at most every {scenario.cycle_interval}.",
        f"- Fleet: {len(site.all_nodes)} nodes in {len(site.pools)} pools; "
        f"{len(site.budgets)} budgets; {len(comparison.inputs.jobs)} jobs submitted "
        f"(seed {scenario.seed}).",
    ]
    if scenario.scale != 1:
        lines.append(
            f"- **Scale {scenario.scale:g}**: node counts, budget limits and arrival rates are "
            f"the full site's multiplied by {scenario.scale:g}. Watts, MWh and counts below are "
            f"at that scale; divide by {scenario.scale:g} for the full site."
        )
    lines += ["", "## Policies", ""]
    for summary in summaries:
        policy = POLICIES.get(summary.policy)
        lines.append(f"- **{summary.policy}**: {policy.summary if policy else ''}")
    lines += [
        "",
        "All policies run the same engine (`wattsched.scheduling.Scheduler`) on the same jobs; "
        "the baselines differ only in the state the engine is given. The power drawn is "
        "measured against the real budgets in every run.",
        "",
        "## Summary",
        "",
        "| policy | placed | withdrawn | mean wait (h) | p95 wait (h) | violations | "
        "violation-hours | stranded (MWh) | evictions |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        hours = sum(f.violation_hours for f in s.budgets.values())
        lines.append(
            f"| {s.policy} | {s.jobs_placed} | {s.jobs_withdrawn} | {s.mean_wait_hours:.2f} | "
            f"{s.p95_wait_hours:.2f} | {s.violations} | {hours:.1f} | {s.stranded_mwh:.1f} | "
            f"{s.evictions_total} |"
        )
    lines += [
        "",
        "### Violations per budget (episodes / hours over / worst overshoot)",
        "",
        "| budget | " + " | ".join(s.policy for s in summaries) + " |",
        "|---|" + "---:|" * len(summaries),
    ]
    for name in sorted(site.budgets):
        cells = []
        for s in summaries:
            f = s.budgets[name]
            worst = format_watts(f.worst_overshoot_watts) if f.violations else "-"
            cells.append(f"{f.violations} / {f.violation_hours:.1f} h / {worst}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Figures", ""]
    for filename, _, caption in PLOTS:
        lines += [f"![{caption}]({filename})", "", f"*{caption}*", ""]
    lines += [
        "## Definitions",
        "",
        "- *placed*: jobs (an inference pod, or a whole training gang) started at least once; "
        "*withdrawn*: jobs that waited longer than their patience and left the queue.",
        "- *wait*: first start minus submission.",
        "- *violation*: an episode of a budget's drawn facility power above its limit in force "
        "(the limit, not allocatable); *violation-hours*: time spent above it.",
        "- *stranded*: allocatable watts left unused while pods that could use them wait, "
        "counted once for nested budgets and at most what the waiting pods need, integrated "
        "over time.",
        "- *evictions*: pods, by reason: Preempted (priority), Shed (a limit dropped), "
        "Drained (static-cap cordoned the node). Evicted jobs are requeued with their remaining "
        "run time.",
        "",
        "## Terminal summary",
        "",
        "```",
        table,
        "```",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))


def write_outputs(comparison: Comparison, summaries: list[PolicySummary], out: Path) -> str:
    """Every file of the report in `out`; returns the terminal summary table."""
    out.mkdir(parents=True, exist_ok=True)
    write_timeseries(comparison, out / "timeseries.csv")
    write_summary(comparison, summaries, out / "summary.json")
    for filename, plot, _ in PLOTS:
        plot(comparison, out / filename)
    table = summary_table(comparison, summaries)
    write_report(comparison, summaries, out, table)
    return table
