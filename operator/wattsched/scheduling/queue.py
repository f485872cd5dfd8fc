"""The SchedulingQueue: QueueSort kept across cycles, the backoff of pods that fit nowhere,
gang parking, and nominations. kube-scheduler's SchedulingQueue beside its Cache (ClusterState).

kube-scheduler keeps an activeQ beside its unschedulableQ, so that a cycle costs the pods that
may fit, not every pod that waits; this is the same idea. A cycle walks the awake units in
order, and every unit it reaches is either placed or parked (ClusterState.park). So while no
room is freed and no parked pod is due for its periodic retry, the next cycle's awake units are
exactly the ones this cycle did not reach, plus whatever joined the queue since. Anything else
(room freed, a node or budget changed, a retry due, another scheduler ran a cycle on the state)
rebuilds the awake set from the whole queue, the way the first cycle does.

Either way the result is what one sort of every pending pod would give; the cache only saves
the work. Only the scheduling loop uses a queue, one cycle at a time: nothing here locks.

The queue is the one writer of parking and nominations; it reads ClusterState's change facts
(pods changed, the room epoch, room freed per domain) to know when a park no longer holds. A new
ClusterState (a restart, a new leader) starts the queue afresh, as kube-scheduler's does.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter

from wattsched.domain import Pod, PodKey
from wattsched.scheduling.config import SchedulerConfig
from wattsched.scheduling.state import ClusterState

QueueKey = tuple[int, int, str, str]
# (room epoch, cycle) when a pod was parked: one tuple shared by every pod parked together.
_Mark = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Nomination:
    """A preemptor waiting for its victims to go: it holds their room and does not preempt again."""

    node: str
    victims: tuple[PodKey, ...]


@dataclass(frozen=True, slots=True)
class GangPark:
    """A gang denied whole at `cycle`: the domains its members could use, and how often room had
    been freed in each by then. It stays parked while none of them has freed room since."""

    topology_epoch: int
    cycle: int
    domains: tuple[str, ...]
    freed: tuple[int, ...]


def queue_order(pod: Pod) -> QueueKey:
    """QueueSort: priority first, then creation, then the key so ties break the same way."""
    return pod.queue_key


@dataclass(eq=False, slots=True)
class QueueUnit:
    """A gang as QueueSort orders it: all its pending members, where its best member sorts.

    A single pod is its own unit (the Pod itself): at 100,000 pending pods, a wrapper each is
    measurable. `members` empty means the unit was superseded and is skipped.
    """

    members: list[Pod]
    gang: str
    gang_size: int = 1
    placed_members: int = 0  # gang members already bound or assumed before this cycle
    queue_key: QueueKey = field(init=False)

    def __post_init__(self) -> None:
        self.queue_key = self.members[0].queue_key

    @property
    def best(self) -> Pod:
        return self.members[0]


Unit = Pod | QueueUnit
_UNIT_KEY = attrgetter("queue_key")
# Past this many arrivals one sort of the awake units beats inserting them one by one.
_INSERT_LIMIT = 256


class SchedulingQueue:
    def __init__(self, config: SchedulerConfig) -> None:
        self._parking = config.park_unschedulable
        self._flush_cycles = config.unschedulable_flush_cycles
        self._identity = -1
        # Every pending pod as of queue version `_order_version`, in queue order (pods that
        # left since are dropped lazily).
        self._order: list[Pod] = []
        self._order_version = -1
        # The units the last cycle did not reach, valid for cycle `_tail_cycle` at room epoch
        # `_tail_epoch` only; `_tail_gangs` finds its gang units without walking it.
        self._tail: list[Unit] = []
        self._tail_gangs: dict[str, QueueUnit] = {}
        self._tail_version = -1
        self._tail_epoch = -1
        self._tail_cycle = -1
        self._due_cycle = 0  # when the earliest parked pod is due for its periodic retry
        self._cycle_gangs: dict[str, QueueUnit] = {}  # the live gang units last handed out
        self.cycle = 0
        self._parked: dict[PodKey, _Mark] = {}
        self._parked_gangs: dict[str, GangPark] = {}
        self._nominations: dict[PodKey, Nomination] = {}
        self._pods_version = 0
        self._gangs_version = 0

    def begin_cycle(self, state: ClusterState) -> int:
        """Start a cycle on `state`: a new state (restart, new leader) starts the queue afresh,
        and nominations of pods that are no longer pending (bound, gone) end here."""
        if state.identity != self._identity:
            self._identity = state.identity
            self._order_version = self._tail_version = -1
            self._tail_cycle = -1
            self._parked.clear()
            self._parked_gangs.clear()
            self._nominations.clear()
            self._pods_version = state.changed_pods.version
            self._gangs_version = state.changed_gangs.version
        self._unpark_changed(state)
        self.cycle += 1
        for key in sorted(self._nominations):
            node = self._nominations[key].node
            if not state.is_pending(key) or node not in state.nodes:
                self.end_nomination(state, key)
        return self.cycle

    def units(self, state: ClusterState) -> list[Unit]:
        """This cycle's units in order: each awake single pod, each gang with an awake member.

        Single pods that left the queue since may still be listed; the caller skips any pod
        that `state.pending_by_key` no longer maps to that very object.
        """
        if (
            self._parking
            and self._tail_cycle == self.cycle
            and self._tail_epoch == state.room_epoch
            and self.cycle < self._due_cycle
        ):
            arrivals = self._arrivals(state, self._tail_version)
            if arrivals is not None:
                return self._awake_tail(state, arrivals)
        return self._rebuild(state)

    def reached(self, state: ClusterState, units: list[Unit], count: int) -> None:
        """The cycle walked `units[:count]`; each was placed or parked, none is awake."""
        self._tail = units[count:] if count else units
        self._tail_gangs = {
            gang: unit
            for gang, unit in self._cycle_gangs.items()
            if unit.members and _position(units, unit) >= count
        }
        self._tail_version = state.joined.version
        self._tail_epoch = state.room_epoch
        self._tail_cycle = self.cycle + 1
        if count:
            self._due_cycle = min(self._due_cycle, self.cycle + self._flush_cycles)

    # -- the whole queue ------------------------------------------------------------------------

    def _rebuild(self, state: ClusterState) -> list[Unit]:
        pending = state.pending_by_key.get
        arrivals = self._arrivals(state, self._order_version)
        if arrivals is None:
            ordered = sorted(state.pending_by_key.values(), key=_UNIT_KEY)  # = queue_order
        elif arrivals:
            ordered = [p for p in self._order if pending(p.key) is p and p.key not in arrivals]
            ordered += arrivals.values()
            ordered.sort(key=_UNIT_KEY)  # a sorted run and a short one: a merge, in effect
        else:
            ordered = [p for p in self._order if pending(p.key) is p]
        self._order = ordered
        self._order_version = state.joined.version

        parked_at = self._parked if self._parking else {}
        flush, room_epoch, now = self._flush_cycles, state.room_epoch, self.cycle
        due = now + flush
        units: list[Unit | None] = []
        gang_units: dict[str, int] = {}
        self._cycle_gangs = {}
        awake: set[str] = set()
        for pod in ordered:
            gang = pod.gang
            mark = parked_at.get(pod.key) if parked_at else None
            parked = mark is not None and now - mark[1] < flush
            if parked:
                assert mark is not None
                # Room freed anywhere wakes a single pod (it may preempt where room grew), but
                # a denied gang only once room came back where its members could go.
                if mark[0] != room_epoch:
                    parked = gang is not None and self.gang_still_parked(state, gang, mark[1])
                if parked:
                    due = min(due, mark[1] + flush)
            if gang is None:
                if not parked:
                    units.append(pod)
                continue
            if not parked:
                awake.add(gang)
            index = gang_units.get(gang)
            if index is None:
                gang_units[gang] = len(units)
                units.append(QueueUnit([pod], gang))
            else:
                unit = units[index]
                assert isinstance(unit, QueueUnit)
                unit.members.append(pod)
        for gang, index in gang_units.items():
            unit = units[index]
            assert isinstance(unit, QueueUnit)
            if gang not in awake:
                units[index] = None
                continue
            unit.placed_members, unit.gang_size = state.gang_summary(gang)
            self._cycle_gangs[gang] = unit
        self._due_cycle = due
        self._tail_version = state.joined.version
        return [unit for unit in units if unit is not None]

    # -- only what changed ----------------------------------------------------------------------

    def _arrivals(self, state: ClusterState, version: int) -> dict[tuple[str, str], Pod] | None:
        """Pods that joined since `version` and are still pending, by key; None: re-sort."""
        joined = state.joined.since(version)
        if joined is None:
            return None
        pending = state.pending_by_key.get
        return {pod.key: pod for pod in joined if pending(pod.key) is pod}

    def _awake_tail(self, state: ClusterState, arrivals: dict[tuple[str, str], Pod]) -> list[Unit]:
        units = self._tail
        pending = state.pending_by_key.get
        fresh: list[Unit] = [pod for pod in arrivals.values() if pod.gang is None]
        # A gang that gained a member (every member woke, see ClusterState.upsert_pod) or lost
        # its best one sorts anew: its old unit is emptied, so the walk skips it.
        gangs = {pod.gang for pod in arrivals.values() if pod.gang is not None}
        live: dict[str, QueueUnit] = {}
        for gang, unit in self._tail_gangs.items():
            members = [m for m in unit.members if pending(m.key) is m]
            if gang in gangs or not members or members[0] is not unit.members[0]:
                unit.members = []
                gangs.add(gang)
            else:
                unit.members = members
                live[gang] = unit
        for gang in sorted(gangs):
            members = sorted(
                (m for m in state.gang_members(gang) if pending(m.key) is m), key=queue_order
            )
            if members:
                fresh_unit = QueueUnit(members, gang)
                live[gang] = fresh_unit
                fresh.append(fresh_unit)
        if len(fresh) > _INSERT_LIMIT:
            units += fresh
            units.sort(key=_UNIT_KEY)
        else:
            for arrival in fresh:
                bisect.insort(units, arrival, key=_UNIT_KEY)
        for gang, unit in live.items():
            unit.placed_members, unit.gang_size = state.gang_summary(gang)
        self._cycle_gangs = live
        self._tail_version = state.joined.version
        return units

    # -- the backoff: pods that fit nowhere sit out until room may have come back ---------------

    def park(self, state: ClusterState, key: PodKey) -> None:
        """A pending pod fit nowhere this cycle: skip it until room may have been freed."""
        self.park_all(state, (key,))

    def park_all(self, state: ClusterState, keys: Iterable[PodKey]) -> None:
        mark = (state.room_epoch, self.cycle)
        pending = state.pending_by_key
        self._parked.update((key, mark) for key in keys if key in pending)

    def park_gang(
        self, state: ClusterState, gang: str, keys: Iterable[PodKey], domains: tuple[str, ...]
    ) -> None:
        """A gang could not be placed whole: park its pending members, and remember the room
        domains (`state.pool_domain`, `state.budget_domain`) its members could go to.

        It stays parked until room is freed in one of those domains, not anywhere: Permit never
        preempts, so only freed room (or a new member, or a node, pool or budget change) can
        turn a denial around, and a denied gang otherwise costs a trial placement of its
        members every cycle. A gang waiting for members passes no domains: room is not what it
        waits for.
        """
        self.park_all(state, keys)
        self._parked_gangs[gang] = GangPark(
            state.topology_epoch,
            self.cycle,
            domains,
            tuple(state.freed_in(d) for d in domains),
        )

    def gang_still_parked(self, state: ClusterState, gang: str, cycle: int) -> bool:
        """The gang was parked at `cycle` and no room was freed since in any of its domains."""
        park = self._parked_gangs.get(gang)
        if park is None or park.cycle != cycle or park.topology_epoch != state.topology_epoch:
            return False
        return all(state.freed_in(d) == n for d, n in zip(park.domains, park.freed, strict=True))

    def _unpark_changed(self, state: ClusterState) -> None:
        """A pod upserted or removed since the last cycle sits in no backoff any more, and a
        gang that gained (or changed) a member may be complete now: all of it wakes."""
        pods = state.changed_pods.since(self._pods_version)
        gangs = state.changed_gangs.since(self._gangs_version)
        self._pods_version = state.changed_pods.version
        self._gangs_version = state.changed_gangs.version
        if pods is None or gangs is None:  # fell behind the log: forget every park (safe)
            self._parked.clear()
            self._parked_gangs.clear()
            return
        parked = self._parked
        for key in pods:
            parked.pop(key, None)
        for gang in gangs:
            self._parked_gangs.pop(gang, None)
            for member in state.gang_members(gang):
                parked.pop(member.key, None)

    # -- nominations (PostFilter's preemptors, held for by PreFilter) ----------------------------

    def nominate(
        self, state: ClusterState, key: PodKey, node: str, victims: tuple[PodKey, ...]
    ) -> None:
        self.end_nomination(state, key)  # a nominee moving on gives its old room back
        self._nominations[key] = Nomination(node, victims)

    def end_nomination(self, state: ClusterState, key: PodKey) -> None:
        """The room a nominee held on its node is no longer held: for gangs, room freed there."""
        nomination = self._nominations.pop(key, None)
        if nomination is not None:
            state.room_freed_on(nomination.node)

    def nomination(self, key: PodKey) -> Nomination | None:
        return self._nominations.get(key)

    @property
    def nominations(self) -> Mapping[PodKey, Nomination]:
        return self._nominations

    def assumed(self, state: ClusterState, key: PodKey) -> None:
        """Reserve placed the pod: it holds no nomination and sits in no backoff any more."""
        self.end_nomination(state, key)
        self._parked.pop(key, None)


def _position(units: list[Unit], unit: QueueUnit) -> int:
    """Where `unit` sits in the sorted `units`: a bisection, then past any equal keys."""
    index = bisect.bisect_left(units, unit.queue_key, key=_UNIT_KEY)
    while units[index] is not unit:
        index += 1
    return index
