"""The operator's side of measured power: what to ask Prometheus, and what the answer does.

The turn (which owns the state) works out the jobs, one per pool whose nodes sit in a Measured
budget; a worker sends the queries and hands the answers back as data; the next turn applies
them. Every failure lands on the safe side: a pool whose query failed, a node that is stale or
reports fewer devices than it has, all count at nameplate (`ClusterState.set_readings`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from wattsched.metrics import Metrics
from wattsched.power.watts import devices_in
from wattsched.scheduling.state import ClusterState
from wattsched.telemetry.prometheus import PrometheusClient, TelemetryError
from wattsched.telemetry.readings import (
    NodeReading,
    PoolTelemetry,
    fresh_observed_it_watts,
    parse_answer,
    pool_query,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TelemetryAnswer:
    at_seconds: float
    readings: dict[str, dict[str, NodeReading]] = field(default_factory=dict)  # pool -> node
    errors: dict[str, str] = field(default_factory=dict)  # pool -> what failed


def telemetry_jobs(state: ClusterState, step_seconds: int) -> tuple[PoolTelemetry, ...]:
    """One query per pool with a power metric whose nodes are in a Measured budget, with the
    strictest window and percentile of those budgets (the longest window, the highest p)."""
    measured = {name: b for name, b in state.budgets.items() if b.measured}
    if not measured:
        return ()
    strictest: dict[str, tuple[int, int]] = {}
    for node in state.nodes:
        pool = state.node_pool(node)
        if pool is None or pool.telemetry_query is None:
            continue
        for name in state.node_budgets(node):
            budget = measured.get(name)
            if budget is not None:
                window, percentile = strictest.get(pool.name, (0, 0))
                strictest[pool.name] = (
                    max(window, budget.window_seconds),
                    max(percentile, budget.percentile),
                )
    jobs = []
    for name in sorted(strictest):
        pool = state.pools[name]
        assert pool.telemetry_query is not None
        window, percentile = strictest[name]
        jobs.append(
            PoolTelemetry(
                name,
                pool.telemetry_query,
                pool.telemetry_node_label,
                window,
                percentile,
                step_seconds,
            )
        )
    return tuple(jobs)


async def ask(
    client: PrometheusClient, jobs: tuple[PoolTelemetry, ...], metrics: Metrics
) -> TelemetryAnswer:
    """Send each pool's query (in turn: a handful of pools, one request each)."""
    answer = TelemetryAnswer(time.time())
    for job in jobs:
        started = time.perf_counter()
        try:
            body = await client.query(pool_query(job), at_seconds=answer.at_seconds)
            answer.readings[job.pool] = parse_answer(job, body)
        except (TelemetryError, ValueError, KeyError, IndexError) as err:
            answer.errors[job.pool] = str(err)
            metrics.telemetry_errors.labels(pool=job.pool).inc()
            log.warning("telemetry for pool %s failed, its nodes count at nameplate: %s",
                        job.pool, err)  # fmt: skip
        finally:
            metrics.telemetry_query_duration.labels(pool=job.pool).observe(
                time.perf_counter() - started
            )
    return answer


def apply_answer(state: ClusterState, answer: TelemetryAnswer | None, now_seconds: float) -> None:
    """Fresh readings into the state; every other node of a Measured budget counts at
    nameplate. `answer` None: no telemetry at all (no URL, or nothing answered yet)."""
    measured = [b for b in state.budgets.values() if b.measured]
    if not measured:
        state.set_readings({})
        return
    readings: dict[str, NodeReading] = {}
    if answer is not None:
        for per_pool in answer.readings.values():
            readings.update(per_pool)
    names = {b.name for b in measured}
    stale_after = {b.name: b.stale_after_seconds for b in measured}
    expected: dict[str, tuple[int, int]] = {}
    strictest: dict[str, int] = {}
    for node_name, node in state.nodes.items():
        mine = [b for b in state.node_budgets(node_name) if b in names]
        pool = state.node_pool(node_name)
        if not mine or pool is None:
            continue
        expected[node_name] = (
            devices_in(node.allocatable, pool.resource_names),
            pool.profile.node_base_watts,
        )
        strictest[node_name] = min(stale_after[b] for b in mine)
    fresh: dict[str, int] = {}
    for node_name, limit in strictest.items():
        one, _ = fresh_observed_it_watts(
            readings, {node_name: expected[node_name]}, now_seconds, limit
        )
        fresh.update(one)
    state.set_readings(fresh)
