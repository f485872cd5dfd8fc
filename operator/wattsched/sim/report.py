"""The outputs of a comparison: timeseries.csv, summary.json, report.md, and the one-screen
summary for the terminal; `write_outputs` writes them all, figures included.

These are the numbers: the data files are what two runs, or two versions of wattsched, are
compared on byte for byte, and the tables say the same figures in words. The figures are drawn
in plots.py, apart, because drawing is a different craft that changes with taste and needs
matplotlib; report.md only embeds them by the names and captions plots.PLOTS gives.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from wattsched.power.watts import format_watts
from wattsched.sim.metrics import PolicySummary
from wattsched.sim.plots import PLOTS
from wattsched.sim.policies import POLICIES
from wattsched.sim.result import EVICTION_REASONS
from wattsched.sim.run import Comparison


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- timeseries.csv and summary.json ---------------------------------------------------------


def write_timeseries(comparison: Comparison, path: Path) -> None:
    scenario = comparison.inputs.scenario
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
                    _iso(scenario.instant_at(sample.at_seconds)),
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
