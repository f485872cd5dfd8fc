"""The harness the operator's integration tests share, and the test of the command's contract.

- `OperatorProcess`: `python -m wattsched run` as a real subprocess (so SIGKILL is real), with its
  metrics endpoint on a free 127.0.0.1 port: the one wrapper of e2e/operator_process.py with
  the tests' defaults.
- `TestSite`: nodes, pools, budgets and PriorityClasses of one test module, under names and
  labels of its own, so modules sharing the session's API server never see each other's nodes.
- `recompute`: the ledger summed from the Kubernetes objects alone (DESIGN.md §2), independent
  of the engine, to check the status the operator writes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import e2e.operator_process
from e2e.fleet import make_node
from e2e.providers.rest import KubeError, KubeREST

JSON = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
GROUP_PATH = "/apis/wattsched.io/v1alpha1"
RUN_LABEL = "test.wattsched.io/run"
POOL_LABEL = "test.wattsched.io/pool"
ZONE_LABEL = "test.wattsched.io/zone"
CONTRACT_FLAGS = (
    "--kubeconfig",
    "--scheduler-name",
    "--metrics-port",
    "--bind-address",
    "--lease-name",
    "--lease-namespace",
    "--lease-duration-seconds",
    "--identity",
    "--log-format",
    "--log-level",
    "--status-interval-seconds",
    "--allow-unguarded-nodes",
    "--prometheus-url",
    "--telemetry-interval-seconds",
)


def test_run_command_offers_every_flag_the_helm_chart_uses() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wattsched", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    missing = [flag for flag in CONTRACT_FLAGS if flag not in proc.stdout]
    assert not missing, f"`wattsched run --help` lacks {missing}:\n{proc.stdout}"


def install_crds(control_plane: Any) -> None:
    """Apply the committed CRDs (server-side, so a Helm-installed copy is simply taken over).

    WATTSCHED_TEST_CRDS names another folder, to try CRD changes before they are committed."""
    folder = Path(os.environ.get("WATTSCHED_TEST_CRDS") or REPO / "crds")
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(folder))
    for name in ("acceleratorpools", "powerbudgets"):
        control_plane.kubectl(
            "wait", "--for=condition=Established", f"crd/{name}.wattsched.io", "--timeout=30s"
        )


# -- waiting --------------------------------------------------------------------------------------


def wait_until(
    check: Callable[[], Any], timeout_seconds: float, what: str, interval_seconds: float = 0.5
) -> Any:
    """Poll until `check()` is truthy; fail naming `what` (and the last value) otherwise."""
    deadline = time.monotonic() + timeout_seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_seconds)
    raise AssertionError(f"timed out after {timeout_seconds:.0f}s waiting for {what}: {last!r}")


# -- the operator as a process --------------------------------------------------------------------


class OperatorProcess(e2e.operator_process.OperatorProcess):
    """The one wrapper (e2e/operator_process.py) with the integration tests' defaults: a log
    per identity in ``workdir``, JSON logs, a 3 s Lease and 0.5 s status writes, so a test waits
    seconds, not the chart's 15, for a failover."""

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        *,
        scheduler_name: str,
        lease_namespace: str,
        lease_name: str = "wattsched-leader",
        lease_duration_seconds: float = 3.0,
        identity: str | None = None,
        status_interval_seconds: float = 0.5,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            kubeconfig,
            workdir / f"operator-{identity or 'default'}.log",
            lease_namespace=lease_namespace,
            scheduler_name=scheduler_name,
            lease_name=lease_name,
            lease_duration_seconds=lease_duration_seconds,
            identity=identity,
            status_interval_seconds=status_interval_seconds,
            log_format="json",
            extra_args=extra_args,
        )
        self.workdir = workdir


# -- the site of one test module ------------------------------------------------------------------


@dataclass(frozen=True)
class PoolShape:
    short: str  # h200, b200, rngd, atom, trn2
    vendor: str
    model: str
    resource: str
    devices_per_node: int
    device_watts: int
    idle_device_watts: int
    node_base_watts: int
    hall: str


