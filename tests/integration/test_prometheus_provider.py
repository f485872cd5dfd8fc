"""The measured-power test rig against the real thing: a real Prometheus scraping the test
exporter, read back through the HTTP API the operator will use (DESIGN.md §2b, §6)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.providers.local import port_is_bound
from e2e.providers.power_exporter import (
    DCGM,
    FURIOSA,
    RBLN,
    VENDOR_METRICS,
    DevicePowerMetric,
    PowerExporter,
)
from e2e.providers.prometheus import LocalPrometheus, PrometheusError

Vector = list[dict[str, Any]]


def wait_for_query(
    prometheus: LocalPrometheus,
    promql: str,
    accept: Callable[[Vector], bool],
    timeout_seconds: float = 10.0,
) -> tuple[Vector, float]:
    """Poll an instant query until ``accept`` takes its result; the result and the seconds."""
    started = time.monotonic()
    result: Vector = []
    while time.monotonic() - started < timeout_seconds:
        result = prometheus.query(promql)
        if accept(result):
            return result, time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{promql} still gave {result} after {timeout_seconds}s")


def watts_by(result: Vector, label: str) -> dict[str, float]:
    return {sample["metric"][label]: float(sample["value"][1]) for sample in result}


def selector(metric: DevicePowerMetric, node: str) -> str:
    # The colon in RBLN_DEVICE_STATUS:CARD_POWER is legal in a bare name; __name__ says it
    # just as well and reads the same for every vendor.
    return f'{{__name__="{metric.name}",{metric.node_label}="{node}"}}'


# --- the exporter alone ------------------------------------------------------------------------


def test_exporter_speaks_the_text_format_with_the_vendors_names_and_labels() -> None:
    with PowerExporter() as exporter:
        exporter.set_watts(DCGM, node="gpu-n1", device=1, watts=612.5)
        exporter.set_watts(RBLN, node="npu-r1", device=0, watts=88.0)
        exporter.set_watts(FURIOSA, node="npu-f1", device=3, watts=121.25)
        samples = {
            sample.name: sample
            for family in text_string_to_metric_families(exporter.render())
            for sample in family.samples
        }
    assert set(samples) == {m.name for m in VENDOR_METRICS}
    dcgm = samples["DCGM_FI_DEV_POWER_USAGE"]
    assert dcgm.value == 612.5
    assert dcgm.labels["Hostname"] == "gpu-n1"
    assert dcgm.labels["gpu"] == "1" and dcgm.labels["device"] == "nvidia1"
    assert dcgm.labels["UUID"].startswith("GPU-")
    assert {"pci_bus_id", "modelName"} <= set(dcgm.labels)
    rbln = samples["RBLN_DEVICE_STATUS:CARD_POWER"]
    assert rbln.value == 88.0
    assert rbln.labels["hostname"] == "npu-r1" and rbln.labels["name"] == "rbln0"
    furiosa = samples["furiosa_npu_hw_power"]
    assert furiosa.value == 121.25
    assert furiosa.labels["hostname"] == "npu-f1" and furiosa.labels["device"] == "npu3"
    assert furiosa.labels["label"] == "rms"


def test_exporter_serves_metrics_over_http_on_loopback_only() -> None:
    import urllib.request

    with PowerExporter() as exporter:
        exporter.set_watts(DCGM, node="gpu-n1", device=0, watts=100)
        assert exporter.target.startswith("127.0.0.1:")
        with urllib.request.urlopen(exporter.url, timeout=5) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "DCGM_FI_DEV_POWER_USAGE{" in body and 'Hostname="gpu-n1"' in body
        assert exporter.scrapes == 1
        port = exporter.port
    assert not port_is_bound(port)


# --- through Prometheus ------------------------------------------------------------------------


@pytest.mark.parametrize("metric", VENDOR_METRICS, ids=[m.vendor for m in VENDOR_METRICS])
def test_prometheus_returns_the_watts_set_for_a_node(
    prometheus: LocalPrometheus, power_exporter: PowerExporter, metric: DevicePowerMetric
) -> None:
    power_exporter.set_node_watts(metric, node="n1", watts_per_device=[612.5, 598.0])
    power_exporter.set_node_watts(metric, node="n2", watts_per_device=[150.0])

    result, _ = wait_for_query(prometheus, selector(metric, "n1"), lambda r: len(r) == 2)
    assert sorted(float(s["value"][1]) for s in result) == [598.0, 612.5]
    assert {s["metric"]["job"] for s in result} == {"power"}

    per_node, _ = wait_for_query(
        prometheus,
        f'sum by ({metric.node_label}) ({{__name__="{metric.name}"}})',
        lambda r: len(r) == 2,
    )
    assert watts_by(per_node, metric.node_label) == {"n1": 1210.5, "n2": 150.0}


def test_a_changed_reading_shows_up_after_the_next_scrape(
    prometheus: LocalPrometheus, power_exporter: PowerExporter
) -> None:
    power_exporter.set_watts(DCGM, node="n1", device=0, watts=300)
    wait_for_query(prometheus, selector(DCGM, "n1"), lambda r: watts_by(r, "gpu") == {"0": 300})

    power_exporter.set_watts(DCGM, node="n1", device=0, watts=700)
    _, seconds = wait_for_query(
        prometheus, selector(DCGM, "n1"), lambda r: watts_by(r, "gpu") == {"0": 700}
    )
    # One scrape interval (1 s) plus the query's own delay; 5 s leaves room for a busy CI.
    assert seconds < 5


def test_the_node_label_is_whatever_the_exporter_release_calls_it(
    prometheus: LocalPrometheus, power_exporter: PowerExporter
) -> None:
    newer_dcgm = DCGM.with_node_label("hostname")
    power_exporter.set_watts(newer_dcgm, node="n1", device=0, watts=420)

    result, _ = wait_for_query(prometheus, selector(newer_dcgm, "n1"), lambda r: len(r) == 1)
    assert "Hostname" not in result[0]["metric"]
    assert prometheus.query('DCGM_FI_DEV_POWER_USAGE{Hostname="n1"}') == []


def test_a_node_whose_readings_stop_drops_out_of_instant_queries(
    prometheus: LocalPrometheus, power_exporter: PowerExporter
) -> None:
    power_exporter.set_node_watts(FURIOSA, node="n1", watts_per_device=[120, 130])
    power_exporter.set_node_watts(FURIOSA, node="n2", watts_per_device=[140])
    wait_for_query(prometheus, 'furiosa_npu_hw_power{label="rms"}', lambda r: len(r) == 3)

    assert power_exporter.remove(node="n1") == 2
    # Prometheus writes staleness markers for series a scrape no longer has.
    result, _ = wait_for_query(
        prometheus, 'furiosa_npu_hw_power{label="rms"}', lambda r: len(r) == 1
    )
    assert result[0]["metric"]["hostname"] == "n2"


def test_a_bad_query_says_what_prometheus_objected_to(prometheus: LocalPrometheus) -> None:
    with pytest.raises(PrometheusError, match="bad_data"):
        prometheus.query("sum by (")


def test_prometheus_listens_on_loopback_and_stop_frees_port_and_folder(
    prometheus_bin: Path, power_exporter: PowerExporter
) -> None:
    server = LocalPrometheus([power_exporter.target], binary=prometheus_bin)
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        build = server.api("status/buildinfo")
        assert build["version"].startswith("3.")
        workdir, port = server.workdir, server.port
        assert workdir is not None and (workdir / "data").is_dir()
        assert port_is_bound(port)
    assert not port_is_bound(port)
    assert not workdir.exists()
    server.stop()  # idempotent
