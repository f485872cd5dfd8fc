"""Permit for gangs: every pending member is placed in this cycle, or none is (invariant 3).

`gang-size` is a minimum, as a PodGroup's minMember: members already placed count toward it,
so a recreated or extra member of a running gang is placed on its own, near its gang. Members
that disagree on the size are told so (InvalidGang), since no size can be guessed for them.
A gang denied whole is parked on the room domains that block it (`SchedulingQueue.park_gang`),
so it is tried again only when room comes back where its members could go.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from wattsched.domain import (
    GANG_SIZE_ANNOTATION,
    INVALID_GANG_REASON,
    Binding,
    Node,
    Pod,
    Unschedulable,
)
from wattsched.scheduling.config import SchedulerConfig
from wattsched.scheduling.filters import PodShape, refusing_budgets
from wattsched.scheduling.fit import NodeFit
from wattsched.scheduling.framework import Cycle, ReservePlugin
from wattsched.scheduling.nodeclasses import NodeClasses
from wattsched.scheduling.queue import QueueUnit, SchedulingQueue
from wattsched.scheduling.state import ClusterState, budget_domain, pool_domain


class GangPermit:
    name = "GangPermit"

    def __init__(
        self,
        config: SchedulerConfig,
        queue: SchedulingQueue,
        classes: NodeClasses,
        fit: NodeFit,
        reserve: Callable[[ClusterState, Pod, str], None],
        reserves: Sequence[ReservePlugin],
    ) -> None:
        self._topology_keys = config.topology_keys
        self._scored_by_headroom = config.weights.power_headroom > 0
        self._queue = queue
        self._classes = classes
        self._fit = fit
        self._reserve = reserve
        self._reserves = tuple(reserves)

    def permit(self, cycle: Cycle, unit: QueueUnit) -> None:
        state, plan = cycle.state, cycle.plan
        gang = unit.gang
        members = unit.members
        sizes = state.gang_sizes(gang)
        if len(sizes) > 1:
            message = self._disagreement(gang, sizes)
            plan.unschedulable.extend(
                Unschedulable(m.key, message, INVALID_GANG_REASON) for m in members
            )
            self._queue.park_gang(state, gang, (m.key for m in members), ())
            return
        present = unit.placed_members + len(members)
        if present < unit.gang_size:
            message = (
                f"gang {gang}: {present}/{unit.gang_size} members exist, "
                "waiting for the rest before placing any"
            )
            plan.unschedulable.extend(Unschedulable(m.key, message) for m in members)
            self._queue.park_gang(state, gang, (m.key for m in members), ())
            return
        topology = self._gang_topology(state, gang)
        reserved: list[tuple[Pod, str]] = []
        for member in members:
            node, message = self._fit.find_node(cycle, member, topology, cacheable=True)
            if node is None:
                # Taken before the unreserve: what blocks this member with the others placed.
                domains = self._blocking_domains(cycle, member)
                # Permit denies: unreserve everything, so a gang that cannot fit holds nothing
                # and the smaller work behind it gets the room.
                for placed, _ in reserved:
                    for plugin in reversed(self._reserves):
                        plugin.unreserve(state, placed)
                if reserved:
                    cycle.room_freed()
                denial = (
                    f"gang {gang} does not fit whole ({len(reserved)}/{len(members)} "
                    f"pending members placed); {member.namespace}/{member.name}: {message}"
                )
                plan.unschedulable.extend(Unschedulable(m.key, denial) for m in members)
                self._queue.park_gang(state, gang, (m.key for m in members), domains)
                return
            self._reserve(state, member, node)
            cycle.placed(member)
            reserved.append((member, node))
            self._count_topology(topology, state.nodes[node])
        plan.bindings.extend(Binding(pod.key, node) for pod, node in reserved)

    @staticmethod
    def _disagreement(gang: str, sizes: dict[int, list[tuple[str, str]]]) -> str:
        declared = "; ".join(
            f'"{size}" by {", ".join(f"{ns}/{name}" for ns, name in keys[:3])}'
            + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            for size, keys in sorted(sizes.items())
        )
        return (
            f"gang {gang}: its members disagree on {GANG_SIZE_ANNOTATION} ({declared}); "
            "give every member of the gang the same size"
        )

    def _blocking_domains(self, cycle: Cycle, pod: Pod) -> tuple[str, ...]:
        """Where room must be freed before `pod`, which has just fit nowhere, could fit.

        Every class it could ever fit is blocked, either by power (then only headroom in a
        budget that refuses can open it) or, having passed power, by its nodes' resources (then
        only a node of its pool freeing up can). Headroom elsewhere changes nothing, unless the
        PowerHeadroom score is on: then it can move where the gang's other members go, so every
        budget of every class counts.
        """
        state = cycle.state
        shape = PodShape.of(pod)
        candidates, _ = self._classes.candidates(state, shape, self._fit.requests_of(pod))
        usage = state.ledger.budgets
        gains = state.measured_figures().gain_it_watts
        scored_by_headroom = self._scored_by_headroom
        domains: set[str] = set()
        for _, node_class, delta, _ in candidates:
            budgets = node_class.budgets
            refusing = refusing_budgets(budgets, usage, cycle.held.it_watts, delta, gains)
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
        for key in self._topology_keys:
            value = node.labels.get(key)
            if value is not None:
                counts = topology.setdefault(key, {})
                counts[value] = counts.get(value, 0) + 1
