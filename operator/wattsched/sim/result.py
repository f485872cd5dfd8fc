"""What one policy's run leaves behind: the record that metrics, the report and the plots read.

It lives apart from the loop so that everything downstream of a run depends on the shape of the
record, not on the machinery that fills it: a figure in summary.json can be traced to a field
here without reading the event loop, and a test can build a record by hand. The loop only
appends to these; nothing here computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The reasons a run counts evictions under (RunResult.evictions, Sample.evictions), in the order
# every output lists them: Preempted and Shed come from the engine, Drained from static-cap.
EVICTION_REASONS = ("Preempted", "Shed", "Drained")


@dataclass(slots=True)
class Sample:
    at_seconds: int
    budget_watts: dict[str, int]  # facility watts drawn, per real budget
    budget_limit_watts: dict[str, int]
    budget_allocatable_watts: dict[str, int]
    pool_allocated: dict[str, int]
    pool_devices: dict[str, int]
    queued_jobs: int
    running_jobs: int
    cordoned_nodes: int
    evictions: dict[str, int]  # pods evicted since the previous sample, per reason


@dataclass(slots=True)
class BudgetRecord:
    over: bool = False
    episodes: int = 0
    over_seconds: int = 0
    worst_overshoot_watts: int = 0


@dataclass(slots=True)
class RunResult:
    policy: str
    samples: list[Sample] = field(default_factory=list)
    waits_seconds: list[int] = field(default_factory=list)  # first start - submission, per job
    jobs_submitted: int = 0
    jobs_started: int = 0
    jobs_completed: int = 0
    jobs_withdrawn: int = 0
    jobs_queued_at_end: int = 0
    jobs_running_at_end: int = 0
    pods_started: int = 0
    evictions: dict[str, int] = field(default_factory=dict)  # pods, per reason
    eviction_times: list[tuple[int, str, int]] = field(default_factory=list)  # (at, reason, pods)
    budgets: dict[str, BudgetRecord] = field(default_factory=dict)
    stranded_watt_seconds: int = 0
    cycles: int = 0
    start_log: list[tuple[str, int]] = field(default_factory=list)  # (job, start) if recording
