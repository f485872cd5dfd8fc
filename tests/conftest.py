"""Fixtures shared by every test: a real Kubernetes API server for the ones that need it.

``control_plane`` starts one local control plane for the whole session (etcd, kube-apiserver,
kube-controller-manager, built from the Go modules on first use, and the fake kubelet). Tests
that use it, directly or through ``kube_api`` or ``namespace``, get the ``cluster`` marker, so
``pytest -m "not cluster"`` runs the rest alone. When the control plane cannot be built or
started the tests fail with the reason; they never skip (DESIGN.md §6).

``prometheus`` is a real Prometheus (built from its Go module on first use, ``prometheus_bin``)
scraping the test's own ``power_exporter`` every second; both are new for each test. They fail
the same way, never skip.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# `e2e` is a top-level folder of the repository, not an installed package.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

CLUSTER_FIXTURES = frozenset({"control_plane", "kube_api", "namespace", "fake_kubelet"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if CLUSTER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[Any]:
    """A started ``e2e.providers.local.LocalControlPlane``, with the fake kubelet running."""
    from e2e.providers.build import BuildError, ensure_control_plane
    from e2e.providers.local import ControlPlaneError, LocalControlPlane

    try:
        bins = ensure_control_plane()
    except BuildError as err:
        pytest.fail(f"the local control plane could not be built: {err}", pytrace=False)
    plane = LocalControlPlane(bins=bins, fake_kubelet=True)
    try:
        plane.start()
    except ControlPlaneError as err:
        pytest.fail(f"the local control plane did not start: {err}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def prometheus_bin() -> Path:
    """The cached ``prometheus`` binary, built from its Go module the first time."""
    from e2e.providers.build import BuildError, ensure_prometheus

    try:
        return ensure_prometheus()
    except BuildError as err:
        pytest.fail(f"prometheus could not be built: {err}", pytrace=False)


@pytest.fixture
def power_exporter() -> Iterator[Any]:
    """A started ``e2e.providers.power_exporter.PowerExporter``, publishing nothing yet."""
    from e2e.providers.power_exporter import PowerExporter

    with PowerExporter() as exporter:
        yield exporter


@pytest.fixture
def prometheus(prometheus_bin: Path, power_exporter: Any) -> Iterator[Any]:
    """A ``e2e.providers.prometheus.LocalPrometheus`` scraping ``power_exporter`` every 1 s,
    returned once its first scrape succeeded."""
    from e2e.providers.prometheus import LocalPrometheus, PrometheusError

    server = LocalPrometheus([power_exporter.target], binary=prometheus_bin)
    try:
        server.start()
        server.wait_for_targets_up()
    except PrometheusError as err:
        server.stop()
        pytest.fail(f"prometheus did not start: {err}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_kubelet(control_plane: Any) -> Any:
    """The session's ``e2e.providers.kubelet.FakeKubelet`` (for its counters and errors)."""
    return control_plane.kubelet


@pytest.fixture(scope="session")
def kube_api(control_plane: Any) -> Iterator[Any]:
    """A ``kubernetes.client.ApiClient`` for the admin (system:masters) of the control plane."""
    client = control_plane.api_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube_api: Any) -> Iterator[str]:
    """A fresh namespace with its ``default`` ServiceAccount; deleted after the test."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem or 't'}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"wattsched.io/test": "true"})
        )
    )
    # The serviceaccount controller creates it too, a moment later; pods are admitted only
    # once it exists, so do not make the test wait for the controller.
    try:
        core.create_namespaced_service_account(
            name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
        )
    except ApiException as err:
        if err.status != 409:
            raise
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as err:
            if err.status != 404:
                raise
