"""`helm install`, `helm upgrade` and `helm uninstall` of the chart on the real API server.

The tests in this module run in file order against one release: install, then what an admin
does next (apply the Ulsan samples), then upgrade, then uninstall.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.providers.build import BuildError, ensure_control_plane
from e2e.suite.helm import CHART, EXAMPLES, Helm
from e2e.suite.kube import Kubectl, wait_for

RELEASE = "ws-it-install"
CRD_NAMES = ("acceleratorpools.wattsched.io", "powerbudgets.wattsched.io")


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory, control_plane: Any) -> Helm:
    try:
        bins = ensure_control_plane(with_helm=True)
    except BuildError as err:
        pytest.fail(f"helm could not be built: {err}", pytrace=False)
    return Helm(bins.helm, tmp_path_factory.mktemp("helm-home"), Path(control_plane.kubeconfig))


@pytest.fixture(scope="module")
def admin(control_plane: Any) -> Kubectl:
    return Kubectl(control_plane.bins.kubectl, Path(control_plane.kubeconfig))


@pytest.fixture(scope="module")
def release(helm: Helm, admin: Kubectl) -> Iterator[tuple[str, str]]:
    """The chart installed as RELEASE in a fresh namespace; uninstalled and deleted after."""
    namespace = f"wattsched-it-{uuid.uuid4().hex[:6]}"
    admin.run("create", "namespace", namespace)
    try:
        helm.install(RELEASE, namespace)
        yield RELEASE, namespace
    finally:
        helm.uninstall(RELEASE, namespace, check=False)
        admin.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


def test_helm_install_deploys_the_release_and_its_objects(
    helm: Helm, admin: Kubectl, release: tuple[str, str]
) -> None:
    name, namespace = release
    status = helm.status(name, namespace)
    assert status["info"]["status"] == "deployed"
    assert "kubectl get pb -w" in status["info"]["notes"]
    full = f"{name}-wattsched"
    for kind in ("deployment", "serviceaccount", "service", "role", "rolebinding", "pdb"):
        assert admin.exists(kind, "-n", namespace, "-l", f"app.kubernetes.io/instance={name}"), kind
    assert admin.exists("clusterrole", full) and admin.exists("clusterrolebinding", full)
    deployment = admin.json("get", "deployment", full, "-n", namespace)
    assert deployment["spec"]["replicas"] == 2


def test_helm_install_installs_the_crds_from_the_chart(
    admin: Kubectl, release: tuple[str, str]
) -> None:
    for name in CRD_NAMES:
        wait_for(
            f"CRD {name} Established",
            lambda name=name: admin.run(
                "wait", "--for=condition=Established", f"crd/{name}", "--timeout=5s", check=False
            ).returncode == 0,
        )  # fmt: skip
        served = admin.json("get", "crd", name)
        shipped = yaml.safe_load(
            (CHART / "crds" / f"wattsched.io_{name.split('.')[0]}.yaml").read_text()
        )
        assert served["spec"]["names"] == shipped["spec"]["names"]
        assert [v["name"] for v in served["spec"]["versions"]] == ["v1alpha1"]
        served_columns = [
            c["name"] for c in served["spec"]["versions"][0]["additionalPrinterColumns"]
        ]
        shipped_columns = [
            c["name"] for c in shipped["spec"]["versions"][0]["additionalPrinterColumns"]
        ]
        assert served_columns == shipped_columns


def test_ulsan_samples_apply_after_install(admin: Kubectl, release: tuple[str, str]) -> None:
    samples = [EXAMPLES / "pools.yaml", EXAMPLES / "budgets.yaml"]
    objects = [doc for path in samples for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert {obj["kind"] for obj in objects} == {"AcceleratorPool", "PowerBudget"}
    # Cluster-scoped and maybe used by other tests of the session: create only what is not
    # there yet, and delete only that.
    created = [
        obj for obj in objects if not admin.exists(obj["kind"].lower(), obj["metadata"]["name"])
    ]
    try:
        out = admin.apply(
            objects, "--server-side", "--field-manager=ulsan-samples", "--force-conflicts"
        )
        assert out.count("serverside-applied") == len(objects), out
        pb = admin.run("get", "pb").stdout
        assert "ulsan-phase-1" in pb and "ENFORCEMENT" in pb
    finally:
        for obj in created:
            admin.run(
                "delete", obj["kind"].lower(), obj["metadata"]["name"], "--ignore-not-found",
                "--wait=false",
            )  # fmt: skip


def test_helm_upgrade_rolls_new_flags_and_keeps_the_crds(
    helm: Helm, admin: Kubectl, release: tuple[str, str]
) -> None:
    name, namespace = release
    before = admin.json("get", "deployment", f"{name}-wattsched", "-n", namespace)
    helm.upgrade(name, namespace, {"logging.format": "json", "replicas": 3})
    status = helm.status(name, namespace)
    assert status["info"]["status"] == "deployed" and status["version"] == 2
    after = admin.json("get", "deployment", f"{name}-wattsched", "-n", namespace)
    args = after["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--log-format=json" in args and after["spec"]["replicas"] == 3
    assert (
        after["spec"]["template"]["metadata"]["annotations"]["checksum/args"]
        != before["spec"]["template"]["metadata"]["annotations"]["checksum/args"]
    ), "a flag change must roll the pods"
    assert all(admin.exists("crd", crd) for crd in CRD_NAMES)


def test_helm_uninstall_removes_the_release_and_keeps_the_crds(
    helm: Helm, admin: Kubectl, release: tuple[str, str]
) -> None:
    name, namespace = release
    helm.uninstall(name, namespace)
    assert not admin.exists("clusterrole", f"{name}-wattsched")
    assert not admin.exists("clusterrolebinding", f"{name}-wattsched")
    assert not admin.exists("deployment", f"{name}-wattsched", "-n", namespace)
    assert not admin.exists("serviceaccount", f"{name}-wattsched", "-n", namespace)
    # CRDs from the chart's crds/ folder outlive the release, and with them every pool and
    # budget: uninstalling the scheduler must not delete the site's power model.
    assert all(admin.exists("crd", crd) for crd in CRD_NAMES)
    listed = helm.run("list", f"--namespace={namespace}", "-q").stdout.split()
    assert name not in listed
