"""Victims of Shed and PostFilter: a single pod, or a running gang whole (invariant 3).

A gang that loses one member can no longer make progress, yet its other members go on holding
their devices and watts. So wattsched never evicts a member alone: evicting any member means
evicting every placed member still running, and the gang counts as one victim at its highest
member's priority, freeing its members' summed watts in every budget they sit in.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from wattsched.domain import Pod, PodKey
from wattsched.power.watts import delta_watts
from wattsched.scheduling.filters import devices_requested
from wattsched.scheduling.state import ClusterState


@dataclass(frozen=True, slots=True)
class Victim:
    """What evicting one pod really takes: the pod, or its whole running gang."""

    placed: tuple[tuple[Pod, str], ...]  # (pod, node), in key order
    priority: int  # the highest member's: what evicting the victim costs
    created_order: int  # the newest member's: newer work loses less

    @property
    def key(self) -> PodKey:
        return self.placed[0][0].key

    @property
    def pods(self) -> int:
        return len(self.placed)


def freed_it_watts(state: ClusterState, pod: Pod, node: str) -> int:
    """IT watts a placed pod gives back when it goes: its devices fall to idle."""
    pool = state.node_pool(node)
    if pool is None:
        return 0
    return delta_watts(pool.profile, devices_requested(pod.requests, pool))


def victim_of(state: ClusterState, pod: Pod, going: Container[PodKey]) -> Victim | None:
    """The victim evicting `pod` means, with members already `going` left out; None when it
    is not wattsched's to evict (it, or a member of its gang, belongs to another scheduler)."""
    if pod.gang is None:
        members = [pod]
    else:
        members = [
            member
            for member in state.gang_members(pod.gang)
            if member.key not in going and state.node_of(member.key) is not None
        ]
    if not members or not all(member.managed for member in members):
        return None
    placed = []
    for member in members:
        node = state.node_of(member.key)
        assert node is not None
        placed.append((member, node))
    return Victim(
        tuple(placed),
        max(member.priority for member in members),
        max(member.created_order for member in members),
    )


def freed_by_budget(state: ClusterState, victim: Victim) -> dict[str, int]:
    """IT watts the victim gives back in each budget that contains one of its nodes."""
    freed: dict[str, int] = {}
    for pod, node in victim.placed:
        watts = freed_it_watts(state, pod, node)
        if watts:
            for budget in state.node_budgets(node):
                freed[budget] = freed.get(budget, 0) + watts
    return freed


def freed_on_node(victims: list[Victim], node: str) -> tuple[Mapping[str, int], int]:
    """(summed requests, pod count) the victims free on one node."""
    requests: dict[str, int] = {}
    count = 0
    for victim in victims:
        for pod, where in victim.placed:
            if where != node:
                continue
            count += 1
            for resource, quantity in pod.requests.items():
                requests[resource] = requests.get(resource, 0) + quantity
    return requests, count
