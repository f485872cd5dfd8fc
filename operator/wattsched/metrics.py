"""Prometheus metrics (one prefix, base units, low-cardinality labels) and the health endpoints.

One registry per process; `Metrics` owns it so tests can make their own. The HTTP server runs
on the operator's event loop: /metrics, /healthz (the process and its event loop are alive),
/readyz (the cache holds the initial LISTs of all four kinds).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from wattsched import __version__

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created: noise
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.budget_limit_watts = Gauge(
            "wattsched_budget_limit_watts", "The limit of a PowerBudget in force now.",
            ["budget"], registry=r,
        )  # fmt: skip
        self.budget_allocatable_watts = Gauge(
            "wattsched_budget_allocatable_watts", "A PowerBudget's limit less its reserve.",
            ["budget"], registry=r,
        )  # fmt: skip
        self.budget_committed_watts = Gauge(
            "wattsched_budget_committed_watts",
            "Facility watts the ledger commits in a PowerBudget.", ["budget"], registry=r,
        )  # fmt: skip
        self.budget_headroom_watts = Gauge(
            "wattsched_budget_headroom_watts",
            "Allocatable minus committed watts; negative when over.", ["budget"], registry=r,
        )  # fmt: skip
        self.budget_measured_watts = Gauge(
            "wattsched_budget_measured_watts",
            "Measured facility watts of a Measured PowerBudget's nodes with fresh readings.",
            ["budget"], registry=r,
        )  # fmt: skip
        self.budget_estimated_watts = Gauge(
            "wattsched_budget_estimated_watts",
            "Facility watts a Measured PowerBudget's admission counts (DESIGN.md §2b).",
            ["budget"], registry=r,
        )  # fmt: skip
        self.budget_stale_nodes = Gauge(
            "wattsched_budget_stale_nodes",
            "Nodes of a Measured PowerBudget counted at nameplate for want of a fresh reading.",
            ["budget"], registry=r,
        )  # fmt: skip
        self.telemetry_query_duration = Histogram(
            "wattsched_telemetry_query_duration_seconds",
            "Time one pool's Prometheus query takes.", ["pool"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.telemetry_errors = Counter(
            "wattsched_telemetry_errors", "Prometheus queries that failed, by pool.", ["pool"],
            registry=r,
        )  # fmt: skip
        self.pool_devices = Gauge(
            "wattsched_pool_devices", "Devices of an AcceleratorPool, allocated or free.",
            ["pool", "state"], registry=r,
        )  # fmt: skip
        self.pool_committed_watts = Gauge(
            "wattsched_pool_committed_watts", "IT watts an AcceleratorPool's nodes commit.",
            ["pool"], registry=r,
        )  # fmt: skip
        self.pending_pods = Gauge(
            "wattsched_pending_pods", "wattsched pods waiting for a node.", registry=r
        )
        self.scheduling_attempts = Counter(
            "wattsched_scheduling_attempts", "Scheduling attempts by result.", ["result"],
            registry=r,
        )  # fmt: skip
        self.cycle_duration = Histogram(
            "wattsched_scheduling_cycle_duration_seconds", "Time one scheduling cycle takes.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.binding_duration = Histogram(
            "wattsched_binding_duration_seconds", "Time one pods/binding call takes.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.evictions = Counter(
            "wattsched_evictions", "Evictions asked for, by budget (or none) and reason.",
            ["budget", "reason"], registry=r,
        )  # fmt: skip
        self.build_info = Gauge(
            "wattsched_build_info", "Always 1; the version is in the label.", ["version"],
            registry=r,
        )  # fmt: skip
        self.leader = Gauge(
            "wattsched_leader", "1 while this replica holds the lease and schedules.", registry=r
        )
        self.build_info.labels(version=__version__).set(1)
        for result in ("scheduled", "unschedulable", "error"):
            self.scheduling_attempts.labels(result=result)

    def forget_budget(self, name: str) -> None:
        for gauge in (
            self.budget_limit_watts,
            self.budget_allocatable_watts,
            self.budget_committed_watts,
            self.budget_headroom_watts,
            self.budget_measured_watts,
            self.budget_estimated_watts,
            self.budget_stale_nodes,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(name)

    def forget_pool(self, name: str) -> None:
        for state in ("allocated", "free"):
            with contextlib.suppress(KeyError):
                self.pool_devices.remove(name, state)
        with contextlib.suppress(KeyError):
            self.pool_committed_watts.remove(name)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def serve(metrics: Metrics, host: str, port: int, ready: Callable[[], bool]) -> web.AppRunner:
    """Start the HTTP server; the caller awaits `runner.cleanup()` at shutdown."""

    async def get_metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="waiting for the initial lists\n")

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
