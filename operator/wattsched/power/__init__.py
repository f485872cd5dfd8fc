"""The power model and the ledger: pure integer arithmetic over the scheduling snapshot."""

from wattsched.domain import PowerProfile
from wattsched.power.ledger import BudgetUsage, Ledger, PoolUsage, recompute_ledger
from wattsched.power.watts import (
    delta_watts,
    devices_in,
    facility_watts,
    fits,
    format_watts,
    is_accelerator_resource,
    it_capacity_watts,
    node_watts,
)

__all__ = [
    "BudgetUsage",
    "Ledger",
    "PoolUsage",
    "PowerProfile",
    "delta_watts",
    "devices_in",
    "facility_watts",
    "fits",
    "format_watts",
    "is_accelerator_resource",
    "it_capacity_watts",
    "node_watts",
    "recompute_ledger",
]