ULSAN_SHAPES = (
    PoolShape("h200", "nvidia", "H200-SXM", "nvidia.com/gpu", 8, 700, 90, 4500, "a"),
    PoolShape("b200", "nvidia", "B200", "nvidia.com/gpu", 8, 1000, 140, 4800, "a"),
    PoolShape("rngd", "furiosa", "RNGD", "furiosa.ai/rngd", 8, 180, 35, 1500, "b"),
    PoolShape("atom", "rebellions", "ATOM", "rebellions.ai/ATOM", 8, 150, 30, 1500, "b"),
    PoolShape("trn2", "aws", "Trainium2", "aws.amazon.com/neuron", 16, 500, 80, 3500, "b"),
)


@dataclass
class TestSite:
    """Objects of one test module; every name and label value carries the run id."""

    __test__ = False  # not a test class, whatever its name

    rest: KubeREST
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    node_names: list[str] = field(default_factory=list)
    pool_names: list[str] = field(default_factory=list)
    budget_names: list[str] = field(default_factory=list)
    priority_classes: list[str] = field(default_factory=list)

    @property
    def scheduler_name(self) -> str:
        return f"wattsched-{self.run_id}"

    def name(self, short: str) -> str:
        return f"t{self.run_id}-{short}"

    def add_nodes(
        self, shape: PoolShape, count: int, *, zone: str = "main", racks_of: int = 4
    ) -> list[str]:
        nodes = []
        first = sum(1 for n in self.node_names if f"-{shape.short}-" in n)
        for index in range(first, first + count):
            name = self.name(f"{shape.short}-{zone}-{index:04d}")
            nodes.append(
                make_node(
                    name,
                    labels={
                        RUN_LABEL: self.run_id,
                        POOL_LABEL: self.name(shape.short),
                        ZONE_LABEL: zone,
                        "wattsched.io/hall": self.name(shape.hall),
                        "wattsched.io/rack": self.name(f"{shape.hall}-r{index // racks_of:03d}"),
                    },
                    resources={shape.resource: shape.devices_per_node},
                )
            )
        _parallel(lambda node: self.rest.post("/api/v1/nodes", node), nodes)
        self.node_names += [node["metadata"]["name"] for node in nodes]
        return [node["metadata"]["name"] for node in nodes]

    def add_pool(self, shape: PoolShape) -> str:
        name = self.name(shape.short)
        self.rest.post(
            f"{GROUP_PATH}/acceleratorpools",
            {
                "apiVersion": "wattsched.io/v1alpha1",
                "kind": "AcceleratorPool",
                "metadata": {"name": name},
                "spec": {
                    "nodeSelector": {"matchLabels": {POOL_LABEL: name}},
                    "accelerator": {
                        "vendor": shape.vendor,
                        "model": shape.model,
                        "resourceNames": [shape.resource],
                    },
                    "power": {
                        "deviceWatts": shape.device_watts,
                        "idleDeviceWatts": shape.idle_device_watts,
                        "nodeBaseWatts": shape.node_base_watts,
                    },
                },
            },
        )
        self.pool_names.append(name)
        return name

    def add_budget(
        self,
        short: str,
        match_labels: Mapping[str, str],
        limit: str,
        *,
        reserve_percent: int = 0,
        enforcement: str = "Admit",
        schedule: list[JSON] | None = None,
    ) -> str:
        name = self.name(short)
        spec: JSON = {
            "nodeSelector": {"matchLabels": {RUN_LABEL: self.run_id, **match_labels}},
            "limit": limit,
            "reservePercent": reserve_percent,
            "enforcement": enforcement,
        }
        if schedule:
            spec["schedule"] = schedule
        self.rest.post(
            f"{GROUP_PATH}/powerbudgets",
            {
                "apiVersion": "wattsched.io/v1alpha1",
                "kind": "PowerBudget",
                "metadata": {"name": name},
                "spec": spec,
            },
        )
        self.budget_names.append(name)
        return name

    def add_priority_class(self, short: str, value: int) -> str:
        name = self.name(short)
        self.rest.post(
            "/apis/scheduling.k8s.io/v1/priorityclasses",
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
            },
        )
        self.priority_classes.append(name)
        return name

    def pod(
        self,
        name: str,
        namespace: str,
        resource: str,
        count: int,
        *,
        priority_class: str | None = None,
        zone: str | None = "main",
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> JSON:
        spec: JSON = {
            "schedulerName": self.scheduler_name,
            "containers": [
                {
                    "name": "main",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {
                        "requests": {resource: str(count), "cpu": "100m"},
                        "limits": {resource: str(count)},
                    },
                }
            ],
            "terminationGracePeriodSeconds": 0,
        }
        if priority_class:
            spec["priorityClassName"] = priority_class
        if zone:
            spec["nodeSelector"] = {RUN_LABEL: self.run_id, ZONE_LABEL: zone}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(labels or {}),
                "annotations": dict(annotations or {}),
            },
            "spec": spec,
        }

    def delete(self) -> None:
        def gone(path: str) -> None:
            try:
                self.rest.delete(path)
            except KubeError as err:
                if err.status != 404:
                    raise

        paths = [f"{GROUP_PATH}/powerbudgets/{n}" for n in self.budget_names]
        paths += [f"{GROUP_PATH}/acceleratorpools/{n}" for n in self.pool_names]
        paths += [f"/apis/scheduling.k8s.io/v1/priorityclasses/{n}" for n in self.priority_classes]
        paths += [f"/api/v1/nodes/{n}" for n in self.node_names]
        _parallel(gone, paths)


