"""The scheduling loop keeps kube-scheduler's assume/bind promises, on the clock it is given.

A term is driven turn by turn: the watch is played into the cache as API-shaped objects, the
API's answers come from a fake writer that records every write, and time moves only when the
test moves the injected clock. Between turns the event loop merely lets the workers run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from wattsched.cluster.cache import ClusterCache
from wattsched.controllers.loop import SchedulingLoop, _Term
from wattsched.controllers.outcomes import LoopSettings
from wattsched.domain import Plan, PodKey
from wattsched.kube.lease import LeaderElector
from wattsched.kube.writer import (
    BIND_TIMEOUT_SECONDS,
    BindOutcome,
    EvictOutcome,
    KubeWriter,
    ObjectRef,
)
from wattsched.metrics import Metrics
from wattsched.scheduling.scheduler import Scheduler
from wattsched.scheduling.state import ClusterState

T0 = datetime(2029, 1, 15, 12, 0, tzinfo=UTC)
SETTINGS = LoopSettings(
    assumed_ttl_seconds=30.0, eviction_retry_seconds=5.0, status_interval_seconds=0.0
)
PDB_SAYS_NO = "Cannot evict pod as it would violate the pod's disruption budget."

# -- the cluster, as the watch shows it ------------------------------------------------------------


def node(name: str, gpus: int = 8) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": {"pool": "h200", "hall": "a"}},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


POOL = {
    "metadata": {"name": "h200", "uid": "uid-pool", "generation": 1},
    "spec": {
        "nodeSelector": {"matchLabels": {"pool": "h200"}},
        "accelerator": {"vendor": "nvidia", "model": "H200", "resourceNames": ["nvidia.com/gpu"]},
        "power": {"deviceWatts": 700, "idleDeviceWatts": 100, "nodeBaseWatts": 1000},
    },
}


def budget(limit: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "hall-a", "uid": "uid-hall-a", "generation": 1},
        "spec": {"nodeSelector": {"matchLabels": {"hall": "a"}}, "limit": limit,
                 "reservePercent": 0, "enforcement": "Shed"},
    }  # fmt: skip


def pod(name: str, gpus: int, node_name: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                     "creationTimestamp": "2029-01-15T11:00:00Z"},
        "spec": {"schedulerName": "wattsched", "nodeName": node_name,
                 "containers": [{"name": "c", "resources": {"requests":
                                                            {"nvidia.com/gpu": str(gpus)}}}]},
        "status": {},
    }  # fmt: skip


def cluster(limit: str, *pods: dict[str, Any]) -> ClusterCache:
    """One 8-GPU node n1 (1 kW base, 700 W per allocated GPU, 100 W idle) under `limit`."""
    cache = ClusterCache("wattsched")
    cache.node_event(None, node("n1"))
    cache.pool_event(None, POOL)
    cache.budget_event(None, budget(limit))
    for obj in pods:
        cache.pod_event(None, obj)
    return cache


def key(name: str) -> PodKey:
    return ("ns", name)


# -- the stand-ins: a clock, an elector, the API's answers -----------------------------------------


class ManualClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Leading:
    """What a term asks of the LeaderElector: this replica leads, throughout the test."""

    lease_duration_seconds = 15.0

    def __init__(self) -> None:
        self.became_leader = asyncio.Event()
        self.became_leader.set()

    def is_leading(self, margin_seconds: float = 0.0) -> bool:
        return True


class FakeWriter(KubeWriter):
    """Records every write; binds and evictions answer what the test scripted, per pod name
    (BOUND and EVICTED when nothing is scripted). No client: nothing reaches an API."""

    def __init__(self) -> None:
        self.bind_answers: dict[str, list[tuple[BindOutcome, str]]] = {}
        self.evict_answers: dict[str, list[tuple[EvictOutcome, str]]] = {}
        self.binds: list[tuple[PodKey, str]] = []
        self.evictions: list[PodKey] = []
        self.conditions: list[tuple[PodKey, str, str, str, str]] = []
        self.events: list[tuple[ObjectRef, str, str, str]] = []
        self.statuses: list[tuple[str, str, dict[str, Any]]] = []

    async def bind(
        self, key: PodKey, uid: str, node: str, timeout_seconds: float = BIND_TIMEOUT_SECONDS
    ) -> tuple[BindOutcome, str]:
        self.binds.append((key, node))
        answers = self.bind_answers.get(key[1])
        return answers.pop(0) if answers else (BindOutcome.BOUND, "")

    async def evict(self, key: PodKey, uid: str) -> tuple[EvictOutcome, str]:
        self.evictions.append(key)
        answers = self.evict_answers.get(key[1])
        return answers.pop(0) if answers else (EvictOutcome.EVICTED, "")

    async def pod_condition(
        self, key: PodKey, type_: str, status: str, reason: str, message: str
    ) -> bool:
        self.conditions.append((key, type_, status, reason, message))
        return True

    async def event(self, about: ObjectRef, type_: str, reason: str, message: str) -> None:
        self.events.append((about, type_, reason, message))

    async def custom_status(self, plural: str, name: str, status: dict[str, Any]) -> bool:
        self.statuses.append((plural, name, status))
        return True

    def budget_warnings(self, reason: str) -> list[str]:
        """Messages of the Warning Events with `reason` about PowerBudget hall-a."""
        return [
            message
            for about, type_, why, message in self.events
            if (about.kind, about.name, type_, why) == ("PowerBudget", "hall-a", "Warning", reason)
        ]

    def budget_condition(self, type_: str) -> dict[str, Any]:
        """The condition of PowerBudget hall-a in the status last patched."""
        patches = [s for plural, name, s in self.statuses if plural == "powerbudgets"]
        conditions: dict[str, dict[str, Any]] = {c["type"]: c for c in patches[-1]["conditions"]}
        return conditions[type_]


class RecordingScheduler(Scheduler):
    """The real engine, noting which pods wait in its queue as each cycle begins."""

    def __init__(self) -> None:
        super().__init__()
        self.queues: list[set[PodKey]] = []

    def schedule(self, state: ClusterState, max_pods: int | None = None) -> Plan:
        self.queues.append({p.key for p in state.pending()})
        return super().schedule(state, max_pods)


class Rig:
    """A leader's term, driven one turn at a time."""

    def __init__(self, cache: ClusterCache, settings: LoopSettings) -> None:
        self.cache = cache
        self.clock = ManualClock(T0)
        self.writer = FakeWriter()
        self.scheduler = RecordingScheduler()
        self.settings = settings
        elector = cast(LeaderElector, Leading())
        loop = SchedulingLoop(cache, self.scheduler, self.writer, elector, Metrics(),
                              clock=self.clock, settings=settings)  # fmt: skip
        self.term = _Term(loop)
        self.state = self.term.begin()

    async def turn(self, *, cycle: bool = False) -> None:
        """One turn (`cycle`: run the engine even without news), then let the workers act."""
        await self.term._turn(self.state, cycle)
        for _ in range(10):  # a worker needs a tick or two to take its job and answer
            await asyncio.sleep(0)

    def gpus_on(self, node_name: str) -> int:
        return self.state.node_usage(node_name).get("nvidia.com/gpu", 0)

    def committed_watts(self) -> int:
        return self.state.budget_status("hall-a").committed_watts


