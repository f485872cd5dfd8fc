"""The placement engine: a pure, power-aware, gang-aware scheduling cycle (DESIGN.md §3).

No I/O, no clock, no Kubernetes types: the operator, the simulator and the benchmarks drive the
same code with the same plain dataclasses.
"""

from wattsched.domain import (
    Binding,
    Budget,
    Eviction,
    LabelSelector,
    Node,
    NodeAffinity,
    Plan,
    Pod,
    PodKey,
    Pool,
    PowerProfile,
    SelectorRequirement,
    Taint,
    Toleration,
    Unschedulable,
)
from wattsched.power.ledger import BudgetStatus
from wattsched.scheduling.config import SchedulerConfig, ScoreWeights
from wattsched.scheduling.queue import Nomination, SchedulingQueue
from wattsched.scheduling.scheduler import Scheduler
from wattsched.scheduling.state import ClusterState

__all__ = [
    "Binding",
    "Budget",
    "BudgetStatus",
    "ClusterState",
    "Eviction",
    "LabelSelector",
    "Node",
    "NodeAffinity",
    "Nomination",
    "Plan",
    "Pod",
    "PodKey",
    "Pool",
    "PowerProfile",
    "Scheduler",
    "SchedulerConfig",
    "SchedulingQueue",
    "ScoreWeights",
    "SelectorRequirement",
    "Taint",
    "Toleration",
    "Unschedulable",
]
