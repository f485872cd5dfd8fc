"""The local control plane, the fake kubelet and the fleet command, against the real thing."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from e2e.fleet import (
    FAKE_NODE_LABEL,
    POOL_LABEL,
    RACK_LABEL,
    apply_fleet,
    create_nodes,
    delete_fleet,
    load_fleet,
    make_node,
)
from e2e.providers.local import LocalControlPlane, port_is_bound
from e2e.providers.rest import JSON, KubeError, KubeREST

SITE = Path(__file__).resolve().parents[2] / "examples" / "ulsan" / "fleet" / "site.yaml"
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout_seconds: float = 30.0) -> T:
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def rest(control_plane: LocalControlPlane) -> KubeREST:
    return KubeREST(control_plane.kubeconfig)


@pytest.fixture
def fake_node(rest: KubeREST) -> Iterator[str]:
    """One fake node with 8 GPUs, deleted after the test."""
    name = f"fake-{uuid.uuid4().hex[:8]}"
    create_nodes(rest.api_client, [make_node(name, resources={"nvidia.com/gpu": 8})])
    yield name
    try:
        rest.delete(f"/api/v1/nodes/{name}")
    except KubeError as err:
        if err.status != 404:
            raise


def pod(name: str, node: str | None = None, labels: dict[str, str] | None = None) -> JSON:
    spec: JSON = {
        "containers": [
            {
                "name": "main",
                "image": "registry.example/infer:1",
                "resources": {"limits": {"nvidia.com/gpu": "1"}},
            }
        ],
        "terminationGracePeriodSeconds": 30,
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": spec}  # fmt: skip


def get_or_none(rest: KubeREST, path: str) -> JSON | None:
    try:
        return rest.get(path)
    except KubeError as err:
        if err.status == 404:
            return None
        raise


def phase(rest: KubeREST, namespace: str, name: str) -> str | None:
    found = get_or_none(rest, f"/api/v1/namespaces/{namespace}/pods/{name}")
    return found.get("status", {}).get("phase") if found else None


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


# --- the API server ----------------------------------------------------------------------------


def test_api_server_is_ready_and_serves_the_admin(control_plane: LocalControlPlane) -> None:
    assert control_plane.server.startswith("https://127.0.0.1:")
    assert control_plane.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    whoami = json.loads(control_plane.kubectl("auth", "whoami", "-o", "json").stdout)
    assert "system:masters" in whoami["status"]["userInfo"]["groups"]
    assert control_plane.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"
    assert "default" in control_plane.kubectl("get", "namespaces", "-o", "name").stdout


def test_rbac_applies_to_a_service_account_whose_token_is_minted(
    control_plane: LocalControlPlane, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    kubeconfig = control_plane.write_service_account_kubeconfig(
        tmp_path / "reader.kubeconfig", namespace, "reader"
    )
    reader = KubeREST(kubeconfig)
    with pytest.raises(KubeError) as denied:
        reader.get("/api/v1/nodes")
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:reader" in denied.value.message

    control_plane.kubectl(
        "create", "clusterrolebinding", f"{namespace}-reader", "--clusterrole=view",
        f"--serviceaccount={namespace}:reader",
    )  # fmt: skip
    try:
        wait_for("the binding to apply", lambda: _can_list_pods(reader, namespace))
    finally:
        control_plane.kubectl("delete", "clusterrolebinding", f"{namespace}-reader")


def _can_list_pods(client: KubeREST, namespace: str) -> bool:
    try:
        client.get(f"/api/v1/namespaces/{namespace}/pods")
    except KubeError:
        return False
    return True


def test_a_second_start_with_cached_binaries_takes_seconds(
    control_plane: LocalControlPlane,
) -> None:
    started = time.monotonic()
    with LocalControlPlane() as second:
        took = time.monotonic() - started
        assert second.server != control_plane.server
        assert second.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    print(f"second start with cached binaries: {took:.1f}s")


def test_stop_leaves_no_process_and_frees_the_ports(control_plane: LocalControlPlane) -> None:
    plane = LocalControlPlane(fake_kubelet=True).start()
    workdir, pids, ports = plane.workdir, plane.pids, plane.ports
    assert workdir is not None
    assert len(pids) == 3  # etcd, kube-apiserver, kube-controller-manager
    assert all(port_is_bound(port) for port in ports)
    plane.stop()
    assert processes_mentioning(str(workdir)) == []
    assert [port for port in ports if port_is_bound(port)] == []
    assert not workdir.exists()
    plane.stop()  # idempotent


# --- the fleet ---------------------------------------------------------------------------------


def test_fleet_apply_creates_ready_nodes_with_accelerator_capacity_at_scale(
    control_plane: LocalControlPlane, rest: KubeREST
) -> None:
    fleet = load_fleet(SITE)
    scale = 0.05
    started = time.monotonic()
    names = apply_fleet(control_plane.kubeconfig, SITE, scale)
    print(f"{len(names)} nodes applied in {time.monotonic() - started:.1f}s")
    try:
        nodes, _ = rest.list_all("/api/v1/nodes", labelSelector="wattsched.io/site=ulsan")
        per_pool = Counter(n["metadata"]["labels"][POOL_LABEL] for n in nodes)
        assert per_pool == {p.name: max(1, round(p.nodes * scale)) for p in fleet.pools}
        assert sorted(names) == sorted(n["metadata"]["name"] for n in nodes)
        pools = {p.name: p for p in fleet.pools}
        for node in nodes:
            labels = node["metadata"]["labels"]
            spec = pools[labels[POOL_LABEL]]
            assert labels[FAKE_NODE_LABEL] == "true"
            assert labels["wattsched.io/hall"] == spec.hall
            assert labels["wattsched.io/phase"] == "1"
            assert labels[RACK_LABEL].startswith(f"{spec.hall}-r")
            assert labels["kubernetes.io/hostname"] == node["metadata"]["name"]
            status = node["status"]
            for key in ("capacity", "allocatable"):
                assert status[key][spec.resource_name] == str(spec.devices_per_node)
                assert status[key]["pods"] == "110"
                assert status[key]["cpu"] == spec.cpu
            ready = [c for c in status["conditions"] if c["type"] == "Ready"]
            assert [c["status"] for c in ready] == ["True"]
            assert not node["spec"].get("taints")  # nothing marks a fake node not-ready
        # Applying again is harmless: the same nodes, updated in place.
        assert sorted(apply_fleet(control_plane.kubeconfig, SITE, scale)) == sorted(names)
    finally:
        assert delete_fleet(control_plane.kubeconfig, SITE) == len(names)
    wait_for(
        "the fleet's nodes to go",
        lambda: not rest.list_all("/api/v1/nodes", labelSelector="wattsched.io/site=ulsan")[0],
    )


def test_fleet_racks_hold_at_most_the_pools_nodes_per_rack() -> None:
    from e2e.fleet import fleet_nodes

    fleet = load_fleet(SITE)
    nodes = fleet_nodes(fleet, 1.0)
    assert len(nodes) == sum(p.nodes for p in fleet.pools) == 6200
    per_rack = Counter(n["metadata"]["labels"][RACK_LABEL] for n in nodes)
    per_node_pool = {n["metadata"]["labels"][RACK_LABEL]: n["metadata"]["labels"][POOL_LABEL]
                     for n in nodes}  # fmt: skip
    limits = {p.name: p.nodes_per_rack for p in fleet.pools}
    assert all(count <= limits[per_node_pool[rack]] for rack, count in per_rack.items())
    assert per_rack["a-r001"] == 4 and "b-r576" in per_rack and "b-r577" not in per_rack


# --- the fake kubelet --------------------------------------------------------------------------


def test_fake_kubelet_runs_a_bound_pod_and_finishes_its_delete(
    rest: KubeREST, namespace: str, fake_node: str
) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    rest.post(pods, pod("infer", fake_node))
    wait_for("the pod to run", lambda: phase(rest, namespace, "infer") == "Running")
    status = rest.get(f"{pods}/infer")["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "True"
    assert status["containerStatuses"][0]["state"]["running"]
    rest.delete(f"{pods}/infer")  # the default grace period: a kubelet must finish it
    wait_for("the pod to be gone", lambda: get_or_none(rest, f"{pods}/infer") is None)


def test_eviction_respects_the_disruption_budget_and_the_kubelet_completes_it(
    rest: KubeREST, namespace: str, fake_node: str
) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    budgets = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
    rest.post(pods, pod("infer", fake_node, labels={"app": "infer"}))
    rest.post(
        budgets,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "infer"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "infer"}}},
        },
    )
    wait_for(
        "the disruption controller to count the running pod",
        lambda: rest.get(f"{budgets}/infer").get("status", {}).get("currentHealthy") == 1,
    )
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "infer", "namespace": namespace},
    }
    with pytest.raises(KubeError) as refused:
        rest.post(f"{pods}/infer/eviction", eviction)
    assert refused.value.status == 429
    assert "disruption budget" in refused.value.message

    rest.patch(f"{budgets}/infer", {"spec": {"minAvailable": 0}}, "application/merge-patch+json")
    wait_for(
        "the budget to allow a disruption",
        lambda: rest.get(f"{budgets}/infer").get("status", {}).get("disruptionsAllowed") == 1,
    )
    rest.post(f"{pods}/infer/eviction", eviction)
    wait_for("the evicted pod to be gone", lambda: get_or_none(rest, f"{pods}/infer") is None)


def test_a_pod_with_fake_run_seconds_succeeds(
    rest: KubeREST, namespace: str, fake_node: str
) -> None:
    job = pod("batch", fake_node)
    job["metadata"]["annotations"] = {"wattsched.io/fake-run-seconds": "1"}
    rest.post(f"/api/v1/namespaces/{namespace}/pods", job)
    wait_for("the pod to succeed", lambda: phase(rest, namespace, "batch") == "Succeeded")


def test_the_kubelet_reports_a_node_not_ready_while_annotated_so(
    rest: KubeREST, fake_node: str
) -> None:
    path = f"/api/v1/nodes/{fake_node}"

    def ready() -> str:
        conditions = rest.get(path)["status"]["conditions"]
        return str(next(c["status"] for c in conditions if c["type"] == "Ready"))

    rest.patch(path, {"metadata": {"annotations": {"wattsched.io/fake-ready": "false"}}})
    wait_for("the node to be NotReady", lambda: ready() == "False")
    rest.patch(path, {"metadata": {"annotations": {"wattsched.io/fake-ready": None}}})
    wait_for("the node to be Ready again", lambda: ready() == "True")


def test_fake_kubelet_keeps_up_with_a_thousand_pods(
    rest: KubeREST, namespace: str, fake_kubelet: Any
) -> None:
    nodes = [f"fake-many-{uuid.uuid4().hex[:6]}-{i:02d}" for i in range(10)]
    create_nodes(rest.api_client, [make_node(n, resources={"nvidia.com/gpu": 8}) for n in nodes])
    pods = f"/api/v1/namespaces/{namespace}/pods"
    count = 1000
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda i: rest.post(pods, _small_pod(f"p{i:04d}", nodes[i % 10])),
                          range(count)))  # fmt: skip
        created = time.monotonic() - started

        def running() -> bool:
            items, _ = rest.list_all(pods, fieldSelector="status.phase=Running")
            return len(items) == count

        wait_for(f"{count} pods to run", running, timeout_seconds=120)
        print(f"{count} pods created in {created:.1f}s, all Running after "
              f"{time.monotonic() - started:.1f}s")  # fmt: skip
        rest.request("DELETE", pods, query={"labelSelector": "bulk=yes"})
        wait_for(
            f"{count} pods to be deleted",
            lambda: not rest.list_all(pods)[0],
            timeout_seconds=120,
        )
        print(f"and all deleted after {time.monotonic() - started:.1f}s")
        assert fake_kubelet.errors == []
    finally:
        for name in nodes:
            rest.delete(f"/api/v1/nodes/{name}")


def _small_pod(name: str, node: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bulk": "yes"}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]},
    }