@contextlib.asynccontextmanager
async def leading(cache: ClusterCache, settings: LoopSettings = SETTINGS) -> AsyncIterator[Rig]:
    rig = Rig(cache, settings)
    try:
        yield rig
    finally:
        await rig.term.close()


# -- binds -----------------------------------------------------------------------------------------


def test_a_bind_without_a_verdict_keeps_its_room_until_the_watch_shows_it_bound() -> None:
    async def scenario() -> None:
        async with leading(cluster("10kW", pod("first", 6))) as rig:
            rig.writer.bind_answers["first"] = [(BindOutcome.UNKNOWN, "timed out after 5s")]
            await rig.turn(cycle=True)
            assert rig.writer.binds == [(key("first"), "n1")]

            # The timeout is absorbed; another pod that would take the room arrives.
            rig.clock.advance(1)
            rig.cache.pod_event("ADDED", pod("second", 6))
            await rig.turn()
            assert rig.state.is_assumed(key("first"))
            assert rig.state.node_of(key("first")) == "n1"
            assert rig.gpus_on("n1") == 6
            assert rig.committed_watts() == 1000 + 6 * 700 + 2 * 100
            assert rig.state.is_pending(key("second"))
            assert rig.writer.binds == [(key("first"), "n1")]  # no second pod got the room
            assert any(
                k == key("second") and (type_, status) == ("PodScheduled", "False")
                for k, type_, status, _, _ in rig.writer.conditions
            )

            # Any number of cycles before the TTL: the room stays taken.
            rig.clock.advance(SETTINGS.assumed_ttl_seconds / 2)
            await rig.turn(cycle=True)
            assert rig.state.is_assumed(key("first")) and rig.gpus_on("n1") == 6
            assert key("first") not in rig.scheduler.queues[-1]

            # The watch answers: the bind had landed.
            rig.cache.pod_event("MODIFIED", pod("first", 6, "n1"))
            await rig.turn()
            assert not rig.state.is_assumed(key("first"))
            assert rig.state.node_of(key("first")) == "n1"

            # Confirmed, so the TTL forgets nothing.
            rig.clock.advance(2 * SETTINGS.assumed_ttl_seconds)
            await rig.turn(cycle=True)
            assert rig.state.node_of(key("first")) == "n1"
            assert rig.gpus_on("n1") == 6
            assert rig.committed_watts() == 1000 + 6 * 700 + 2 * 100
            assert all(key("first") not in queue for queue in rig.scheduler.queues[1:])
            assert rig.state.is_pending(key("second"))
            assert rig.writer.binds == [(key("first"), "n1")]

    asyncio.run(scenario())


