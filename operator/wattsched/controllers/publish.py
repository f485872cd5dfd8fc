"""Step 6 of a turn: the status of every pool and budget, and the metrics, from the ledger.

Debounced by the turn, and patched only where the desired status differs from what the API last
showed (or what we last asked for), so a quiet cluster costs no writes. A patch that fails is
forgotten and asked again at the next publication.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from wattsched.cluster.cache import ClusterCache
from wattsched.cluster.status import budget_status, differs, pool_status
from wattsched.domain import PodKey
from wattsched.kube.writer import KubeWriter
from wattsched.metrics import Metrics
from wattsched.scheduling.state import ClusterState

Job = Callable[[], Awaitable[None]]


class StatusPublisher:
    def __init__(
        self,
        cache: ClusterCache,
        metrics: Metrics,
        writer: KubeWriter,
        patches: asyncio.Queue[Job],
        reported: dict[PodKey, str],
    ) -> None:
        self._cache = cache
        self._metrics = metrics
        self._writer = writer
        self._patches = patches
        self._reported = reported  # the turn's: reports of pods no longer waiting go here
        self._written: dict[str, dict[str, Any]] = {}  # "plural/name" -> status last patched

    def publish(self, state: ClusterState, now: datetime, shed_notes: dict[str, str]) -> None:
        """Status of every pool and budget from the ledger; patched only where it changed."""
        cache, metrics = self._cache, self._metrics
        metrics.pending_pods.set(state.pending_count() + len(cache.invalid_pods()))
        for name in sorted(state.budgets):
            source = cache.budgets.get(name)
            if source is None:
                continue
            figures = state.budget_status(name)
            metrics.budget_limit_watts.labels(budget=name).set(figures.limit_watts)
            metrics.budget_allocatable_watts.labels(budget=name).set(figures.allocatable_watts)
            metrics.budget_committed_watts.labels(budget=name).set(figures.committed_watts)
            metrics.budget_headroom_watts.labels(budget=name).set(figures.headroom_watts)
            if figures.estimated_watts is not None:
                metrics.budget_estimated_watts.labels(budget=name).set(figures.estimated_watts)
                metrics.budget_measured_watts.labels(budget=name).set(figures.measured_watts or 0)
                metrics.budget_stale_nodes.labels(budget=name).set(len(figures.stale_nodes))
            desired = budget_status(source, figures, now, shed_notes.get(name))
            self._patch_if_changed("powerbudgets", name, desired, source.status)
        conflicts = state.pool_conflicts()
        for name in sorted(state.pools):
            pool_source = cache.pools.get(name)
            if pool_source is None:
                continue
            usage = state.pool_status(name)
            metrics.pool_devices.labels(pool=name, state="allocated").set(usage.allocated_devices)
            metrics.pool_devices.labels(pool=name, state="free").set(
                usage.devices - usage.allocated_devices
            )
            metrics.pool_committed_watts.labels(pool=name).set(usage.committed_watts)
            mine = {node: pools for node, pools in conflicts.items() if name in pools}
            desired = pool_status(pool_source, usage, mine, now)
            self._patch_if_changed("acceleratorpools", name, desired, pool_source.status)
        # Forget reports of pods that are no longer waiting.
        invalid = cache.invalid_pods()
        reported = self._reported
        for key in [k for k in reported if not state.is_pending(k) and k not in invalid]:
            del reported[key]

    def _patch_if_changed(
        self, plural: str, name: str, desired: dict[str, Any], observed: Any
    ) -> None:
        slot = f"{plural}/{name}"
        if not differs(desired, observed) or self._written.get(slot) == desired:
            return
        self._written[slot] = desired
        writer, written = self._writer, self._written

        async def patch() -> None:
            if not await writer.custom_status(plural, name, desired):
                written.pop(slot, None)  # try again next time

        self._patches.put_nowait(patch)
