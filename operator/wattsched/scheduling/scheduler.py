"""The scheduling cycle, read top to bottom in `Scheduler.schedule`.

Only the scheduling loop calls `schedule`, one cycle at a time, and it owns the ClusterState for
the duration: nothing here locks. A cycle is a pure function of the state (plus caches that never
change an answer), so the same state gives the same plan.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

from wattsched.power.watts import delta_watts, fits, is_accelerator_resource
from wattsched.scheduling.config import SchedulerConfig
from wattsched.scheduling.filters import (
    TOO_MANY_PODS,
    PodShape,
    UnguardedKind,
    devices_requested,
    insufficient,
    power_reason,
    refusing_budgets,
    resource_reason,
    static_reason,
    unguarded_kind,
    unguarded_reason,
    unschedulable_message,
)
from wattsched.scheduling.model import (
    GANG_SIZE_ANNOTATION,
    INVALID_GANG_REASON,
    Binding,
    Budget,
    Eviction,
    Node,
    Plan,
    Pod,
    PodKey,
    Pool,
    Unschedulable,
)
from wattsched.scheduling.preemption import PREEMPTED_REASON, NodeCandidates, select_victims
from wattsched.scheduling.queue import QueueUnit, SchedulingQueue, Unit
from wattsched.scheduling.scoring import (
    DevicePacking,
    GangTopology,
    PowerHeadroom,
    ScoreContext,
    ScorePlugin,
)
from wattsched.scheduling.shedding import shed
from wattsched.scheduling.state import ClusterState, budget_domain, pool_domain

Requests = tuple[tuple[str, int], ...]
_NO_USAGE: Mapping[str, int] = {}
# (class index, class, the pod's IT watts on its nodes, the pod's devices there): all static.
_Candidate = tuple[int, "NodeClass", int, int]


@dataclass(frozen=True, slots=True)
class NodeClass:
    """Statically eligible nodes sharing a pool and a budget set: one power answer for all."""

    pool: Pool | None
    budgets: tuple[Budget, ...]
    nodes: tuple[Node, ...]
    # Every pool selecting these nodes, when more than one does (the first wins the ledger).
    conflict: tuple[str, ...]
    # The most any node of the class has of each resource: a request above it fails the whole
    # class at once, which keeps GPU pods from walking every NPU node.
    most_allocatable: Mapping[str, int]
    # (budget name, PUE milli, allocatable watts) per budget: the arguments of `power.fits`
    # that do not change within a cycle, looked up once per class.
    power_limits: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class StaticResult:
    classes: tuple[NodeClass, ...]
    reasons: Mapping[str, int]  # static Filter failures, counted per reason


@dataclass(slots=True)
class _Cycle:
    """Per-cycle scratch. Deliberately dropped at the end: carrying cursors across cycles would
    make a plan depend on history, not only on the state."""

    total_nodes: int
    to_find: int
    # (shape, requests) -> message: once a shape fails, its twins fail too until room is freed.
    failed: dict[tuple[PodShape, Requests], str] = field(default_factory=dict)
    no_victims: set[tuple[PodShape, Requests, int]] = field(default_factory=set)
    # (class index, shape, requests) -> where the last search found its first fitting node, so
    # a packing cycle does not re-walk the nodes it has already filled.
    cursors: dict[tuple[int, PodShape, Requests], int] = field(default_factory=dict)
    # Classes a full walk found no room in, with the reasons: nodes only fill up within a
    # cycle, so the answer holds until room is freed.
    exhausted: dict[tuple[int, PodShape, Requests], dict[str, int]] = field(default_factory=dict)
    reserved_nodes: dict[str, dict[str, int]] = field(default_factory=dict)
    reserved_it: dict[str, int] = field(default_factory=dict)
    going: set[PodKey] = field(default_factory=set)
    # id(requests mapping) -> its sorted items. Safe within a cycle: every pod, and so every
    # mapping, stays alive in the state until the cycle returns.
    request_keys: dict[int, Requests] = field(default_factory=dict)

    def requests_of(self, pod: Pod) -> Requests:
        key = self.request_keys.get(id(pod.requests))
        if key is None:
            key = tuple(sorted(pod.requests.items()))
            self.request_keys[id(pod.requests)] = key
        return key

    # The lowest priority any possible victim has; None until first needed. Placements in the
    # cycle can only lower it, and a stale low value merely costs a search that finds nothing.
    lowest_victim_priority: int | None = None
    lowest_known: bool = False

    def placed(self, pod: Pod) -> None:
        if self.lowest_known and pod.managed:
            low = self.lowest_victim_priority
            self.lowest_victim_priority = pod.priority if low is None else min(low, pod.priority)

    def room_freed(self) -> None:
        self.failed.clear()
        self.no_victims.clear()
        self.cursors.clear()
        self.exhausted.clear()


class Scheduler:
    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        weights = self.config.weights
        plugins: list[tuple[int, ScorePlugin]] = []
        if weights.device_packing:
            plugins.append((weights.device_packing, DevicePacking()))
        if weights.gang_topology:
            plugins.append((weights.gang_topology, GangTopology(self.config.topology_keys)))
        if weights.power_headroom:
            plugins.append((weights.power_headroom, PowerHeadroom()))
        self._score_plugins = tuple(plugins)
        # Gang topology scores 0 for a pod outside a gang: skip the call per node.
        self._solo_score_plugins = tuple(
            (weight, plugin) for weight, plugin in plugins if not isinstance(plugin, GangTopology)
        )
        self._static_epoch = -1
        self._queue = SchedulingQueue(self.config)
        self._static: dict[PodShape, StaticResult] = {}
        self._class_fit: dict[tuple[PodShape, Requests], tuple[list[_Candidate], Counter[str]]] = {}

    def schedule(self, state: ClusterState, max_pods: int | None = None) -> Plan:
        """One cycle. Bindings come back already assumed; evicted pods come back marked evicting
        and stay in the state (and the ledger) until the caller removes them.

        The story, step by step:
        1. QueueSort   priority, then creation, then key; a gang is one unit (its best member).
        2. PreFilter   room held for nominated preemptors; static filters cached per pod shape.
        3. Filter      ready, schedulable, taints, selector/affinity, resources, and power in
                       every budget containing the node (checked once per node class).
        4. Score       weighted plugins: device packing, gang topology, power headroom.
        5. Reserve     assume in the state, so the ledger already counts the binding.
        6. Permit      a gang is placed whole in this cycle or unreserved entirely.
        7. PostFilter  preemption for a pod that fits nowhere, with a nomination.
        8. Shed        over Shed budgets give back their fewest, lowest-priority pods.
        `max_pods` stops the cycle after that many bindings (a gang is never split).

        The cyclic garbage collector is paused for the cycle: a cycle makes no reference cycles
        (its objects go by reference counting), yet the ~100,000 objects a saturated cycle
        allocates (reasons, bindings, keys) set off full collections that walk the whole heap,
        every pod and node of the state; that was a third of a saturated cycle's time.
        """
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._cycle(state, max_pods)
        finally:
            if paused:
                gc.enable()

    def _cycle(self, state: ClusterState, max_pods: int | None) -> Plan:
        plan = Plan()
        cycle = _Cycle(
            total_nodes=len(state.nodes),
            to_find=self.config.feasible_nodes_to_find(len(state.nodes)),
            going=set(state.evicting),
        )
        if state.topology_epoch != self._static_epoch:
            self._static.clear()
            self._class_fit.clear()
            self._static_epoch = state.topology_epoch

        self._queue.begin_cycle(state)
        # 1. QueueSort: heads first; a gang is one unit, ordered by its best member. Parked
        #    pods (fit nowhere, nothing freed since) sit this cycle out.
        units: list[Unit] = self._queue.units(state)
        # 2. PreFilter: hold back what nominated preemptors are waiting for (see step 7).
        self._reserve_for_nominees(state, cycle)

        failed = cycle.failed
        unschedulable = plan.unschedulable
        bindings = plan.bindings
        preemption = self.config.preemption
        nominations = self._queue.nominations
        request_keys = cycle.request_keys
        no_victims = cycle.no_victims
        pending = state.pending_by_key.get
        # Twins that failed on a cached answer, parked together once the walk is done: nothing
        # in a cycle frees room or reads the parking, so parking them late parks them the same.
        parked: list[PodKey] = []
        reached = 0
        for unit in units:
            if max_pods is not None and len(bindings) >= max_pods:
                break
            reached += 1
            if isinstance(unit, QueueUnit):
                if unit.members:  # an emptied unit was superseded by a newer one
                    self._schedule_gang(state, cycle, unit, plan)
                continue
            key = unit.key
            if pending(key) is not unit:
                continue  # left the queue (or was replaced) after the queue was built
            # The common case at saturation, inlined: a twin already failed this cycle and
            # nothing has been freed since, so neither has this pod's chance.
            message = None
            if failed and (not nominations or key not in nominations):
                requests = request_keys.get(id(unit.requests)) or cycle.requests_of(unit)
                shape = PodShape.of(unit)
                message = failed.get((shape, requests))
            if message is None:
                self._schedule_pod(state, cycle, unit, plan)
                continue
            unschedulable.append(Unschedulable(key, message))
            # A twin of the same priority that found no victim settles this one too (the same
            # test `_preempt` makes first, for a pod without a nomination), without the call.
            if (
                preemption
                and (
                    not cycle.lowest_known
                    or (
                        cycle.lowest_victim_priority is not None
                        and unit.priority > cycle.lowest_victim_priority
                    )
                )
                and (shape, requests, unit.priority) not in no_victims
            ):
                self._preempt(state, cycle, unit, plan)
            parked.append(key)
        self._queue.park_all(state, parked)
        self._queue.reached(state, units, reached)

        # 8. Shed: every over Shed budget gives back its fewest, lowest-priority pods.
        if self.config.shedding:
            for eviction in shed(state, cycle.going):
                state.mark_evicting(eviction.pod)
                plan.evictions.append(eviction)
        return plan

    @property
    def queue(self) -> SchedulingQueue:
        """The pending pods' order, backoff and nominations (the loop reports preemptors)."""
        return self._queue

    def _reserve(self, state: ClusterState, pod: Pod, node: str) -> None:
        """5. Reserve: count the pod on the node in the ledger before the bind is sent."""
        state.assume(pod.key, node)
        self._queue.assumed(state, pod.key)

    # -- 2. PreFilter ---------------------------------------------------------------------------

    def _reserve_for_nominees(self, state: ClusterState, cycle: _Cycle) -> None:
        nominations = self._queue.nominations
        for key in sorted(nominations):
            self._hold(state, cycle, state.pods[key], nominations[key].node, 1)

    def _hold(self, state: ClusterState, cycle: _Cycle, pod: Pod, node: str, sign: int) -> None:
        held = cycle.reserved_nodes.setdefault(node, {})
        for resource, quantity in pod.requests.items():
            held[resource] = held.get(resource, 0) + sign * quantity
        held["pods"] = held.get("pods", 0) + sign
        pool = state.node_pool(node)
        if pool is None:
            return
        delta = delta_watts(pool.profile, devices_requested(pod.requests, pool))
        for budget in state.node_budgets(node):
            cycle.reserved_it[budget] = cycle.reserved_it.get(budget, 0) + sign * delta

    # -- single pods: 3. Filter, 4. Score, 5. Reserve, 7. PostFilter ---------------------------

    def _schedule_pod(self, state: ClusterState, cycle: _Cycle, pod: Pod, plan: Plan) -> None:
        nomination = self._queue.nomination(pod.key) if self._queue.nominations else None
        if nomination is not None:
            # A nominee does not compete with the room it holds for itself.
            self._hold(state, cycle, pod, nomination.node, -1)
        node, message = self._find_node(state, cycle, pod, {}, cacheable=nomination is None)
        if node is not None:
            self._reserve(state, pod, node)  # 5. Reserve
            cycle.placed(pod)
            plan.bindings.append(Binding(pod.key, node))
            return
        if nomination is not None:
            self._hold(state, cycle, pod, nomination.node, 1)
        plan.unschedulable.append(Unschedulable(pod.key, message))
        if self.config.preemption:
            self._preempt(state, cycle, pod, plan)
        self._queue.park(state, pod.key)

    def _find_node(
        self,
        state: ClusterState,
        cycle: _Cycle,
        pod: Pod,
        gang_topology: dict[str, dict[str, int]],
        cacheable: bool,
    ) -> tuple[str | None, str]:
        shape = PodShape.of(pod)
        requests = cycle.requests_of(pod)
        fail_key = (shape, requests)
        if cacheable and fail_key in cycle.failed:
            return None, cycle.failed[fail_key]
        candidates, too_small = self._classes_for(state, shape, requests)
        usage = state.ledger.budgets
        reserved_nodes = cycle.reserved_nodes
        usage_by_node = state.usage_by_node
        pods_by_node = state.pods_by_node
        walk_limit = self.config.max_nodes_to_examine
        reasons: dict[str, int] = {}
        feasible: list[tuple[Node, NodeClass, int]] = []  # with the pod's devices there
        to_find = cycle.to_find

        reserved_it = cycle.reserved_it
        # Classes power refused, with the pod's watts there: their reasons (which name numbers,
        # so cost formatting) are only written if the pod fits nowhere.
        refused: list[tuple[NodeClass, int]] = []

        # 3. Filter: power once per class, resources per node, walking from the class cursor.
        for index, node_class, delta, devices in candidates:
            nodes = node_class.nodes
            if delta > 0 and any(
                not fits(usage[name].it_watts + reserved_it.get(name, 0), delta, pue, allocatable)
                for name, pue, allocatable in node_class.power_limits
            ):  # the test `power_reason` makes, for the class as a whole
                refused.append((node_class, delta))
                continue
            cursor_key = (index, shape, requests)
            known = cycle.exhausted.get(cursor_key)
            if known is not None:
                for known_reason, n in known.items():
                    reasons[known_reason] = reasons.get(known_reason, 0) + n
                continue
            start = cycle.cursors.get(cursor_key, 0)
            first_fit: int | None = None
            count = len(nodes)
            walked: dict[str, int] = {}
            examined = 0
            for position in chain(range(start, count), range(start)):
                node = nodes[position]
                name = node.name
                examined += 1
                held = reserved_nodes.get(name) if reserved_nodes else None
                if held:
                    reason = resource_reason(
                        requests,
                        node.allocatable,
                        usage_by_node.get(name, _NO_USAGE),
                        len(pods_by_node.get(name, ())),
                        held,
                    )
                else:
                    # `resource_reason` without held room, inlined: this is the hottest loop
                    # of a cycle (every node walked), and the call alone was a third of it.
                    # Same checks in the same order, so the same first reason.
                    reason = None
                    allocatable = node.allocatable
                    used = usage_by_node.get(name, _NO_USAGE)
                    for resource, quantity in requests:
                        if used.get(resource, 0) + quantity > allocatable.get(resource, 0):
                            reason = insufficient(resource)
                            break
                    else:
                        limit = allocatable.get("pods")
                        if limit is not None and len(pods_by_node.get(name, ())) >= limit:
                            reason = TOO_MANY_PODS
                if reason is not None:
                    walked[reason] = walked.get(reason, 0) + 1
                    if feasible and examined >= walk_limit:
                        break
                    continue
                if first_fit is None:
                    first_fit = position
                feasible.append((node, node_class, devices))
                if len(feasible) >= to_find or examined >= walk_limit:
                    break
            for walked_reason, n in walked.items():
                reasons[walked_reason] = reasons.get(walked_reason, 0) + n
            if first_fit is None:
                if examined == count:  # only a complete walk proves the class is full
                    cycle.exhausted[cursor_key] = walked
            else:
                cycle.cursors[cursor_key] = first_fit
            if len(feasible) >= to_find or (feasible and examined >= walk_limit):
                break

        if not feasible:
            for node_class, delta in refused:
                reason = power_reason(node_class.budgets, usage, reserved_it, delta)
                assert reason is not None
                reasons[reason] = reasons.get(reason, 0) + len(node_class.nodes)
            for static_reason_, n in too_small.items():
                reasons[static_reason_] = reasons.get(static_reason_, 0) + n
            message = unschedulable_message(cycle.total_nodes, reasons)
            if cacheable:
                cycle.failed[fail_key] = message
            return None, message

        # 4. Score: weighted plugins; the highest wins, the node name breaks ties.
        plugins = self._score_plugins if gang_topology else self._solo_score_plugins
        if len(feasible) == 1 or not plugins:
            return feasible[0][0].name, ""
        ctx = ScoreContext(pod.requests, 0, gang_topology)
        best_name = ""
        best_score = -1
        for node, node_class, devices in feasible:
            ctx.devices_requested = devices
            used = usage_by_node.get(node.name, _NO_USAGE)
            total = 0
            for weight, plugin in plugins:
                total += weight * plugin.score(
                    ctx, node, node_class.pool, used, node_class.budgets, usage
                )
            if total > best_score or (total == best_score and node.name < best_name):
                best_score, best_name = total, node.name
        return best_name, ""

    def _classes_for(
        self, state: ClusterState, shape: PodShape, requests: Requests
    ) -> tuple[list[_Candidate], Counter[str]]:
        """The classes a pod of this shape and size could ever fit, with its watts in each.

        Everything here is static, so it is cached with the static filters: the per-pod loop
        then touches only classes that have the devices at all.
        """
        key = (shape, requests)
        cached = self._class_fit.get(key)
        if cached is not None:
            return cached
        static = self._static_for(state, shape)
        reasons: Counter[str] = Counter(static.reasons)
        candidates: list[_Candidate] = []
        request_map = dict(requests)
        accelerators = self._accelerators(state, requests)
        unguarded: dict[UnguardedKind, list[str]] = {}
        for index, node_class in enumerate(static.classes):
            most = node_class.most_allocatable
            too_big = next((r for r, q in requests if q > most.get(r, 0)), None)
            if too_big is not None:
                reasons[f"Insufficient {too_big}"] += len(node_class.nodes)
                continue
            kind = (
                unguarded_kind(
                    node_class.pool, node_class.conflict, node_class.budgets, accelerators
                )
                if accelerators
                else None
            )
            if kind is not None:
                unguarded.setdefault(kind, []).extend(node.name for node in node_class.nodes)
                continue
            pool = node_class.pool
            devices = devices_requested(request_map, pool)
            delta = delta_watts(pool.profile, devices) if pool is not None and devices else 0
            candidates.append((index, node_class, delta, devices))
        for kind, names in unguarded.items():
            reasons[unguarded_reason(kind, sorted(names))] += len(names)
        result = (candidates, reasons)
        self._class_fit[key] = result
        return result

    def _accelerators(self, state: ClusterState, requests: Requests) -> tuple[str, ...]:
        """The accelerator resources a pod asks for, which only a guarded node may give it;
        none when the admin allowed unguarded nodes."""
        if self.config.allow_unguarded_nodes:
            return ()
        listed = frozenset(r for pool in state.pools.values() for r in pool.resource_names)
        return tuple(r for r, q in requests if q > 0 and is_accelerator_resource(r, listed))

    def _static_for(self, state: ClusterState, shape: PodShape) -> StaticResult:
        cached = self._static.get(shape)
        if cached is not None:
            return cached
        grouped: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[Node]] = {}
        conflicts = state.ledger.conflicts
        reasons: Counter[str] = Counter()
        for name in sorted(state.nodes):
            node = state.nodes[name]
            reason = static_reason(shape, node)
            if reason is not None:
                reasons[reason] += 1
                continue
            pool = state.node_pool(name)
            class_key = (
                pool.name if pool is not None else "",
                state.node_budgets(name),
                conflicts.get(name, ()),
            )
            grouped.setdefault(class_key, []).append(node)
        classes = []
        for (pool_name, budget_names, conflict), nodes in sorted(grouped.items()):
            most: dict[str, int] = {}
            for node in nodes:
                for resource, quantity in node.allocatable.items():
                    if quantity > most.get(resource, 0):
                        most[resource] = quantity
            classes.append(
                NodeClass(
                    state.pools[pool_name] if pool_name else None,
                    tuple(state.budgets[b] for b in budget_names),
                    tuple(nodes),
                    conflict,
                    most,
                    tuple(
                        (b.name, b.pue_milli, b.allocatable_watts)
                        for b in (state.budgets[name] for name in budget_names)
                    ),
                )
            )
        result = StaticResult(tuple(classes), dict(reasons))
        self._static[shape] = result
        return result

    # -- gangs: 6. Permit -----------------------------------------------------------------------

    def _schedule_gang(
        self, state: ClusterState, cycle: _Cycle, unit: QueueUnit, plan: Plan
    ) -> None:
        gang = unit.gang
        assert gang is not None
        sizes = state.gang_sizes(gang)
        if len(sizes) > 1:
            # Members that disagree would wait forever for a size nobody can tell; say so.
            declared = "; ".join(
                f'"{size}" by {", ".join(f"{ns}/{name}" for ns, name in keys[:3])}'
                + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
                for size, keys in sorted(sizes.items())
            )
            message = (
                f"gang {gang}: its members disagree on {GANG_SIZE_ANNOTATION} ({declared}); "
                "give every member of the gang the same size"
            )
            plan.unschedulable.extend(
                Unschedulable(m.key, message, INVALID_GANG_REASON) for m in unit.members
            )
            self._queue.park_gang(state, gang, (m.key for m in unit.members), ())
            return
        present = unit.placed_members + len(unit.members)
        if present < unit.gang_size:
            message = (
                f"gang {gang}: {present}/{unit.gang_size} members exist, "
                "waiting for the rest before placing any"
            )
            plan.unschedulable.extend(Unschedulable(m.key, message) for m in unit.members)
            self._queue.park_gang(state, gang, (m.key for m in unit.members), ())
            return
        topology = self._gang_topology(state, gang)
        reserved: list[tuple[Pod, str]] = []
        for member in unit.members:
            node, message = self._find_node(state, cycle, member, topology, cacheable=True)
            if node is None:
                # Taken before the unreserve: what blocks this member with the others placed.
                domains = self._blocking_domains(state, cycle, member)
                # Permit denies: unreserve everything, so a gang that cannot fit holds nothing
                # and the smaller work behind it gets the room.
                for placed, _ in reserved:
                    state.forget(placed.key, room_freed=False)
                if reserved:
                    cycle.room_freed()
                denial = (
                    f"gang {gang} does not fit whole ({len(reserved)}/{len(unit.members)} "
                    f"pending members placed); {member.namespace}/{member.name}: {message}"
                )
                plan.unschedulable.extend(Unschedulable(m.key, denial) for m in unit.members)
                self._queue.park_gang(state, gang, (m.key for m in unit.members), domains)
                return
            self._reserve(state, member, node)
            cycle.placed(member)
            reserved.append((member, node))
            self._count_topology(topology, state.nodes[node])
        plan.bindings.extend(Binding(pod.key, node) for pod, node in reserved)

    def _blocking_domains(self, state: ClusterState, cycle: _Cycle, pod: Pod) -> tuple[str, ...]:
        """Where room must be freed before `pod`, which has just fit nowhere, could fit.

        Every class it could ever fit is blocked, either by power (then only headroom in a
        budget that refuses can open it) or, having passed power, by its nodes' resources (then
        only a node of its pool freeing up can). Headroom elsewhere changes nothing, unless the
        PowerHeadroom score is on: then it can move where the gang's other members go, so every
        budget of every class counts.
        """
        shape = PodShape.of(pod)
        candidates, _ = self._classes_for(state, shape, cycle.requests_of(pod))
        usage = state.ledger.budgets
        scored_by_headroom = self.config.weights.power_headroom > 0
        domains: set[str] = set()
        for _, node_class, delta, _ in candidates:
            budgets = node_class.budgets
            refusing = refusing_budgets(budgets, usage, cycle.reserved_it, delta)
            if refusing and not scored_by_headroom:
                domains.update(budget_domain(budget.name) for budget in refusing)
                continue
            pool = node_class.pool
            domains.add(pool_domain(pool.name if pool is not None else None))
            if scored_by_headroom:
                domains.update(budget_domain(budget.name) for budget in budgets)
        return tuple(sorted(domains))

    def _gang_topology(self, state: ClusterState, gang: str) -> dict[str, dict[str, int]]:
        topology: dict[str, dict[str, int]] = {}
        for member in state.gang_members(gang):
            node_name = state.node_of(member.key)
            node = state.nodes.get(node_name) if node_name is not None else None
            if node is not None:
                self._count_topology(topology, node)
        return topology

    def _count_topology(self, topology: dict[str, dict[str, int]], node: Node) -> None:
        for key in self.config.topology_keys:
            value = node.labels.get(key)
            if value is not None:
                counts = topology.setdefault(key, {})
                counts[value] = counts.get(value, 0) + 1

    # -- 7. PostFilter: preemption ----

    def _victims_may_exist(self, state: ClusterState, cycle: _Cycle, pod: Pod) -> bool:
        if not cycle.lowest_known:
            pods = state.pods
            evicting = state.evicting
            cycle.lowest_victim_priority = min(
                (
                    pods[key].priority
                    for key in state.placement
                    if pods[key].managed and key not in evicting
                ),
                default=None,
            )
            cycle.lowest_known = True
        lowest = cycle.lowest_victim_priority
        return lowest is not None and pod.priority > lowest

    def _preempt(self, state: ClusterState, cycle: _Cycle, pod: Pod, plan: Plan) -> None:
        """Nomination: the preemptor is nominated to the victims' node. While any victim is still
        in the state it does not preempt again, and PreFilter holds its room against everyone
        else; once the victims are gone the nomination ends with the pod's placement, or, if it
        still does not fit (the world changed), it may preempt afresh."""
        nomination = self._queue.nomination(pod.key)
        if nomination is not None:
            if any(victim in state.pods for victim in nomination.victims):
                return
            self._hold(state, cycle, pod, nomination.node, -1)
            self._queue.end_nomination(state, pod.key)
        shape = PodShape.of(pod)
        requests = cycle.requests_of(pod)
        miss_key = (shape, requests, pod.priority)
        if miss_key in cycle.no_victims:
            return
        if not self._victims_may_exist(state, cycle, pod):
            return  # nobody anywhere has a lower priority: no node needs to be looked at
        # Only the classes the pod could ever fit, guarded ones (fail closed) included alone.
        candidates, _ = self._classes_for(state, shape, requests)
        classes: Sequence[NodeCandidates] = [
            NodeCandidates(c.pool, c.budgets, c.nodes) for _, c, _, _ in candidates
        ]
        choice = select_victims(
            state, pod, requests, classes, cycle.reserved_nodes, cycle.reserved_it, cycle.going
        )
        if choice is None:
            cycle.no_victims.add(miss_key)
            return
        victims = tuple(p for victim in choice.victims for p in victim.placed)
        for victim_pod, victim_node in victims:
            state.mark_evicting(victim_pod.key)
            cycle.going.add(victim_pod.key)
            plan.evictions.append(Eviction(victim_pod.key, victim_node, PREEMPTED_REASON, None))
        self._queue.nominate(state, pod.key, choice.node, tuple(p.key for p, _ in victims))
        self._hold(state, cycle, pod, choice.node, 1)
