"""The scenario file of `wattsched simulate`: what site, what fleet, what work, over what time.

A scenario is YAML, validated by the pydantic models below with messages that name the field
and the value. It refers to ordinary AcceleratorPool and PowerBudget manifests (paths relative
to the scenario file), so the twin simulates exactly what `kubectl apply` would install.
The README ("Simulate before you trust it") gives the format with an example.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from wattsched.api.units import POWER_PATTERN, parse_power
from wattsched.api.validation import RFC3339_PATTERN, parse_instant

SCENARIO_KIND = "Scenario"
SCENARIO_API_VERSION = "sim.wattsched.io/v1alpha1"

_DURATION = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ScenarioError(ValueError):
    """A scenario the simulator cannot run; the message says which field and why."""


def parse_duration_seconds(value: str | int) -> int:
    """'90s', '15m', '6h', '2.5d', '1w' -> whole seconds; a bare integer is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"duration {value} must not be negative")
        return value
    match = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"{value!r} is not a duration: write a number and a unit s, m, h, d or w "
            "(e.g. 90s, 15m, 6h, 2.5d, 1w)"
        )
    return round(float(match["number"]) * _UNIT_SECONDS[match["unit"]])


Duration = Annotated[str | int, Field(description="e.g. 90s, 15m, 6h, 2.5d, 1w; or seconds")]
Instant = Annotated[str, Field(pattern=RFC3339_PATTERN, description="RFC 3339, e.g. ...T00:00Z")]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _check_duration(value: str | int) -> str | int:
    parse_duration_seconds(value)
    return value


def _check_instant(value: str) -> str:
    parse_instant(value)
    return value


class BudgetScheduleEntry(_Model):
    """An extra limit on a budget, on top of its manifest's schedule: a demand-response dip
    (`from` .. `until`) or a permanent step (no `until`)."""

    budget: str = Field(min_length=1)
    from_: Instant = Field(alias="from")
    until: Instant | None = None
    limit: str = Field(pattern=POWER_PATTERN, description="at full scale; `scale` applies")

    @field_validator("from_", "until")
    @classmethod
    def _instant(cls, value: str | None) -> str | None:
        return None if value is None else _check_instant(value)

    @model_validator(mode="after")
    def _ordered(self) -> BudgetScheduleEntry:
        if parse_power(self.limit) <= 0:
            raise ValueError(f"limit {self.limit!r} must be greater than zero")
        if self.until is not None and parse_instant(self.until) <= parse_instant(self.from_):
            raise ValueError(f"until ({self.until}) must come after from ({self.from_})")
        return self


class NodeCohort(_Model):
    """`count` nodes of one pool, commissioned at `commissionedAt` (default: the start)."""

    pool: str = Field(min_length=1)
    count: int = Field(ge=0, description="at full scale; `scale` applies (at least 1 if > 0)")
    devices_per_node: int = Field(ge=1, le=64)
    resource_name: str | None = Field(
        default=None, description="the extended resource; default: the pool's first one"
    )
    nodes_per_rack: int = Field(default=4, ge=1, le=64)
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="extra node labels, e.g. wattsched.io/hall and wattsched.io/phase",
    )
    commissioned_at: Instant | None = None

    @field_validator("commissioned_at")
    @classmethod
    def _instant(cls, value: str | None) -> str | None:
        return None if value is None else _check_instant(value)


class DurationDistribution(_Model):
    """How long a job runs once started. `mean` for exponential and lognormal (with `sigma`,
    the standard deviation of the log), `min`/`max` for uniform, `mean` alone for fixed."""

    distribution: Literal["fixed", "exponential", "lognormal", "uniform"]
    mean: Duration | None = None
    sigma: float = Field(default=1.0, gt=0, le=4)
    min: Duration | None = None
    max: Duration | None = None

    @model_validator(mode="after")
    def _parameters(self) -> DurationDistribution:
        for name in ("mean", "min", "max"):
            value = getattr(self, name)
            if value is not None:
                parse_duration_seconds(value)
        if self.distribution == "uniform":
            if self.min is None or self.max is None:
                raise ValueError("a uniform duration needs min and max")
            if parse_duration_seconds(self.max) < parse_duration_seconds(self.min):
                raise ValueError(f"max ({self.max}) must not be less than min ({self.min})")
        elif self.mean is None or parse_duration_seconds(self.mean) <= 0:
            raise ValueError(f"a {self.distribution} duration needs a mean greater than zero")
        return self


