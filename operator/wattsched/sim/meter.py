"""What the site really draws, kept apart from what the engine is told.

The baselines lie to the engine on purpose (power-blind sees no budgets, static-cap sees
cordons), so the watts that decide violations and stranded power cannot come from the engine's
ledger. They come from here: a `Meter` that sums every node's watts against the real budgets
from what is placed, and a `StrandedTree` that asks what waiting work could still draw under
those budgets. Both use the same per-node rules as the ledger (power.watts, power.ledger), so
for the wattsched policy the meter and the engine agree to the watt, which a test pins.
"""

from __future__ import annotations

from wattsched.domain import Budget, Node, Pod, Pool
from wattsched.power.ledger import budgets_containing, oldest_first, owning_pool
from wattsched.power.watts import delta_watts, devices_in, facility_watts, node_watts
from wattsched.sim.site import Site


class Meter:
    """Watts the site draws per real budget, from what is placed: policy-independent."""

    def __init__(self, site: Site) -> None:
        self.budgets = {name: entry.budget for name, entry in site.budgets.items()}
        self.it_watts = dict.fromkeys(self.budgets, 0)
        self.node_budgets: dict[str, tuple[str, ...]] = {}
        self.node_pool: dict[str, Pool | None] = {}
        self.pool_devices = dict.fromkeys(site.pools, 0)
        self.pool_allocated = dict.fromkeys(site.pools, 0)
        self._pools = oldest_first(site.pools.values())
        # Bumped on every change: most instants move nothing the figures derived from the
        # meter depend on, so the loop recomputes them only when this moved.
        self.version = 0

    def commission(self, node: Node) -> None:
        pool = owning_pool(node, self._pools)
        names = budgets_containing(node, (self.budgets[n] for n in sorted(self.budgets)))
        self.node_pool[node.name] = pool
        self.node_budgets[node.name] = names
        self.version += 1
        if pool is None:
            return
        devices = devices_in(node.allocatable, pool.resource_names)
        self.pool_devices[pool.name] += devices
        watts = node_watts(pool.profile, devices, 0)
        for name in names:
            self.it_watts[name] += watts

    def place(self, pod: Pod, node: str, sign: int) -> None:
        pool = self.node_pool.get(node)
        if pool is None:
            return
        self.version += 1
        devices = devices_in(pod.requests, pool.resource_names)
        self.pool_allocated[pool.name] += sign * devices
        watts = sign * delta_watts(pool.profile, devices)
        for name in self.node_budgets[node]:
            self.it_watts[name] += watts

    def set_limit(self, budget: Budget) -> None:
        self.budgets[budget.name] = budget
        self.version += 1

    def facility_watts(self, name: str) -> int:
        return facility_watts(self.it_watts[name], self.budgets[name].pue_milli)


class StrandedTree:
    """Allocatable watts left unused while pods wait, without double counting nested budgets.

    Budgets form a tree by node-set containment (site > phase > hall); each pool hangs under
    the smallest budget holding its nodes. What waiting work could still draw is, bottom-up,
    min(headroom of the budget, what its children and waiting pools could draw), and a pool can
    draw no more than its waiting pods need. Exact for nested budgets; for budgets that overlap
    without nesting it is an estimate.
    """

    def __init__(self, site: Site, meter: Meter) -> None:
        members: dict[str, set[str]] = {name: set() for name in site.budgets}
        pool_budgets: dict[str, set[str]] = {}
        for node in site.all_nodes:
            for name, entry in site.budgets.items():
                if entry.budget.selector.matches(node.labels):
                    members[name].add(node.name)
            pool = next(
                (
                    p
                    for p in sorted(site.pools.values(), key=lambda p: (p.created_order, p.name))
                    if p.selector.matches(node.labels)
                ),
                None,
            )
            if pool is not None:
                pool_budgets.setdefault(pool.name, set()).update(
                    n for n, e in site.budgets.items() if e.budget.selector.matches(node.labels)
                )
        order = sorted(members, key=lambda name: (-len(members[name]), name))
        self.parent: dict[str, str | None] = {}
        for index, name in enumerate(order):
            parent = None
            for candidate in order[:index]:
                if members[name] <= members[candidate]:
                    parent = candidate  # the last (smallest) container wins
            self.parent[name] = parent
        self.pool_home: dict[str, str] = {}
        for pool_name, names in pool_budgets.items():
            if names:
                self.pool_home[pool_name] = max(names, key=order.index)
        self.bottom_up = list(reversed(order))
        self.meter = meter

    def watts(self, waiting_pool_watts: dict[str, int]) -> int:
        meter = self.meter
        could: dict[str, int] = dict.fromkeys(self.parent, 0)
        for pool, need in waiting_pool_watts.items():
            home = self.pool_home.get(pool)
            if home is not None and need > 0:
                could[home] += need
        total = 0
        for name in self.bottom_up:
            budget = meter.budgets[name]
            headroom = max(0, budget.allocatable_watts - meter.facility_watts(name))
            usable = min(headroom, could[name])
            parent = self.parent[name]
            if parent is None:
                total += usable
            else:
                could[parent] += usable
        return total
