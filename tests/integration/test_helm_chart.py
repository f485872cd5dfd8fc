"""The chart lints, renders what an operator needs, and every object it renders is accepted by
the real API server (server-side dry run), with the defaults and with every option on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.providers.build import BuildError, ensure_control_plane
from e2e.suite.helm import Helm, all_features_on
from e2e.suite.kube import JSON, Kubectl, wait_for

SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        bins = ensure_control_plane(with_helm=True)
    except BuildError as err:
        pytest.fail(f"helm could not be built: {err}", pytrace=False)
    return Helm(bins.helm, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def admin(control_plane: Any) -> Kubectl:
    return Kubectl(control_plane.bins.kubectl, Path(control_plane.kubeconfig))


def by_kind(objects: list[JSON], kind: str) -> list[JSON]:
    return [obj for obj in objects if obj["kind"] == kind]


def only(objects: list[JSON], kind: str) -> JSON:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


# --- lint and schema -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [{}, all_features_on()], ids=["default-values", "all-features-on"]
)
def test_helm_lint_strict_passes(helm: Helm, values: dict[str, Any]) -> None:
    proc = helm.lint(values)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(
    ("values", "path", "complaint"),
    [
        ({"replicas": -1}, "/replicas", "minimum"),
        ({"replicas": "two"}, "/replicas", "integer"),
        ({"logging.format": "xml"}, "/logging/format", "text"),
        ({"leaderElection.leaseDurationSeconds": 1}, "/leaderElection/leaseDurationSeconds", "5"),
        ({"image.pullPolicy": "Sometimes"}, "/image/pullPolicy", "IfNotPresent"),
        ({"replica": 2}, "replica", "additional"),
        ({"allowUnguardedNodes": "yes"}, "/allowUnguardedNodes", "boolean"),
    ],
    ids=["negative-replicas", "replicas-not-integer", "log-format-enum", "lease-too-short",
         "pull-policy-enum", "misspelt-key", "unguarded-nodes-not-boolean"],
)  # fmt: skip
def test_values_schema_rejects_a_wrong_value_with_a_clear_message(
    helm: Helm, values: dict[str, Any], path: str, complaint: str
) -> None:
    proc = helm.template(values=values, check=False)
    assert proc.returncode != 0, f"helm template accepted {values}"
    message = proc.stderr
    print(message)  # shown with -rA: what an admin would read
    assert "values don't meet the specifications of the schema" in message
    assert path in message and complaint.lower() in message.lower(), message


# --- what the chart renders ----------------------------------------------------------------


def test_default_render_is_the_production_shape(helm: Helm) -> None:
    objects = helm.render()
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == sorted(
        [
            "CustomResourceDefinition", "CustomResourceDefinition", "ServiceAccount",
            "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
            "Deployment", "PodDisruptionBudget",
        ]
    ), kinds  # fmt: skip
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert "--lease-namespace=$(POD_NAMESPACE)" in container["args"]
    assert "--scheduler-name=wattsched" in container["args"]
    assert "--lease-name=wattsched-leader" in container["args"]
    # Spreading is soft: a small cluster still gets both replicas.
    spread = pod["topologySpreadConstraints"]
    assert all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in spread)
    assert (
        "requiredDuringSchedulingIgnoredDuringExecution" not in pod["affinity"]["podAntiAffinity"]
    )


def test_cluster_role_grants_exactly_the_operator_verbs(helm: Helm) -> None:
    rules = only(helm.render(), "ClusterRole")["rules"]
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    expected = {("", "pods", v) for v in ("get", "list", "watch")}
    expected |= {("", "pods/binding", "create"), ("", "pods/eviction", "create")}
    expected |= {("", "pods/status", "patch")}
    expected |= {(g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch")}
    expected |= {("", "nodes", v) for v in ("get", "list", "watch")}
    for kind in ("acceleratorpools", "powerbudgets"):
        expected |= {("wattsched.io", kind, v) for v in ("get", "list", "watch")}
        expected |= {("wattsched.io", f"{kind}/status", v) for v in ("get", "patch", "update")}
    assert granted == expected
    assert all("resourceNames" not in rule for rule in rules)
    assert all("*" not in rule["verbs"] + rule["resources"] for rule in rules)


def test_lease_role_is_namespaced_and_limited_to_the_named_lease(helm: Helm) -> None:
    objects = helm.render(values={"leaderElection.leaseName": "my-lease"})
    role = only(objects, "Role")
    assert role["metadata"]["namespace"] == "wattsched-system"
    create, named = role["rules"]
    assert create == {
        "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]
    }  # fmt: skip
    assert named["resourceNames"] == ["my-lease"]
    assert sorted(named["verbs"]) == ["get", "patch", "update"]
    assert (
        "--lease-name=my-lease"
        in only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_unguarded_nodes_are_allowed_only_when_the_admin_says_so(helm: Helm) -> None:
    def unguarded_flags(values: dict[str, Any]) -> list[str]:
        deployment = only(helm.render(values=values, include_crds=False), "Deployment")
        args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        return [arg for arg in args if "unguarded" in arg]

    assert unguarded_flags({"allowUnguardedNodes": True}) == ["--allow-unguarded-nodes"]
    assert unguarded_flags({}) == []
    assert unguarded_flags({"allowUnguardedNodes": False}) == []


def test_optional_objects_render_only_when_enabled(helm: Helm) -> None:
    objects = helm.render(values=all_features_on())
    monitor = only(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    dashboard = only(objects, "ConfigMap")
    assert "wattsched_budget_committed_watts" in dashboard["data"]["wattsched.json"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert len(by_kind(objects, "PriorityClass")) == 3
    defaults = {obj["kind"] for obj in helm.render()}
    assert not defaults & {"ServiceMonitor", "ConfigMap", "PriorityClass"}


def test_crds_come_from_the_chart_crds_folder_not_templates(helm: Helm) -> None:
    with_crds = by_kind(helm.render(include_crds=True), "CustomResourceDefinition")
    without = by_kind(helm.render(include_crds=False), "CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in with_crds) == [
        "acceleratorpools.wattsched.io",
        "powerbudgets.wattsched.io",
    ]
    assert without == []


# --- the API server accepts every rendered object ------------------------------------------


@pytest.fixture(scope="module")
def dry_run_namespace(admin: Kubectl) -> Iterator[str]:
    name = f"helm-dry-run-{uuid.uuid4().hex[:6]}"
    admin.run("create", "namespace", name)
    try:
        yield name
    finally:
        admin.run("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="module")
def service_monitor_crd(admin: Kubectl) -> Iterator[None]:
    """A minimal stand-in for prometheus-operator's ServiceMonitor CRD (kept if it existed)."""
    existed = admin.exists("crd", SERVICE_MONITOR_CRD)
    if not existed:
        admin.apply(
            [
                {
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition",
                    "metadata": {"name": SERVICE_MONITOR_CRD},
                    "spec": {
                        "group": "monitoring.coreos.com",
                        "scope": "Namespaced",
                        "names": {
                            "kind": "ServiceMonitor",
                            "listKind": "ServiceMonitorList",
                            "plural": "servicemonitors",
                            "singular": "servicemonitor",
                        },
                        "versions": [
                            {
                                "name": "v1",
                                "served": True,
                                "storage": True,
                                "schema": {
                                    "openAPIV3Schema": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    }
                                },
                            }
                        ],
                    },
                }
            ]
        )
        admin.run("wait", "--for=condition=Established", f"crd/{SERVICE_MONITOR_CRD}")
    try:
        yield
    finally:
        if not existed:
            admin.run("delete", "crd", SERVICE_MONITOR_CRD, "--ignore-not-found")


