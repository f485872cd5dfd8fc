"""Same scenario, same seed: the same arrivals, the same summary, the same time series."""

from __future__ import annotations

from pathlib import Path

from wattsched.cli import main
from wattsched.sim.run import prepare

SCENARIO = """\
apiVersion: sim.wattsched.io/v1alpha1
kind: Scenario
name: small
start: "2030-01-01T00:00:00Z"
end: "2030-01-08T00:00:00Z"
sampleInterval: 2h
cycleInterval: 10m
seed: 3
site: lab
manifests: [pools.yaml, budgets.yaml]
nodes:
- {pool: gpu, count: 6, devicesPerNode: 8, labels: {wattsched.io/hall: a}}
workload:
  arrivals:
  - {name: serve, kind: inference, pool: gpu, devicesPerPod: 2, ratePerHour: 3, priority: 1000,
     growthPerYear: 2, duration: {distribution: lognormal, mean: 6h, sigma: 0.5}, patience: 1d}
  - {name: train, kind: training, pool: gpu, devicesPerPod: 8, gangSize: 2, ratePerHour: 0.2,
     duration: {distribution: exponential, mean: 1d}, patience: 2d}
"""

POOLS = """\
apiVersion: wattsched.io/v1alpha1
kind: AcceleratorPool
metadata: {name: gpu}
spec:
  nodeSelector: {matchLabels: {wattsched.io/pool: gpu}}
  accelerator: {vendor: nvidia, model: H200-SXM, resourceNames: [nvidia.com/gpu]}
  power: {deviceWatts: 700, idleDeviceWatts: 100, nodeBaseWatts: 1000}
"""

BUDGETS = """\
apiVersion: wattsched.io/v1alpha1
kind: PowerBudget
metadata: {name: hall-a}
spec:
  nodeSelector: {matchLabels: {wattsched.io/hall: a}}
  limit: 40kW
  reservePercent: 5
  enforcement: Shed
  schedule:
  - {from: "2030-01-04T00:00:00Z", limit: 30kW}
"""


def write(tmp_path: Path) -> Path:
    (tmp_path / "pools.yaml").write_text(POOLS)
    (tmp_path / "budgets.yaml").write_text(BUDGETS)
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO)
    return path


def test_same_seed_gives_identical_jobs(tmp_path: Path) -> None:
    path = write(tmp_path)
    assert prepare(path).jobs == prepare(path).jobs
    assert prepare(path, seed=4).jobs != prepare(path).jobs


def test_two_runs_write_identical_summary_and_timeseries(tmp_path: Path) -> None:
    path = write(tmp_path)
    for out in ("a", "b"):
        assert (
            main(
                [
                    "simulate",
                    str(path),
                    "--out",
                    str(tmp_path / out),
                    "--quiet",
                ]
            )
            == 0
        )
    for name in ("summary.json", "timeseries.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_cli_writes_the_report_files(tmp_path: Path, capsys: object) -> None:
    path = write(tmp_path)
    out = tmp_path / "report"
    code = main(["simulate", str(path), "--out", str(out), "--policies", "wattsched,static-cap"])
    assert code == 0
    for name in (
        "report.md",
        "summary.json",
        "timeseries.csv",
        "power.png",
        "utilisation.png",
        "waits.png",
        "evictions.png",
        "queue.png",
    ):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "![" in report and "power.png" in report
    captured = capsys.readouterr()  # type: ignore[attr-defined]
    assert "wattsched" in captured.out and "static-cap" in captured.out
    assert "100%" in captured.err  # the progress bar


def test_wattsched_never_violates_a_budget_when_the_limit_drops(tmp_path: Path) -> None:
    import json

    path = write(tmp_path)
    assert main(["simulate", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    by_policy = {entry["policy"]: entry for entry in summary["policies"]}
    assert by_policy["wattsched"]["violations"] == 0
    assert by_policy["static-cap"]["violations"] == 0
