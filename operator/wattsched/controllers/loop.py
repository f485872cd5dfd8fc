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
from datetime import UTC, datetime, timedelta

from wattsched.api.models import API_VERSION
from wattsched.cluster.cache import ClusterCache
from wattsched.controllers import wording, workers
from wattsched.controllers.evictions import EvictionDesk
from wattsched.controllers.outcomes import BindJob, CycleSummary, LoopSettings, Outcomes
from wattsched.controllers.publish import StatusPublisher
from wattsched.controllers.telemetry import TelemetryAnswer, apply_answer, telemetry_jobs
from wattsched.domain import Eviction, Plan, PodKey
from wattsched.kube.lease import LeaderElector
from wattsched.kube.writer import (
    BindOutcome,
    EvictOutcome,
    KubeWriter,
    ObjectRef,
)
from wattsched.metrics import Metrics
from wattsched.scheduling.scheduler import Scheduler
from wattsched.scheduling.state import ClusterState
from wattsched.telemetry.prometheus import PrometheusClient
from wattsched.telemetry.readings import PoolTelemetry

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


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
        telemetry: PrometheusClient | None = None,
    ) -> None:
        self.cache = cache
        self.telemetry = telemetry  # None: no Prometheus, Measured budgets stay on nameplate
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
        self.outcomes = Outcomes()
        self.binds: asyncio.Queue[BindJob] = asyncio.Queue()
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
        self.shed_notes: dict[str, str] = {}
        self.desk = EvictionDesk(
            loop.metrics, self.evictions, self.shed_notes, self._evict, self._budget_report
        )
        self.publisher = StatusPublisher(
            loop.cache, loop.metrics, loop.writer, self.status_patches, self.reported
        )
        self.next_status = datetime.min.replace(tzinfo=UTC)
        self.next_telemetry = datetime.min.replace(tzinfo=UTC)
        self.telemetry_jobs: asyncio.Queue[tuple[PoolTelemetry, ...]] = asyncio.Queue()
        self.last_answer: TelemetryAnswer | None = None
        self.last_cycle = 0.0
        self.summary = CycleSummary()

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
        self.reported.clear()
        self.reported.update({key: t.reported for key, t in self.cache.pods.items() if t.reported})
        log.info("leading: ledger rebuilt from %d pods on %d nodes; %d pending",
                 len(state.pods), len(state.nodes), state.pending_count())  # fmt: skip
        elector = self.loop.elector
        for _ in range(self.settings.bind_concurrency):
            self.workers.append(asyncio.create_task(workers.bind(
                self.binds, self.writer, elector, self.metrics, self.outcomes
            )))  # fmt: skip
        for _ in range(self.settings.report_concurrency):
            self.workers.append(asyncio.create_task(workers.jobs(self.reports, elector)))
            self.workers.append(asyncio.create_task(workers.pod_reports(
                self.pod_report_keys, self.pod_reports, self.reported, self.cache, self.writer,
                elector,
            )))  # fmt: skip
        for _ in range(2):
            self.workers.append(asyncio.create_task(workers.jobs(self.status_patches, elector)))
        if self.loop.telemetry is not None:
            self.workers.append(asyncio.create_task(workers.telemetry(
                self.telemetry_jobs, self.loop.telemetry, elector, self.metrics, self.outcomes
            )))  # fmt: skip
        for _ in range(self.settings.eviction_concurrency):
            self.workers.append(asyncio.create_task(workers.jobs(self.evictions, elector)))
        return state

    async def _turn(self, state: ClusterState, changed: bool) -> bool:
        """One turn; returns whether the next turn must run a cycle even without news."""
        now = self.loop.clock()
        state.stamp(now.timestamp())  # placements from here on happen now (measured power)
        # 1. What the watch saw since the last turn (and limits whose scheduled instant came).
        changed = self.cache.apply_changes(state, now) or changed
        # 2. What the API answered to our binds and evictions.
        changed = self._absorb_outcomes(state, now) or changed
        # 3. Assumptions the watch never confirmed, evictions a PDB blocked: time's up?
        changed = self._expire(state, now) or changed
        #    And measured power: readings age, recent pods age, new queries go out.
        if now >= self.next_telemetry:
            changed = self._telemetry_tick(state, now) or changed
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
            self.publisher.publish(state, now, self.shed_notes)
            self.next_status = now + timedelta(seconds=self.settings.status_interval_seconds)
        return more

    async def _sleep_until_work(self, state: ClusterState) -> bool:
        """Sleep until news (watch, API answers) or the next deadline; True for a timer wake."""
        since = time.monotonic() - self.last_cycle
        if since < self.settings.min_cycle_interval_seconds:
            await asyncio.sleep(self.settings.min_cycle_interval_seconds - since)
        now = self.loop.clock()
        deadlines = [
            self.next_status,
            self.next_telemetry,
            *self.confirm_by.values(),
            *self.retry_eviction_at.values(),
        ]
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
        changed = False
        answer, self.outcomes.telemetry = self.outcomes.telemetry, None
        if answer is not None:
            self.last_answer = answer
            apply_answer(state, answer, now.timestamp())
            changed = True
        binds, self.outcomes.binds = self.outcomes.binds, []
        evictions, self.outcomes.evictions = self.outcomes.evictions, []
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
                note = wording.shed_blocked(
                    eviction.pod, detail, self.settings.eviction_retry_seconds
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
            self.binds.put_nowait(BindJob(binding.pod, pod.uid, binding.node))
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
            self.desk.dispatch(state, plan.evictions, now, self.loop.scheduler.queue.nominations)

    def _report_unschedulable(self, key: PodKey, reason: str, message: str) -> None:
        """PodScheduled=False and a FailedScheduling Event, once per change of message."""
        if self.reported.get(key) == message:
            return
        self.reported[key] = message
        if key not in self.pod_reports:
            self.pod_report_keys.put_nowait(key)
        self.pod_reports[key] = (reason, message)

    def _evict(
        self, eviction: Eviction, uid: str, reason: str, condition_reason: str, message: str
    ) -> Callable[[], Awaitable[None]]:
        """The eviction job: say why on the pod, then ask the Eviction API (PDBs respected)."""
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

    def _budget_report(self, budget: str, reason: str, message: str) -> None:
        self._report(self._budget_event(budget, "Warning", reason, message))

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

    # -- workers ---------------------------------------------------------------------------------

    def _telemetry_tick(self, state: ClusterState, now: datetime) -> bool:
        """Every telemetry interval: recent pods age, the last answer ages (a reading older
        than staleAfter no longer counts), and the next queries go out. True when a Measured
        budget exists, since room may have come."""
        self.next_telemetry = now + timedelta(seconds=self.settings.telemetry_interval_seconds)
        if not any(budget.measured for budget in state.budgets.values()):
            return False
        seconds = now.timestamp()
        state.advance_to(seconds)
        apply_answer(state, self.last_answer, seconds)
        if self.loop.telemetry is not None and self.telemetry_jobs.empty():
            jobs = telemetry_jobs(state, self.settings.telemetry_step_seconds)
            if jobs:
                self.telemetry_jobs.put_nowait(jobs)
        return True
