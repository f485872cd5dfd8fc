"""The discrete-event loop: a virtual clock driving the real scheduling engine.

Time is an integer count of seconds since the scenario's start; nothing here reads the wall
clock. One run is one policy over the whole scenario. At each instant, in this order:

1. Commissioning: new nodes join (idle, drawing base and idle watts).
2. Limit changes: the budget is rebuilt with its new limit (`upsert_budget`); static-cap
   recomputes its cordons and drains what it newly cordons.
3. Completions free their devices and watts; withdrawals remove jobs that waited too long.
4. Arrivals queue new pods.
5. A scheduling cycle (`Scheduler.schedule`), repeated at the same instant while it evicts, so
   a preemptor binds as soon as its victims are gone. Cycles run at most every `cycleInterval`,
   but a limit change or commissioning always gets its own cycle at once, so Shed acts at the
   instant the limit drops.

Evicted jobs are requeued, never dropped: the work done so far is kept (as if checkpointed), and
the job queues again with its remaining run time and its original priority and creation order,
so it goes back to the head of its priority level. A gang is evicted and requeued whole.

What the engine believes and what the site draws are kept apart: a `Meter` (meter.py) sums every
node's watts against the real budgets, whatever the policy let the engine see. What a run leaves
behind is a `RunResult` (result.py); a job's own record is a `Job` (job.py). This module holds
only the clock and the order of things at an instant, so the story above reads top to bottom in
`Simulation.run`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from enum import IntEnum

from wattsched.domain import Node, PodKey
from wattsched.power.watts import delta_watts
from wattsched.scheduling.config import SchedulerConfig
from wattsched.scheduling.scheduler import Scheduler
from wattsched.scheduling.state import ClusterState
from wattsched.sim.job import Job
from wattsched.sim.meter import Meter, StrandedTree
from wattsched.sim.policies import Policy, static_cap_cordons
from wattsched.sim.result import BudgetRecord, RunResult, Sample
from wattsched.sim.site import Site
from wattsched.sim.workload import JobSpec

DRAIN_REASON = "Drained"
_MAX_ROUNDS_PER_INSTANT = 16

ProgressCallback = Callable[[int], None]


class EventKind(IntEnum):
    """Also the processing order of events at one instant."""

    COMMISSION = 0
    LIMIT = 1
    COMPLETE = 2
    WITHDRAW = 3
    ARRIVAL = 4
    CYCLE = 5


class Simulation:
    """One policy's run over the scenario; `run()` returns what the metrics need."""

    def __init__(
        self,
        site: Site,
        jobs: list[JobSpec],
        policy: Policy,
        horizon_seconds: int,
        sample_seconds: int,
        cycle_seconds: int,
        progress: ProgressCallback | None = None,
        record_starts: bool = False,
    ) -> None:
        self.site = site
        self.policy = policy
        self.horizon = horizon_seconds
        self.sample_seconds = sample_seconds
        self.cycle_seconds = cycle_seconds
        self.progress = progress
        self.record_starts = record_starts
        config: SchedulerConfig = policy.config
        self.scheduler = Scheduler(config)
        self.state = ClusterState()
        for pool in site.pools.values():
            self.state.upsert_pool(pool)
        self.limits = {name: entry.budget for name, entry in site.budgets.items()}
        if policy.power_aware:
            for budget in self.limits.values():
                self.state.upsert_budget(budget)
        self.meter = Meter(site)
        self.stranded = StrandedTree(site, self.meter)
        self.result = RunResult(policy.name)
        self.result.budgets = {name: BudgetRecord() for name in site.budgets}
        self.jobs = [Job.from_spec(index, spec) for index, spec in enumerate(jobs)]
        self.job_of: dict[PodKey, Job] = {}
        for job in self.jobs:
            for key in job.keys:
                self.job_of[key] = job
        self.commissioned: list[Node] = []
        self.cordoned: set[str] = set()
        self.waiting_pool_watts: dict[str, int] = dict.fromkeys(site.pools, 0)
        self.queued = 0
        self.running = 0
        self._events: list[tuple[int, int, int, int, int]] = []
        self._sequence = 0
        self._cycle_pending_at: int | None = None
        self._last_cycle: int | None = None
        self._evictions_since_sample: dict[str, int] = {}
        # Stranded watts and the over/under state of each budget depend only on the meter and
        # the waiting work: (the versions they were computed at, the answer).
        self._waiting_version = 0
        self._stranded_at: tuple[int, int, int] | None = None
        self._limits_checked_at = -1

    # -- the event queue -----------------------------------------------------------------------

    def _push(self, at: int, kind: EventKind, subject: int, token: int = 0) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (at, int(kind), self._sequence, subject, token))

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> RunResult:
        for index, cohort in enumerate(self.site.cohorts):
            self._push(cohort.commissioned_seconds, EventKind.COMMISSION, index)
        for budget_index, (_, entry) in enumerate(sorted(self.site.budgets.items())):
            for step in entry.steps[1:]:
                self._push(step.at_seconds, EventKind.LIMIT, budget_index, step.limit_watts)
        for job in self.jobs:
            self._push(job.spec.submit_seconds, EventKind.ARRIVAL, job.index)
        budget_names = sorted(self.site.budgets)
        now = 0
        next_sample = 0
        next_progress = 0
        progress_step = max(1, self.horizon // 100)
        while self._events and self._events[0][0] < self.horizon:
            at = self._events[0][0]
            # The state is constant over [now, at): sample and integrate it first.
            while next_sample < at:
                self._sample(next_sample)
                next_sample += self.sample_seconds
            self._integrate(now, at)
            now = at
            if self.progress is not None and now >= next_progress:
                self.progress(now)
                next_progress = now - now % progress_step + progress_step
            force_cycle = False
            wants_cycle = False
            while self._events and self._events[0][0] == at:
                _, kind, _, subject, token = heapq.heappop(self._events)
                if kind == EventKind.COMMISSION:
                    self._commission(subject, at)
                    force_cycle = True
                elif kind == EventKind.LIMIT:
                    self._set_limit(budget_names[subject], token, at)
                    force_cycle = True
                elif kind == EventKind.COMPLETE:
                    wants_cycle |= self._complete(self.jobs[subject], token)
                elif kind == EventKind.WITHDRAW:
                    self._withdraw(self.jobs[subject], token)
                elif kind == EventKind.ARRIVAL:
                    self._arrive(self.jobs[subject], at)
                    wants_cycle = True
                else:
                    self._cycle_pending_at = None
                    wants_cycle = True
            if force_cycle or (wants_cycle and self._may_cycle(at)):
                self._cycle(at)
            elif wants_cycle and self._cycle_pending_at is None:
                assert self._last_cycle is not None
                self._cycle_pending_at = self._last_cycle + self.cycle_seconds
                self._push(self._cycle_pending_at, EventKind.CYCLE, 0)
            self._check_limits()
        while next_sample < self.horizon:
            self._sample(next_sample)
            next_sample += self.sample_seconds
        self._integrate(now, self.horizon)
        if self.progress is not None:
            self.progress(self.horizon)
        result = self.result
        result.jobs_submitted = len(self.jobs)
        result.jobs_queued_at_end = self.queued
        result.jobs_running_at_end = self.running
        return result

    def _may_cycle(self, at: int) -> bool:
        return self._last_cycle is None or at >= self._last_cycle + self.cycle_seconds

    # -- events --------------------------------------------------------------------------------

    def _commission(self, index: int, at: int) -> None:
        for node in self.site.cohorts[index].nodes:
            self.commissioned.append(node)
            self.meter.commission(node)
            self.state.upsert_node(node)
        if self.policy.static_cap:
            self._recap(at)

    def _set_limit(self, name: str, watts: int, at: int) -> None:
        budget = self.site.budgets[name].at(at)
        assert budget.limit_watts == watts
        self.limits[name] = budget
        self.meter.set_limit(budget)
        if self.policy.power_aware:
            self.state.upsert_budget(budget)
        if self.policy.static_cap:
            self._recap(at)

    def _recap(self, at: int) -> None:
        """static-cap: cordon what the new limits require, drain it, uncordon the rest."""
        wanted = static_cap_cordons(
            self.commissioned, self.meter.node_pool, self.meter.node_budgets, self.limits
        )
        for node in self.commissioned:
            cordon = node.name in wanted
            if cordon == (node.name in self.cordoned):
                continue
            self.state.upsert_node(
                Node(node.name, node.labels, node.allocatable, node.taints, cordon, node.ready)
            )
            if cordon:
                self.cordoned.add(node.name)
                for pod in self.state.pods_on(node.name):
                    job = self.job_of[pod.key]
                    if job.state == "running":
                        self._evict(job, at, DRAIN_REASON)
            else:
                self.cordoned.discard(node.name)

    def _arrive(self, job: Job, at: int) -> None:
        self._queue(job, at)

    def _queue(self, job: Job, at: int) -> None:
        job.state = "queued"
        job.token += 1
        job.bound = 0
        job.queued_since = at
        self.queued += 1
        self._waiting(job, 1)
        for pod in job.pods:
            self.state.upsert_pod(pod)
        if job.spec.patience_seconds is not None:
            self._push(at + job.spec.patience_seconds, EventKind.WITHDRAW, job.index, job.token)

    def _waiting(self, job: Job, sign: int) -> None:
        pools = (
            [job.spec.pool]
            if job.spec.pool
            else [p.name for p in self.site.pools.values() if job.spec.resource in p.resource_names]
        )
        for name in pools:
            pool = self.site.pools[name]
            need = delta_watts(pool.profile, job.spec.devices_per_pod) * job.spec.gang_size
            self.waiting_pool_watts[name] += sign * need
        self._waiting_version += 1

    def _complete(self, job: Job, token: int) -> bool:
        if job.state != "running" or job.token != token:
            return False
        self._unbind_all(job)
        job.state = "done"
        job.token += 1
        self.running -= 1
        self.result.jobs_completed += 1
        return True

    def _withdraw(self, job: Job, token: int) -> None:
        if job.state != "queued" or job.token != token:
            return
        for key in job.keys:
            node = self.state.node_of(key)
            if node is not None:  # a gang caught half-bound cannot happen; be safe anyway
                self.meter.place(self.state.pods[key], node, -1)
            self.state.remove_pod(key)
        job.state = "withdrawn"
        job.token += 1
        self.queued -= 1
        self._waiting(job, -1)
        self.result.jobs_withdrawn += 1

    def _unbind_all(self, job: Job) -> None:
        for key in job.keys:
            node = self.state.node_of(key)
            if node is not None:
                self.meter.place(self.state.pods[key], node, -1)
            self.state.remove_pod(key)

    def _evict(self, job: Job, at: int, reason: str) -> None:
        """The job's pods go at once (grace period 0); it queues again with what is left."""
        pods = len(job.keys)
        self._unbind_all(job)
        job.remaining_seconds = max(1, job.remaining_seconds - (at - job.started_at))
        job.restarts += 1
        self.running -= 1
        result = self.result
        result.evictions[reason] = result.evictions.get(reason, 0) + pods
        self._evictions_since_sample[reason] = self._evictions_since_sample.get(reason, 0) + pods
        result.eviction_times.append((at, reason, pods))
        self._queue(job, at)

    # -- the scheduling cycle -------------------------------------------------------------------

    def _cycle(self, at: int) -> None:
        self._last_cycle = at
        for _ in range(_MAX_ROUNDS_PER_INSTANT):
            plan = self.scheduler.schedule(self.state)
            self.result.cycles += 1
            for binding in plan.bindings:
                job = self.job_of[binding.pod]
                self.meter.place(self.state.pods[binding.pod], binding.node, 1)
                job.bound += 1
                if job.bound == len(job.keys):
                    self._start(job, at)
            evicted: set[int] = set()
            for eviction in plan.evictions:
                job = self.job_of[eviction.pod]
                if job.index in evicted or job.state != "running":
                    continue
                evicted.add(job.index)
                self._evict(job, at, eviction.reason)
            if not plan.evictions:
                return

    def _start(self, job: Job, at: int) -> None:
        job.state = "running"
        job.token += 1
        job.started_at = at
        self.queued -= 1
        self.running += 1
        self._waiting(job, -1)
        result = self.result
        result.pods_started += len(job.keys)
        if job.first_start is None:
            job.first_start = at
            result.jobs_started += 1
            result.waits_seconds.append(at - job.spec.submit_seconds)
        if self.record_starts:
            result.start_log.append((job.spec.name, at))
        self._push(at + job.remaining_seconds, EventKind.COMPLETE, job.index, job.token)

    # -- measurement ----------------------------------------------------------------------------

    def _check_limits(self) -> None:
        """After an instant: which budgets the site now draws over their real limit."""
        meter = self.meter
        if meter.version == self._limits_checked_at:
            return  # the same draw against the same limits: the same answer as last time
        self._limits_checked_at = meter.version
        for name, record in self.result.budgets.items():
            overshoot = meter.facility_watts(name) - meter.budgets[name].limit_watts
            over = overshoot > 0
            if over and not record.over:
                record.episodes += 1
            record.over = over
            if over and overshoot > record.worst_overshoot_watts:
                record.worst_overshoot_watts = overshoot

    def _integrate(self, start: int, stop: int) -> None:
        span = stop - start
        if span <= 0:
            return
        for record in self.result.budgets.values():
            if record.over:
                record.over_seconds += span
        if self.queued:
            self.result.stranded_watt_seconds += span * self._stranded_watts()

    def _stranded_watts(self) -> int:
        versions = (self.meter.version, self._waiting_version)
        known = self._stranded_at
        if known is None or known[:2] != versions:
            known = (*versions, self.stranded.watts(self.waiting_pool_watts))
            self._stranded_at = known
        return known[2]

    def _sample(self, at: int) -> None:
        meter = self.meter
        self.result.samples.append(
            Sample(
                at_seconds=at,
                budget_watts={name: meter.facility_watts(name) for name in meter.budgets},
                budget_limit_watts={n: b.limit_watts for n, b in meter.budgets.items()},
                budget_allocatable_watts={n: b.allocatable_watts for n, b in meter.budgets.items()},
                pool_allocated=dict(meter.pool_allocated),
                pool_devices=dict(meter.pool_devices),
                queued_jobs=self.queued,
                running_jobs=self.running,
                cordoned_nodes=len(self.cordoned),
                evictions=dict(self._evictions_since_sample),
            )
        )
        self._evictions_since_sample = {}
