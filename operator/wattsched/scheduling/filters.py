"""Filter plugins: why a node cannot take a pod, in kube-scheduler's words.

The filters split in two by what they depend on. Static ones (readiness, taints, selector and
affinity) depend only on the node and the pod's *shape*, so a cycle evaluates them once per shape
and caches the answer. Dynamic ones (resources, power) depend on what is placed, so they run
per pod — and power runs per node *class* (same pool, same budgets), because every node of a
class answers the power question identically.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from wattsched.domain import Budget, Node, NodeAffinity, Pod, Pool, Toleration
from wattsched.power.ledger import BudgetUsage
from wattsched.power.measured import fits_measured, oversubscribed_watts
from wattsched.power.watts import devices_in, facility_watts, fits, format_watts

NOT_READY = "node(s) were not ready"
UNSCHEDULABLE = "node(s) were unschedulable"
SELECTOR_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
TOO_MANY_PODS = "Too many pods"
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")

ShapeKey = Hashable
Requests = tuple[tuple[str, int], ...]
"""A pod's requests as sorted items: hashable, and the order every Filter checks them in."""


@dataclass(frozen=True, slots=True)
class PodShape:
    """What the static filters look at; pods of one shape pass and fail on the same nodes."""

    node_selector: tuple[tuple[str, str], ...]
    affinity: NodeAffinity | None
    tolerations: tuple[Toleration, ...]
    # Shapes key the hottest caches of a cycle; hashing three nested tuples per lookup adds up.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_hash", hash((self.node_selector, self.affinity, self.tolerations))
        )

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def of(cls, pod: Pod) -> PodShape:
        if not pod.node_selector and pod.affinity is None and not pod.tolerations:
            return ANY_NODE_SHAPE  # most pods: one shared key, hashed from a cached object
        return cls(tuple(sorted(pod.node_selector.items())), pod.affinity, pod.tolerations)


ANY_NODE_SHAPE = PodShape((), None, ())


class StaticFilter(Protocol):
    """A Filter whose answer depends on the node and the pod's shape only."""

    def __call__(self, shape: PodShape, node: Node) -> str | None: ...


def node_condition_filter(shape: PodShape, node: Node) -> str | None:
    if not node.ready:
        return NOT_READY
    if node.unschedulable:
        return UNSCHEDULABLE
    return None


def taint_toleration_filter(shape: PodShape, node: Node) -> str | None:
    for taint in node.taints:
        if taint.effect not in _BLOCKING_EFFECTS:
            continue
        if not any(toleration.tolerates(taint) for toleration in shape.tolerations):
            return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"
    return None


def node_affinity_filter(shape: PodShape, node: Node) -> str | None:
    labels = node.labels
    for key, want in shape.node_selector:
        if labels.get(key) != want:
            return SELECTOR_MISMATCH
    if shape.affinity is not None and not shape.affinity.matches(labels):
        return SELECTOR_MISMATCH
    return None


STATIC_FILTERS: tuple[StaticFilter, ...] = (
    node_condition_filter,
    taint_toleration_filter,
    node_affinity_filter,
)


def static_reason(shape: PodShape, node: Node) -> str | None:
    for plugin in STATIC_FILTERS:
        reason = plugin(shape, node)
        if reason is not None:
            return reason
    return None


_INSUFFICIENT: dict[str, str] = {}


def insufficient(resource: str) -> str:
    """The "Insufficient <resource>" reason, one string per resource: walks count thousands."""
    reason = _INSUFFICIENT.get(resource)
    if reason is None:
        reason = _INSUFFICIENT[resource] = f"Insufficient {resource}"
    return reason


def resource_reason(
    requests: tuple[tuple[str, int], ...],
    allocatable: Mapping[str, int],
    used: Mapping[str, int],
    pod_count: int,
    reserved: Mapping[str, int] | None = None,
) -> str | None:
    """cpu, memory, extended resources and the pod count; `reserved` is held for a preemptor.

    A node that does not advertise "pods" is taken to have no pod limit (test fixtures); every
    other missing resource means none of it.
    """
    if reserved:
        for resource, quantity in requests:
            held = used.get(resource, 0) + reserved.get(resource, 0)
            if held + quantity > allocatable.get(resource, 0):
                return insufficient(resource)
        extra_pods = reserved.get("pods", 0)
    else:
        for resource, quantity in requests:
            if used.get(resource, 0) + quantity > allocatable.get(resource, 0):
                return insufficient(resource)
        extra_pods = 0
    limit = allocatable.get("pods")
    if limit is not None and pod_count + extra_pods + 1 > limit:
        return TOO_MANY_PODS
    return None


def devices_requested(pod_requests: Mapping[str, int], pool: Pool | None) -> int:
    if pool is None:
        return 0
    return devices_in(pod_requests, pool.resource_names)


# -- fail closed (DESIGN.md §2, invariant 6) ----------------------------------------------------

UnguardedKind = tuple[str, ...]
_NAMED_NODES = 3


def unguarded_kind(
    pool: Pool | None,
    conflict: tuple[str, ...],
    budgets: tuple[Budget, ...],
    accelerators: tuple[str, ...],
) -> UnguardedKind | None:
    """Why nodes of this pool, conflict and budget set may not take a pod asking for these
    accelerator resources; None when their power is known and guarded.

    Known: exactly one AcceleratorPool selects the node and it lists every requested resource
    (otherwise the ledger would charge the pod nothing, or a profile picked by age). Guarded:
    at least one PowerBudget contains the node. A pod bound anywhere else is power nobody
    accounts for, and a budget applied later would find itself over its limit already.
    """
    if len(conflict) > 1:
        return ("conflict", *conflict)
    listed = pool.resource_names if pool is not None else ()
    missing = next((resource for resource in accelerators if resource not in listed), None)
    if missing is not None:
        return ("no-pool", missing)
    if not budgets:
        return ("no-budget",)
    return None


