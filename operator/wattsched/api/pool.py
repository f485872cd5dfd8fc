"""AcceleratorPool's spec and status: which nodes hold which devices, and what each one draws.

A pool is what the ledger multiplies: devices per node times watts per device, plus the host.
Its bounds are the ones a real device and host can have, so a number written in the wrong unit
is refused when it is applied, not found later in the ledger's sums.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from wattsched.api.meta import ApiModel, Condition, LabelSelector
from wattsched.api.validation import RESOURCE_NAME_PATTERN, cel_rule, cel_validations

Vendor = Literal["nvidia", "furiosa", "rebellions", "aws", "amd", "intel", "other"]


class Accelerator(ApiModel):
    vendor: Vendor = Field(description="Who makes the devices.")
    model: Annotated[str, Field(min_length=1, max_length=63)] = Field(
        description="The device model, free text, e.g. H200-SXM or RNGD."
    )
    resource_names: list[
        Annotated[str, Field(min_length=1, max_length=253, pattern=RESOURCE_NAME_PATTERN)]
    ] = Field(
        min_length=1,
        max_length=8,
        description="Extended-resource names the pool's device plugin advertises, "
        "e.g. nvidia.com/gpu or rebellions.ai/ATOM.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @field_validator("resource_names")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError(f"resourceNames must be unique, got {names}")
        return names


class PoolPower(ApiModel):
    """The power profile of one node of the pool: what the ledger commits per device."""

    model_config = ConfigDict(
        json_schema_extra=cel_validations(
            cel_rule(
                "self.idleDeviceWatts <= self.deviceWatts",
                "idleDeviceWatts must not exceed deviceWatts (an idle device cannot draw "
                "more than an allocated one)",
                ".idleDeviceWatts",
            )
        )
    )

    device_watts: int = Field(
        ge=1, le=5000, description="Committed watts per allocated device (e.g. H200 SXM: 700)."
    )
    idle_device_watts: int = Field(
        ge=0, le=5000, description="Watts per unallocated device; at most deviceWatts."
    )
    node_base_watts: int = Field(
        ge=0, le=50000, description="Host overhead per node: CPUs, memory, NICs, fans."
    )

    @model_validator(mode="after")
    def _idle_at_most_allocated(self) -> PoolPower:
        if self.idle_device_watts > self.device_watts:
            raise ValueError(
                f"idleDeviceWatts ({self.idle_device_watts}) must not exceed deviceWatts "
                f"({self.device_watts})"
            )
        return self


class PoolTelemetry(ApiModel):
    """Where measured power comes from (DESIGN.md §2b); defaults follow the vendor's exporter."""

    query: str = Field(
        min_length=1,
        max_length=1024,
        description="PromQL giving watts per device, e.g. DCGM_FI_DEV_POWER_USAGE.",
    )
    node_label: str = Field(
        default="Hostname",
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        max_length=128,
        description="The label naming the node: Hostname (dcgm-exporter before 4.8.3), "
        "hostname (later releases, Rebellions, FuriosaAI).",
    )


class PoolCapping(ApiModel):
    min_device_watts: int = Field(
        ge=1, le=5000, description="The lowest power cap the devices accept, in watts."
    )


class AcceleratorPoolSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=cel_validations(
            cel_rule(
                "!has(self.capping) || self.capping.minDeviceWatts <= self.power.deviceWatts",
                "capping.minDeviceWatts must not exceed power.deviceWatts",
                ".capping.minDeviceWatts",
            )
        )
    )

    node_selector: LabelSelector = Field(description="The nodes of this pool.")
    accelerator: Accelerator
    power: PoolPower
    telemetry: PoolTelemetry | None = Field(
        default=None,
        description="Measured power for Measured budgets; absent: the vendor's exporter "
        "default (nvidia, rebellions, furiosa), or none (nameplate) for the others.",
    )
    capping: PoolCapping | None = Field(
        default=None, description="Whether the devices can be watt-capped; absent: no."
    )

    @model_validator(mode="after")
    def _cap_within_device(self) -> AcceleratorPoolSpec:
        if self.capping is not None and self.capping.min_device_watts > self.power.device_watts:
            raise ValueError(
                f"capping.minDeviceWatts ({self.capping.min_device_watts}) must not exceed "
                f"power.deviceWatts ({self.power.device_watts})"
            )
        return self


class AcceleratorPoolStatus(ApiModel):
    observed_generation: int | None = Field(default=None, ge=0)
    nodes: int | None = Field(default=None, ge=0)
    ready_nodes: int | None = Field(default=None, ge=0)
    devices: int | None = Field(default=None, ge=0)
    allocated_devices: int | None = Field(default=None, ge=0)
    committed_watts: int | None = Field(
        default=None, ge=0, description="Watts the pool's nodes draw in the ledger now."
    )
    committed: str | None = Field(
        default=None, description="committedWatts for people, e.g. 1.03MW (printer column)."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
