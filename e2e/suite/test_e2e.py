"""What an admin sees after `helm install`: CRDs, the samples, pods placed within budgets.

Runs unchanged on the local control plane and on kind (see conftest.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from e2e.suite.conftest import CRD_NAMES, FULLNAME, RELEASE, Cluster
from e2e.suite.kube import condition, restricted_pod, wait_for

SCHEDULER = "wattsched"
# examples/ulsan/pools.yaml, rngd-hall-b: 1500 W per host, 8 cards at 35 W idle, 180 W busy.
RNGD_IDLE_NODE_WATTS = 1500 + 8 * 35
RNGD_DEVICE_DELTA_WATTS = 180 - 35


def test_helm_install_succeeds_and_installs_the_crds(release: Cluster) -> None:
    status = release.helm.status(RELEASE, release.namespace)
    assert status["info"]["status"] == "deployed"
    for name in CRD_NAMES:
        release.admin.run("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    if release.kind == "local":
        # A fresh control plane: these CRDs can only have come from the chart.
        assert release.crds_before_install == set()


def test_ulsan_samples_apply(release: Cluster, ulsan: list[dict[str, Any]]) -> None:
    pools = release.admin.run("get", "acceleratorpools", "-o", "name").stdout.split()
    budgets = release.admin.run("get", "powerbudgets", "-o", "name").stdout.split()
    for obj in ulsan:
        plural = "acceleratorpool" if obj["kind"] == "AcceleratorPool" else "powerbudget"
        assert f"{plural}.wattsched.io/{obj['metadata']['name']}" in pools + budgets


def test_one_replica_holds_the_lease(release: Cluster) -> None:
    admin = release.admin

    def holder() -> str | None:
        got = admin.run("get", "lease", "wattsched-leader", "-n", release.namespace, check=False)
        if got.returncode != 0:
            return None
        lease = admin.json("get", "lease", "wattsched-leader", "-n", release.namespace)
        holder_identity: str | None = lease["spec"].get("holderIdentity")
        return holder_identity

    leader = wait_for("a replica to take the lease", holder, timeout_seconds=60)
    if release.kind == "local":
        assert release.operator is not None
        assert leader == release.operator.identity
        return
    pods = admin.json(
        "get", "pods", "-n", release.namespace, "-l", f"app.kubernetes.io/instance={RELEASE}"
    )["items"]
    assert leader in {pod["metadata"]["name"] for pod in pods}
    deployment = admin.json("get", "deployment", FULLNAME, "-n", release.namespace)
    assert deployment["status"].get("readyReplicas") == 2


def test_a_wattsched_pod_is_bound_within_its_budget(
    release: Cluster, ulsan: list[dict[str, Any]], pod_namespace: str
) -> None:
    admin = release.admin
    # Every nvidia.com/gpu node of the site is in hall A (H200 and B200 pools).
    gpu_nodes = release.nodes("h200-hall-a") + release.nodes("b200-hall-a")
    assert gpu_nodes, "no node is labelled wattsched.io/pool=h200-hall-a or b200-hall-a"
    pod = restricted_pod("train-0", scheduler_name=SCHEDULER, resources={"nvidia.com/gpu": 1})
    admin.apply([pod], "-n", pod_namespace)

    def running_on() -> str | None:
        got = admin.json("get", "pod", "train-0", "-n", pod_namespace)
        if got["status"].get("phase") != "Running":
            return None
        return str(got["spec"]["nodeName"])

    assert wait_for("the pod bound and running", running_on, timeout_seconds=120) in gpu_nodes

    def hall_a_counts_the_pod() -> dict[str, Any] | None:
        status = admin.json("get", "powerbudget", "ulsan-hall-a").get("status", {})
        return status if status.get("pods", 0) >= 1 else None

    status = wait_for("ulsan-hall-a's status to count the pod", hall_a_counts_the_pod)
    assert 0 < status["committedWatts"] <= status["allocatableWatts"]
    assert status["headroomWatts"] == status["allocatableWatts"] - status["committedWatts"]
    assert condition({"status": status}, "WithinLimit") is not None


def test_a_pod_that_would_exceed_its_budget_stays_pending_naming_it(
    release: Cluster, ulsan: list[dict[str, Any]], pod_namespace: str
) -> None:
    admin = release.admin
    rngd_nodes = release.nodes("rngd-hall-b")
    assert rngd_nodes, "no node is labelled wattsched.io/pool=rngd-hall-b"
    # Room for less than one more RNGD card on those nodes.
    limit_watts = len(rngd_nodes) * RNGD_IDLE_NODE_WATTS + RNGD_DEVICE_DELTA_WATTS - 1
    budget = f"e2e-tight-{uuid.uuid4().hex[:6]}"
    admin.apply(
        [
            {
                "apiVersion": "wattsched.io/v1alpha1",
                "kind": "PowerBudget",
                "metadata": {"name": budget},
                "spec": {
                    "nodeSelector": {"matchLabels": {"wattsched.io/pool": "rngd-hall-b"}},
                    "limit": f"{limit_watts}W",
                    "reservePercent": 0,
                    "enforcement": "Admit",
                },
            }
        ]
    )
    try:
        pod = restricted_pod("serve-0", scheduler_name=SCHEDULER, resources={"furiosa.ai/rngd": 1})
        admin.apply([pod], "-n", pod_namespace)

        def unschedulable_message() -> str | None:
            got = admin.json("get", "pod", "serve-0", "-n", pod_namespace)
            cond = condition(got, "PodScheduled")
            return cond.get("message") if cond and cond["status"] == "False" else None

        message = wait_for(
            "PodScheduled=False on the pod", unschedulable_message, timeout_seconds=60
        )
        assert budget in message, message
        assert not admin.json("get", "pod", "serve-0", "-n", pod_namespace)["spec"].get("nodeName")
    finally:
        admin.run("delete", "powerbudget", budget, "--ignore-not-found", check=False)


def test_kubectl_get_pb_shows_the_printer_columns(
    release: Cluster, ulsan: list[dict[str, Any]]
) -> None:
    admin = release.admin

    def phase_1_row() -> list[str] | None:
        out = admin.run("get", "pb", "ulsan-phase-1").stdout.splitlines()
        header, row = out[0].split(), out[1].split()
        assert header == ["NAME", "LIMIT", "COMMITTED", "HEADROOM", "ENFORCEMENT", "AGE"], header
        return row if row[1] not in ("", "<none>") and row[2] != "<none>" else None

    row = wait_for("the operator to fill in ulsan-phase-1's status", phase_1_row)
    assert row[0] == "ulsan-phase-1" and row[4] == "Shed"
    wide = admin.run("get", "pb", "-o", "wide").stdout.splitlines()[0].split()
    assert {"WITHIN", "RESERVE%", "PUE", "NEXT-CHANGE"} <= set(wide), wide
    pools = admin.run("get", "ap").stdout.splitlines()[0].split()
    assert pools[:7] == ["NAME", "VENDOR", "MODEL", "NODES", "DEVICES", "ALLOCATED", "POWER"]
