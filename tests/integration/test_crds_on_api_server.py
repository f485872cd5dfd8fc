"""The real API server enforces every rule of the API, with messages an admin can act on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def crds_installed(control_plane: Any) -> Any:
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/acceleratorpools.wattsched.io", "crd/powerbudgets.wattsched.io",
    )  # fmt: skip
    return control_plane


def apply(plane: Any, manifest: dict[str, Any]) -> tuple[int, str]:
    proc = plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(manifest), check=False
    )
    return proc.returncode, proc.stderr + proc.stdout


def budget(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"nodeSelector": {"matchLabels": {"x": "y"}}, "limit": "41MW"}
    body.update(spec)
    return {
        "apiVersion": "wattsched.io/v1alpha1",
        "kind": "PowerBudget",
        "metadata": {"name": "invalid-budget"},
        "spec": body,
    }


def pool(accelerator: dict[str, Any] | None = None, **power: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"deviceWatts": 700, "idleDeviceWatts": 90, "nodeBaseWatts": 3000}
    body.update(power)
    return {
        "apiVersion": "wattsched.io/v1alpha1",
        "kind": "AcceleratorPool",
        "metadata": {"name": "invalid-pool"},
        "spec": {
            "nodeSelector": {"matchLabels": {"wattsched.io/pool": "p"}},
            "accelerator": accelerator
            or {"vendor": "nvidia", "model": "H200-SXM", "resourceNames": ["nvidia.com/gpu"]},
            "power": body,
        },
    }


def test_the_ulsan_samples_are_accepted(crds_installed: Any) -> None:
    for name in ("pools.yaml", "budgets.yaml"):
        crds_installed.kubectl("apply", "-f", str(REPO / "examples" / "ulsan" / name))
    names = crds_installed.kubectl("get", "pb", "-o", "name").stdout.split()
    assert "powerbudget.wattsched.io/ulsan-phase-1" in names


def test_the_api_server_applies_defaults_a_safe_reserve_pue_one_and_admit(
    crds_installed: Any,
) -> None:
    proc = crds_installed.kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(budget())
    )
    spec = json.loads(proc.stdout)["spec"]
    assert (spec["reservePercent"], spec["pue"], spec["enforcement"]) == (5, "1.0", "Admit")


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("empty-selector", budget(nodeSelector={}), "nodeSelector must not be empty"),
    ("empty-labels", budget(nodeSelector={"matchLabels": {}}), "nodeSelector must not be empty"),
    ("limit-no-unit", budget(limit="41"), "spec.limit"),
    ("limit-lowercase", budget(limit="41mw"), "spec.limit"),
    ("limit-zero", budget(limit="0MW"), "limit must be greater than zero"),
    ("limit-fraction-watts", budget(limit="1.5W"), "spec.limit"),
    ("reserve-too-high", budget(reservePercent=51), "spec.reservePercent"),
    ("reserve-eighty", budget(reservePercent=80), "should be less than or equal to 50"),
    ("limit-with-space", budget(limit="41 MW"), "spec.limit"),
    ("limit-negative", budget(limit="-41MW"), "spec.limit"),
    ("unknown-field", budget(limits="41MW"), 'unknown field "spec.limits"'),
    (
        "no-limit",
        {**budget(), "spec": {"nodeSelector": {"matchLabels": {"x": "y"}}}},
        "spec.limit: Required value",
    ),
    ("reserve-negative", budget(reservePercent=-1), "spec.reservePercent"),
    ("pue-too-low", budget(pue="0.9"), "pue must be between 1.0 and 3.0"),
    ("pue-too-high", budget(pue="3.5"), "pue must be between 1.0 and 3.0"),
    ("pue-not-number", budget(pue="high"), "spec.pue"),
    ("enforcement-unknown", budget(enforcement="Evict"), 'Unsupported value: "Evict"'),
    (
        "schedule-decreasing",
        budget(
            schedule=[
                {"from": "2029-02-01T00:00:00Z", "limit": "103MW"},
                {"from": "2028-02-01T00:00:00Z", "limit": "50MW"},
            ]
        ),
        "strictly increasing",
    ),
    (
        "schedule-duplicate",
        budget(
            schedule=[
                {"from": "2029-02-01T00:00:00Z", "limit": "103MW"},
                {"from": "2029-02-01T00:00:00Z", "limit": "50MW"},
            ]
        ),
        "distinct",
    ),
    (
        "schedule-bad-instant",
        budget(schedule=[{"from": "February 2029", "limit": "103MW"}]),
        "schedule[0].from",
    ),
    (
        "schedule-zero-limit",
        budget(schedule=[{"from": "2029-02-01T00:00:00Z", "limit": "0kW"}]),
        "limit must be greater than zero",
    ),
    (
        "limit-above-100-gigawatts",
        budget(limit="99999GW"),
        "limit 99999GW is above 100GW, the largest a PowerBudget accepts: check the unit",
    ),
    (
        "limit-above-100-gigawatts-in-megawatts",
        budget(limit="100001MW"),
        "limit 100001MW is above 100GW, the largest a PowerBudget accepts",
    ),
    (
        "schedule-limit-above-100-gigawatts",
        budget(schedule=[{"from": "2029-02-01T00:00:00Z", "limit": "101GW"}]),
        "limit 101GW is above 100GW, the largest a PowerBudget accepts",
    ),
    (
        "selector-in-without-values",
        budget(nodeSelector={"matchExpressions": [{"key": "hall", "operator": "In"}]}),
        "values must be non-empty for operator In",
    ),
    ("idle-above-device", pool(idleDeviceWatts=800), "idleDeviceWatts must not exceed"),
    ("device-watts-zero", pool(deviceWatts=0, idleDeviceWatts=0), "spec.power.deviceWatts"),
    ("device-watts-huge", pool(deviceWatts=6000), "spec.power.deviceWatts"),
    ("base-watts-huge", pool(nodeBaseWatts=60000), "spec.power.nodeBaseWatts"),
    (
        "vendor-unknown",
        pool({"vendor": "acme", "model": "X", "resourceNames": ["acme.io/x"]}),
        'Unsupported value: "acme"',
    ),
    (
        "no-resource-names",
        pool({"vendor": "nvidia", "model": "H200", "resourceNames": []}),
        "spec.accelerator.resourceNames",
    ),
    (
        "model-too-long",
        pool({"vendor": "nvidia", "model": "x" * 64, "resourceNames": ["nvidia.com/gpu"]}),
        "spec.accelerator.model",
    ),
    # -- measured power (DESIGN.md §2b) -------------------------------------------------------
    ("admission-unknown", budget(admission="Metered"), 'Unsupported value: "Metered"'),
    (
        "measured-without-measured-admission",
        budget(measured={"window": "15m"}),
        "measured settings apply only with admission: Measured",
    ),
    (
        "release-not-below-cap",
        budget(admission="Measured", measured={"capAtPercent": 90, "releaseAtPercent": 90}),
        "releaseAtPercent must be below capAtPercent",
    ),
    (
        "window-too-short",
        budget(admission="Measured", measured={"window": "30s"}),
        "must be from 1m to 24h",
    ),
    (
        "window-not-a-duration",
        budget(admission="Measured", measured={"window": "15 minutes"}),
        "spec.measured.window",
    ),
    (
        "stale-after-too-long",
        budget(admission="Measured", measured={"staleAfter": "2h"}),
        "must be from 10s to 1h",
    ),
    (
        "oversubscription-too-high",
        budget(admission="Measured", measured={"maxOversubscriptionPercent": 150}),
        "spec.measured.maxOversubscriptionPercent",
    ),
    (
        "percentile-too-low",
        budget(admission="Measured", measured={"percentile": 10}),
        "spec.measured.percentile",
    ),
    (
        "cap-floor-above-device",
        {**pool(), "spec": {**pool()["spec"], "capping": {"minDeviceWatts": 800}}},
        "capping.minDeviceWatts must not exceed power.deviceWatts",
    ),
    (
        "telemetry-node-label-not-a-label",
        {**pool(), "spec": {**pool()["spec"], "telemetry": {"query": "x", "nodeLabel": "a-b"}}},
        "spec.telemetry.nodeLabel",
    ),
]


def test_a_measured_budget_and_a_pool_with_telemetry_and_capping_are_accepted_with_defaults(
    crds_installed: Any,
) -> None:
    measured = budget(admission="Measured", measured={"maxOversubscriptionPercent": 20})
    proc = crds_installed.kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(measured)
    )
    spec = json.loads(proc.stdout)["spec"]
    assert spec["measured"] == {
        "window": "15m", "percentile": 99, "staleAfter": "2m", "maxOversubscriptionPercent": 20,
        "capAtPercent": 95, "releaseAtPercent": 90, "shedAfterSeconds": 30,
    }  # fmt: skip
    capped = pool()
    capped["metadata"]["name"] = "capped-pool"
    capped["spec"]["capping"] = {"minDeviceWatts": 200}
    capped["spec"]["telemetry"] = {"query": 'DCGM_FI_DEV_POWER_USAGE{job="dcgm"}'}
    code, output = apply(crds_installed, capped)
    assert code == 0, output


@pytest.mark.parametrize(("manifest", "message"), [(m, msg) for _, m, msg in INVALID],
                         ids=[case for case, _, _ in INVALID])  # fmt: skip
def test_an_invalid_object_is_refused_by_the_api_server_with_a_clear_message(
    crds_installed: Any, manifest: dict[str, Any], message: str
) -> None:
    code, output = apply(crds_installed, manifest)
    assert code != 0, f"the API server accepted an invalid object: {output}"
    assert message in output, output


@pytest.mark.parametrize("limit", ["100GW", "100000MW", "100000000kW", "100000000000W"])
def test_a_limit_of_exactly_100_gigawatts_is_accepted_in_any_unit(
    crds_installed: Any, limit: str
) -> None:
    manifest = budget(limit=limit, schedule=[{"from": "2029-02-01T00:00:00Z", "limit": limit}])
    code, output = apply(crds_installed, manifest)
    assert code == 0, f"the API server refused a limit of exactly 100GW: {output}"


def test_kubectl_get_shows_the_printer_columns(crds_installed: Any) -> None:
    for name in ("pools.yaml", "budgets.yaml"):
        crds_installed.kubectl("apply", "-f", str(REPO / "examples" / "ulsan" / name))
    pb = crds_installed.kubectl("get", "pb").stdout.splitlines()[0].split()
    ap = crds_installed.kubectl("get", "ap").stdout.splitlines()[0].split()
    assert pb == ["NAME", "LIMIT", "COMMITTED", "HEADROOM", "ENFORCEMENT", "AGE"]
    assert ap == ["NAME", "VENDOR", "MODEL", "NODES", "DEVICES", "ALLOCATED", "POWER", "AGE"]
    both = crds_installed.kubectl("get", "wattsched").stdout
    assert "powerbudget.wattsched.io/ulsan-site" in both
    assert "acceleratorpool.wattsched.io/h200-hall-a" in both


def test_status_is_written_only_through_the_status_subresource(crds_installed: Any) -> None:
    manifest = budget()
    manifest["metadata"]["name"] = "status-only-through-subresource"
    manifest["status"] = {"committedWatts": 1}
    crds_installed.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    stored = yaml.safe_load(
        crds_installed.kubectl("get", "pb", manifest["metadata"]["name"], "-o", "yaml").stdout
    )
    assert "status" not in stored or "committedWatts" not in stored["status"]
    crds_installed.kubectl(
        "patch", "pb", manifest["metadata"]["name"], "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"committedWatts": 42}}),
    )  # fmt: skip
    stored = yaml.safe_load(
        crds_installed.kubectl("get", "pb", manifest["metadata"]["name"], "-o", "yaml").stdout
    )
    assert stored["status"]["committedWatts"] == 42
    crds_installed.kubectl("delete", "pb", manifest["metadata"]["name"])
