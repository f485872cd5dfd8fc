"""Scenario validation: a mistake is reported with the field, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wattsched.cli import main
from wattsched.sim.scenario import ScenarioError, parse_duration_seconds, parse_scenario


def base() -> dict[str, Any]:
    return {
        "apiVersion": "sim.wattsched.io/v1alpha1",
        "kind": "Scenario",
        "name": "s",
        "start": "2030-01-01T00:00:00Z",
        "end": "2030-01-02T00:00:00Z",
        "manifests": ["pools.yaml"],
        "nodes": [{"pool": "gpu", "count": 1, "devicesPerNode": 8}],
        "workload": {
            "arrivals": [
                {
                    "name": "serve",
                    "pool": "gpu",
                    "devicesPerPod": 1,
                    "ratePerHour": 1,
                    "duration": {"distribution": "fixed", "mean": "1h"},
                }
            ]
        },
    }


def error_for(document: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(document)
    return str(caught.value)


def test_a_valid_scenario_parses() -> None:
    scenario = parse_scenario(base())
    assert scenario.horizon_seconds == 86400
    assert scenario.sample_seconds == 3600


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("6h", 21600), ("2.5d", 216000), (7, 7)]
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration_seconds(text) == seconds


def test_end_before_start_is_refused_with_both_instants() -> None:
    document = base() | {"end": "2029-12-31T00:00:00Z"}
    message = error_for(document)
    assert "end (2029-12-31T00:00:00Z) must come after start (2030-01-01T00:00:00Z)" in message


def test_a_bad_duration_names_the_field_and_the_syntax() -> None:
    document = base() | {"sampleInterval": "6 hours"}
    message = error_for(document)
    assert "sampleInterval" in message and "'6 hours' is not a duration" in message
    assert "15m" in message


def test_an_unknown_field_is_named() -> None:
    message = error_for(base() | {"sampleIntreval": "1h"})
    assert "sampleIntreval" in message and "Extra inputs are not permitted" in message


def test_inference_gangs_are_refused() -> None:
    document = base()
    document["workload"]["arrivals"][0]["gangSize"] = 4
    message = error_for(document)
    assert "inference jobs are single pods (gangSize 1, got 4)" in message


def test_uniform_duration_needs_bounds() -> None:
    document = base()
    document["workload"]["arrivals"][0]["duration"] = {"distribution": "uniform", "min": "1h"}
    assert "a uniform duration needs min and max" in error_for(document)


def test_a_dip_must_end_after_it_starts() -> None:
    document = base() | {
        "budgetSchedule": [
            {
                "budget": "b",
                "from": "2030-01-01T10:00:00Z",
                "until": "2030-01-01T09:00:00Z",
                "limit": "1MW",
            }
        ]
    }
    assert "until (2030-01-01T09:00:00Z) must come after from" in error_for(document)


def test_the_cli_reports_an_unknown_pool_and_lists_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    (tmp_path / "pools.yaml").write_text(
        "apiVersion: wattsched.io/v1alpha1\nkind: AcceleratorPool\nmetadata: {name: gpu}\n"
        "spec:\n  nodeSelector: {matchLabels: {wattsched.io/pool: gpu}}\n"
        "  accelerator: {vendor: nvidia, model: H200, resourceNames: [nvidia.com/gpu]}\n"
        "  power: {deviceWatts: 700, idleDeviceWatts: 100, nodeBaseWatts: 1000}\n"
    )
    document = base()
    document["nodes"][0]["pool"] = "tpu"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(document))
    assert main(["simulate", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "nodes[0].pool: 'tpu' is not a pool in the manifests (pools: gpu)" in err


def test_an_unknown_policy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "x.yaml", "--out", str(tmp_path), "--policies", "fifo"]) == 2
    assert "unknown policy fifo: choose from wattsched, power-blind, static-cap" in (
        capsys.readouterr().err
    )
