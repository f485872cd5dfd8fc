"""PreFilter's node classes: the static half of Filter, computed once per pod shape.

Nodes that pass the static filters (readiness, taints, selector and affinity) for a pod shape
and share a pool, a budget set and a pool conflict form a class: every node of a class gives
the same power answer, and fails closed (DESIGN.md §2) or not, together. Classes are cached per
shape, and the classes a pod of some size could ever fit per (shape, requests), until the state's
topology epoch moves (a node, pool or budget changed). Those caches cannot change an answer:
everything in them depends only on what the epoch covers. A property test pins the whole fast
path to a plain per-node reference filter (tests/unit/test_scheduling_fast_path.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from wattsched.domain import Budget, Node, Pool
from wattsched.power.watts import delta_watts, is_accelerator_resource
from wattsched.scheduling.config import SchedulerConfig
from wattsched.scheduling.filters import (
    PodShape,
    Requests,
    UnguardedKind,
    devices_requested,
    static_reason,
    unguarded_kind,
    unguarded_reason,
)
from wattsched.scheduling.state import ClusterState


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
    # (budget name, PUE milli, allocatable watts) per Committed budget: the arguments of
    # `power.fits` that do not change within a cycle, looked up once per class.
    power_limits: tuple[tuple[str, int, int], ...]
    # (budget name, PUE milli, allocatable watts, maxOversubscriptionPercent) per Measured one.
    measured_limits: tuple[tuple[str, int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class StaticResult:
    classes: tuple[NodeClass, ...]
    reasons: Mapping[str, int]  # static Filter failures, counted per reason


Candidate = tuple[int, NodeClass, int, int]
"""(class index, class, the pod's IT watts on its nodes, the pod's devices there): all static."""


class NodeClasses:
    def __init__(self, config: SchedulerConfig) -> None:
        self._allow_unguarded = config.allow_unguarded_nodes
        self._epoch = -1
        self._static: dict[PodShape, StaticResult] = {}
        self._fit: dict[tuple[PodShape, Requests], tuple[list[Candidate], Counter[str]]] = {}

    def refresh(self, state: ClusterState) -> None:
        """Drop what a node, pool or budget change made stale (called once per cycle)."""
        if state.topology_epoch != self._epoch:
            self._static.clear()
            self._fit.clear()
            self._epoch = state.topology_epoch

    def candidates(
        self, state: ClusterState, shape: PodShape, requests: Requests
    ) -> tuple[list[Candidate], Counter[str]]:
        """The classes a pod of this shape and size could ever fit, with its watts in each,
        and the reasons every other node fails (static filters, too small, fail closed).

        Everything here is static, so it is cached with the static filters: the per-pod loop
        then touches only classes that have the devices at all.
        """
        key = (shape, requests)
        cached = self._fit.get(key)
        if cached is not None:
            return cached
        static = self.static(state, shape)
        reasons: Counter[str] = Counter(static.reasons)
        candidates: list[Candidate] = []
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
        self._fit[key] = result
        return result

    def _accelerators(self, state: ClusterState, requests: Requests) -> tuple[str, ...]:
        """The accelerator resources a pod asks for, which only a guarded node may give it;
        none when the admin allowed unguarded nodes."""
        if self._allow_unguarded:
            return ()
        listed = frozenset(r for pool in state.pools.values() for r in pool.resource_names)
        return tuple(r for r, q in requests if q > 0 and is_accelerator_resource(r, listed))

    def static(self, state: ClusterState, shape: PodShape) -> StaticResult:
        """The shape's node classes, and its static Filter failures counted per reason."""
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
                        if not b.measured
                    ),
                    tuple(
                        (b.name, b.pue_milli, b.allocatable_watts, b.max_oversubscription_percent)
                        for b in (state.budgets[name] for name in budget_names)
                        if b.measured
                    ),
                )
            )
        result = StaticResult(tuple(classes), dict(reasons))
        self._static[shape] = result
        return result
