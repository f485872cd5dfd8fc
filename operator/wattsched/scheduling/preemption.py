"""PostFilter: preemption for a pod that fits nowhere.

Victims come from one node, are managed (wattsched's own), not already evicting, and of strictly
lower priority. Per node: assume every candidate gone; if the pod still does not fit, the node is
out. Otherwise reprieve candidates back, most important first, while the pod still fits — what is
left are the victims. Among nodes, kube-scheduler's order picks: the lowest highest-victim
priority, then the fewest victims, then the lowest priority sum, then the node name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wattsched.power.ledger import BudgetUsage
from wattsched.power.watts import delta_watts
from wattsched.scheduling.filters import devices_requested, resource_reason
from wattsched.scheduling.model import Budget, Node, Pod, Pool
from wattsched.scheduling.state import ClusterState

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
    victims: tuple[Pod, ...]


def _fits_without(
    pod: Pod,
    requests: tuple[tuple[str, int], ...],
    node: Node,
    used: Mapping[str, int],
    pod_count: int,
    removed: Sequence[Pod],
    pool: Pool | None,
    budgets: tuple[Budget, ...],
    usage: Mapping[str, BudgetUsage],
    reserved_node: Mapping[str, int] | None,
    reserved_it: Mapping[str, int],
) -> bool:
    left = dict(used)
    for victim in removed:
        for resource, quantity in victim.requests.items():
            left[resource] = left.get(resource, 0) - quantity
    if resource_reason(requests, node.allocatable, left, pod_count - len(removed), reserved_node):
        return False
    if pool is None:
        return True
    delta = delta_watts(pool.profile, devices_requested(pod.requests, pool))
    if delta <= 0:
        return True
    freed = delta_watts(
        pool.profile, sum(devices_requested(victim.requests, pool) for victim in removed)
    )
    for budget in budgets:
        it = usage[budget.name].it_watts + reserved_it.get(budget.name, 0) - freed
        if (it + delta) * budget.pue_milli > budget.allocatable_watts * 1000:
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
) -> list[Pod] | None:
    on_node = state.pods_by_node.get(node.name)
    if not on_node:
        return None
    pods = state.pods
    priority = pod.priority
    candidates = []
    for key in on_node:
        other = pods[key]
        if other.priority < priority and other.managed and not state.is_evicting(key):
            candidates.append(other)
    if not candidates:
        return None
    candidates.sort(key=lambda p: p.key)
    used = state.node_usage(node.name)
    pod_count = state.node_pod_count(node.name)
    usage = state.ledger.budgets

    def fits(removed: Sequence[Pod]) -> bool:
        return _fits_without(
            pod,
            requests,
            node,
            used,
            pod_count,
            removed,
            node_class.pool,
            node_class.budgets,
            usage,
            reserved_node,
            reserved_it,
        )

    if not fits(candidates):
        return None
    victims = list(candidates)
    for keep in sorted(candidates, key=lambda p: (-p.priority, p.created_order, p.key)):
        trial = [victim for victim in victims if victim.key != keep.key]
        if fits(trial):
            victims = trial
    if not victims:
        return None  # it fits as things are: Filter will place it, nothing to displace
    victims.sort(key=lambda p: p.key)
    return victims


def select_victims(
    state: ClusterState,
    pod: Pod,
    requests: tuple[tuple[str, int], ...],
    classes: Sequence[NodeCandidates],
    reserved_nodes: Mapping[str, Mapping[str, int]],
    reserved_it: Mapping[str, int],
) -> Preemption | None:
    best: tuple[tuple[int, int, int, str], Preemption] | None = None
    for node_class in classes:
        for node in node_class.nodes:
            victims = _victims_on(
                state, pod, requests, node, node_class, reserved_nodes.get(node.name), reserved_it
            )
            if victims is None:
                continue
            rank = (
                max(victim.priority for victim in victims),
                len(victims),
                sum(victim.priority for victim in victims),
                node.name,
            )
            if best is None or rank < best[0]:
                best = (rank, Preemption(node.name, tuple(victims)))
    return None if best is None else best[1]
