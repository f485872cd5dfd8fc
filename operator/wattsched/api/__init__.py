"""The two custom resources of wattsched.io/v1alpha1, their units and their CRDs."""

from wattsched.api.budget import PowerBudgetSpec
from wattsched.api.models import API_VERSION, GROUP, VERSION, AcceleratorPool, PowerBudget
from wattsched.api.pool import AcceleratorPoolSpec
from wattsched.api.units import format_power, parse_power, parse_pue_milli

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "AcceleratorPool",
    "AcceleratorPoolSpec",
    "PowerBudget",
    "PowerBudgetSpec",
    "format_power",
    "parse_power",
    "parse_pue_milli",
]
