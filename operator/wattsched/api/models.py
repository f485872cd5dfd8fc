"""Typed models of AcceleratorPool and PowerBudget (wattsched.io/v1alpha1).

These models are the schema: the CRDs under crds/ are generated from them (see crd.py),
and every rule the API server enforces through OpenAPI bounds or CEL is also checked here
with the same message, so a sample, a simulator scenario and a kubectl apply are judged
alike. Field names follow DESIGN.md §1 and are a contract; extend, never rename.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from wattsched.api.units import (
    POWER_PATTERN,
    PUE_PATTERN,
    UNIT_WATTS,
    parse_power,
    parse_pue_milli,
)

GROUP = "wattsched.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
RESOURCE_NAME_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"  # noqa: E501


def _cel(
    rule: str,
    message: str,
    field_path: str | None = None,
    message_expression: str | None = None,
) -> dict[str, str]:
    entry = {"rule": rule, "message": message}
    if message_expression:
        entry["messageExpression"] = message_expression
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def _validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


# The largest limit a PowerBudget accepts. The largest AI campuses planned draw a few GW, so a
# limit above this is a slip of the unit (GW for MW), and a limit that large guards nothing.
MAX_LIMIT_WATTS = 100 * UNIT_WATTS["GW"]
_ABOVE_MAX_LIMIT = (
    "is above 100GW, the largest a PowerBudget accepts: check the unit "
    "(a 100 MW-class site is written 103MW, not 103GW)"
)
# The watts of a well-formed limit, in CEL. A double, not an int: a 31-digit number of watts
# would overflow int() with an error instead of our message, while a double near 100 GW is off
# by less than a thousandth of a watt, so it never takes 100GW for one watt more or less.
_LIMIT_WATTS_CEL = (
    "double(self.find('^[0-9.]+')) * (self.endsWith('GW') ? 1e9 : self.endsWith('MW') ? 1e6"
    " : self.endsWith('kW') ? 1e3 : 1.0)"
)


def _limit_field(description: str) -> Any:
    """A power limit: the syntax of units.py, more than zero, at most MAX_LIMIT_WATTS.

    The bound's rule first matches the syntax again because the API server runs CEL even on a
    value that failed the pattern, and converting such a value would add an error of its own
    to the pattern's clear one.
    """
    return Field(
        max_length=32,
        pattern=POWER_PATTERN,
        description=description,
        json_schema_extra=_validations(
            _cel("!self.matches('^[0.]+[A-Za-z]+$')", "limit must be greater than zero"),
            _cel(
                f"!self.matches(r'{POWER_PATTERN}') || {_LIMIT_WATTS_CEL} <= {MAX_LIMIT_WATTS}.0",
                f"limit {_ABOVE_MAX_LIMIT}",
                message_expression=f"'limit ' + self + ' {_ABOVE_MAX_LIMIT}'",
            ),
        ),
    )


def _check_limit(limit: str) -> str:
    """The model's side of _limit_field's CEL rules, with the same messages."""
    watts = parse_power(limit)
    if watts <= 0:
        raise ValueError("limit must be greater than zero")
    if watts > MAX_LIMIT_WATTS:
        raise ValueError(f"limit {limit} {_ABOVE_MAX_LIMIT}")
    return limit


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class LabelSelectorRequirement(_Model):
    """One matchExpressions entry of a metav1.LabelSelector."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel(
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                " : (!has(self.values) || size(self.values) == 0)",
                "values must be non-empty for operator In or NotIn, and empty for Exists "
                "or DoesNotExist",
            )
        )
    )

    key: Annotated[str, Field(min_length=1, max_length=317, description="The label key.")]
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values."
    )
    values: list[Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, max_length=256, description="Label values for In and NotIn."
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        needs_values = self.operator in ("In", "NotIn")
        if needs_values != bool(self.values):
            raise ValueError(
                "values must be non-empty for operator In or NotIn, and empty for Exists "
                "or DoesNotExist"
            )
        return self


class LabelSelector(_Model):
    """A metav1.LabelSelector that must select something: an empty one would match every node."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel(
                "(has(self.matchLabels) && size(self.matchLabels) > 0) || "
                "(has(self.matchExpressions) && size(self.matchExpressions) > 0)",
                "nodeSelector must not be empty: give matchLabels or matchExpressions "
                "(an empty selector would match every node in the cluster)",
            )
        )
    )

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, description="Labels a node must carry, all of them."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=32, description="Requirements a node must meet, all of them."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> LabelSelector:
        if not self.match_labels and not self.match_expressions:
            raise ValueError(
                "nodeSelector must not be empty: give matchLabels or matchExpressions "
                "(an empty selector would match every node in the cluster)"
            )
        return self


Vendor = Literal["nvidia", "furiosa", "rebellions", "aws", "amd", "intel", "other"]


class Accelerator(_Model):
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


class PoolPower(_Model):
    """The power profile of one node of the pool: what the ledger commits per device."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel(
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


class AcceleratorPoolSpec(_Model):
    node_selector: LabelSelector = Field(description="The nodes of this pool.")
    accelerator: Accelerator
    power: PoolPower


class Condition(_Model):
    """metav1.Condition."""

    type: Annotated[str, Field(min_length=1, max_length=316)]
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(min_length=1, max_length=1024)]
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = Field(default=None, ge=0)


class AcceleratorPoolStatus(_Model):
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


