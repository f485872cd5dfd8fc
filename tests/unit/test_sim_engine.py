"""The simulator drives the real engine: hand-computable scenarios checked exactly."""

from __future__ import annotations

import textwrap
from pathlib import Path

from wattsched.sim.loop import Simulation
from wattsched.sim.metrics import summarize
from wattsched.sim.policies import POLICIES, parse_policies
from wattsched.sim.run import prepare, simulate

POOLS = """\
apiVersion: wattsched.io/v1alpha1
kind: AcceleratorPool
metadata: {name: gpu}
spec:
  nodeSelector: {matchLabels: {wattsched.io/pool: gpu}}
  accelerator: {vendor: nvidia, model: H200-SXM, resourceNames: [nvidia.com/gpu]}
  power: {deviceWatts: 700, idleDeviceWatts: 100, nodeBaseWatts: 1000}
"""

# Two 8-GPU nodes idle at 2 x (1000 + 8 x 100) = 3600 W. Each allocated GPU adds 600 W, so a
# 9600 W limit (no reserve) fits exactly (9600 - 3600) / 600 = 10 GPUs.
BUDGETS = """\
apiVersion: wattsched.io/v1alpha1
kind: PowerBudget
metadata: {name: room}
spec:
  nodeSelector: {matchLabels: {wattsched.io/site: lab}}
  limit: 9600W
  reservePercent: 0
  enforcement: Shed
"""


def write_scenario(tmp_path: Path, extra: str = "", arrivals: str | None = None) -> Path:
    (tmp_path / "pools.yaml").write_text(POOLS)
    (tmp_path / "budgets.yaml").write_text(BUDGETS)
    if arrivals is None:
        arrivals = """\
          trace: trace.csv
        """
        rows = [
            "submitted,name,kind,pool,resource,devices_per_pod,gang_size,duration,priority,patience"
        ]
        # Eleven 1-GPU pods at 00:00; pod i runs (i + 1) hours, so pod 0 finishes first, at 01:00.
        for i in range(11):
            rows.append(f"2030-01-01T00:00:00Z,job-{i:02d},inference,gpu,,1,1,{i + 1}h,0,")
        (tmp_path / "trace.csv").write_text("\n".join(rows) + "\n")
    text = textwrap.dedent(
        """\
        apiVersion: sim.wattsched.io/v1alpha1
        kind: Scenario
        name: tiny
        start: "2030-01-01T00:00:00Z"
        end: "2030-01-02T00:00:00Z"
        sampleInterval: 1h
        site: lab
        manifests: [pools.yaml, budgets.yaml]
        nodes:
        - {pool: gpu, count: 2, devicesPerNode: 8}
        """
    )
    text += textwrap.dedent(extra)
    text += "workload:\n" + textwrap.indent(textwrap.dedent(arrivals), "  ")
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_budget_that_fits_ten_devices_runs_ten_and_the_eleventh_waits_for_a_completion(
    tmp_path: Path,
) -> None:
    inputs = prepare(write_scenario(tmp_path))
    comparison = simulate(inputs, parse_policies("wattsched"), record_starts=True)
    run = comparison.runs[0]
    starts = dict(run.start_log)
    assert [starts[f"job-{i:02d}"] for i in range(10)] == [0] * 10
    assert starts["job-10"] == 3600  # the instant job-00 (1 h) completes
    assert run.waits_seconds.count(0) == 10 and 3600 in run.waits_seconds
    summary = summarize(run)
    assert summary.violations == 0
    assert summary.jobs_placed == 11
    # Between 00:00 and 01:00 the room is full (9600 W) while job-10 waits: nothing stranded.
    assert run.stranded_watt_seconds == 0


def test_power_blind_runs_all_eleven_at_once_and_the_violation_is_measured(
    tmp_path: Path,
) -> None:
    inputs = prepare(write_scenario(tmp_path))
    run = simulate(inputs, parse_policies("power-blind"), record_starts=True).runs[0]
    assert {start for _, start in run.start_log} == {0}
    budget = run.budgets["room"]
    assert budget.episodes == 1
    assert budget.worst_overshoot_watts == 600  # 11 GPUs: 3600 + 11 x 600 = 10200 W
    assert budget.over_seconds == 3600  # until job-00 completes at 01:00


def test_static_cap_cordons_until_peak_fits_and_strands_the_rest(tmp_path: Path) -> None:
    inputs = prepare(write_scenario(tmp_path))
    run = simulate(inputs, parse_policies("static-cap"), record_starts=True).runs[0]
    # Peak of both nodes: 2 x (1000 + 8 x 700) = 13200 W > 9600 W; cordoning one (it keeps
    # drawing 1800 W idle) leaves 6600 + 1800 = 8400 W: one node, 8 GPUs, for 11 pods.
    starts = sorted(start for _, start in run.start_log)
    assert starts[:8] == [0] * 8
    assert starts[8:] == [3600, 7200, 10800]  # one GPU frees at 01:00, 02:00, 03:00
    assert run.budgets["room"].episodes == 0
    # 00:00-01:00: 8400 W drawn of 9600 W allocatable, 3 pods (1800 W) waiting: 1200 W stranded.
    assert run.stranded_watt_seconds >= 1200 * 3600
    assert summarize(run).stranded_mwh > 0


def test_a_demand_response_dip_sheds_to_the_new_limit_and_requeues(tmp_path: Path) -> None:
    extra = """\
    budgetSchedule:
    - {budget: room, from: "2030-01-01T00:30:00Z", until: "2030-01-01T00:45:00Z", limit: 7200W}
    """
    inputs = prepare(write_scenario(tmp_path, extra))
    run = simulate(inputs, parse_policies("wattsched"), record_starts=True).runs[0]
    # 7200 W fits (7200 - 3600) / 600 = 6 GPUs: 4 of the 10 running pods are shed at 00:30.
    assert run.evictions == {"Shed": 4}
    assert run.budgets["room"].episodes == 0
    restarts = [start for name, start in run.start_log if start == 45 * 60]
    assert len(restarts) == 4  # back when the dip ends, with what was left of their run


def test_engine_ledger_and_the_meter_agree(tmp_path: Path) -> None:
    inputs = prepare(write_scenario(tmp_path))
    scenario = inputs.scenario
    simulation = Simulation(
        inputs.site,
        inputs.jobs,
        POLICIES["wattsched"],
        scenario.horizon_seconds,
        scenario.sample_seconds,
        scenario.cycle_seconds,
    )
    simulation.run()
    assert simulation.meter.it_watts["room"] == simulation.state.budget_usage("room").it_watts


def test_training_gang_waits_until_it_fits_whole(tmp_path: Path) -> None:
    arrivals = """\
    arrivals:
    - name: gang
      kind: training
      pool: gpu
      devicesPerPod: 4
      gangSize: 3
      ratePerHour: 0.5
      duration: {distribution: fixed, mean: 2h}
    """
    inputs = prepare(write_scenario(tmp_path, arrivals=arrivals))
    run = simulate(inputs, parse_policies("wattsched"), record_starts=True).runs[0]
    # A gang of 3 x 4 GPUs needs 12 GPUs' worth of watts: never fits 10, never starts.
    assert run.jobs_submitted > 0
    assert run.jobs_started == 0
    assert run.pods_started == 0