@pytest.mark.parametrize(
    "values", [{}, all_features_on()], ids=["default-values", "all-features-on"]
)
def test_every_rendered_object_is_accepted_by_the_api_server(
    helm: Helm,
    admin: Kubectl,
    dry_run_namespace: str,
    service_monitor_crd: None,
    values: dict[str, Any],
) -> None:
    objects = helm.render("dry-run", dry_run_namespace, values)
    # CRDs first, as helm installs them, so the server knows their kinds.
    crds = by_kind(objects, "CustomResourceDefinition")
    rest = [obj for obj in objects if obj["kind"] != "CustomResourceDefinition"]
    for batch in (crds, rest):
        out = admin.apply(batch, "--dry-run=server", "--server-side", "--field-manager=helm-test")
        accepted = [line for line in out.splitlines() if "(server dry run)" in line]
        assert len(accepted) == len(batch), out


def test_operator_pod_is_admitted_under_pod_security_restricted(helm: Helm, admin: Kubectl) -> None:
    """The Deployment's pod template, as a Pod, passes PodSecurity admission in enforce mode."""
    namespace = f"helm-restricted-{uuid.uuid4().hex[:6]}"
    admin.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": namespace,
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                    },
                },
            }
        ]
    )
    try:
        objects = helm.render("pss", namespace, include_crds=False)
        service_account = only(objects, "ServiceAccount")
        admin.apply([service_account])
        template = only(objects, "Deployment")["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pss-check", "namespace": namespace, **template["metadata"]},
            "spec": template["spec"],
        }
        account = service_account["metadata"]["name"]
        wait_for(
            "the ServiceAccount to be visible",
            lambda: admin.exists("serviceaccount", account, "-n", namespace),
        )
        out = admin.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))
        assert "created (server dry run)" in out.stdout
        assert "Warning" not in out.stderr, out.stderr
        # And the check has teeth: the same pod as root is refused.
        pod["spec"]["securityContext"] = {"runAsNonRoot": False}
        pod["spec"]["containers"][0]["securityContext"] = {"runAsNonRoot": False}
        refused = admin.run(
            "create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False
        )
        assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr
    finally:
        admin.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")
