"""Jobs to submit: drawn from the scenario's arrival processes, or read from a CSV trace.

Every arrival process draws from its own random stream, seeded by the scenario seed and the
process name, so adding a process does not reshuffle the others, and every policy gets the very
same jobs. A job is one inference pod or one training gang (gangSize pods, bound whole).

CSV trace columns (header row required; `patience` and `pool`/`resource` may be empty):
    submitted        RFC 3339 instant, e.g. 2028-03-01T12:00:00Z
    name             job name, a DNS label (unique within the trace)
    kind             inference | training
    pool             pin to this pool (node selector wattsched.io/pool), or empty
    resource         extended resource, or empty for the pool's first
    devices_per_pod  integer >= 1
    gang_size        integer >= 1 (1 for inference)
    duration         run time once started: 90s, 15m, 6h, 2d, 1w, or seconds
    priority         integer
    patience         withdraw if not started within this long, or empty for never
Trace jobs are taken as they are: `scale` does not thin them.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

from wattsched.api.validation import parse_instant
from wattsched.domain import Pool
from wattsched.sim.scenario import (
    ArrivalProcess,
    DurationDistribution,
    Scenario,
    ScenarioError,
    parse_duration_seconds,
)

YEAR_SECONDS = 365 * 86400
TRACE_COLUMNS = (
    "submitted",
    "name",
    "kind",
    "pool",
    "resource",
    "devices_per_pod",
    "gang_size",
    "duration",
    "priority",
    "patience",
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One submission: everything the simulator needs to make its pods."""

    name: str
    stream: str  # the arrival process (or "trace")
    kind: str  # inference | training
    pool: str | None
    resource: str
    devices_per_pod: int
    gang_size: int
    duration_seconds: int
    priority: int
    submit_seconds: int
    patience_seconds: int | None


def draw_duration(rng: random.Random, spec: DurationDistribution) -> int:
    if spec.distribution == "uniform":
        assert spec.min is not None and spec.max is not None
        low, high = parse_duration_seconds(spec.min), parse_duration_seconds(spec.max)
        return max(1, round(rng.uniform(low, high)))
    assert spec.mean is not None
    mean = parse_duration_seconds(spec.mean)
    if spec.distribution == "fixed":
        return mean
    if spec.distribution == "exponential":
        return max(1, round(rng.expovariate(1.0 / mean)))
    # lognormal with the given arithmetic mean: mu = ln(mean) - sigma^2 / 2
    mu = math.log(mean) - spec.sigma**2 / 2
    return max(1, round(rng.lognormvariate(mu, spec.sigma)))


def _resource_for(
    pool_name: str | None, resource: str | None, pools: dict[str, Pool], where: str
) -> str:
    if pool_name is not None:
        pool = pools.get(pool_name)
        if pool is None:
            raise ScenarioError(
                f"{where}: pool {pool_name!r} is not in the manifests "
                f"(pools: {', '.join(sorted(pools))})"
            )
        chosen = resource or pool.resource_names[0]
        if chosen not in pool.resource_names:
            raise ScenarioError(
                f"{where}: resource {chosen!r} is not one of pool {pool_name}'s "
                f"resourceNames {list(pool.resource_names)}"
            )
        return chosen
    assert resource is not None
    if not any(resource in pool.resource_names for pool in pools.values()):
        raise ScenarioError(f"{where}: no pool offers resource {resource!r}")
    return resource