class ArrivalProcess(_Model):
    """A Poisson stream of jobs of one kind: inference pods (gangSize 1) or training gangs."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)
    kind: Literal["inference", "training"] = "inference"
    pool: str | None = Field(
        default=None, description="pin to a pool (node selector wattsched.io/pool)"
    )
    resource: str | None = Field(default=None, description="default: the pool's first resource")
    rate_per_hour: float = Field(gt=0, description="jobs per hour at the start, at full scale")
    growth_per_year: float = Field(
        default=0.0, ge=-0.99, le=100, description="the rate grows by this fraction per year"
    )
    from_: Instant | None = Field(default=None, alias="from")
    until: Instant | None = None
    devices_per_pod: int = Field(ge=1, le=64)
    gang_size: int = Field(default=1, ge=1, le=4096)
    duration: DurationDistribution
    priority: int = 0
    patience: Duration | None = Field(
        default=None, description="a job not started within this long is withdrawn"
    )

    @field_validator("from_", "until")
    @classmethod
    def _instant(cls, value: str | None) -> str | None:
        return None if value is None else _check_instant(value)

    @model_validator(mode="after")
    def _consistent(self) -> ArrivalProcess:
        if self.pool is None and self.resource is None:
            raise ValueError(f"arrival {self.name!r}: give a pool, a resource, or both")
        if self.kind == "inference" and self.gang_size != 1:
            raise ValueError(
                f"arrival {self.name!r}: inference jobs are single pods (gangSize 1, got "
                f"{self.gang_size}); use kind: training for gangs"
            )
        if self.patience is not None:
            parse_duration_seconds(self.patience)
        return self


class Workload(_Model):
    arrivals: list[ArrivalProcess] = Field(default_factory=list)
    trace: str | None = Field(
        default=None, description="a CSV of submissions, relative to the scenario file"
    )

    @model_validator(mode="after")
    def _some_work(self) -> Workload:
        if not self.arrivals and self.trace is None:
            raise ValueError("workload needs arrivals, a trace, or both")
        names = [arrival.name for arrival in self.arrivals]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"arrival names must be unique; repeated: {', '.join(duplicates)}")
        return self


class Scenario(_Model):
    api_version: Literal["sim.wattsched.io/v1alpha1"] = "sim.wattsched.io/v1alpha1"
    kind: Literal["Scenario"] = "Scenario"
    name: str = Field(min_length=1, max_length=63)
    description: str = ""
    start: Instant
    end: Instant
    sample_interval: Duration = "1h"
    cycle_interval: Duration = Field(
        default="0s",
        description="a scheduling cycle runs at most this often (0s: at every event instant)",
    )
    seed: int = 0
    scale: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="multiplies node counts, budget limits and arrival rates",
    )
    min_feasible_nodes: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="the engine's SchedulerConfig.min_feasible_nodes for every policy "
        "(default: the engine's); 1 is exact and fast when every pod takes whole nodes",
    )
    site: str = Field(default="site", description="every node's wattsched.io/site label")
    manifests: list[str] = Field(min_length=1)
    budget_schedule: list[BudgetScheduleEntry] = Field(default_factory=list)
    nodes: list[NodeCohort] = Field(min_length=1)
    workload: Workload

    @field_validator("start", "end")
    @classmethod
    def _instant(cls, value: str) -> str:
        return _check_instant(value)

    @field_validator("sample_interval", "cycle_interval")
    @classmethod
    def _duration(cls, value: str | int) -> str | int:
        return _check_duration(value)

    @model_validator(mode="after")
    def _window(self) -> Scenario:
        if self.end_at <= self.start_at:
            raise ValueError(f"end ({self.end}) must come after start ({self.start})")
        if self.sample_seconds <= 0:
            raise ValueError(f"sampleInterval ({self.sample_interval}) must be greater than zero")
        return self

    @property
    def start_at(self) -> datetime:
        return parse_instant(self.start)

    @property
    def end_at(self) -> datetime:
        return parse_instant(self.end)

    @property
    def sample_seconds(self) -> int:
        return parse_duration_seconds(self.sample_interval)

    @property
    def cycle_seconds(self) -> int:
        return parse_duration_seconds(self.cycle_interval)

    @property
    def horizon_seconds(self) -> int:
        return int((self.end_at - self.start_at).total_seconds())

    def seconds_at(self, text: str) -> int:
        """An instant as seconds since the scenario's start (the virtual clock's unit)."""
        return int((parse_instant(text) - self.start_at).total_seconds())

    def instant_at(self, seconds: int) -> datetime:
        """The inverse of `seconds_at`: the calendar instant of a virtual-clock reading."""
        return self.start_at + timedelta(seconds=seconds)


def _describe(err: ValidationError, where: str) -> str:
    lines = []
    for problem in err.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        given = problem.get("input")
        shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
        lines.append(f"{where}: {field}: {message}{shown}")
    return "\n".join(lines)


def parse_scenario(document: Any, where: str = "scenario") -> Scenario:
    if not isinstance(document, dict):
        raise ScenarioError(f"{where}: a scenario is a YAML mapping, got {type(document).__name__}")
    try:
        return Scenario.model_validate(document)
    except ValidationError as err:
        raise ScenarioError(_describe(err, where)) from None


def load_scenario(path: Path) -> Scenario:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ScenarioError(f"cannot read scenario {path}: {err}") from None
    return parse_scenario(document, str(path))
