"""Terse constructors for the snapshot model, shared by tests, the simulator and the benchmarks.

They fill in the defaults a real cluster would carry (cpu, memory, pod slots) so that a test
states only what it is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from wattsched.domain import Budget, LabelSelector, Node, Pod, Pool, PowerProfile, Taint

GPU = "nvidia.com/gpu"
GIB = 1024**3


def selector(**labels: str) -> LabelSelector:
    """matchLabels from keyword arguments; `_` in a name stands for `/` and `__` for `.`."""
    return LabelSelector(
        MappingProxyType({k.replace("__", ".").replace("_", "/"): v for k, v in labels.items()})
    )


def labels_selector(labels: Mapping[str, str]) -> LabelSelector:
    return LabelSelector(MappingProxyType(dict(labels)))


def gpu_node(
    name: str,
    labels: Mapping[str, str] | None = None,
    gpus: int = 8,
    resource: str = GPU,
    cpu_millis: int = 128_000,
    memory_bytes: int = 1024 * GIB,
    pods: int = 110,
    taints: tuple[Taint, ...] = (),
    unschedulable: bool = False,
    ready: bool = True,
) -> Node:
    allocatable = {"cpu": cpu_millis, "memory": memory_bytes, "pods": pods}
    if gpus:
        allocatable[resource] = gpus
    return Node(
        name,
        MappingProxyType(dict(labels or {})),
        MappingProxyType(allocatable),
        taints,
        unschedulable,
        ready,
    )


def gpu_pool(
    name: str,
    labels: Mapping[str, str],
    device_watts: int = 700,
    idle_device_watts: int = 90,
    node_base_watts: int = 3000,
    created_order: int = 0,
    resource: str = GPU,
) -> Pool:
    return Pool(
        name,
        labels_selector(labels),
        (resource,),
        PowerProfile(device_watts, idle_device_watts, node_base_watts),
        created_order,
        vendor="nvidia",
        telemetry_query="DCGM_FI_DEV_POWER_USAGE",  # as translation defaults an nvidia pool
    )


def budget(
    name: str,
    labels: Mapping[str, str],
    limit_watts: int,
    reserve_percent: int = 0,
    pue_milli: int = 1000,
    enforcement: str = "Admit",
) -> Budget:
    return Budget(
        name, labels_selector(labels), limit_watts, reserve_percent, pue_milli, enforcement
    )


def gpu_pod(
    name: str,
    gpus: int = 1,
    priority: int = 0,
    created_order: int = 0,
    namespace: str = "default",
    cpu_millis: int = 1000,
    memory_bytes: int = GIB,
    resource: str = GPU,
    gang: str | None = None,
    gang_size: int = 1,
    node_name: str | None = None,
    managed: bool = True,
    **extra: object,
) -> Pod:
    requests = {"cpu": cpu_millis, "memory": memory_bytes}
    if gpus:
        requests[resource] = gpus
    return Pod(
        namespace,
        name,
        uid=f"uid-{namespace}-{name}",
        priority=priority,
        created_order=created_order,
        requests=MappingProxyType(requests),
        gang=gang,
        gang_size=gang_size,
        node_name=node_name,
        managed=managed,
        **extra,  # type: ignore[arg-type]
    )