def _parallel(work: Callable[[Any], Any], items: Iterable[Any], threads: int = 16) -> None:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, items))


def create_pods(rest: KubeREST, pods: list[JSON], threads: int = 16) -> None:
    def post(pod: JSON) -> None:
        rest.post(f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods", pod)

    _parallel(post, pods, threads)


def delete_pods(rest: KubeREST, namespace: str, names: Iterable[str]) -> None:
    def delete(name: str) -> None:
        try:
            rest.delete(f"/api/v1/namespaces/{namespace}/pods/{name}", gracePeriodSeconds=0)
        except KubeError as err:
            if err.status != 404:
                raise

    _parallel(delete, list(names))


def list_pods(rest: KubeREST, namespace: str) -> list[JSON]:
    return rest.list_all(f"/api/v1/namespaces/{namespace}/pods")[0]


def pending_reason(pod: JSON) -> str | None:
    for condition in pod.get("status", {}).get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or "") or None
    return None


def unsettled(pods: list[JSON]) -> list[str]:
    """Pods neither bound nor pending with a reason."""
    return [
        p["metadata"]["name"]
        for p in pods
        if not p["spec"].get("nodeName") and pending_reason(p) is None
    ]


# -- an independent ledger ------------------------------------------------------------------------


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics, written afresh for the test."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or ():
        key, op, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _count(value: Any) -> int:
    return int(str(value))


@dataclass
class Ledger:
    pool: dict[str, JSON] = field(default_factory=dict)  # per pool: nodes, devices, allocated, W
    budget: dict[str, JSON] = field(default_factory=dict)  # per budget: nodes, pods, committed
    node_usage: dict[str, dict[str, int]] = field(default_factory=dict)
    node_allocatable: dict[str, dict[str, int]] = field(default_factory=dict)


def recompute(rest: KubeREST) -> Ledger:
    """DESIGN.md §2 from the objects the API shows: nodes, pools, budgets and bound live pods."""
    nodes = rest.list_all("/api/v1/nodes")[0]
    pools = rest.list_all(f"{GROUP_PATH}/acceleratorpools")[0]
    budgets = rest.list_all(f"{GROUP_PATH}/powerbudgets")[0]
    pods = rest.list_all("/api/v1/pods")[0]
    ledger = Ledger()
    pod_count: dict[str, int] = {}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if not node or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        usage = ledger.node_usage.setdefault(node, {})
        pod_count[node] = pod_count.get(node, 0) + 1
        for container in pod["spec"]["containers"]:
            for resource, value in (container.get("resources", {}).get("requests") or {}).items():
                if resource in ("cpu", "memory"):
                    continue
                usage[resource] = usage.get(resource, 0) + _count(value)
    oldest = sorted(
        pools, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"])
    )
    node_watts: dict[str, int] = {}
    for pool in oldest:
        ledger.pool[pool["metadata"]["name"]] = {
            "nodes": 0,
            "devices": 0,
            "allocated": 0,
            "watts": 0,
        }
    for node in nodes:
        name, labels = node["metadata"]["name"], node["metadata"].get("labels") or {}
        allocatable = node.get("status", {}).get("allocatable") or {}
        ledger.node_allocatable[name] = {
            k: _count(v) for k, v in allocatable.items() if k not in ("cpu", "memory") and
            str(v).isdigit()
        }  # fmt: skip
        pool = next((p for p in oldest if selects(p["spec"]["nodeSelector"], labels)), None)
        if pool is None:
            node_watts[name] = 0
            continue
        power, names = pool["spec"]["power"], pool["spec"]["accelerator"]["resourceNames"]
        devices = sum(_count(allocatable.get(r, 0)) for r in names)
        allocated = sum(ledger.node_usage.get(name, {}).get(r, 0) for r in names)
        watts = (
            power["nodeBaseWatts"]
            + allocated * power["deviceWatts"]
            + (devices - allocated) * power["idleDeviceWatts"]
        )
        node_watts[name] = watts
        entry = ledger.pool[pool["metadata"]["name"]]
        entry["nodes"] += 1
        entry["devices"] += devices
        entry["allocated"] += allocated
        entry["watts"] += watts
    for budget in budgets:
        spec = budget["spec"]
        members = [
            n["metadata"]["name"]
            for n in nodes
            if selects(spec["nodeSelector"], n["metadata"].get("labels") or {})
        ]
        pue_milli = round(float(spec.get("pue", "1.0")) * 1000)
        it_watts = sum(node_watts[n] for n in members)
        ledger.budget[budget["metadata"]["name"]] = {
            "nodes": len(members),
            "pods": sum(pod_count.get(n, 0) for n in members),
            "committed": math.ceil(it_watts * pue_milli / 1000),
            "status": budget.get("status") or {},
        }
    return ledger


