"""Create (and delete) the Node objects of a site's accelerator fleet, at a chosen scale.

The fleet file format is documented in ``examples/ulsan/fleet/site.yaml``. Nodes are fake:
labelled ``wattsched.io/fake-node: "true"``, with capacity, allocatable and a Ready condition
in their status, for the fake kubelet (``e2e.providers.kubelet``) to animate.

    python -m e2e.fleet apply examples/ulsan/fleet/site.yaml --scale 0.05 --kubeconfig K
    python -m e2e.fleet delete examples/ulsan/fleet/site.yaml --kubeconfig K

From Python: ``apply_fleet(kubeconfig_or_api_client, site_path, scale)`` and, for tests that
need nodes of their own, ``make_node(...)`` with ``create_nodes(...)``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from e2e.providers.rest import JSON, KubeError, KubeREST

FAKE_NODE_LABEL = "wattsched.io/fake-node"
SITE_LABEL = "wattsched.io/site"
HALL_LABEL = "wattsched.io/hall"
PHASE_LABEL = "wattsched.io/phase"
POOL_LABEL = "wattsched.io/pool"
RACK_LABEL = "wattsched.io/rack"
HOSTNAME_LABEL = "kubernetes.io/hostname"
MAX_PODS = 110
CREATE_THREADS = 16


class FleetError(ValueError):
    """The fleet file is malformed; the message names the pool and the field."""


def _say(message: str) -> None:
    print(f"[wattsched fleet] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PoolNodes:
    """One pool's nodes in the fleet file."""

    name: str
    hall: str
    phase: str
    nodes: int
    resource_name: str
    devices_per_node: int
    nodes_per_rack: int
    cpu: str
    memory: str
    ephemeral_storage: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def count_at(self, scale: float) -> int:
        return max(1, round(self.nodes * scale))


@dataclass(frozen=True)
class Fleet:
    site: str
    pools: tuple[PoolNodes, ...]


def load_fleet(path: Path | str) -> Fleet:
    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict) or "site" not in raw or not raw.get("pools"):
        raise FleetError(f"{path}: expected a mapping with `site` and a non-empty `pools` list")
    pools = []
    for index, entry in enumerate(raw["pools"]):
        where = f"{path}: pools[{index}] ({entry.get('name', '?')})"
        try:
            pool = PoolNodes(
                name=str(entry["name"]),
                hall=str(entry["hall"]),
                phase=str(entry["phase"]),
                nodes=int(entry["nodes"]),
                resource_name=str(entry["resourceName"]),
                devices_per_node=int(entry["devicesPerNode"]),
                nodes_per_rack=int(entry["nodesPerRack"]),
                cpu=str(entry["cpu"]),
                memory=str(entry["memory"]),
                ephemeral_storage=str(entry.get("ephemeralStorage", "1Ti")),
                labels={str(k): str(v) for k, v in (entry.get("labels") or {}).items()},
            )
        except KeyError as missing:
            raise FleetError(f"{where}: missing field {missing}") from None
        except (TypeError, ValueError) as err:
            raise FleetError(f"{where}: {err}") from None
        if pool.nodes < 1 or pool.devices_per_node < 0 or pool.nodes_per_rack < 1:
            raise FleetError(
                f"{where}: nodes and nodesPerRack must be at least 1 and devicesPerNode at "
                f"least 0, got {pool.nodes}, {pool.nodes_per_rack}, {pool.devices_per_node}"
            )
        pools.append(pool)
    return Fleet(site=str(raw["site"]), pools=tuple(pools))


