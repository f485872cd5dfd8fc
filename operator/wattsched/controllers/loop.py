"""The scheduling loop: the one task that owns the ClusterState, and only while it leads.

Handlers feed the cache; this loop alone decides. Each turn reads top to bottom in `_turn`:
take in what the watch saw, take in what the API answered, expire stale assumptions, run one
engine cycle, act on its plan, publish status. Binds, evictions and reports go out through
worker tasks that never touch the state: they hand their outcomes back, and the next turn
applies them. So no lock is needed, and the engine may run in a thread while the event loop
keeps renewing the lease and reading the watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from wattsched.api.models import API_VERSION
from wattsched.api.units import format_power
from wattsched.cluster.cache import ClusterCache
from wattsched.cluster.status import budget_status, differs, pool_status, rfc3339
from wattsched.domain import Eviction, Plan, PodKey
from wattsched.kube.lease import LeaderElector
from wattsched.kube.writer import (
    BIND_TIMEOUT_SECONDS,
    BindOutcome,
    EvictOutcome,
    KubeWriter,
    ObjectRef,
)
from wattsched.metrics import Metrics
from wattsched.power.watts import delta_watts, facility_watts
from wattsched.scheduling.scheduler import Scheduler
from wattsched.scheduling.state import ClusterState

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LoopSettings:
    bind_concurrency: int = 32  # pods/binding calls in flight at once
    report_concurrency: int = 8  # status patches, Events
    eviction_concurrency: int = 4
    max_bindings_per_cycle: int = 512  # binds start before a huge queue is fully placed
    status_interval_seconds: float = 2.0  # debounce of pool and budget status patches
    assumed_ttl_seconds: float = 30.0  # like kube-scheduler's: unconfirmed binds are forgotten
    eviction_retry_seconds: float = 5.0  # after a PodDisruptionBudget said 429
    min_cycle_interval_seconds: float = 0.05  # events that arrive together go in one cycle


@dataclass(slots=True)
class _Summary:
    """What the cycles did lately, logged every few seconds rather than every cycle."""

    cycles: int = 0
    seconds: float = 0.0
    bindings: int = 0
    evictions: int = 0
    pending: int = 0
    since: float = field(default_factory=time.monotonic)

    def add(self, seconds: float, plan: Plan, pending: int) -> None:
        self.cycles += 1
        self.seconds += seconds
        self.bindings += len(plan.bindings)
        self.evictions += len(plan.evictions)
        self.pending = pending
        now = time.monotonic()
        if now - self.since >= 5.0:
            log.info(
                "%d cycles in %.0fs (%.0f ms each): %d bindings, %d evictions; %d pending",
                self.cycles, now - self.since, 1000 * self.seconds / self.cycles,
                self.bindings, self.evictions, self.pending,
            )  # fmt: skip
            self.cycles, self.seconds, self.bindings, self.evictions = 0, 0.0, 0, 0
            self.since = now


@dataclass(frozen=True, slots=True)
class _BindJob:
    key: PodKey
    uid: str
    node: str


@dataclass(slots=True)
class _Outcomes:
    """What the workers heard back, waiting for the next turn to apply it."""

    binds: list[tuple[PodKey, BindOutcome, str]] = field(default_factory=list)
    evictions: list[tuple[Eviction, EvictOutcome, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class SchedulingLoop:
    def __init__(
        self,
        cache: ClusterCache,
        scheduler: Scheduler,
        writer: KubeWriter,
        elector: LeaderElector,
        metrics: Metrics,
        *,
        clock: Clock = wall_clock,
        settings: LoopSettings | None = None,
    ) -> None:
        self.cache = cache
        self.scheduler = scheduler
        self.writer = writer
        self.elector = elector
        self.metrics = metrics
        self.clock = clock
        self.settings = settings or LoopSettings()

    # -- leadership ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Wait for the initial lists, then schedule during every term as leader."""
        await self.cache.synced.wait()
        log.info("cache synced: %d nodes, %d pods, %d pools, %d budgets",
                 len(self.cache.nodes), len(self.cache.pods), len(self.cache.pools),
                 len(self.cache.budgets))  # fmt: skip
        while True:
            await self.elector.became_leader.wait()
            if not self.elector.is_leading():
                await asyncio.sleep(0.1)
                continue
            term = _Term(self)
            try:
                await term.lead()
            finally:
                await term.close()
            log.info("not leading: scheduling stopped; the cache stays warm")


