"""The Grafana dashboard against the real thing: every panel's every query returns data.

One small Measured site for the module, watched the way a site watches it:

- a telemetry Prometheus (real, built from its Go module) scraping a power exporter that
  publishes dcgm-exporter readings for one node of the H200 pool and none for the other, so
  the budget has a stale node; the operator asks it for measured power (`--prometheus-url`);
- a B200 pool whose telemetry query has a typo that Prometheus rejects: real telemetry errors;
- a PowerBudget with `admission: Measured` over both pools, a pod that binds and one that fits
  nowhere;
- the operator, through the integration tests' harness, and a monitoring Prometheus scraping its
  /metrics: the one the dashboard's `${datasource}` stands for.

Then each panel's targets run as Grafana runs them: the dashboard's template variables get
concrete values (each one a value its own variable query offers), and the expression goes to
/api/v1/query. A panel passes when every target answers at least one sample that is a number
(NaN draws nothing).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_operator_harness import (
    GROUP_PATH,
    REPO,
    ULSAN_SHAPES,
    Namespace,
    OperatorProcess,
    TestSite,
    create_pods,
    install_crds,
    wait_until,
)

from e2e.providers.power_exporter import DCGM, PowerExporter
from e2e.providers.prometheus import LocalPrometheus
from e2e.providers.rest import MERGE, KubeREST

DASHBOARD = REPO / "helm" / "wattsched" / "files" / "dashboard.json"
PANELS: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
H200, B200 = (next(s for s in ULSAN_SHAPES if s.short == short) for short in ("h200", "b200"))
NODES_PER_POOL = 2
TELEMETRY_INTERVAL_SECONDS = 2
# A rate (and so a histogram's quantile) is a number once its counter was scraped twice; the
# telemetry series appear after the first query. Slack for two shared cores.
DATA_TIMEOUT_SECONDS = 30.0
# Grafana's own variables, at the values it would use for a 15 s scrape interval.
GRAFANA_BUILTINS = {"__interval": "15s", "__rate_interval": "1m", "__range": "6h"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$")


@dataclass
class Monitored:
    monitoring: LocalPrometheus  # what the dashboard's ${datasource} stands for
    variables: dict[str, str]  # every variable an expression may name -> its concrete value
    deadline: float  # time.monotonic() by which every panel must have data


def variable_values(monitoring: LocalPrometheus, choices: Mapping[str, str]) -> dict[str, str]:
    """A concrete value for each query variable of the dashboard: the one in `choices`, which
    the variable's own query, run as Grafana runs it, must offer."""
    dashboard = json.loads(DASHBOARD.read_text())
    values = dict(GRAFANA_BUILTINS)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue  # the datasource: only in `uid`s, never in an expression
        name, query = variable["name"], variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        found = _LABEL_VALUES.match(query)
        assert found, f"variable ${name}: the test runs label_values(metric, label), not {query}"
        assert name in choices, f"variable ${name}: the test has no concrete value for it"
        metric, label = found.groups()
        offered = wait_until(
            lambda metric=metric, label=label: monitoring.api(
                f"label/{label}/values", **{"match[]": metric}
            ),
            DATA_TIMEOUT_SECONDS,
            f"variable ${name}'s query {query} to offer values",
        )
        assert choices[name] in offered, f"${name}: {query} offers {offered}, not {choices[name]}"
        # One plain value: names here are [a-z0-9-], nothing a regex or PromQL string escapes.
        values[name] = choices[name]
    return values


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """The expression with Grafana's $var, ${var}, ${var:format} and [[var]] replaced."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        assert name in values, f"${name} in {expr!r} is no variable the test knows ({values})"
        return values[name]

    return _VARIABLE.sub(value, expr)


@pytest.fixture(scope="module")
def monitored(
    control_plane: Any, prometheus_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitored]:
    install_crds(control_plane)
    rest = KubeREST(control_plane.kubeconfig, max_connections=8)
    with ExitStack() as stack:
        # 1. The telemetry store: a real Prometheus scraping the devices' exporter.
        exporter = stack.enter_context(PowerExporter())
        telemetry = stack.enter_context(LocalPrometheus([exporter.target], binary=prometheus_bin))
        site = TestSite(rest)
        stack.callback(site.delete)
        read, unread = site.name("h200-main-0000"), site.name("h200-main-0001")
        exporter.set_node_watts(DCGM, node=read, watts_per_device=[410.0] * H200.devices_per_node)
        # 2. The site: two pools, one Measured budget over both.
        site.add_pool(H200)
        broken = site.add_pool(B200)
        rest.patch(f"{GROUP_PATH}/acceleratorpools/{broken}",
                   {"spec": {"telemetry": {"query": "DCGM_FI_DEV_POWER_USAGE{"}}},
                   content_type=MERGE)  # fmt: skip
        assert site.add_nodes(H200, NODES_PER_POOL) == [read, unread]
        site.add_nodes(B200, NODES_PER_POOL)
        budget = site.add_budget("measured", {}, "100kW", reserve_percent=5)
        rest.patch(f"{GROUP_PATH}/powerbudgets/{budget}", {"spec": {"admission": "Measured"}},
                   content_type=MERGE)  # fmt: skip
        namespace = Namespace(rest, site.name("dashboard"))
        stack.callback(namespace.delete)
        # 3. The operator, asking the telemetry store.
        operator = OperatorProcess(
            Path(control_plane.kubeconfig),
            tmp_path_factory.mktemp("dashboard"),
            scheduler_name=site.scheduler_name,
            lease_namespace=namespace.name,
            extra_args=(
                f"--prometheus-url={telemetry.url}",
                f"--telemetry-interval-seconds={TELEMETRY_INTERVAL_SECONDS}",
            ),
        )
        stack.enter_context(operator)
        operator.wait_ready(leading=True)
        # 4. The monitoring Prometheus, scraping the operator; the pods come after its first
        #    scrape, so that their cycles and attempts fall inside its rate windows.
        monitoring = stack.enter_context(
            LocalPrometheus([f"127.0.0.1:{operator.port}"], binary=prometheus_bin)
        )
        monitoring.wait_for_targets_up()
        create_pods(rest, [
            site.pod("fits", namespace.name, H200.resource, 2),
            site.pod("fits-nowhere", namespace.name, H200.resource, 2 * H200.devices_per_node),
        ])  # fmt: skip
        yield Monitored(
            monitoring,
            variable_values(monitoring, {"budget": budget}),
            time.monotonic() + DATA_TIMEOUT_SECONDS,
        )
        assert operator.alive(), f"the operator died:\n{operator.log_tail()}"


def _drawn(result: list[dict[str, Any]]) -> bool:
    """Whether an instant vector holds a sample Grafana can draw (a number, not NaN)."""
    return any(not math.isnan(float(sample["value"][1])) for sample in result)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@pytest.mark.parametrize("panel", PANELS, ids=[_slug(p["title"]) for p in PANELS])
def test_every_query_of_the_panel_returns_data(panel: dict[str, Any], monitored: Monitored) -> None:
    assert panel["targets"], f"panel {panel['title']!r} has no query"
    queries = {t["refId"]: substitute(t["expr"], monitored.variables) for t in panel["targets"]}
    while True:
        answers = {ref: monitored.monitoring.query(expr) for ref, expr in queries.items()}
        if all(_drawn(result) for result in answers.values()):
            return
        if time.monotonic() > monitored.deadline:
            empty = "\n".join(
                f"  {ref}: {queries[ref]}\n     -> {answers[ref]}"
                for ref in queries
                if not _drawn(answers[ref])
            )
            pytest.fail(f"panel {panel['title']!r}: no data for\n{empty}", pytrace=False)
        time.sleep(0.5)