def make_node(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    resources: Mapping[str, str | int] | None = None,
    cpu: str = "64",
    memory: str = "512Gi",
    ephemeral_storage: str = "1Ti",
    pods: int = MAX_PODS,
    ready: bool = True,
    taints: Iterable[Mapping[str, str]] = (),
) -> JSON:
    """A fake Node as a plain dict: status with capacity = allocatable and a Ready condition.

    ``resources`` are the extended resources, e.g. ``{"nvidia.com/gpu": 8}``."""
    capacity = {
        "cpu": cpu,
        "memory": memory,
        "ephemeral-storage": ephemeral_storage,
        "pods": str(pods),
        **{key: str(value) for key, value in (resources or {}).items()},
    }
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    spec: JSON = {}
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {FAKE_NODE_LABEL: "true", HOSTNAME_LABEL: name, **(labels or {})},
        },
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                    "message": "wattsched fake node",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "fake://",
                "kernelVersion": "",
                "osImage": "wattsched fake node",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def fleet_nodes(fleet: Fleet, scale: float) -> list[JSON]:
    """Every node of the fleet at ``scale``, racks numbered per hall in file order."""
    if scale <= 0:
        raise FleetError(f"scale must be above 0, got {scale}")
    racks_used: dict[str, int] = {}
    nodes = []
    for pool in fleet.pools:
        count = pool.count_at(scale)
        first_rack = racks_used.get(pool.hall, 0) + 1
        for index in range(count):
            rack = first_rack + index // pool.nodes_per_rack
            name = f"{pool.name}-{index + 1:04d}"
            labels = {
                SITE_LABEL: fleet.site,
                HALL_LABEL: pool.hall,
                PHASE_LABEL: pool.phase,
                POOL_LABEL: pool.name,
                RACK_LABEL: f"{pool.hall}-r{rack:03d}",
                **pool.labels,
            }
            nodes.append(
                make_node(
                    name,
                    labels=labels,
                    resources={pool.resource_name: pool.devices_per_node},
                    cpu=pool.cpu,
                    memory=pool.memory,
                    ephemeral_storage=pool.ephemeral_storage,
                )
            )
        racks_used[pool.hall] = first_rack - 1 + math.ceil(count / pool.nodes_per_rack)
    return nodes


def _put_node(rest: KubeREST, node: JSON) -> None:
    """Create the node, or bring an existing one's labels and status to ``node``'s."""
    name = node["metadata"]["name"]
    try:
        created = rest.post("/api/v1/nodes", node)
    except KubeError as err:
        if err.status != 409:
            raise
        rest.patch(f"/api/v1/nodes/{name}", {"metadata": {"labels": node["metadata"]["labels"]}})
        created = {}
    # Node creation keeps the status it is given (a kubelet registers that way), but be sure:
    # the status is what makes the node useful.
    stored = created.get("status", {})
    if stored.get("allocatable") != node["status"]["allocatable"] or not stored.get("conditions"):
        rest.patch(f"/api/v1/nodes/{name}/status", {"status": node["status"]})


def create_nodes(source: Any, nodes: list[JSON], *, threads: int = CREATE_THREADS) -> list[str]:
    """Create (or update) nodes concurrently; returns their names, in order."""
    rest = KubeREST(source, max_connections=threads)
    total = len(nodes)
    done = 0
    lock = threading.Lock()
    started = time.monotonic()
    last_report = started

    def put(node: JSON) -> None:
        nonlocal done, last_report
        _put_node(rest, node)
        with lock:
            done += 1
            now = time.monotonic()
            if now - last_report >= 2.0 and done < total:
                _say(f"{done}/{total} nodes ({now - started:.0f}s)")
                last_report = now

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fleet") as pool:
        list(pool.map(put, nodes))  # re-raises the first failure
    return [node["metadata"]["name"] for node in nodes]


def apply_fleet(source: Any, site_path: Path | str, scale: float = 1.0) -> list[str]:
    """Create the fleet's nodes at ``scale`` (kubeconfig path or ApiClient); returns names."""
    fleet = load_fleet(site_path)
    nodes = fleet_nodes(fleet, scale)
    _say(f"creating {len(nodes)} nodes of site {fleet.site} at scale {scale:g}")
    started = time.monotonic()
    names = create_nodes(source, nodes)
    per_pool = ", ".join(f"{p.name} {p.count_at(scale)}" for p in fleet.pools)
    _say(f"{len(names)} nodes in {time.monotonic() - started:.1f}s ({per_pool})")
    return names


def delete_fleet(source: Any, site_path: Path | str) -> int:
    """Delete every fake node of the fleet's site; returns how many there were."""
    fleet = load_fleet(site_path)
    rest = KubeREST(source)
    selector = f"{SITE_LABEL}={fleet.site},{FAKE_NODE_LABEL}=true"
    nodes, _ = rest.list_all("/api/v1/nodes", labelSelector=selector)
    if nodes:
        rest.request("DELETE", "/api/v1/nodes", query={"labelSelector": selector})
    _say(f"deleted {len(nodes)} nodes of site {fleet.site}")
    return len(nodes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("apply", "delete"))
    parser.add_argument("site", type=Path, help="fleet file, e.g. examples/ulsan/fleet/site.yaml")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full fleet")
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig of the cluster (default: $KUBECONFIG)",
    )
    args = parser.parse_args(argv)
    if not args.kubeconfig:
        parser.error("no --kubeconfig and no KUBECONFIG in the environment")
    try:
        if args.command == "apply":
            apply_fleet(args.kubeconfig, args.site, args.scale)
        else:
            delete_fleet(args.kubeconfig, args.site)
    except (FleetError, KubeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