class _Term:
    """One term as leader: a ClusterState rebuilt from the cluster, and the workers acting on it."""

    def __init__(self, loop: SchedulingLoop) -> None:
        self.loop = loop
        self.cache = loop.cache
        self.settings = loop.settings
        self.metrics = loop.metrics
        self.writer = loop.writer
        self.outcomes = _Outcomes()
        self.binds: asyncio.Queue[_BindJob] = asyncio.Queue()
        self.reports: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self.evictions: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self.status_patches: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        # Unschedulable reports coalesce per pod: while placements move the numbers in a
        # message, only the latest message of a pod goes out, and the queue never outgrows
        # the number of pending pods.
        self.pod_reports: dict[PodKey, tuple[str, str]] = {}
        self.pod_report_keys: asyncio.Queue[PodKey] = asyncio.Queue()
        self.workers: list[asyncio.Task[None]] = []
        # Deadlines on the clock's time line: assumed pods to confirm, evictions to retry.
        self.confirm_by: dict[PodKey, datetime] = {}
        self.retry_eviction_at: dict[PodKey, datetime] = {}
        self.reported: dict[PodKey, str] = {}  # the PodScheduled=False message each pod shows
        self.written: dict[str, dict[str, Any]] = {}  # "plural/name" -> status last patched
        self.shed_notes: dict[str, str] = {}
        self.next_status = datetime.min.replace(tzinfo=UTC)
        self.last_cycle = 0.0
        self.summary = _Summary()

    async def close(self) -> None:
        for worker in self.workers:
            worker.cancel()
        for worker in self.workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def lead(self) -> None:
        state = self.begin()
        changed = True
        while self.loop.elector.is_leading():
            changed = await self._turn(state, changed)
            changed = await self._sleep_until_work(state) or changed

    def begin(self) -> ClusterState:
        """Step 0 of a term, apart from its turns so that tests can drive them one by one."""
        now = self.loop.clock()
        # 0. The ledger is rebuilt from what the cluster shows before the first placement, so a
        #    restart or a new leader never double-books a device or a watt.
        state = self.cache.build_state(now)
        self.reported = {key: t.reported for key, t in self.cache.pods.items() if t.reported}
        log.info("leading: ledger rebuilt from %d pods on %d nodes; %d pending",
                 len(state.pods), len(state.nodes), state.pending_count())  # fmt: skip
        for _ in range(self.settings.bind_concurrency):
            self.workers.append(asyncio.create_task(self._bind_worker()))
        for _ in range(self.settings.report_concurrency):
            self.workers.append(asyncio.create_task(self._report_worker(self.reports)))
            self.workers.append(asyncio.create_task(self._pod_report_worker()))
        for _ in range(2):
            self.workers.append(asyncio.create_task(self._report_worker(self.status_patches)))
        for _ in range(self.settings.eviction_concurrency):
            self.workers.append(asyncio.create_task(self._report_worker(self.evictions)))
        return state

    async def _turn(self, state: ClusterState, changed: bool) -> bool:
        """One turn; returns whether the next turn must run a cycle even without news."""
        now = self.loop.clock()
        # 1. What the watch saw since the last turn (and limits whose scheduled instant came).
        changed = self.cache.apply_changes(state, now) or changed
        # 2. What the API answered to our binds and evictions.
        changed = self._absorb_outcomes(state, now) or changed
        # 3. Assumptions the watch never confirmed, evictions a PDB blocked: time's up?
        changed = self._expire(state, now) or changed
        # 4. The cycle. Bindings come back already assumed in the state.
        more = False
        if changed:
            started = time.perf_counter()
            plan = await asyncio.to_thread(
                self.loop.scheduler.schedule, state, self.settings.max_bindings_per_cycle
            )
            took = time.perf_counter() - started
            self.metrics.cycle_duration.observe(took)
            self.last_cycle = time.monotonic()
            self.summary.add(took, plan, state.pending_count())
            # 5. Act on the plan.
            self._dispatch(state, plan, now)
            more = len(plan.bindings) >= self.settings.max_bindings_per_cycle
        # 6. Status, debounced.
        if now >= self.next_status:
            self._publish_status(state, now)
            self.next_status = now + timedelta(seconds=self.settings.status_interval_seconds)
        return more

    async def _sleep_until_work(self, state: ClusterState) -> bool:
        """Sleep until news (watch, API answers) or the next deadline; True for a timer wake."""
        since = time.monotonic() - self.last_cycle
        if since < self.settings.min_cycle_interval_seconds:
            await asyncio.sleep(self.settings.min_cycle_interval_seconds - since)
        now = self.loop.clock()
        deadlines = [self.next_status, *self.confirm_by.values(), *self.retry_eviction_at.values()]
        change = self.cache.next_limit_change(now)
        if change is not None:
            deadlines.append(change)
        wake_at = min(deadlines)
        timeout = max(0.0, min((wake_at - now).total_seconds(), 1.0))
        if self.cache.changed.is_set() or self.outcomes.arrived.is_set():
            return False
        waiters = [
            asyncio.create_task(self.cache.changed.wait()),
            asyncio.create_task(self.outcomes.arrived.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        # A limit that changed at its instant needs a cycle (shed, or room for the queue).
        return change is not None and self.loop.clock() >= change

    # -- 2. outcomes ---------------------------------------------------------------------------

    def _absorb_outcomes(self, state: ClusterState, now: datetime) -> bool:
        self.outcomes.arrived.clear()
        binds, self.outcomes.binds = self.outcomes.binds, []
        evictions, self.outcomes.evictions = self.outcomes.evictions, []
        changed = False
        ttl = timedelta(seconds=self.settings.assumed_ttl_seconds)
        for key, outcome, detail in binds:
            if outcome is BindOutcome.BOUND:
                self.metrics.scheduling_attempts.labels(result="scheduled").inc()
                self.confirm_by[key] = now + ttl  # the watch confirms it, normally in ms
                continue
            self.metrics.scheduling_attempts.labels(result="error").inc()
            if outcome is BindOutcome.UNKNOWN:
                # Not a failure: the bind may have landed. Keep the room until the watch says.
                log.warning("bind of %s/%s got no verdict, kept assumed: %s", *key, detail)
                self.confirm_by[key] = now + ttl
            elif state.is_assumed(key):
                log.info("bind of %s/%s failed, forgotten: %s", *key, detail)
                state.forget(key)
                self.confirm_by.pop(key, None)
                changed = True
        retry = timedelta(seconds=self.settings.eviction_retry_seconds)
        for eviction, evict_outcome, detail in evictions:
            if evict_outcome in (EvictOutcome.EVICTED, EvictOutcome.GONE):
                continue  # counted until the watch shows it gone
            self.retry_eviction_at[eviction.pod] = now + retry
            if evict_outcome is EvictOutcome.BLOCKED and eviction.budget is not None:
                note = (
                    f"eviction of {eviction.pod[0]}/{eviction.pod[1]} blocked by a "
                    f"PodDisruptionBudget ({detail}); retrying every "
                    f"{self.settings.eviction_retry_seconds:g}s"
                )
                self.shed_notes[eviction.budget] = note
                self._report(self._budget_event(eviction.budget, "Warning", "ShedBlocked", note))
            log.info("eviction of %s/%s not done (%s): %s", *eviction.pod, evict_outcome.value,
                     detail)  # fmt: skip
        return changed

    # -- 3. expiry -----------------------------------------------------------------------------

    def _expire(self, state: ClusterState, now: datetime) -> bool:
        changed = False
        for key, deadline in list(self.confirm_by.items()):
            if not state.is_assumed(key):
                del self.confirm_by[key]  # confirmed (or gone)
            elif now >= deadline:
                log.warning("bind of %s/%s never showed in the watch; forgotten", *key)
                state.forget(key)
                del self.confirm_by[key]
                changed = True
        for key, deadline in list(self.retry_eviction_at.items()):
            if now < deadline:
                continue
            del self.retry_eviction_at[key]
            if state.is_evicting(key):
                state.clear_evicting(key)  # no longer "going": the next cycle may pick it again
                changed = True
        return changed

    # -- 5. acting on the plan ------------------------------------------------------------------

    def _dispatch(self, state: ClusterState, plan: Plan, now: datetime) -> None:
        for binding in plan.bindings:
            pod = state.pods[binding.pod]
            self.binds.put_nowait(_BindJob(binding.pod, pod.uid, binding.node))
            self.reported.pop(binding.pod, None)
        if plan.unschedulable:
            self.metrics.scheduling_attempts.labels(result="unschedulable").inc(
                len(plan.unschedulable)
            )
        for unschedulable in plan.unschedulable:
            self._report_unschedulable(
                unschedulable.pod, unschedulable.reason, unschedulable.message
            )
        for key, (reason, message) in self.cache.invalid_pods().items():
            self._report_unschedulable(key, reason, message)
        if plan.evictions:
            self._dispatch_evictions(state, plan.evictions, now)

    def _report_unschedulable(self, key: PodKey, reason: str, message: str) -> None:
        """PodScheduled=False and a FailedScheduling Event, once per change of message."""
        if self.reported.get(key) == message:
            return
        self.reported[key] = message
        if key not in self.pod_reports:
            self.pod_report_keys.put_nowait(key)
        self.pod_reports[key] = (reason, message)

    def _dispatch_evictions(
        self, state: ClusterState, evictions: list[Eviction], now: datetime
    ) -> None:
        by_budget: dict[str, list[tuple[Eviction, int]]] = {}
        for eviction in evictions:
            pod = state.pods.get(eviction.pod)
            if pod is None:
                continue
            budget_name = eviction.budget or ""
            self.metrics.evictions.labels(budget=budget_name, reason=eviction.reason).inc()
            freed = self._freed_watts(state, eviction)
            if eviction.budget is not None:
                by_budget.setdefault(eviction.budget, []).append((eviction, freed))
                figures = state.budget_status(eviction.budget)
                message = (
                    f"evicted to bring PowerBudget {eviction.budget} within its limit: committed "
                    f"{format_power(figures.committed_watts)} exceeds allocatable "
                    f"{format_power(figures.allocatable_watts)} by "
                    f"{format_power(-figures.headroom_watts)}; this pod (priority {pod.priority}) "
                    f"frees {format_power(freed)} on node {eviction.node}"
                )
                reason, condition_reason = "Shed", "PowerBudgetShed"
            else:
                preemptor = next(
                    (
                        key
                        for key, nomination in self.loop.scheduler.queue.nominations.items()
                        if eviction.pod in nomination.victims
                    ),
                    None,
                )
                by = f"{preemptor[0]}/{preemptor[1]}" if preemptor else "a higher-priority pod"
                preemptor_pod = state.pods.get(preemptor) if preemptor else None
                by_priority = (
                    f" (priority {preemptor_pod.priority})" if preemptor_pod is not None else ""
                )
                message = (
                    f"preempted by {by}{by_priority} on node {eviction.node}: this pod has "
                    f"priority {pod.priority} and frees {format_power(freed)}"
                )
                reason, condition_reason = "Preempted", "PreemptionByScheduler"
            self.evictions.put_nowait(
                self._evict(eviction, pod.uid, reason, condition_reason, message)
            )
        for budget_name, picked in by_budget.items():
            figures = state.budget_status(budget_name)
            freed_total = sum(freed for _, freed in picked)
            names = ", ".join(f"{e.pod[0]}/{e.pod[1]}" for e, _ in picked[:5])
            names += ", ..." if len(picked) > 5 else ""
            message = (
                f"shedding {len(picked)} pod(s) ({names}) to free {format_power(freed_total)}: "
                f"committed {format_power(figures.committed_watts)} exceeds allocatable "
                f"{format_power(figures.allocatable_watts)} "
                f"(limit {format_power(figures.limit_watts)})"
            )
            self.shed_notes[budget_name] = f"last shed at {rfc3339(now)}: {message}"
            log.info("PowerBudget %s: %s", budget_name, message)
            self._report(self._budget_event(budget_name, "Warning", "Shed", message))

    def _freed_watts(self, state: ClusterState, eviction: Eviction) -> int:
        pod, pool = state.pods[eviction.pod], state.node_pool(eviction.node)
        if pool is None:
            return 0
        devices = sum(pod.requests.get(name, 0) for name in pool.resource_names)
        it_watts = delta_watts(pool.profile, devices)
        if eviction.budget is not None and eviction.budget in state.budgets:
            return facility_watts(it_watts, state.budgets[eviction.budget].pue_milli)
        return it_watts

    def _evict(
        self, eviction: Eviction, uid: str, reason: str, condition_reason: str, message: str
    ) -> Callable[[], Awaitable[None]]:
        key = eviction.pod

        async def evict() -> None:
            await self.writer.pod_condition(
                key, "DisruptionTarget", "True", condition_reason, message
            )
            await self.writer.event(ObjectRef("Pod", key[1], key[0], uid), "Warning", reason,
                                    message)  # fmt: skip
            outcome, detail = await self.writer.evict(key, uid)
            self.outcomes.evictions.append((eviction, outcome, detail))
            self.outcomes.arrived.set()

        return evict

    def _budget_event(
        self, budget: str, type_: str, reason: str, message: str
    ) -> Callable[[], Awaitable[None]]:
        source = self.cache.budgets.get(budget)
        uid = source.uid if source is not None else ""
        ref = ObjectRef("PowerBudget", budget, uid=uid, api_version=API_VERSION)

        async def post() -> None:
            await self.writer.event(ref, type_, reason, message)

        return post

    def _report(self, job: Callable[[], Awaitable[None]]) -> None:
        self.reports.put_nowait(job)

    # -- 6. status -----------------------------------------------------------------------------

    def _publish_status(self, state: ClusterState, now: datetime) -> None:
        """Status of every pool and budget from the ledger; patched only where it changed."""
        self.metrics.pending_pods.set(state.pending_count() + len(self.cache.invalid_pods()))
        for name in sorted(state.budgets):
            source = self.cache.budgets.get(name)
            if source is None:
                continue
            figures = state.budget_status(name)
            note = self.shed_notes.get(name)
            self.metrics.budget_limit_watts.labels(budget=name).set(figures.limit_watts)
            self.metrics.budget_allocatable_watts.labels(budget=name).set(figures.allocatable_watts)
            self.metrics.budget_committed_watts.labels(budget=name).set(figures.committed_watts)
            self.metrics.budget_headroom_watts.labels(budget=name).set(figures.headroom_watts)
            self._patch_if_changed("powerbudgets", name, budget_status(source, figures, now, note),
                                   source.status)  # fmt: skip
        conflicts = state.pool_conflicts()
        for name in sorted(state.pools):
            pool_source = self.cache.pools.get(name)
            if pool_source is None:
                continue
            usage = state.pool_status(name)
            self.metrics.pool_devices.labels(pool=name, state="allocated").set(
                usage.allocated_devices
            )
            self.metrics.pool_devices.labels(pool=name, state="free").set(
                usage.devices - usage.allocated_devices
            )
            self.metrics.pool_committed_watts.labels(pool=name).set(usage.committed_watts)
            mine = {node: pools for node, pools in conflicts.items() if name in pools}
            self._patch_if_changed("acceleratorpools", name,
                                   pool_status(pool_source, usage, mine, now),
                                   pool_source.status)  # fmt: skip
        # Forget reports of pods that are no longer waiting.
        invalid = self.cache.invalid_pods()
        for key in [k for k in self.reported if not state.is_pending(k) and k not in invalid]:
            del self.reported[key]

    def _patch_if_changed(
        self, plural: str, name: str, desired: dict[str, Any], observed: Any
    ) -> None:
        slot = f"{plural}/{name}"
        if not differs(desired, observed) or self.written.get(slot) == desired:
            return
        self.written[slot] = desired

        async def patch() -> None:
            if not await self.writer.custom_status(plural, name, desired):
                self.written.pop(slot, None)  # try again next time

        self.status_patches.put_nowait(patch)

    # -- workers ---------------------------------------------------------------------------------

    async def _bind_worker(self) -> None:
        elector = self.loop.elector
        # A bind must land while we surely lead. We count ourselves leader until renew_deadline
        # after a renewal; a standby takes over no earlier than the lease duration after it:
        # a bind that starts in time and gives up within the gap can never race a new leader.
        timeout = min(BIND_TIMEOUT_SECONDS, elector.lease_duration_seconds / 3)
        while True:
            job = await self.binds.get()
            if not elector.is_leading():
                continue
            started = time.perf_counter()
            outcome, detail = await self.writer.bind(job.key, job.uid, job.node, timeout)
            self.metrics.binding_duration.observe(time.perf_counter() - started)
            self.outcomes.binds.append((job.key, outcome, detail))
            self.outcomes.arrived.set()

    async def _pod_report_worker(self) -> None:
        while True:
            key = await self.pod_report_keys.get()
            reason, message = self.pod_reports.pop(key, ("", ""))
            pod = self.cache.pods.get(key)
            if (
                not message
                or pod is None
                or pod.pod.node_name
                or not self.loop.elector.is_leading()
            ):
                continue
            try:
                if await self.writer.pod_condition(key, "PodScheduled", "False", reason, message):
                    await self.writer.event(
                        ObjectRef("Pod", key[1], key[0], pod.pod.uid),
                        "Warning", "FailedScheduling", message,
                    )  # fmt: skip
                else:
                    self.reported.pop(key, None)  # say it again next cycle
            except Exception:
                log.exception("reporting pod %s/%s failed", *key)

    async def _report_worker(self, jobs: asyncio.Queue[Callable[[], Awaitable[None]]]) -> None:
        while True:
            job = await jobs.get()
            if not self.loop.elector.is_leading():
                continue
            try:
                await job()
            except Exception:  # a report must never stop the loop
                log.exception("a status or event write failed")
