"""The end-to-end suite: the chart installed with Helm, the Ulsan samples, wattsched placing pods.

    python -m pytest e2e/suite                   # --cluster=local, the default
    python -m pytest e2e/suite --cluster=kind    # after e2e/kind/up.sh --no-install

``--cluster=local`` starts a local control plane of its own (real kube-apiserver and etcd, the
fake kubelet, DESIGN.md §6) and creates the Ulsan fleet's Nodes at a small scale. There is no
real kubelet to run the chart's Deployment, so after `helm install` (CRDs, RBAC, Service, the
Deployment object: all real) the operator runs as a local process with a token of the chart's
ServiceAccount and exactly the Deployment's flags.

``--cluster=kind`` uses a kind cluster made by ``e2e/kind/up.sh``: its workers advertise
accelerators and carry the Ulsan labels, the image is loaded, and the chart's Deployment runs
in the cluster.

Everything the suite creates it deletes: the release, its namespace, the samples and the pods;
the local control plane is stopped and its folder removed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from e2e.operator_process import OperatorProcess, wattsched_run_available
from e2e.providers.build import BuildError, binaries, ensure_control_plane
from e2e.suite.helm import EXAMPLES, REPO, Helm
from e2e.suite.kube import Kubectl, wait_for

POOL_LABEL = "wattsched.io/pool"
RELEASE = "wattsched-e2e"
# The chart does not repeat "wattsched" in names of a release that already has it.
FULLNAME = RELEASE
CRD_NAMES = ("acceleratorpools.wattsched.io", "powerbudgets.wattsched.io")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wattsched e2e")
    group.addoption(
        "--cluster",
        choices=("local", "kind"),
        default="local",
        help="local: a local control plane started here (default); kind: an e2e/kind cluster",
    )
    group.addoption("--kind-name", default="wattsched", help="kind cluster name (kind: only)")
    group.addoption(
        "--kind-kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig of the kind cluster (default: $KUBECONFIG or ~/.kube/config)",
    )
    group.addoption(
        "--image",
        default="wattsched:e2e",
        help="repository:tag of the image loaded into kind (e2e/kind/up.sh loads wattsched:e2e)",
    )


@dataclass
class Cluster:
    """The cluster under test, as the suite's tests see it."""

    kind: str  # "local" | "kind"
    admin: Kubectl
    helm: Helm
    workdir: Path
    crds_before_install: set[str] = field(default_factory=set)
    namespace: str = ""
    operator: OperatorProcess | None = None  # local only

    def nodes(self, pool: str) -> list[str]:
        out = self.admin.run("get", "nodes", "-l", f"{POOL_LABEL}={pool}", "-o", "name").stdout
        return [line.removeprefix("node/") for line in out.split()]


def _kubeconfig_from_env(option: Path | None) -> Path:
    import os

    if option is not None:
        return option
    env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(env) if env else Path.home() / ".kube" / "config"


@pytest.fixture(scope="session")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    mode = request.config.getoption("--cluster")
    workdir = tmp_path_factory.mktemp("e2e")
    try:
        bins = ensure_control_plane(with_helm=True)
    except BuildError as err:
        pytest.fail(f"kubectl and helm could not be built: {err}", pytrace=False)
    if mode == "kind":
        kubeconfig = _kubeconfig_from_env(request.config.getoption("--kind-kubeconfig"))
        context = f"kind-{request.config.getoption('--kind-name')}"
        admin = Kubectl(bins.kubectl, kubeconfig, context)
        if admin.run("cluster-info", check=False).returncode != 0:
            pytest.fail(
                f"no kind cluster at context {context} in {kubeconfig}: "
                "run e2e/kind/up.sh --no-install first",
                pytrace=False,
            )
        yield Cluster(
            "kind", admin, Helm(bins.helm, workdir / "helm", kubeconfig, context), workdir
        )
        return

    from e2e.fleet import apply_fleet
    from e2e.providers.local import ControlPlaneError, LocalControlPlane

    plane = LocalControlPlane(bins=bins, fake_kubelet=True)  # its own folder, removed by stop()
    try:
        plane.start()
    except ControlPlaneError as err:
        pytest.fail(f"the local control plane did not start: {err}", pytrace=False)
    try:
        # At this scale every Ulsan pool gets one or two nodes.
        apply_fleet(plane.kubeconfig, EXAMPLES / "fleet" / "site.yaml", scale=0.001)
        admin = Kubectl(binaries().kubectl, Path(plane.kubeconfig))
        yield Cluster(
            "local", admin, Helm(bins.helm, workdir / "helm", Path(plane.kubeconfig)), workdir
        )
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def release(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[Cluster]:
    """The chart installed (and, on the local control plane, the operator started)."""
    admin = cluster.admin
    cluster.crds_before_install = {name for name in CRD_NAMES if admin.exists("crd", name)}
    cluster.namespace = f"wattsched-e2e-{uuid.uuid4().hex[:6]}"
    admin.run("create", "namespace", cluster.namespace)
    admin.run(
        "label", "namespace", cluster.namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    try:
        if cluster.kind == "kind":
            repository, _, tag = request.config.getoption("--image").rpartition(":")
            cluster.helm.install(
                RELEASE, cluster.namespace,
                {"image.repository": repository, "image.tag": tag, "image.pullPolicy": "Never"},
                "--wait", "--timeout=5m",
            )  # fmt: skip
        else:
            cluster.helm.install(RELEASE, cluster.namespace)
            missing = wattsched_run_available()
            if missing:
                pytest.fail(f"the operator is not runnable: {missing}", pytrace=False)
            kubeconfig = admin.service_account_kubeconfig(
                cluster.workdir / "operator.kubeconfig", cluster.namespace, FULLNAME
            )
            # Set before it starts, so the finally below stops it whatever happens.
            cluster.operator = OperatorProcess(
                kubeconfig,
                lease_namespace=cluster.namespace,
                log_path=cluster.workdir / "wattsched.log",
                identity="wattsched-e2e-local",
                status_interval_seconds=1,
            )
            cluster.operator.start().wait_ready()
        yield cluster
    finally:
        if cluster.operator is not None:
            cluster.operator.stop()
            print(f"\n--- wattsched log (tail) ---\n{cluster.operator.log_tail()}")
        cluster.helm.uninstall(RELEASE, cluster.namespace, check=False)
        admin.run("delete", "namespace", cluster.namespace, "--ignore-not-found", "--wait=false")


@pytest.fixture(scope="session")
def ulsan(release: Cluster) -> Iterator[list[dict[str, object]]]:
    """The Ulsan pools and budgets, applied once and deleted at the end."""
    samples = [EXAMPLES / "pools.yaml", EXAMPLES / "budgets.yaml"]
    objects = [doc for path in samples for doc in yaml.safe_load_all(path.read_text()) if doc]
    try:
        release.admin.apply(objects, "--server-side", "--field-manager=wattsched-e2e")
        yield objects
    finally:
        for path in samples:
            release.admin.run(
                "delete", "-f", str(path), "--ignore-not-found", "--wait=false", check=False
            )


@pytest.fixture
def pod_namespace(release: Cluster) -> Iterator[str]:
    """A namespace for one test's pods, deleted with them afterwards."""
    name = f"e2e-pods-{uuid.uuid4().hex[:6]}"
    admin = release.admin
    admin.run("create", "namespace", name)
    admin.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    wait_for(
        "the namespace's default ServiceAccount",
        lambda: admin.exists("serviceaccount", "default", "-n", name),
    )
    try:
        yield name
    finally:
        admin.run("delete", "namespace", name, "--ignore-not-found", "--wait=false")


__all__ = ["REPO", "Cluster"]