def assert_no_device_double_booked(ledger: Ledger) -> None:
    # Only nodes that exist: another module's pods may outlive their deleted nodes for a while.
    over = {
        (node, resource): (used, ledger.node_allocatable[node].get(resource, 0))
        for node, usage in ledger.node_usage.items()
        if node in ledger.node_allocatable
        for resource, used in usage.items()
        if used > ledger.node_allocatable[node].get(resource, 0)
    }
    assert not over, f"devices booked beyond allocatable (used, allocatable): {over}"


def assert_no_budget_exceeded(ledger: Ledger, names: Iterable[str]) -> None:
    for name in names:
        status = ledger.budget[name]["status"]
        allocatable = status.get("allocatableWatts")
        assert allocatable is not None, f"PowerBudget {name} has no status yet: {status}"
        committed = ledger.budget[name]["committed"]
        assert committed <= allocatable, (
            f"PowerBudget {name}: recomputed committed {committed} W exceeds allocatable "
            f"{allocatable} W"
        )


def status_matches(rest: KubeREST, budgets: Iterable[str], pools: Iterable[str]) -> list[str]:
    """Differences between the statuses and the recomputation (empty when they agree)."""
    ledger = recompute(rest)
    problems = []
    for name in budgets:
        want, status = ledger.budget[name], ledger.budget[name]["status"]
        for field_name, key in (
            ("committedWatts", "committed"),
            ("nodes", "nodes"),
            ("pods", "pods"),
        ):
            if status.get(field_name) != want[key]:
                problems.append(
                    f"budget {name} {field_name} {status.get(field_name)} != {want[key]}"
                )
        if status.get("headroomWatts") != (status.get("allocatableWatts") or 0) - want["committed"]:
            problems.append(f"budget {name} headroomWatts {status.get('headroomWatts')} is off")
    for name in pools:
        obj = rest.get(f"{GROUP_PATH}/acceleratorpools/{name}")
        status, want = obj.get("status") or {}, ledger.pool[name]
        for field_name, key in (
            ("nodes", "nodes"), ("devices", "devices"), ("allocatedDevices", "allocated"),
            ("committedWatts", "watts"),
        ):  # fmt: skip
            if status.get(field_name) != want[key]:
                problems.append(f"pool {name} {field_name} {status.get(field_name)} != {want[key]}")
    return problems


class Namespace:
    """A namespace of the test's own, with its default ServiceAccount."""

    def __init__(self, rest: KubeREST, name: str) -> None:
        self.rest, self.name = rest, name
        rest.post("/api/v1/namespaces", {"metadata": {"name": name}})
        try:
            rest.post(
                f"/api/v1/namespaces/{name}/serviceaccounts", {"metadata": {"name": "default"}}
            )
        except KubeError as err:
            if err.status != 409:
                raise

    def delete(self) -> None:
        try:
            self.rest.delete(f"/api/v1/namespaces/{self.name}")
        except KubeError as err:
            if err.status != 404:
                raise


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)[:4000]