def test_an_assumed_bind_the_watch_never_confirms_is_forgotten_after_the_ttl() -> None:
    async def scenario() -> None:
        async with leading(cluster("10kW", pod("first", 6))) as rig:
            await rig.turn(cycle=True)  # placed; the API answers BOUND
            await rig.turn()  # the answer is absorbed at T0: the TTL runs from here
            assert rig.state.is_assumed(key("first"))

            rig.clock.advance(SETTINGS.assumed_ttl_seconds - 0.1)
            await rig.turn(cycle=True)
            assert rig.state.is_assumed(key("first")) and rig.gpus_on("n1") == 6
            assert key("first") not in rig.scheduler.queues[-1]
            assert len(rig.writer.binds) == 1

            rig.clock.advance(0.2)
            await rig.turn()
            assert key("first") in rig.scheduler.queues[-1]  # pending again, so placed again
            assert rig.writer.binds == [(key("first"), "n1")] * 2
            assert rig.gpus_on("n1") == 6  # counted once, not twice

    asyncio.run(scenario())


def test_a_definite_bind_failure_is_forgotten_at_once() -> None:
    async def scenario() -> None:
        async with leading(cluster("10kW", pod("first", 6))) as rig:
            rig.writer.bind_answers["first"] = [(BindOutcome.REJECTED, "409: already bound")]
            await rig.turn(cycle=True)
            assert rig.state.is_assumed(key("first"))
            assert key("first") in rig.scheduler.queues[-1]

            await rig.turn()  # the clock has not moved
            assert key("first") in rig.scheduler.queues[-1]  # pending again, so placed again
            assert rig.writer.binds == [(key("first"), "n1")] * 2
            assert rig.gpus_on("n1") == 6

    asyncio.run(scenario())


# -- evictions -------------------------------------------------------------------------------------


def test_an_eviction_a_pdb_blocks_is_reported_and_retried_after_the_interval() -> None:
    # 1 kW base + 2 x 700 W + 6 x 100 W idle = 3 kW under a 2 kW limit: shed the pod.
    async def scenario() -> None:
        async with leading(cluster("2kW", pod("running", 2, "n1"))) as rig:
            rig.writer.evict_answers["running"] = [(EvictOutcome.BLOCKED, PDB_SAYS_NO)]
            await rig.turn(cycle=True)
            assert rig.writer.evictions == [key("running")]
            assert rig.writer.budget_warnings("ShedBlocked") == []

            await rig.turn()  # the 429 is absorbed
            [blocked] = rig.writer.budget_warnings("ShedBlocked")
            assert "running" in blocked and PDB_SAYS_NO in blocked and "every 5s" in blocked
            within = rig.writer.budget_condition("WithinLimit")
            assert within["status"] == "False" and blocked in within["message"]

            rig.clock.advance(SETTINGS.eviction_retry_seconds - 0.1)
            await rig.turn(cycle=True)
            assert rig.writer.evictions == [key("running")]
            assert rig.state.is_evicting(key("running"))

            rig.clock.advance(0.2)
            await rig.turn()
            assert rig.writer.evictions == [key("running")] * 2  # this time the PDB allows it

            # Evicted: counted until the watch shows it gone, and never asked again.
            rig.clock.advance(10 * SETTINGS.eviction_retry_seconds)
            await rig.turn(cycle=True)
            assert rig.writer.evictions == [key("running")] * 2
            assert len(rig.writer.budget_warnings("ShedBlocked")) == 1

    asyncio.run(scenario())