def arrivals(process: ArrivalProcess, scenario: Scenario, pools: dict[str, Pool]) -> list[JobSpec]:
    """A Poisson process with rate r0 * scale * (1 + growth)^(t / year), by thinning."""
    where = f"workload.arrivals[{process.name}]"
    resource = _resource_for(process.pool, process.resource, pools, where)
    rng = random.Random(f"{scenario.seed}:{process.name}")
    start = 0 if process.from_ is None else max(0, scenario.seconds_at(process.from_))
    stop = scenario.horizon_seconds
    if process.until is not None:
        stop = min(stop, scenario.seconds_at(process.until))
    base_per_second = process.rate_per_hour * scenario.scale / 3600

    def rate(seconds: float) -> float:
        return float(base_per_second * (1 + process.growth_per_year) ** (seconds / YEAR_SECONDS))

    peak = max(rate(start), rate(stop))
    patience = None if process.patience is None else parse_duration_seconds(process.patience)
    jobs: list[JobSpec] = []
    now = float(start)
    while True:
        now += rng.expovariate(peak)
        if now >= stop:
            break
        accept = rng.random() < rate(now) / peak
        duration = draw_duration(rng, process.duration)  # drawn either way: streams stay aligned
        if not accept:
            continue
        jobs.append(
            JobSpec(
                name=f"{process.name}-{len(jobs):06d}",
                stream=process.name,
                kind=process.kind,
                pool=process.pool,
                resource=resource,
                devices_per_pod=process.devices_per_pod,
                gang_size=process.gang_size,
                duration_seconds=duration,
                priority=process.priority,
                submit_seconds=int(now),
                patience_seconds=patience,
            )
        )
    return jobs


def _trace_int(row: dict[str, str], column: str, where: str, minimum: int | None) -> int:
    text = (row.get(column) or "").strip()
    try:
        value = int(text)
    except ValueError:
        raise ScenarioError(f"{where}: {column} must be an integer, got {text!r}") from None
    if minimum is not None and value < minimum:
        raise ScenarioError(f"{where}: {column} must be at least {minimum}, got {value}")
    return value


def read_trace(path: Path, scenario: Scenario, pools: dict[str, Pool]) -> list[JobSpec]:
    try:
        handle = path.open(newline="")
    except OSError as err:
        raise ScenarioError(f"workload.trace: cannot read {path}: {err}") from None
    jobs: list[JobSpec] = []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in TRACE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ScenarioError(
                f"workload.trace {path}: missing column(s) {', '.join(missing)}; "
                f"the header must name {', '.join(TRACE_COLUMNS)}"
            )
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            name = row["name"].strip()
            if not name or name in seen:
                raise ScenarioError(f"{where}: name {name!r} is empty or repeated")
            seen.add(name)
            kind = row["kind"].strip()
            if kind not in ("inference", "training"):
                raise ScenarioError(f"{where}: kind must be inference or training, got {kind!r}")
            try:
                submitted = parse_instant(row["submitted"].strip())
                duration = parse_duration_seconds(_maybe_int(row["duration"]))
                patience_text = (row.get("patience") or "").strip()
                patience = (
                    parse_duration_seconds(_maybe_int(patience_text)) if patience_text else None
                )
            except ValueError as err:
                raise ScenarioError(f"{where}: {err}") from None
            pool = row["pool"].strip() or None
            resource = row["resource"].strip() or None
            if pool is None and resource is None:
                raise ScenarioError(f"{where}: give a pool, a resource, or both")
            submit = int((submitted - scenario.start_at).total_seconds())
            if not 0 <= submit < scenario.horizon_seconds:
                continue  # outside the simulated window
            jobs.append(
                JobSpec(
                    name=name,
                    stream="trace",
                    kind=kind,
                    pool=pool,
                    resource=_resource_for(pool, resource, pools, where),
                    devices_per_pod=_trace_int(row, "devices_per_pod", where, 1),
                    gang_size=_trace_int(row, "gang_size", where, 1),
                    duration_seconds=max(1, duration),
                    priority=_trace_int(row, "priority", where, None),
                    submit_seconds=submit,
                    patience_seconds=patience,
                )
            )
    return jobs


def _maybe_int(text: str) -> str | int:
    stripped = text.strip()
    return int(stripped) if stripped.isdigit() else stripped


def build_jobs(scenario: Scenario, pools: dict[str, Pool], base_dir: Path) -> list[JobSpec]:
    """Every job of the run, in submission order (ties: trace first, then process order)."""
    streams: list[list[JobSpec]] = []
    if scenario.workload.trace is not None:
        streams.append(read_trace(base_dir / scenario.workload.trace, scenario, pools))
    for process in scenario.workload.arrivals:
        streams.append(arrivals(process, scenario, pools))
    tagged = [
        (job.submit_seconds, order, index, job)
        for order, stream in enumerate(streams)
        for index, job in enumerate(stream)
    ]
    tagged.sort(key=lambda item: item[:3])
    return [job for *_, job in tagged]
