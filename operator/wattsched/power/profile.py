"""The power profile of one accelerator pool: the numbers the power model multiplies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PowerProfile:
    """Watts an AcceleratorPool's spec.power declares (DESIGN.md §2).

    Kept apart from the scheduling model so that the power package depends on nothing.
    """

    device_watts: int
    idle_device_watts: int
    node_base_watts: int
