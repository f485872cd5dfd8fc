"""Score plugins: among the nodes that fit, which one a pod should go to.

Each plugin answers 0..100 for one node; the scheduler sums them by weight (ScoreWeights) and
breaks ties by node name, so the choice is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from wattsched.domain import Budget, Node, Pool
from wattsched.power.ledger import BudgetUsage
from wattsched.power.watts import facility_watts
from wattsched.scheduling.config import SchedulerConfig

MAX_SCORE = 100


@dataclass(slots=True)
class ScoreContext:
    """What a Score plugin may look at for one pod; built once per pod, not per node."""

    requests: Mapping[str, int]
    devices_requested: int
    # topology key -> label value -> members of the pod's gang already placed there
    gang_topology: dict[str, dict[str, int]] = field(default_factory=dict)


class ScorePlugin(Protocol):
    name: str

    def score(
        self,
        ctx: ScoreContext,
        node: Node,
        pool: Pool | None,
        used: Mapping[str, int],
        budgets: tuple[Budget, ...],
        usage: Mapping[str, BudgetUsage],
    ) -> int: ...


class DevicePacking:
    """MostAllocated over devices: packing leaves whole nodes free for big (gang) pods.

    Nodes without devices fall back to cpu, so CPU-only work packs the same way.
    """

    name = "DevicePacking"

    def score(
        self,
        ctx: ScoreContext,
        node: Node,
        pool: Pool | None,
        used: Mapping[str, int],
        budgets: tuple[Budget, ...],
        usage: Mapping[str, BudgetUsage],
    ) -> int:
        allocatable = node.allocatable
        if pool is not None and ctx.devices_requested:
            total = 0
            taken = ctx.devices_requested
            for resource in pool.resource_names:
                total += allocatable.get(resource, 0)
                taken += used.get(resource, 0)
            return taken * MAX_SCORE // total if total else 0
        cpu = allocatable.get("cpu", 0)
        if not cpu:
            return 0
        return (used.get("cpu", 0) + ctx.requests.get("cpu", 0)) * MAX_SCORE // cpu


class GangTopology:
    """Full marks for a rack that already holds a gang member, less for a hall, none elsewhere."""

    name = "GangTopology"

    def __init__(self, topology_keys: tuple[str, ...]) -> None:
        self._keys = topology_keys

    def score(
        self,
        ctx: ScoreContext,
        node: Node,
        pool: Pool | None,
        used: Mapping[str, int],
        budgets: tuple[Budget, ...],
        usage: Mapping[str, BudgetUsage],
    ) -> int:
        if not ctx.gang_topology:
            return 0
        levels = len(self._keys)
        for depth, key in enumerate(self._keys):
            value = node.labels.get(key)
            if value is not None and ctx.gang_topology.get(key, {}).get(value, 0):
                return MAX_SCORE * (levels - depth) // levels
        return 0


class PowerHeadroom:
    """Prefers the node whose tightest budget has the most headroom left, as a fraction."""

    name = "PowerHeadroom"

    def score(
        self,
        ctx: ScoreContext,
        node: Node,
        pool: Pool | None,
        used: Mapping[str, int],
        budgets: tuple[Budget, ...],
        usage: Mapping[str, BudgetUsage],
    ) -> int:
        tightest = MAX_SCORE
        for budget in budgets:
            allocatable = budget.allocatable_watts
            if allocatable <= 0:
                return 0
            headroom = allocatable - facility_watts(usage[budget.name].it_watts, budget.pue_milli)
            tightest = min(tightest, max(0, headroom) * MAX_SCORE // allocatable)
        return tightest


def score_plugins(config: SchedulerConfig) -> tuple[tuple[int, ScorePlugin], ...]:
    """The Score plugins the weights switch on, with their weights; 0 saves a plugin's cost."""
    weights = config.weights
    plugins: list[tuple[int, ScorePlugin]] = []
    if weights.device_packing:
        plugins.append((weights.device_packing, DevicePacking()))
    if weights.gang_topology:
        plugins.append((weights.gang_topology, GangTopology(config.topology_keys)))
    if weights.power_headroom:
        plugins.append((weights.power_headroom, PowerHeadroom()))
    return tuple(plugins)
