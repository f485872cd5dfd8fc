"""Chart files that need no helm binary to check: metadata, values and the dashboard."""

import json
import re
from pathlib import Path

import yaml

from wattsched import __version__
from wattsched.metrics import Metrics

CHART = Path(__file__).resolve().parents[2] / "helm" / "wattsched"


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == __version__ == "0.1.0"


def test_default_values_are_production_shaped() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["replicas"] == 2
    assert values["schedulerName"] == "wattsched"
    assert values["metrics"]["serviceMonitor"]["enabled"] is False
    assert values["grafanaDashboard"]["enabled"] is False
    assert values["priorityClasses"]["enabled"] is False
    pod, container = values["podSecurityContext"], values["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert values["resources"]["requests"] and values["resources"]["limits"]


def test_values_schema_is_closed_and_knows_every_default_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) <= set(schema["properties"]), set(values) - set(schema["properties"])
    assert schema["properties"]["replicas"]["minimum"] == 1


def test_unguarded_nodes_are_refused_unless_an_admin_sets_a_boolean_to_allow_them() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["allowUnguardedNodes"] is False
    assert schema["properties"]["allowUnguardedNodes"]["type"] == "boolean"


def test_dashboard_plots_budgets_headroom_queue_attempts_and_cycle_time() -> None:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for metric in (
        "wattsched_budget_committed_watts",
        "wattsched_budget_limit_watts",
        "wattsched_budget_headroom_watts",
        "wattsched_pending_pods",
        "wattsched_scheduling_attempts_total",
        "wattsched_scheduling_cycle_duration_seconds_bucket",
    ):
        assert metric in exprs, f"no dashboard panel queries {metric}"
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_dashboard_plots_measured_and_estimated_power_stale_nodes_and_telemetry_health() -> None:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for metric in (
        "wattsched_budget_measured_watts",
        "wattsched_budget_estimated_watts",
        "wattsched_budget_allocatable_watts",
        "wattsched_budget_stale_nodes",
        "wattsched_telemetry_query_duration_seconds_bucket",
        "wattsched_telemetry_errors_total",
    ):
        assert metric in exprs, f"no dashboard panel queries {metric}"


def test_every_dashboard_query_names_a_series_the_operator_exports() -> None:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    exported = {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            unknown = set(re.findall(r"\bwattsched_\w+", target["expr"])) - exported
            assert not unknown, f"panel {panel['title']!r} queries {unknown}, not exported"


def test_every_dashboard_panel_and_query_uses_the_templated_datasource() -> None:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    templated = {"type": "prometheus", "uid": "${datasource}"}
    for panel in dashboard["panels"]:
        assert panel["datasource"] == templated, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == templated, (panel["title"], target["refId"])
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs), f"panel {panel['title']!r} repeats a refId: {refs}"
