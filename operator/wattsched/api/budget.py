"""PowerBudget's spec and status: the watts a set of nodes may draw, and when that changes.

A budget is a limit over time, not a number: `schedule` steps it at known instants (phase
commissioning, demand response), so the spec itself answers `effective_limit_watts(at)` and
`next_change(at)`, and the operator, the simulator and the status all read the same answer.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from wattsched.api.meta import ApiModel, Condition, LabelSelector
from wattsched.api.units import PUE_PATTERN, parse_power, parse_pue_milli
from wattsched.api.validation import (
    RFC3339_PATTERN,
    cel_rule,
    cel_validations,
    check_limit,
    limit_field,
    parse_instant,
)


class ScheduleEntry(ApiModel):
    """From this instant on, the budget's limit is this (phase commissioning, demand response)."""

    from_: str = Field(
        alias="from",
        pattern=RFC3339_PATTERN,
        description="An RFC 3339 instant, e.g. 2029-02-01T00:00:00Z.",
        json_schema_extra={"format": "date-time"},
    )
    limit: str = limit_field("The limit from this instant on: a number and W, kW, MW or GW.")

    @property
    def starts_at(self) -> datetime:
        return parse_instant(self.from_)

    @property
    def limit_watts(self) -> int:
        return parse_power(self.limit)

    @field_validator("limit")
    @classmethod
    def _limit_in_range(cls, value: str) -> str:
        return check_limit(value)


Enforcement = Literal["Admit", "Shed"]
Admission = Literal["Committed", "Measured"]

DURATION_PATTERN = r"^[0-9]{1,5}(s|m|h)$"
_SECONDS_PER = {"s": 1, "m": 60, "h": 3600}


def duration_seconds(text: str) -> int:
    """'15m' -> 900: the few duration forms a budget takes (whole seconds, minutes, hours)."""
    return int(text[:-1]) * _SECONDS_PER[text[-1]]


def _duration_field(default: str, low: str, high: str, description: str) -> Any:
    return Field(
        default=default,
        pattern=DURATION_PATTERN,
        description=f"{description} A number and s, m or h, from {low} to {high}.",
        json_schema_extra=cel_validations(
            cel_rule(
                f"!self.matches('{DURATION_PATTERN}') || "
                f"(duration(self) >= duration('{low}') && duration(self) <= duration('{high}'))",
                f"must be from {low} to {high}",
            )
        ),
    )


class MeasuredAdmission(ApiModel):
    """How a Measured budget reads power (DESIGN.md §2b), and the capping thresholds."""

    model_config = ConfigDict(
        json_schema_extra=cel_validations(
            cel_rule(
                "self.releaseAtPercent < self.capAtPercent",
                "releaseAtPercent must be below capAtPercent, or caps would flap",
                ".releaseAtPercent",
            )
        )
    )

    window: str = _duration_field(
        "15m", "1m", "24h", "Observed power is a percentile of this window's readings."
    )
    percentile: int = Field(
        default=99, ge=50, le=100, description="The percentile of the window, 50..100."
    )
    stale_after: str = _duration_field(
        "2m", "10s", "1h", "A node with no reading fresher than this counts at nameplate."
    )
    max_oversubscription_percent: int = Field(
        default=0,
        ge=0,
        le=100,
        description="How far the worst case (capped devices at their floor) may exceed "
        "allocatable, 0..100; 0 keeps every placement safe by capping alone.",
    )
    cap_at_percent: int = Field(
        default=95, ge=50, le=100, description="Cap low-priority GPUs above this % of the limit."
    )
    release_at_percent: int = Field(
        default=90, ge=40, le=100, description="Lift caps below this % of the limit."
    )
    shed_after_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="Still over the limit this long: shed (with enforcement: Shed), 0..3600.",
    )

    @field_validator("window", "stale_after")
    @classmethod
    def _duration_in_range(cls, value: str, info: ValidationInfo) -> str:
        low, high = (60, 86_400) if info.field_name == "window" else (10, 3_600)
        seconds = duration_seconds(value)
        if not low <= seconds <= high:
            raise ValueError(
                f"{value} is outside {low}s..{high}s; write e.g. 15m for a window, 2m for "
                "staleAfter"
            )
        return value

    @model_validator(mode="after")
    def _release_below_cap(self) -> MeasuredAdmission:
        if self.release_at_percent >= self.cap_at_percent:
            raise ValueError(
                f"releaseAtPercent ({self.release_at_percent}) must be below capAtPercent "
                f"({self.cap_at_percent}), or caps would flap"
            )
        return self

    @property
    def window_seconds(self) -> int:
        return duration_seconds(self.window)

    @property
    def stale_after_seconds(self) -> int:
        return duration_seconds(self.stale_after)


class PowerBudgetSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=cel_validations(
            cel_rule(
                "!has(self.measured) || self.admission == 'Measured'",
                "measured settings apply only with admission: Measured",
                ".measured",
            )
        )
    )

    node_selector: LabelSelector = Field(description="The power domain: the nodes it covers.")
    limit: str = limit_field("The limit: a number and W, kW, MW or GW, e.g. 41MW.")
    reserve_percent: int = Field(
        default=5, ge=0, le=50, description="Headroom never allocated: a safety margin, 0..50."
    )
    pue: str = Field(
        default="1.0",
        pattern=PUE_PATTERN,
        description="Multiplier on IT power when the limit is facility power, 1.0..3.0.",
        json_schema_extra=cel_validations(
            cel_rule(
                "double(self) >= 1.0 && double(self) <= 3.0", "pue must be between 1.0 and 3.0"
            )
        ),
    )
    enforcement: Enforcement = Field(
        default="Admit",
        description="Admit: only block new placements. Shed: also evict by priority when over.",
    )
    admission: Admission = Field(
        default="Committed",
        description="Committed: admit on nameplate watts. Measured: admit on measured power "
        "with the nameplate ledger as the floor (DESIGN.md §2b).",
    )
    measured: MeasuredAdmission | None = Field(
        default=None, description="With admission: Measured: how power is read."
    )
    schedule: list[ScheduleEntry] | None = Field(
        default=None,
        max_length=64,
        description="Limit changes at future instants, strictly increasing by `from`.",
        json_schema_extra=cel_validations(
            cel_rule(
                "self.all(a, self.exists_one(b, timestamp(b.from) == timestamp(a.from)))",
                "schedule entries must have distinct `from` instants",
            ),
            cel_rule(
                "self.map(e, timestamp(e.from)).isSorted()",
                "schedule entries must be in strictly increasing order of `from`",
            ),
        ),
    )

    @field_validator("limit")
    @classmethod
    def _limit_in_range(cls, value: str) -> str:
        return check_limit(value)

    @model_validator(mode="after")
    def _measured_only_when_measured(self) -> PowerBudgetSpec:
        if self.measured is not None and self.admission != "Measured":
            raise ValueError("measured settings apply only with admission: Measured")
        return self

    @property
    def measured_settings(self) -> MeasuredAdmission:
        """The measured settings in force: the spec's, else the defaults."""
        return self.measured or MeasuredAdmission()

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


class NextChange(ApiModel):
    at: str = Field(json_schema_extra={"format": "date-time"})
    limit_watts: int = Field(ge=0)


class PowerBudgetStatus(ApiModel):
    observed_generation: int | None = Field(default=None, ge=0)
    effective_limit_watts: int | None = Field(default=None, ge=0)
    allocatable_watts: int | None = Field(default=None, ge=0)
    committed_watts: int | None = Field(default=None, ge=0)
    headroom_watts: int | None = Field(
        default=None, description="allocatableWatts - committedWatts; negative when over."
    )
    nodes: int | None = Field(default=None, ge=0)
    pods: int | None = Field(default=None, ge=0)
    measured_watts: int | None = Field(
        default=None, ge=0, description="Measured only: facility watts the readings show."
    )
    estimated_watts: int | None = Field(
        default=None,
        ge=0,
        description="Measured only: facility watts admission counts (DESIGN.md §2b).",
    )
    next_change: NextChange | None = None
    limit: str | None = Field(default=None, description="The limit in force now, e.g. 41MW.")
    committed: str | None = Field(default=None, description="committedWatts for people.")
    headroom: str | None = Field(default=None, description="headroomWatts for people.")
    measured: str | None = Field(default=None, description="measuredWatts for people.")
    estimated: str | None = Field(default=None, description="estimatedWatts for people.")
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
