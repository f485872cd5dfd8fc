"""The ledger: committed watts per node, per pool and per budget.

Every change goes through `Ledger.set_node`, which takes a node's old contribution out of every
aggregate and puts the new one in. One door in and out is what makes the incremental ledger
provably equal to `recompute_ledger`, which sums everything from scratch (invariant 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wattsched.domain import Budget, Node, Pod, Pool
from wattsched.power.watts import devices_in, facility_watts, node_watts


@dataclass(slots=True)
class PoolUsage:
    nodes: int = 0
    ready_nodes: int = 0
    devices: int = 0
    allocated_devices: int = 0
    committed_watts: int = 0


@dataclass(slots=True)
class BudgetUsage:
    """IT watts, not facility watts: PUE is applied when a figure is compared or reported."""

    it_watts: int = 0
    nodes: int = 0
    pods: int = 0


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """One node's contribution to the aggregates, remembered so it can be taken out again."""

    pool: str | None
    budgets: tuple[str, ...]
    ready: bool
    devices: int
    allocated_devices: int
    watts: int
    pods: int


@dataclass(slots=True)
class Ledger:
    nodes: dict[str, NodeEntry] = field(default_factory=dict)
    pools: dict[str, PoolUsage] = field(default_factory=dict)
    budgets: dict[str, BudgetUsage] = field(default_factory=dict)
    # node -> every pool selecting it, winner first; only nodes selected by two or more.
    conflicts: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def ensure_pool(self, name: str) -> None:
        self.pools.setdefault(name, PoolUsage())

    def ensure_budget(self, name: str) -> None:
        self.budgets.setdefault(name, BudgetUsage())

    def set_node(self, name: str, entry: NodeEntry | None) -> None:
        """Replace a node's contribution; None removes the node from the ledger."""
        old = self.nodes.pop(name, None)
        if old is not None:
            self._apply(old, -1)
        if entry is not None:
            self.nodes[name] = entry
            self._apply(entry, 1)

    def _apply(self, entry: NodeEntry, sign: int) -> None:
        if entry.pool is not None:
            pool = self.pools[entry.pool]
            pool.nodes += sign
            pool.ready_nodes += sign if entry.ready else 0
            pool.devices += sign * entry.devices
            pool.allocated_devices += sign * entry.allocated_devices
            pool.committed_watts += sign * entry.watts
        for budget_name in entry.budgets:
            budget = self.budgets[budget_name]
            budget.it_watts += sign * entry.watts
            budget.nodes += sign
            budget.pods += sign * entry.pods


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget's figures as its status reports them; committed and headroom are facility watts.

    Under `admission: Measured` the estimate is what admission counts: committed less the gain
    measurements give (DESIGN.md §2b); headroom is then taken from the estimate.
    """

    limit_watts: int
    allocatable_watts: int
    it_watts: int
    committed_watts: int
    headroom_watts: int
    nodes: int
    pods: int
    measured_watts: int | None = None  # facility watts of the fresh readings (Measured only)
    estimated_watts: int | None = None  # facility watts admission counts (Measured only)
    stale_nodes: tuple[str, ...] = ()  # nodes counted at nameplate for want of a fresh reading

    @property
    def over(self) -> bool:
        return self.headroom_watts < 0


def budget_figures(
    budget: Budget,
    usage: BudgetUsage,
    *,
    gain_it_watts: int = 0,
    measured_it_watts: int | None = None,
    stale_nodes: tuple[str, ...] = (),
) -> BudgetStatus:
    """What a budget's status says: PUE applied once, rounded up, so it never understates."""
    committed = facility_watts(usage.it_watts, budget.pue_milli)
    allocatable = budget.allocatable_watts
    if not budget.measured:
        return BudgetStatus(
            budget.limit_watts, allocatable, usage.it_watts, committed,
            allocatable - committed, usage.nodes, usage.pods,
        )  # fmt: skip
    estimated = facility_watts(usage.it_watts - gain_it_watts, budget.pue_milli)
    return BudgetStatus(
        budget.limit_watts,
        allocatable,
        usage.it_watts,
        committed,
        allocatable - estimated,
        usage.nodes,
        usage.pods,
        facility_watts(measured_it_watts or 0, budget.pue_milli),
        estimated,
        stale_nodes,
    )


def pools_selecting(node: Node, pools_oldest_first: Iterable[Pool]) -> tuple[str, ...]:
    """Every pool whose selector matches the node, oldest first: the first one wins."""
    return tuple(pool.name for pool in pools_oldest_first if pool.selector.matches(node.labels))


def owning_pool(node: Node, pools_oldest_first: Iterable[Pool]) -> Pool | None:
    """The pool whose profile a node's watts follow: the oldest selecting it (DESIGN.md §2)."""
    return next((pool for pool in pools_oldest_first if pool.selector.matches(node.labels)), None)


def budgets_containing(node: Node, budgets_by_name: Iterable[Budget]) -> tuple[str, ...]:
    return tuple(budget.name for budget in budgets_by_name if budget.selector.matches(node.labels))


def oldest_first(pools: Iterable[Pool]) -> list[Pool]:
    return sorted(pools, key=lambda pool: (pool.created_order, pool.name))


def node_entry(
    node: Node,
    pool: Pool | None,
    budget_names: tuple[str, ...],
    usage: Mapping[str, int],
    pods: int,
) -> NodeEntry:
    """A node's contribution given the summed requests of the pods bound to it."""
    if pool is None:
        return NodeEntry(None, budget_names, node.ready, 0, 0, 0, pods)
    devices = devices_in(node.allocatable, pool.resource_names)
    allocated = devices_in(usage, pool.resource_names)
    watts = node_watts(pool.profile, devices, allocated)
    return NodeEntry(pool.name, budget_names, node.ready, devices, allocated, watts, pods)


def recompute_ledger(
    nodes: Iterable[Node],
    pools: Iterable[Pool],
    budgets: Iterable[Budget],
    placements: Iterable[tuple[Pod, str]],
) -> Ledger:
    """The ledger summed from scratch from (pod, node name) placements: the test oracle."""
    ordered_pools = oldest_first(pools)
    ordered_budgets = sorted(budgets, key=lambda budget: budget.name)
    pools_by_name = {pool.name: pool for pool in ordered_pools}
    usage: dict[str, dict[str, int]] = {}
    pod_counts: dict[str, int] = {}
    for pod, node_name in placements:
        summed = usage.setdefault(node_name, {})
        for resource, quantity in pod.requests.items():
            summed[resource] = summed.get(resource, 0) + quantity
        pod_counts[node_name] = pod_counts.get(node_name, 0) + 1
    ledger = Ledger()
    for pool in ordered_pools:
        ledger.ensure_pool(pool.name)
    for budget in ordered_budgets:
        ledger.ensure_budget(budget.name)
    for node in sorted(nodes, key=lambda n: n.name):
        selecting = pools_selecting(node, ordered_pools)
        if len(selecting) > 1:
            ledger.conflicts[node.name] = selecting
        winner = pools_by_name[selecting[0]] if selecting else None
        entry = node_entry(
            node,
            winner,
            budgets_containing(node, ordered_budgets),
            usage.get(node.name, {}),
            pod_counts.get(node.name, 0),
        )
        ledger.set_node(node.name, entry)
    return ledger