class ScheduleEntry(_Model):
    """From this instant on, the budget's limit is this (phase commissioning, demand response)."""

    from_: str = Field(
        alias="from",
        pattern=RFC3339_PATTERN,
        description="An RFC 3339 instant, e.g. 2029-02-01T00:00:00Z.",
        json_schema_extra={"format": "date-time"},
    )
    limit: str = _limit_field("The limit from this instant on: a number and W, kW, MW or GW.")

    @property
    def starts_at(self) -> datetime:
        return parse_instant(self.from_)

    @property
    def limit_watts(self) -> int:
        return parse_power(self.limit)

    @field_validator("limit")
    @classmethod
    def _limit_in_range(cls, value: str) -> str:
        return _check_limit(value)


def parse_instant(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; write it as RFC 3339, e.g. ...T00:00:00Z")
    return parsed.astimezone(UTC)


Enforcement = Literal["Admit", "Shed"]


class PowerBudgetSpec(_Model):
    node_selector: LabelSelector = Field(description="The power domain: the nodes it covers.")
    limit: str = _limit_field("The limit: a number and W, kW, MW or GW, e.g. 41MW.")
    reserve_percent: int = Field(
        default=5, ge=0, le=50, description="Headroom never allocated: a safety margin, 0..50."
    )
    pue: str = Field(
        default="1.0",
        pattern=PUE_PATTERN,
        description="Multiplier on IT power when the limit is facility power, 1.0..3.0.",
        json_schema_extra=_validations(
            _cel("double(self) >= 1.0 && double(self) <= 3.0", "pue must be between 1.0 and 3.0")
        ),
    )
    enforcement: Enforcement = Field(
        default="Admit",
        description="Admit: only block new placements. Shed: also evict by priority when over.",
    )
    schedule: list[ScheduleEntry] | None = Field(
        default=None,
        max_length=64,
        description="Limit changes at future instants, strictly increasing by `from`.",
        json_schema_extra=_validations(
            _cel(
                "self.all(a, self.exists_one(b, timestamp(b.from) == timestamp(a.from)))",
                "schedule entries must have distinct `from` instants",
            ),
            _cel(
                "self.map(e, timestamp(e.from)).isSorted()",
                "schedule entries must be in strictly increasing order of `from`",
            ),
        ),
    )

    @field_validator("limit")
    @classmethod
    def _limit_in_range(cls, value: str) -> str:
        return _check_limit(value)

    @field_validator("pue")
    @classmethod
    def _pue_in_range(cls, value: str) -> str:
        parse_pue_milli(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _strictly_increasing(
        cls, entries: list[ScheduleEntry] | None
    ) -> list[ScheduleEntry] | None:
        instants = [entry.starts_at for entry in entries or []]
        for earlier, later in itertools.pairwise(instants):
            if later <= earlier:
                raise ValueError(
                    "schedule entries must be in strictly increasing order of `from` "
                    f"({later.isoformat()} does not come after {earlier.isoformat()})"
                )
        return entries

    @property
    def limit_watts(self) -> int:
        return parse_power(self.limit)

    @property
    def pue_milli(self) -> int:
        return parse_pue_milli(self.pue)

    def effective_limit_watts(self, at: datetime) -> int:
        """The limit in force at `at`: the last schedule entry that has started, else spec.limit."""
        watts = self.limit_watts
        for entry in self.schedule or []:
            if entry.starts_at <= at:
                watts = entry.limit_watts
            else:
                break
        return watts

    def next_change(self, at: datetime) -> tuple[datetime, int] | None:
        """The first scheduled change strictly after `at`, so the operator can wake for it."""
        current = self.effective_limit_watts(at)
        for entry in self.schedule or []:
            if entry.starts_at > at and entry.limit_watts != current:
                return entry.starts_at, entry.limit_watts
        return None


class NextChange(_Model):
    at: str = Field(json_schema_extra={"format": "date-time"})
    limit_watts: int = Field(ge=0)


class PowerBudgetStatus(_Model):
    observed_generation: int | None = Field(default=None, ge=0)
    effective_limit_watts: int | None = Field(default=None, ge=0)
    allocatable_watts: int | None = Field(default=None, ge=0)
    committed_watts: int | None = Field(default=None, ge=0)
    headroom_watts: int | None = Field(
        default=None, description="allocatableWatts - committedWatts; negative when over."
    )
    nodes: int | None = Field(default=None, ge=0)
    pods: int | None = Field(default=None, ge=0)
    next_change: NextChange | None = None
    limit: str | None = Field(default=None, description="The limit in force now, e.g. 41MW.")
    committed: str | None = Field(default=None, description="committedWatts for people.")
    headroom: str | None = Field(default=None, description="headroomWatts for people.")
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ObjectMeta(BaseModel):
    """The part of metav1.ObjectMeta wattsched reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: str
    generation: int | None = None
    creation_timestamp: str | None = None
    uid: str | None = None


class _Resource(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    api_version: Literal["wattsched.io/v1alpha1"] = "wattsched.io/v1alpha1"
    metadata: ObjectMeta

    def to_manifest(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class AcceleratorPool(_Resource):
    kind: Literal["AcceleratorPool"] = "AcceleratorPool"
    spec: AcceleratorPoolSpec
    status: AcceleratorPoolStatus | None = None


class PowerBudget(_Resource):
    kind: Literal["PowerBudget"] = "PowerBudget"
    spec: PowerBudgetSpec
    status: PowerBudgetStatus | None = None
