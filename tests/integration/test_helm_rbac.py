"""The chart's RBAC is enough for the operator and no more.

A token of the chart's ServiceAccount (TokenRequest, as `kubectl create token` makes it) is
put in a kubeconfig of its own. With it, `kubectl auth can-i` must say yes to every verb the
operator uses and no to the rest; the API server must refuse it Secrets and Pod creation; and
`wattsched run`, with that kubeconfig and nothing else, must schedule pods and write status.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.fleet import POOL_LABEL, create_nodes, make_node
from e2e.operator_process import OperatorProcess, wattsched_run_available
from e2e.providers.build import BuildError, ensure_control_plane
from e2e.suite.helm import Helm
from e2e.suite.kube import Kubectl, condition, restricted_pod, wait_for

RELEASE = "ws-it-rbac"
SCHEDULER = "wattsched-it-rbac"
LEASE = "ws-it-rbac-leader"


@dataclass(frozen=True)
class Installed:
    namespace: str
    service_account: str
    admin: Kubectl
    operator: Kubectl  # as the chart's ServiceAccount
    operator_kubeconfig: Path


@pytest.fixture(scope="module")
def installed(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    try:
        bins = ensure_control_plane(with_helm=True)
    except BuildError as err:
        pytest.fail(f"helm could not be built: {err}", pytrace=False)
    work = tmp_path_factory.mktemp("helm-rbac")
    admin = Kubectl(bins.kubectl, Path(control_plane.kubeconfig))
    helm = Helm(bins.helm, work / "helm-home", Path(control_plane.kubeconfig))
    namespace = f"wattsched-rbac-{uuid.uuid4().hex[:6]}"
    admin.run("create", "namespace", namespace)
    try:
        helm.install(
            RELEASE,
            namespace,
            {"schedulerName": SCHEDULER, "leaderElection.leaseName": LEASE},
        )
        service_account = f"{RELEASE}-wattsched"
        kubeconfig = admin.service_account_kubeconfig(
            work / "operator.kubeconfig", namespace, service_account
        )
        yield Installed(
            namespace, service_account, admin, admin.with_kubeconfig(kubeconfig), kubeconfig
        )
    finally:
        helm.uninstall(RELEASE, namespace, check=False)
        admin.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


def test_the_token_acts_as_the_chart_service_account(installed: Installed) -> None:
    who = installed.operator.json("auth", "whoami")
    username = who["status"]["userInfo"]["username"]
    assert username == f"system:serviceaccount:{installed.namespace}:{installed.service_account}"


OPERATOR_VERBS = [
    ("get", "pods", "-A"),
    ("list", "pods", "-A"),
    ("watch", "pods", "-A"),
    ("create", "pods", "--subresource=binding", "-n", "default"),
    ("create", "pods", "--subresource=eviction", "-n", "default"),
    ("patch", "pods", "--subresource=status", "-n", "default"),
    ("create", "events", "-n", "default"),
    ("patch", "events", "-n", "default"),
    ("create", "events.events.k8s.io", "-n", "default"),
    ("patch", "events.events.k8s.io", "-n", "default"),
    ("get", "nodes"),
    ("list", "nodes"),
    ("watch", "nodes"),
    ("list", "acceleratorpools.wattsched.io"),
    ("watch", "powerbudgets.wattsched.io"),
    ("get", "acceleratorpools.wattsched.io", "--subresource=status"),
    ("patch", "powerbudgets.wattsched.io", "--subresource=status"),
    ("update", "acceleratorpools.wattsched.io", "--subresource=status"),
]


@pytest.mark.parametrize(
    "check", OPERATOR_VERBS, ids=[" ".join(a.lstrip("-") for a in c) for c in OPERATOR_VERBS]
)
def test_the_chart_service_account_may_do_what_the_operator_does(
    installed: Installed, check: tuple[str, ...]
) -> None:
    verb, resource, *args = check
    assert installed.operator.can_i(verb, resource, *args)


def test_the_chart_service_account_may_lead_with_its_one_lease(installed: Installed) -> None:
    ns = ("-n", installed.namespace)
    can = installed.operator.can_i
    assert can("create", "leases.coordination.k8s.io", *ns)
    for verb in ("get", "update", "patch"):
        assert can(verb, f"leases.coordination.k8s.io/{LEASE}", *ns)
        assert not can(verb, "leases.coordination.k8s.io/someone-elses", *ns)
    assert not can("delete", f"leases.coordination.k8s.io/{LEASE}", *ns)
    assert not can("create", "leases.coordination.k8s.io", "-n", "kube-system")


FORBIDDEN = [
    ("get", "secrets", "-A"),
    ("list", "secrets", "-n", "default"),
    ("get", "configmaps", "-n", "default"),
    ("create", "pods", "-n", "default"),
    ("delete", "pods", "-n", "default"),
    ("update", "pods", "-n", "default"),
    ("update", "nodes"),
    ("patch", "nodes", "--subresource=status"),
    ("create", "acceleratorpools.wattsched.io"),
    ("update", "powerbudgets.wattsched.io"),
    ("delete", "powerbudgets.wattsched.io"),
    ("create", "serviceaccounts", "--subresource=token", "-n", "default"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
]


@pytest.mark.parametrize(
    "check", FORBIDDEN, ids=[" ".join(a.lstrip("-") for a in c) for c in FORBIDDEN]
)
def test_the_chart_service_account_may_not_do_more(
    installed: Installed, check: tuple[str, ...]
) -> None:
    verb, resource, *args = check
    assert not installed.operator.can_i(verb, resource, *args)


def test_the_api_server_refuses_the_token_secrets_and_pod_creation(installed: Installed) -> None:
    secrets = installed.operator.run("get", "secrets", "-n", installed.namespace, check=False)
    assert secrets.returncode != 0
    assert "Forbidden" in secrets.stderr and 'cannot list resource "secrets"' in secrets.stderr
    pod = restricted_pod("not-allowed", scheduler_name=SCHEDULER, resources={})
    pod["metadata"]["namespace"] = installed.namespace
    created = installed.operator.run("create", "-f", "-", stdin=json.dumps(pod), check=False)
    assert created.returncode != 0
    assert "Forbidden" in created.stderr and 'cannot create resource "pods"' in created.stderr


# --- the operator itself, with only that token -------------------------------------------------


@pytest.fixture
def site(installed: Installed) -> Iterator[dict[str, str]]:
    """One 8-GPU fake node, its pool, and a budget with room for exactly two more GPUs.

    Idle the node draws 4500 + 8 x 90 = 5220 W; each allocated GPU adds 700 - 90 = 610 W.
    A 6440 W limit with no reserve fits a 2-GPU pod exactly, and then nothing more.
    """
    suffix = uuid.uuid4().hex[:6]
    names = {
        "pool": f"it-rbac-h200-{suffix}",
        "budget": f"it-rbac-tight-{suffix}",
        "node": f"it-rbac-h200-{suffix}-0001",
    }
    admin = installed.admin
    node = make_node(
        names["node"], labels={POOL_LABEL: names["pool"]}, resources={"nvidia.com/gpu": 8}
    )
    create_nodes(admin.kubeconfig, [node])
    selector = {"matchLabels": {POOL_LABEL: names["pool"]}}
    admin.apply(
        [
            {
                "apiVersion": "wattsched.io/v1alpha1",
                "kind": "AcceleratorPool",
                "metadata": {"name": names["pool"]},
                "spec": {
                    "nodeSelector": selector,
                    "accelerator": {
                        "vendor": "nvidia",
                        "model": "H200-SXM",
                        "resourceNames": ["nvidia.com/gpu"],
                    },
                    "power": {"deviceWatts": 700, "idleDeviceWatts": 90, "nodeBaseWatts": 4500},
                },
            },
            {
                "apiVersion": "wattsched.io/v1alpha1",
                "kind": "PowerBudget",
                "metadata": {"name": names["budget"]},
                "spec": {
                    "nodeSelector": selector,
                    "limit": "6440W",
                    "reservePercent": 0,
                    "enforcement": "Admit",
                },
            },
        ]
    )
    try:
        yield names
    finally:
        admin.run("delete", "pods", "-n", installed.namespace, "--all", "--wait=false", check=False)
        admin.run("delete", "powerbudget", names["budget"], "--ignore-not-found", check=False)
        admin.run("delete", "acceleratorpool", names["pool"], "--ignore-not-found", check=False)
        admin.run("delete", "node", names["node"], "--ignore-not-found", check=False)


def test_operator_with_the_chart_token_schedules_pods_and_reports_status(
    installed: Installed, site: dict[str, str], tmp_path: Path
) -> None:
    missing = wattsched_run_available()
    if missing:
        pytest.fail(f"the operator is not runnable: {missing}", pytrace=False)
    admin, ns = installed.admin, installed.namespace
    operator = OperatorProcess(
        installed.operator_kubeconfig,
        lease_namespace=ns,
        log_path=tmp_path / "wattsched.log",
        scheduler_name=SCHEDULER,
        lease_name=LEASE,
        identity="it-rbac-operator",
        status_interval_seconds=1,
    )
    with operator:
        fits = restricted_pod("fits", scheduler_name=SCHEDULER, resources={"nvidia.com/gpu": 2})
        over = restricted_pod("over", scheduler_name=SCHEDULER, resources={"nvidia.com/gpu": 1})
        admin.apply([fits], "-n", ns)

        def node_of(pod: str) -> str | None:
            return admin.json("get", "pod", pod, "-n", ns)["spec"].get("nodeName")

        try:
            assert (
                wait_for("pod fits bound", lambda: node_of("fits"), timeout_seconds=60)
                == site["node"]
            )
            admin.apply([over], "-n", ns)

            def unschedulable() -> str | None:
                cond = condition(admin.json("get", "pod", "over", "-n", ns), "PodScheduled")
                return cond["message"] if cond and cond["status"] == "False" else None

            message = wait_for("pod over marked unschedulable", unschedulable, timeout_seconds=60)
            assert site["budget"] in message, message
            assert node_of("over") is None

            def budget_status() -> dict[str, Any] | None:
                status = admin.json("get", "powerbudget", site["budget"]).get("status", {})
                return status if status.get("committedWatts") == 6440 else None

            status = wait_for(
                "budget status shows the 2-GPU pod", budget_status, timeout_seconds=30
            )
            assert status["allocatableWatts"] == 6440 and status["headroomWatts"] == 0
            pool = admin.json("get", "acceleratorpool", site["pool"])["status"]
            assert (pool["nodes"], pool["devices"], pool["allocatedDevices"]) == (1, 8, 2)
            lease = admin.json("get", "lease", LEASE, "-n", ns)
            assert lease["spec"]["holderIdentity"] == "it-rbac-operator"
            events = admin.json("get", "events", "-n", ns)["items"]
            assert any(e["involvedObject"].get("name") == "over" for e in events), events
        except (AssertionError, TimeoutError) as err:
            raise AssertionError(f"{err}\n--- wattsched log ---\n{operator.log_tail()}") from err
        assert operator.alive(), operator.log_tail()
    log = operator.log_path.read_text(errors="replace")
    assert "Forbidden" not in log and " 403" not in log, operator.log_tail(80)
