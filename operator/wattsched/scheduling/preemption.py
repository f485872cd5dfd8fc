"""PostFilter: preemption for a pod that fits nowhere.

Victims are found through one node, are managed (wattsched's own), not already evicting, and of
strictly lower priority; a victim in a gang takes its whole running gang with it (invariant 3),
whose members on other nodes free power in the budgets they share with this node.

Per node: assume every candidate gone; if the pod still does not fit, the node is out. Otherwise
reprieve candidates back, most important first, while the pod still fits: what is left are the
victims. Among nodes, kube-scheduler's order picks: the lowest highest-victim priority, then the
fewest victim pods, then the lowest priority sum, then the node name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from wattsched.domain import Budget, Eviction, Node, Pod, PodKey, Pool
from wattsched.power.watts import delta_watts
from wattsched.scheduling.filters import (
    PodShape,
    Requests,
    budget_fits,
    devices_requested,
    resource_reason,
)
from wattsched.scheduling.fit import NodeFit
from wattsched.scheduling.framework import Cycle
from wattsched.scheduling.nodeclasses import NodeClasses
from wattsched.scheduling.nominated import hold
from wattsched.scheduling.queue import SchedulingQueue
from wattsched.scheduling.state import ClusterState
from wattsched.scheduling.victims import Victim, freed_by_budget, freed_on_node, victim_of

PREEMPTED_REASON = "Preempted"


@dataclass(frozen=True, slots=True)
class NodeCandidates:
    """The statically eligible nodes of one class (same pool, same budgets)."""

    pool: Pool | None
    budgets: tuple[Budget, ...]
    nodes: Sequence[Node]


@dataclass(frozen=True, slots=True)
class Preemption:
    node: str
    victims: tuple[Victim, ...]


def _fits_without(
    state: ClusterState,
    requests: tuple[tuple[str, int], ...],
    node: Node,
    removed: list[Victim],
    node_class: NodeCandidates,
    delta: int,
    reserved_node: Mapping[str, int] | None,
    reserved_it: Mapping[str, int],
) -> bool:
    """Whether the pod fits on `node` once `removed` are gone: devices on this node, and power
    in every budget of the node, where a gang victim frees its members' watts wherever they run
    in that budget."""
    freed_requests, freed_pods = freed_on_node(removed, node.name)
    left = dict(state.node_usage(node.name))
    for resource, quantity in freed_requests.items():
        left[resource] = left.get(resource, 0) - quantity
    pod_count = state.node_pod_count(node.name) - freed_pods
    if resource_reason(requests, node.allocatable, left, pod_count, reserved_node):
        return False
    if delta <= 0:
        return True
    freed: dict[str, int] = {}
    for victim in removed:
        for name, watts in freed_by_budget(state, victim).items():
            freed[name] = freed.get(name, 0) + watts
    usage = state.ledger.budgets
    gains = state.measured_figures().gain_it_watts
    for budget in node_class.budgets:
        held = reserved_it.get(budget.name, 0) - freed.get(budget.name, 0)
        if not budget_fits(budget, usage, {budget.name: held}, gains, delta):
            return False
    return True


def _victims_on(
    state: ClusterState,
    pod: Pod,
    requests: tuple[tuple[str, int], ...],
    node: Node,
    node_class: NodeCandidates,
    reserved_node: Mapping[str, int] | None,
    reserved_it: Mapping[str, int],
    going: Set[PodKey],
) -> list[Victim] | None:
    on_node = state.pods_by_node.get(node.name)
    if not on_node:
        return None
    pods = state.pods
    priority = pod.priority
    candidates: dict[PodKey, Victim] = {}
    for key in sorted(on_node):
        other = pods[key]
        if other.priority >= priority or not other.managed or key in going:
            continue
        victim = victim_of(state, other, going)
        if victim is not None and victim.priority < priority:
            candidates.setdefault(victim.key, victim)
    if not candidates:
        return None
    pool = node_class.pool
    delta = delta_watts(pool.profile, devices_requested(pod.requests, pool)) if pool else 0

    def fits(removed: list[Victim]) -> bool:
        return _fits_without(
            state, requests, node, removed, node_class, delta, reserved_node, reserved_it
        )

    victims = list(candidates.values())
    if not fits(victims):
        return None
    for keep in sorted(victims, key=lambda v: (-v.priority, v.created_order, v.key)):
        trial = [victim for victim in victims if victim.key != keep.key]
        if fits(trial):
            victims = trial
    if not victims:
        return None  # it fits as things are: Filter will place it, nothing to displace
    victims.sort(key=lambda v: v.key)
    return victims


def select_victims(
    state: ClusterState,
    pod: Pod,
    requests: tuple[tuple[str, int], ...],
    classes: Sequence[NodeCandidates],
    reserved_nodes: Mapping[str, Mapping[str, int]],
    reserved_it: Mapping[str, int],
    going: Set[PodKey],
) -> Preemption | None:
    best: tuple[tuple[int, int, int, str], Preemption] | None = None
    for node_class in classes:
        for node in node_class.nodes:
            victims = _victims_on(
                state,
                pod,
                requests,
                node,
                node_class,
                reserved_nodes.get(node.name),
                reserved_it,
                going,
            )
            if victims is None:
                continue
            rank = (
                max(victim.priority for victim in victims),
                sum(victim.pods for victim in victims),
                sum(p.priority for victim in victims for p, _ in victim.placed),
                node.name,
            )
            if best is None or rank < best[0]:
                best = (rank, Preemption(node.name, tuple(victims)))
    return None if best is None else best[1]


class DefaultPreemption:
    """7. PostFilter: for a pod that fits nowhere, evict lower-priority victims and nominate it.

    The preemptor is nominated to the victims' node. While any victim is still in the state it
    does not preempt again, and PreFilter holds its room against everyone else; once the victims
    are gone the nomination ends with the pod's placement, or, if it still does not fit (the
    world changed), it may preempt afresh.

    Its scratch for one cycle cannot change an answer: a (shape, requests, priority) that found
    no victim finds none again until room is freed (placements only add candidates of the
    placed pods' priority, which `lowest_victim_priority` tracks, so a twin that could now find
    one is not skipped); and the lowest priority any candidate has only falls as pods are placed.
    """

    name = "DefaultPreemption"

    def __init__(self, queue: SchedulingQueue, classes: NodeClasses, fit: NodeFit) -> None:
        self._queue = queue
        self._classes = classes
        self._fit = fit
        self._no_victims: set[tuple[PodShape, Requests, int]] = set()
        # The lowest priority any possible victim has; None until first needed.
        self._lowest: int | None = None
        self._lowest_known = False

    def begin_cycle(self, cycle: Cycle) -> None:
        self._no_victims.clear()
        self._lowest = None
        self._lowest_known = False
        cycle.when_room_freed(self._no_victims.clear)
        cycle.when_placed(self._placed)

    def _placed(self, pod: Pod) -> None:
        if self._lowest_known and pod.managed:
            low = self._lowest
            self._lowest = pod.priority if low is None else min(low, pod.priority)

    def worth_trying(self, pod: Pod, shape: PodShape, requests: Requests) -> bool:
        """The tests `post_filter` makes first, for a pod without a nomination, without the
        call: a twin of the same priority that found no victim settles this one too."""
        return (
            not self._lowest_known or (self._lowest is not None and pod.priority > self._lowest)
        ) and (shape, requests, pod.priority) not in self._no_victims

    def post_filter(self, cycle: Cycle, pod: Pod) -> None:
        state = cycle.state
        nomination = self._queue.nomination(pod.key)
        if nomination is not None:
            if any(victim in state.pods for victim in nomination.victims):
                return
            hold(cycle, pod, nomination.node, -1)
            self._queue.end_nomination(state, pod.key)
        shape = PodShape.of(pod)
        requests = self._fit.requests_of(pod)
        miss_key = (shape, requests, pod.priority)
        if miss_key in self._no_victims:
            return
        if not self._victims_may_exist(state, pod):
            return  # nobody anywhere has a lower priority: no node needs to be looked at
        # Only the classes the pod could ever fit, guarded ones (fail closed) included alone.
        candidates, _ = self._classes.candidates(state, shape, requests)
        classes: Sequence[NodeCandidates] = [
            NodeCandidates(c.pool, c.budgets, c.nodes) for _, c, _, _ in candidates
        ]
        choice = select_victims(
            state, pod, requests, classes, cycle.held.nodes, cycle.held.it_watts, cycle.going
        )
        if choice is None:
            self._no_victims.add(miss_key)
            return
        victims = tuple(p for victim in choice.victims for p in victim.placed)
        for victim_pod, victim_node in victims:
            state.mark_evicting(victim_pod.key)
            cycle.going.add(victim_pod.key)
            cycle.plan.evictions.append(
                Eviction(victim_pod.key, victim_node, PREEMPTED_REASON, None)
            )
        self._queue.nominate(state, pod.key, choice.node, tuple(p.key for p, _ in victims))
        hold(cycle, pod, choice.node, 1)

    def _victims_may_exist(self, state: ClusterState, pod: Pod) -> bool:
        if not self._lowest_known:
            pods = state.pods
            evicting = state.evicting
            self._lowest = min(
                (
                    pods[key].priority
                    for key in state.placement
                    if pods[key].managed and key not in evicting
                ),
                default=None,
            )
            self._lowest_known = True
        lowest = self._lowest
        return lowest is not None and pod.priority > lowest
