"""The scheduling loop's knobs, and what its workers hand back to the next turn as data.

Workers never touch the ClusterState: a bind, an eviction or a telemetry query ends by putting
its outcome here, and the turn, the state's one owner, applies it. So nothing needs a lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from wattsched.controllers.telemetry import TelemetryAnswer
from wattsched.domain import Eviction, Plan, PodKey
from wattsched.kube.writer import BindOutcome, EvictOutcome

log = logging.getLogger("wattsched.controllers.loop")


@dataclass(frozen=True)
class LoopSettings:
    bind_concurrency: int = 32  # pods/binding calls in flight at once
    report_concurrency: int = 8  # status patches, Events
    eviction_concurrency: int = 4
    max_bindings_per_cycle: int = 512  # binds start before a huge queue is fully placed
    status_interval_seconds: float = 2.0  # debounce of pool and budget status patches
    assumed_ttl_seconds: float = 30.0  # like kube-scheduler's: unconfirmed binds are forgotten
    eviction_retry_seconds: float = 5.0  # after a PodDisruptionBudget said 429
    min_cycle_interval_seconds: float = 0.05  # events that arrive together go in one cycle
    # Measured power: how often each pool's one query goes to Prometheus, and the resolution
    # of the window percentile's subquery (about the scrape interval).
    telemetry_interval_seconds: float = 15.0
    telemetry_step_seconds: int = 30


@dataclass(slots=True)
class CycleSummary:
    """What the cycles did lately, logged every few seconds rather than every cycle."""

    cycles: int = 0
    seconds: float = 0.0
    bindings: int = 0
    evictions: int = 0
    pending: int = 0
    since: float = field(default_factory=time.monotonic)

    def add(self, seconds: float, plan: Plan, pending: int) -> None:
        self.cycles += 1
        self.seconds += seconds
        self.bindings += len(plan.bindings)
        self.evictions += len(plan.evictions)
        self.pending = pending
        now = time.monotonic()
        if now - self.since >= 5.0:
            log.info(
                "%d cycles in %.0fs (%.0f ms each): %d bindings, %d evictions; %d pending",
                self.cycles, now - self.since, 1000 * self.seconds / self.cycles,
                self.bindings, self.evictions, self.pending,
            )  # fmt: skip
            self.cycles, self.seconds, self.bindings, self.evictions = 0, 0.0, 0, 0
            self.since = now


@dataclass(frozen=True, slots=True)
class BindJob:
    key: PodKey
    uid: str
    node: str


@dataclass(slots=True)
class Outcomes:
    """What the workers heard back, waiting for the next turn to apply it."""

    binds: list[tuple[PodKey, BindOutcome, str]] = field(default_factory=list)
    evictions: list[tuple[Eviction, EvictOutcome, str]] = field(default_factory=list)
    telemetry: TelemetryAnswer | None = None  # the newest answer, if one came since
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
