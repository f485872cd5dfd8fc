"""A job as one run tracks it: the pods its spec becomes, and where it is in its life.

workload.py makes the trace, a list of immutable `JobSpec`s that every policy's run shares; a
`Job` is one run's mutable record of one spec (queued, running, evicted and requeued with what
is left), so each `Simulation` builds its own from the same trace and no run can disturb another.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from wattsched.domain import Pod, PodKey
from wattsched.sim.site import POOL_LABEL
from wattsched.sim.workload import JobSpec

NAMESPACE = "sim"


@dataclass(slots=True)
class Job:
    spec: JobSpec
    index: int
    keys: tuple[PodKey, ...]
    remaining_seconds: int
    state: str = "future"  # future | queued | running | done | withdrawn
    token: int = 0  # bumped on every transition, so stale events are ignored
    bound: int = 0
    first_start: int | None = None
    started_at: int = 0
    restarts: int = 0
    queued_since: int = 0
    pods: tuple[Pod, ...] = ()

    @classmethod
    def from_spec(cls, index: int, spec: JobSpec) -> Job:
        """One pod, or a gang of `gang_size` pods, pinned to the spec's pool if it names one."""
        if spec.gang_size == 1:
            keys: tuple[PodKey, ...] = ((NAMESPACE, spec.name),)
        else:
            keys = tuple((NAMESPACE, f"{spec.name}-{i}") for i in range(spec.gang_size))
        selector = MappingProxyType({POOL_LABEL: spec.pool} if spec.pool else {})
        requests = MappingProxyType({spec.resource: spec.devices_per_pod})
        gang = f"{NAMESPACE}/{spec.name}" if spec.gang_size > 1 else None
        pods = tuple(
            Pod(
                namespace,
                name,
                uid=f"uid-{name}",
                priority=spec.priority,
                created_order=index,
                requests=requests,
                node_selector=selector,
                gang=gang,
                gang_size=spec.gang_size,
            )
            for namespace, name in keys
        )
        return cls(spec, index, keys, spec.duration_seconds, pods=pods)
