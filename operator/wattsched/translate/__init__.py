"""Kubernetes objects (as the JSON the API returns) -> the plain domain model.

The one translation, used by the operator's cache and the simulator alike: `core` for nodes and
pods, `custom` for AcceleratorPools and PowerBudgets, `quantity` for resource quantities.
"""

from wattsched.translate.common import (
    JSON,
    MAX_GANG_SIZE,
    TERMINAL_PHASES,
    TranslationError,
    creation_seconds,
)
from wattsched.translate.core import (
    TranslatedPod,
    node_from_object,
    pod_from_object,
    pod_is_relevant,
    pod_requests,
    required_node_affinity,
    scheduled_condition_message,
)
from wattsched.translate.custom import (
    BudgetSource,
    PoolSource,
    budget_from_object,
    engine_budget,
    engine_pool,
    engine_selector,
    pool_from_object,
)

__all__ = [
    "JSON",
    "MAX_GANG_SIZE",
    "TERMINAL_PHASES",
    "BudgetSource",
    "PoolSource",
    "TranslatedPod",
    "TranslationError",
    "budget_from_object",
    "creation_seconds",
    "engine_budget",
    "engine_pool",
    "engine_selector",
    "node_from_object",
    "pod_from_object",
    "pod_is_relevant",
    "pod_requests",
    "pool_from_object",
    "required_node_affinity",
    "scheduled_condition_message",
]
