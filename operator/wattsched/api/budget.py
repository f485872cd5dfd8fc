"""PowerBudget's spec and status: the watts a set of nodes may draw, and when that changes.

A budget is a limit over time, not a number: `schedule` steps it at known instants (phase
commissioning, demand response), so the spec itself answers `effective_limit_watts(at)` and
`next_change(at)`, and the operator, the simulator and the status all read the same answer.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

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


class PowerBudgetSpec(ApiModel):
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
    next_change: NextChange | None = None
    limit: str | None = Field(default=None, description="The limit in force now, e.g. 41MW.")
    committed: str | None = Field(default=None, description="committedWatts for people.")
    headroom: str | None = Field(default=None, description="headroomWatts for people.")
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