def unguarded_reason(kind: UnguardedKind, node_names: list[str]) -> str:
    """The reason for the `0/N nodes fit` summary, naming the nodes (the first few)."""
    shown = ", ".join(node_names[:_NAMED_NODES])
    if len(node_names) > _NAMED_NODES:
        shown += f" and {len(node_names) - _NAMED_NODES} more"
    one = len(node_names) == 1
    subject = f"node {shown} is" if one else f"nodes {shown} are"
    its = "its" if one else "their"
    if kind[0] == "conflict":
        pools = kind[1:]
        return (
            f"{subject} in {len(pools)} AcceleratorPools ({', '.join(pools)}): "
            f"{its} power profile is ambiguous"
        )
    if kind[0] == "no-pool":
        return f"{subject} in no AcceleratorPool listing {kind[1]}: {its} power is not known"
    return f"{subject} in no PowerBudget: {its} power is not guarded"


def power_reason(
    budgets: tuple[Budget, ...],
    usage: Mapping[str, BudgetUsage],
    reserved_it_watts: Mapping[str, int],
    it_delta: int,
) -> str | None:
    """PowerBudget filter: the pod must fit in every budget that contains the node.

    `reserved_it_watts` is what nominated preemptors hold. When several budgets refuse, the
    message names the one with the least headroom, the one an operator would raise first. A pod
    that adds no watts passes even an over budget: the power model says it draws nothing, and
    refusing it would strand CPU work for no watt saved.
    """
    if it_delta <= 0:
        return None
    worst: tuple[int, str, str] | None = None
    for budget in budgets:
        if budget.measured:
            continue  # `measured_power_reason`
        it = usage[budget.name].it_watts + reserved_it_watts.get(budget.name, 0)
        allocatable = budget.allocatable_watts
        if fits(it, it_delta, budget.pue_milli, allocatable):
            continue
        headroom = allocatable - facility_watts(it, budget.pue_milli)
        if worst is None or (headroom, budget.name) < (worst[0], worst[1]):
            needs = facility_watts(it_delta, budget.pue_milli)
            message = (
                f"PowerBudget {budget.name} (needs {format_watts(needs)}, "
                f"headroom {format_watts(headroom)})"
            )
            worst = (headroom, budget.name, message)
    return None if worst is None else worst[2]


def refusing_budgets(
    budgets: tuple[Budget, ...],
    usage: Mapping[str, BudgetUsage],
    reserved_it_watts: Mapping[str, int],
    it_delta: int,
    gains: Mapping[str, int] | None = None,
) -> list[Budget]:
    """Every budget `power_reason` finds too full for `it_delta` more IT watts, not only the
    one its message names."""
    if it_delta <= 0:
        return []
    return [
        budget
        for budget in budgets
        if not budget_fits(budget, usage, reserved_it_watts, gains or {}, it_delta)
    ]


def budget_fits(
    budget: Budget,
    usage: Mapping[str, BudgetUsage],
    reserved_it_watts: Mapping[str, int],
    gains: Mapping[str, int],
    it_delta: int,
) -> bool:
    """The one power rule for one budget, by its admission: nameplate, or §2b's two lines."""
    it = usage[budget.name].it_watts + reserved_it_watts.get(budget.name, 0)
    if budget.measured:
        return fits_measured(
            it,
            gains.get(budget.name, 0),
            it_delta,
            budget.pue_milli,
            budget.allocatable_watts,
            budget.max_oversubscription_percent,
        )
    return fits(it, it_delta, budget.pue_milli, budget.allocatable_watts)


def measured_power_reason(
    budgets: tuple[Budget, ...],
    usage: Mapping[str, BudgetUsage],
    reserved_it_watts: Mapping[str, int],
    gains: Mapping[str, int],
    it_delta: int,
) -> str | None:
    """Why a Measured budget refuses: its estimate, or its worst case, has no room for the pod.

    The estimate is committed watts less what measurements free; the worst case is committed
    watts against allocatable raised by maxOversubscriptionPercent (DESIGN.md §2b)."""
    for budget in budgets:
        if not budget.measured or budget_fits(budget, usage, reserved_it_watts, gains, it_delta):
            continue
        it = usage[budget.name].it_watts + reserved_it_watts.get(budget.name, 0)
        pue = budget.pue_milli
        needs = format_watts(facility_watts(it_delta, pue))
        allocatable = budget.allocatable_watts
        estimated = facility_watts(it - gains.get(budget.name, 0), pue)
        if not fits(it - gains.get(budget.name, 0), it_delta, pue, allocatable):
            return (
                f"PowerBudget {budget.name} (needs {needs}, estimated headroom "
                f"{format_watts(allocatable - estimated)})"
            )
        bound = oversubscribed_watts(allocatable, budget.max_oversubscription_percent)
        return (
            f"PowerBudget {budget.name} (needs {needs}, worst-case headroom "
            f"{format_watts(bound - facility_watts(it, pue))} at "
            f"maxOversubscriptionPercent {budget.max_oversubscription_percent})"
        )
    return None


def unschedulable_message(total_nodes: int, reasons: Mapping[str, int]) -> str:
    """kube-scheduler's summary: counts per reason, most frequent first, then alphabetical."""
    if total_nodes == 0:
        return "0/0 nodes fit: no nodes in the cluster"
    ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    return f"0/{total_nodes} nodes fit: " + ", ".join(f"{n} {reason}" for reason, n in ordered)
