"""The scheduling loop's workers: each a small loop over one queue, none touching the state.

They talk to the API server and Prometheus and hand what they hear back as data (`Outcomes`),
which the next turn applies: so the state has one owner and nothing needs a lock. Every worker
drops its job when this replica no longer leads, and none lets one failure stop it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from wattsched.cluster.cache import ClusterCache
from wattsched.controllers.outcomes import BindJob, Outcomes
from wattsched.controllers.telemetry import ask
from wattsched.domain import PodKey
from wattsched.kube.lease import LeaderElector
from wattsched.kube.writer import BIND_TIMEOUT_SECONDS, KubeWriter, ObjectRef
from wattsched.metrics import Metrics
from wattsched.telemetry.prometheus import PrometheusClient
from wattsched.telemetry.readings import PoolTelemetry

log = logging.getLogger("wattsched.controllers.loop")

Job = Callable[[], Awaitable[None]]


async def bind(
    binds: asyncio.Queue[BindJob],
    writer: KubeWriter,
    elector: LeaderElector,
    metrics: Metrics,
    outcomes: Outcomes,
) -> None:
    # A bind must land while we surely lead. We count ourselves leader until renew_deadline
    # after a renewal; a standby takes over no earlier than the lease duration after it:
    # a bind that starts in time and gives up within the gap can never race a new leader.
    timeout = min(BIND_TIMEOUT_SECONDS, elector.lease_duration_seconds / 3)
    while True:
        job = await binds.get()
        if not elector.is_leading():
            continue
        started = time.perf_counter()
        outcome, detail = await writer.bind(job.key, job.uid, job.node, timeout)
        metrics.binding_duration.observe(time.perf_counter() - started)
        outcomes.binds.append((job.key, outcome, detail))
        outcomes.arrived.set()


async def pod_reports(
    keys: asyncio.Queue[PodKey],
    reports: dict[PodKey, tuple[str, str]],
    reported: dict[PodKey, str],
    cache: ClusterCache,
    writer: KubeWriter,
    elector: LeaderElector,
) -> None:
    """PodScheduled=False and a FailedScheduling Event, the latest message of each pod only."""
    while True:
        key = await keys.get()
        reason, message = reports.pop(key, ("", ""))
        pod = cache.pods.get(key)
        if not message or pod is None or pod.pod.node_name or not elector.is_leading():
            continue
        try:
            if await writer.pod_condition(key, "PodScheduled", "False", reason, message):
                await writer.event(
                    ObjectRef("Pod", key[1], key[0], pod.pod.uid),
                    "Warning", "FailedScheduling", message,
                )  # fmt: skip
            else:
                reported.pop(key, None)  # say it again next cycle
        except Exception:
            log.exception("reporting pod %s/%s failed", *key)


async def jobs(queue: asyncio.Queue[Job], elector: LeaderElector) -> None:
    """Status patches, Events, evictions: each job says what to write."""
    while True:
        job = await queue.get()
        if not elector.is_leading():
            continue
        try:
            await job()
        except Exception:  # a report must never stop the loop
            log.exception("a status or event write failed")


async def telemetry(
    queue: asyncio.Queue[tuple[PoolTelemetry, ...]],
    client: PrometheusClient,
    elector: LeaderElector,
    metrics: Metrics,
    outcomes: Outcomes,
) -> None:
    """Ask Prometheus for each job's pools; the answer is data for the next turn."""
    try:
        while True:
            pools = await queue.get()
            if not elector.is_leading():
                continue
            outcomes.telemetry = await ask(client, pools, metrics)
            outcomes.arrived.set()
    finally:
        await client.close()
