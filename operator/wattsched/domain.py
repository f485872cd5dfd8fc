"""The plain domain model: nodes, pools, budgets and pods as dataclasses, no Kubernetes types.

The lowest layer: the power model and the placement engine read it, and the operator's cache,
the simulator and the benchmarks all build it (`translate`), so the very same engine runs
everywhere. Every quantity is an integer in its base unit: cpu in millicores, memory in
bytes, devices and pods as counts, power in watts, PUE in thousandths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "GANG_LABEL",
    "GANG_SIZE_ANNOTATION",
    "HALL_LABEL",
    "RACK_LABEL",
    "Binding",
    "Budget",
    "Eviction",
    "LabelSelector",
    "Node",
    "NodeAffinity",
    "Plan",
    "Pod",
    "PodKey",
    "Pool",
    "PowerProfile",
    "SelectorRequirement",
    "Taint",
    "Toleration",
    "Unschedulable",
]

RACK_LABEL = "wattsched.io/rack"
HALL_LABEL = "wattsched.io/hall"
GANG_LABEL = "wattsched.io/gang"
GANG_SIZE_ANNOTATION = "wattsched.io/gang-size"

_EMPTY: Mapping[str, str] = MappingProxyType({})

PodKey = tuple[str, str]
"""(namespace, name): how a pod is named everywhere in the engine."""


@dataclass(frozen=True, slots=True)
class PowerProfile:
    """Watts an AcceleratorPool's spec.power declares (DESIGN.md §2)."""

    device_watts: int
    idle_device_watts: int
    node_base_watts: int


@dataclass(frozen=True, slots=True)
class SelectorRequirement:
    """One matchExpressions entry; Gt/Lt come from NodeSelectorRequirement and compare integers."""

    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist | Gt | Lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        op = self.operator
        if op == "In":
            return value is not None and value in self.values
        if op == "NotIn":
            return value is None or value not in self.values
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        if op in ("Gt", "Lt"):
            # Kubernetes treats an unparsable label or bound as "does not match", not an error.
            if value is None or len(self.values) != 1:
                return False
            try:
                have, bound = int(value), int(self.values[0])
            except ValueError:
                return False
            return have > bound if op == "Gt" else have < bound
        raise ValueError(
            f"selector operator {op!r} on key {self.key!r} is not one of "
            "In, NotIn, Exists, DoesNotExist, Gt, Lt"
        )


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """metav1.LabelSelector: an empty selector matches everything (API validation forbids it)."""

    match_labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    match_expressions: tuple[SelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, want in self.match_labels.items():
            if labels.get(key) != want:
                return False
        return all(req.matches(labels) for req in self.match_expressions)


@dataclass(frozen=True, slots=True)
class NodeAffinity:
    """requiredDuringSchedulingIgnoredDuringExecution: an OR of terms, an AND within a term.

    No terms at all matches nothing, as in Kubernetes (a required affinity that names no term
    can never be satisfied).
    """

    terms: tuple[tuple[SelectorRequirement, ...], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return any(all(req.matches(labels) for req in term) for term in self.terms)


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"  # NoSchedule | PreferNoSchedule | NoExecute


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""  # with operator Exists, an empty key tolerates every taint
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str = ""  # empty tolerates every effect

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.operator == "Exists":
            return not self.key or self.key == taint.key
        return self.key == taint.key and self.value == taint.value


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    allocatable: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    ready: bool = True


@dataclass(frozen=True, slots=True)
class Pool:
    """An AcceleratorPool: which nodes, which device resources, and what they draw."""

    name: str
    selector: LabelSelector
    resource_names: tuple[str, ...]
    profile: PowerProfile
    created_order: int  # lower is older; the older pool wins a node both select
    vendor: str = "other"
    model: str = ""
    # Measured power (DESIGN.md §2b): PromQL giving watts per device, and the label naming the
    # node; None when the pool has no power metric (AWS Neuron): it stays on nameplate.
    telemetry_query: str | None = None
    telemetry_node_label: str = "Hostname"


@dataclass(frozen=True, slots=True)
class Budget:
    """A PowerBudget at the snapshot's instant: the schedule is already resolved into the limit."""

    name: str
    selector: LabelSelector
    limit_watts: int  # the effective limit in force at the snapshot instant
    reserve_percent: int = 0
    pue_milli: int = 1000  # facility watts per 1000 IT watts, 1000..3000
    enforcement: str = "Admit"  # Admit | Shed
    admission: str = "Committed"  # Committed (nameplate) | Measured (DESIGN.md §2b)
    max_oversubscription_percent: int = 0  # Measured: how far the worst case may exceed
    window_seconds: int = 900  # Measured: pods bound less than this ago are not in the data yet
    percentile: int = 99  # Measured: observed power is this percentile over the window
    stale_after_seconds: int = 120  # Measured: a node with no fresher reading is at nameplate

    @property
    def measured(self) -> bool:
        return self.admission == "Measured"

    @property
    def allocatable_watts(self) -> int:
        return self.limit_watts * (100 - self.reserve_percent) // 100


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    uid: str
    priority: int
    created_order: int  # creation time as an integer (ns or a sequence number)
    # Already summed the Kubernetes way: max(sum(containers), max(init containers)) per resource.
    requests: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    node_selector: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    affinity: NodeAffinity | None = None
    tolerations: tuple[Toleration, ...] = ()
    gang: str | None = None  # the gang key, already namespaced by the caller
    gang_size: int = 1
    node_name: str | None = None  # set means bound
    managed: bool = True  # schedulerName is wattsched: only these are placed or evicted
    # Derived once at construction: a cycle reads them for every pending pod, and at 100,000
    # pods building the tuples afresh on each read was a measurable share of the cycle.
    key: PodKey = field(init=False, repr=False, compare=False)
    # QueueSort's order: priority first, then creation, then the key so ties break the same way.
    queue_key: tuple[int, int, str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.namespace, self.name))
        object.__setattr__(
            self, "queue_key", (-self.priority, self.created_order, self.namespace, self.name)
        )


@dataclass(frozen=True, slots=True)
class Binding:
    pod: PodKey
    node: str


@dataclass(frozen=True, slots=True)
class Eviction:
    pod: PodKey
    node: str
    reason: str  # Preempted | Shed
    budget: str | None  # the budget a shed restores; None for preemption


UNSCHEDULABLE_REASON = "Unschedulable"
INVALID_GANG_REASON = "InvalidGang"


@dataclass(frozen=True, slots=True)
class Unschedulable:
    pod: PodKey
    message: str
    # The PodScheduled=False condition's reason: Unschedulable (room may come), or InvalidGang
    # (the members disagree: nothing but an edit of the pods helps).
    reason: str = UNSCHEDULABLE_REASON


@dataclass(slots=True)
class Plan:
    """What one cycle decided. Bindings are already assumed in the state when it is returned."""

    bindings: list[Binding] = field(default_factory=list)
    evictions: list[Eviction] = field(default_factory=list)
    unschedulable: list[Unschedulable] = field(default_factory=list)
