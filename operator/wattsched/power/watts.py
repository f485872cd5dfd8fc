"""The power model of DESIGN.md §2, in exact integer arithmetic.

Integers, not floats, so that a ledger kept incrementally and one recomputed from scratch agree
to the watt, and a fit decision never flips on a rounding error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from wattsched.domain import PowerProfile

# Device-plugin resource names of the accelerators a site runs (DESIGN.md §2). A pod asking for
# one of these, or for a resource some AcceleratorPool lists, draws accelerator power: it may go
# only where that power is known and guarded, even before any pool for it exists (fail closed).
ACCELERATOR_RESOURCE_PREFIXES = (
    "nvidia.com/",
    "amd.com/",
    "furiosa.ai/",
    "rebellions.ai/",
    "aws.amazon.com/neuron",
    "gpu.intel.com/",
    "habana.ai/",
    "google.com/tpu",
)


def is_accelerator_resource(resource: str, pool_resources: frozenset[str] = frozenset()) -> bool:
    return resource in pool_resources or resource.startswith(ACCELERATOR_RESOURCE_PREFIXES)


def devices_in(requests: Mapping[str, int], resource_names: Iterable[str]) -> int:
    """Devices a pod takes in a pool: its requests of the pool's resource names, summed."""
    return sum(requests.get(resource, 0) for resource in resource_names)


def node_watts(profile: PowerProfile, devices: int, allocated: int) -> int:
    """Committed IT watts of one pool node with `allocated` of its `devices` in use."""
    return (
        profile.node_base_watts
        + allocated * profile.device_watts
        + (devices - allocated) * profile.idle_device_watts
    )


def delta_watts(profile: PowerProfile, devices_requested: int) -> int:
    """IT watts a pod adds to its node: its devices go from idle to committed."""
    return devices_requested * (profile.device_watts - profile.idle_device_watts)


def facility_watts(it_watts: int, pue_milli: int) -> int:
    """Facility watts for IT watts; rounded up so a reported figure never understates the draw."""
    return -(-it_watts * pue_milli // 1000)


def it_capacity_watts(allocatable_watts: int, pue_milli: int) -> int:
    """The most IT watts a budget holds: `fits(it, 0, ...)` exactly when it <= this."""
    return allocatable_watts * 1000 // pue_milli


def fits(it_watts: int, it_delta: int, pue_milli: int, allocatable_watts: int) -> bool:
    """Whether adding `it_delta` keeps a budget within allocatable, compared without division."""
    return (it_watts + it_delta) * pue_milli <= allocatable_watts * 1000


def format_watts(watts: int) -> str:
    """Watts for people: 850 -> '850 W', 5600 -> '5.6 kW', 41000000 -> '41 MW'.

    One decimal at most, trailing '.0' dropped, so messages stay short and comparable.
    """
    sign = "-" if watts < 0 else ""
    value = abs(watts)
    for scale, unit in ((1_000_000_000, "GW"), (1_000_000, "MW"), (1_000, "kW")):
        if value >= scale:
            tenths = (value * 10 + scale // 2) // scale
            whole, frac = divmod(tenths, 10)
            text = f"{whole}.{frac}" if frac else f"{whole}"
            return f"{sign}{text} {unit}"
    return f"{sign}{value} W"
