"""What a run amounts to: the figures of the summary table, summary.json and the report.

Definitions (also in the README, "Simulate before you trust it"):
- placed: jobs started at least once; wait: first start minus submission, per job; p95 wait
  by nearest rank (wattsched.percentile), 0 when no job started.
- violation: an episode in which a budget's drawn facility watts exceed its limit in force
  (not its allocatable: the reserve is a margin, not the limit); violation-hours is the
  time spent over, worst overshoot the largest excess in watts.
- stranded power: allocatable watts left unused while pods that could use them wait (see
  `meter.StrandedTree`), integrated over time, in MWh.
- evictions: pods, by reason (Preempted, Shed, Drained by static-cap's cordons).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wattsched.percentile import percentile
from wattsched.sim.result import RunResult

WATT_SECONDS_PER_MWH = 3_600_000_000


@dataclass(frozen=True, slots=True)
class BudgetFigures:
    violations: int
    violation_hours: float
    worst_overshoot_watts: int


@dataclass(frozen=True, slots=True)
class PolicySummary:
    policy: str
    jobs_submitted: int
    jobs_placed: int
    jobs_completed: int
    jobs_withdrawn: int
    jobs_queued_at_end: int
    pods_started: int
    mean_wait_hours: float
    p95_wait_hours: float
    budgets: dict[str, BudgetFigures]
    stranded_mwh: float
    evictions: dict[str, int]
    cycles: int

    @property
    def violations(self) -> int:
        return sum(figures.violations for figures in self.budgets.values())

    @property
    def evictions_total(self) -> int:
        return sum(self.evictions.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "jobs": {
                "submitted": self.jobs_submitted,
                "placed": self.jobs_placed,
                "completed": self.jobs_completed,
                "withdrawn": self.jobs_withdrawn,
                "queuedAtEnd": self.jobs_queued_at_end,
            },
            "podsStarted": self.pods_started,
            "meanWaitHours": round(self.mean_wait_hours, 4),
            "p95WaitHours": round(self.p95_wait_hours, 4),
            "budgets": {
                name: {
                    "violations": figures.violations,
                    "violationHours": round(figures.violation_hours, 4),
                    "worstOvershootWatts": figures.worst_overshoot_watts,
                }
                for name, figures in sorted(self.budgets.items())
            },
            "violations": self.violations,
            "strandedMWh": round(self.stranded_mwh, 4),
            "evictions": dict(sorted(self.evictions.items())),
            "evictionsTotal": self.evictions_total,
            "cycles": self.cycles,
        }


def summarize(run: RunResult) -> PolicySummary:
    waits = run.waits_seconds
    return PolicySummary(
        policy=run.policy,
        jobs_submitted=run.jobs_submitted,
        jobs_placed=run.jobs_started,
        jobs_completed=run.jobs_completed,
        jobs_withdrawn=run.jobs_withdrawn,
        jobs_queued_at_end=run.jobs_queued_at_end,
        pods_started=run.pods_started,
        mean_wait_hours=(sum(waits) / len(waits) / 3600) if waits else 0.0,
        p95_wait_hours=(percentile(waits, 95) / 3600) if waits else 0.0,
        budgets={
            name: BudgetFigures(
                record.episodes, record.over_seconds / 3600, record.worst_overshoot_watts
            )
            for name, record in run.budgets.items()
        },
        stranded_mwh=run.stranded_watt_seconds / WATT_SECONDS_PER_MWH,
        evictions=dict(run.evictions),
        cycles=run.cycles,
    )
