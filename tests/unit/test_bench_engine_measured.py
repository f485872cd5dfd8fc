"""The engine benchmark's measured mode (bench/engine.py --measured), at a tiny size: it runs,
places more than nameplate under the same budgets, and its safety checks hold and can fail."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bench.engine import (
    OVERSUBSCRIPTION_PERCENT,
    SERVING_PERMILLE,
    generate_budgets,
    generate_nodes,
    generate_pods,
    generate_pools,
    main,
    run_measured,
    run_wattsched,
    serving_permille,
    telemetry_readings,
    unsafe_budgets,
)
from wattsched.power.watts import node_watts
from wattsched.scheduling import ClusterState, SchedulerConfig
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

NODES, PODS, SEED = 200, 2_000, 7
CONFIG = SchedulerConfig(min_feasible_nodes=8)
Runs = tuple[dict[str, Any], dict[str, Any]]  # nameplate, measured: the reports as recorded


@pytest.fixture(scope="module")
def runs() -> Runs:
    nodes = generate_nodes(NODES)
    pools = generate_pools()
    budgets = generate_budgets(nodes, pools)
    pods = generate_pods(PODS, nodes, SEED)
    nameplate = run_wattsched(nodes, pools, budgets, pods, 500, CONFIG)
    measured = run_measured(nodes, pools, budgets, pods, 500, CONFIG, SEED)
    return nameplate, measured


def test_measured_places_more_pods_than_nameplate_under_the_same_budgets(
    runs: Runs,
) -> None:
    nameplate, measured = runs
    assert measured["pods_placed"] > nameplate["pods_placed"] > 0
    assert measured["placeable_pods_parking_hid"] == 0


def test_every_budget_stays_within_its_estimate_and_its_worst_case(
    runs: Runs,
) -> None:
    _, measured = runs
    assert measured["unsafe"] == []
    budgets = measured["budgets"]
    assert len(budgets) == 8
    for b in budgets:
        assert b["estimated_watts"] <= b["allocatable_watts"], b["name"]
        assert b["measured_watts"] <= b["allocatable_watts"], b["name"]
        assert b["committed_watts"] <= b["oversubscribed_watts"], b["name"]
        assert b["oversubscribed_watts"] == b["allocatable_watts"] * 130 // 100
    # Measured pays off only because the worst case may pass allocatable: somewhere it does.
    assert any(b["committed_watts"] > b["allocatable_watts"] for b in budgets)


def test_ticks_mix_old_and_recent_pods_until_a_tick_places_nothing(
    runs: Runs,
) -> None:
    _, measured = runs
    ticks = measured["ticks"]
    assert len(ticks) >= 3
    assert ticks[0]["old_pods"] == 0 and ticks[0]["pods_placed"] > 0
    assert ticks[1]["old_pods"] == ticks[0]["pods_placed"]
    assert ticks[1]["pods_placed"] > 0  # room the data freed for recent pods
    assert ticks[-1]["pods_placed"] == 0
    assert sum(t["pods_placed"] for t in ticks) == measured["pods_placed"]


def test_a_reading_shows_base_idle_and_serving_devices_never_above_committed() -> None:
    profile_watts, idle, base = 700, 90, 3000
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", {"pool": "h200"}, profile_watts, idle, base))
    state.upsert_node(gpu_node("n0", {"pool": "h200"}, gpus=8))
    state.upsert_pod(gpu_pod("p0", gpus=3))
    state.assume(("default", "p0"), "n0")
    pool = state.pools["h200"]
    readings = telemetry_readings(state, {"n0": 500})
    serving = idle + (profile_watts - idle) * 500 // 1000
    assert readings == {"n0": base + 5 * idle + 3 * serving}
    assert readings["n0"] < node_watts(pool.profile, 8, 3)


def test_the_serving_draw_is_seeded_and_within_its_range() -> None:
    nodes = generate_nodes(50)
    draw = serving_permille(nodes, SEED)
    assert draw == serving_permille(nodes, SEED)
    assert all(SERVING_PERMILLE[0] <= d <= SERVING_PERMILLE[1] for d in draw.values())


def test_the_safety_check_names_a_budget_whose_worst_case_is_over() -> None:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", {"pool": "h200"}, 700, 90, 0))
    state.upsert_node(gpu_node("n0", {"pool": "h200"}, gpus=8))
    limit = 8 * 90 + 610  # room for one single-GPU pod on nameplate
    over = OVERSUBSCRIPTION_PERCENT
    measured = replace(budget("b", {"pool": "h200"}, limit), admission="Measured")
    state.upsert_budget(replace(measured, max_oversubscription_percent=over))
    assert unsafe_budgets(state) == []
    for i in range(4):  # placed past every Filter: four times the room
        state.upsert_pod(gpu_pod(f"p{i}", gpus=1))
        state.assume(("default", f"p{i}"), "n0")
    problems = unsafe_budgets(state)
    assert any(p.startswith("b: committed") for p in problems)
    assert any(p.startswith("b: estimate") for p in problems)  # no reading: nameplate


def test_main_measured_prints_the_comparison_and_the_targets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--measured", "--nodes", "120", "--pods", "800", "--max-pods", "200"]) == 0
    out = capsys.readouterr().out
    assert "every budget Measured" in out
    assert "more than nameplate under the same budgets" in out
    assert f"maxOversubscriptionPercent: {OVERSUBSCRIPTION_PERCENT}" in out
    assert "no budget's estimate over its allocatable" in out
