"""The policies a scenario compares, each defined only by how the engine's state is built.

The engine itself is never changed: a baseline is the same `Scheduler` run on a state that
hides what that baseline would not know.

- wattsched:   the engine as is, with every budget at its current limit.
- power-blind: kube-scheduler's view: the same engine on a state without budgets, so power is
               no constraint (no Filter, no Shed; unguarded nodes allowed, or nothing would
               fit). The engine offers no LeastAllocated score, so
               spreading cannot be reproduced; it only changes which node of a pool is used,
               never the watts a budget draws. Priority preemption stays on, as in kube-scheduler.
- static-cap:  what an admin does without a power-aware scheduler: cordon nodes in each budget
               until the remaining nodes' peak power fits the allocatable watts, then schedule
               power-blind. When a limit drops, newly cordoned nodes are drained (their pods
               evicted and requeued); when it rises, nodes are uncordoned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wattsched.domain import Budget, Node, Pool
from wattsched.power.watts import devices_in, node_watts
from wattsched.scheduling.config import SchedulerConfig


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    summary: str
    power_aware: bool  # the engine sees the budgets
    static_cap: bool  # nodes are cordoned so that peak power fits
    config: SchedulerConfig


POLICIES: dict[str, Policy] = {
    "wattsched": Policy(
        "wattsched",
        "the engine with the budgets: Filter on power, Shed",
        True,
        False,
        SchedulerConfig(),
    ),
    "power-blind": Policy(
        "power-blind",
        "the same engine without budgets (kube-scheduler's view)",
        False,
        False,
        SchedulerConfig(shedding=False, allow_unguarded_nodes=True),
    ),
    "static-cap": Policy(
        "static-cap",
        "nodes cordoned until peak power fits, then power-blind",
        False,
        True,
        SchedulerConfig(shedding=False, allow_unguarded_nodes=True),
    ),
}
DEFAULT_POLICIES = ("wattsched", "power-blind", "static-cap")


def parse_policies(text: str) -> tuple[Policy, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown or not names:
        raise ValueError(
            f"unknown policy {', '.join(unknown) or '(none given)'}: choose from "
            f"{', '.join(POLICIES)}"
        )
    return tuple(POLICIES[name] for name in dict.fromkeys(names))


def peak_watts(node: Node, pool: Pool) -> int:
    devices = devices_in(node.allocatable, pool.resource_names)
    return node_watts(pool.profile, devices, devices)


def idle_watts(node: Node, pool: Pool) -> int:
    devices = devices_in(node.allocatable, pool.resource_names)
    return node_watts(pool.profile, devices, 0)


def static_cap_cordons(
    nodes: Iterable[Node],
    node_pool: Mapping[str, Pool | None],
    node_budgets: Mapping[str, tuple[str, ...]],
    budgets: Mapping[str, Budget],
) -> set[str]:
    """The nodes to cordon so every budget's peak (facility) watts fit allocatable.

    A cordoned node stays powered and draws its idle watts; the others may draw their peak.

    Greedy and deterministic: take the budget that is most over, and in it cordon a node of the
    pool that keeps the largest share of its nodes, the highest-named node first, so every pool
    gives up capacity in proportion and a lower limit cordons a superset of a higher one.
    """
    peaks: dict[str, int] = {}
    savings: dict[str, int] = {}  # what cordoning the node takes off the peak
    members: dict[str, list[str]] = {name: [] for name in budgets}
    pool_total: dict[str, int] = {}
    for node in nodes:
        pool = node_pool.get(node.name)
        if pool is None:
            continue
        peaks[node.name] = peak_watts(node, pool)
        savings[node.name] = peaks[node.name] - idle_watts(node, pool)
        pool_total[pool.name] = pool_total.get(pool.name, 0) + 1
        for budget in node_budgets.get(node.name, ()):
            if budget in members:
                members[budget].append(node.name)
    it_peak = {name: sum(peaks[n] for n in names) for name, names in members.items()}
    pool_left = dict(pool_total)
    cordoned: set[str] = set()

    def excess(name: str) -> int:
        budget = budgets[name]
        return it_peak[name] * budget.pue_milli - budget.allocatable_watts * 1000

    while True:
        over = [name for name in sorted(budgets) if excess(name) > 0 and members[name]]
        if not over:
            return cordoned
        worst = max(over, key=lambda name: (excess(name), name))
        candidates = [n for n in members[worst] if n not in cordoned]
        if not candidates:
            members[worst] = []  # nothing left to cordon: base watts alone exceed the limit
            continue

        def keep_share(name: str) -> tuple[float, str]:
            pool = node_pool[name]
            assert pool is not None
            return (pool_left[pool.name] / pool_total[pool.name], name)

        victim = max(candidates, key=keep_share)
        cordoned.add(victim)
        pool = node_pool[victim]
        assert pool is not None
        pool_left[pool.name] -= 1
        for budget in node_budgets.get(victim, ()):
            if budget in it_peak:
                it_peak[budget] -= savings[victim]
