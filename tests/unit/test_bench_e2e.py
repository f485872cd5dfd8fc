"""The end-to-end benchmark's pure helpers: inputs, the independent power check, /proc parsing."""

from __future__ import annotations

from typing import Any

from bench.e2e import (
    FULL_FLEET_NODES,
    PHASE_ADMITS,
    BudgetSpec,
    PoolSpec,
    PowerProfile,
    budget_manifest,
    check_power,
    fleet_pools,
    load_pool_profiles,
    make_workload,
    parse_stat_cpu_ticks,
    plan_budgets,
    size_mix_share,
    split_proportionally,
)

H200 = PowerProfile(device_watts=700, idle_device_watts=90, node_base_watts=4500)


def _node(name: str, pool: str, devices: int, hall: str = "a") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"wattsched.io/pool": pool, "hall": hall}},
        "status": {"allocatable": {"nvidia.com/gpu": str(devices)}},
    }


def _pod(node: str, devices: int, phase: str = "Pending") -> dict[str, Any]:
    return {
        "spec": {
            "nodeName": node,
            "containers": [{"resources": {"requests": {"nvidia.com/gpu": str(devices)}}}],
        },
        "status": {"phase": phase},
    }


def _pool() -> PoolSpec:
    return PoolSpec("h200", {"wattsched.io/pool": "h200"}, ("nvidia.com/gpu",), H200)


def test_split_proportionally_sums_to_the_total_and_follows_the_weights() -> None:
    assert split_proportionally(10, [1, 1, 2]) == [3, 2, 5]
    counts = split_proportionally(10_000, [1808, 1288, 1936, 1936, 2064])
    assert sum(counts) == 10_000
    assert counts[4] > counts[0] > counts[1]


def test_the_workload_is_the_same_for_every_scheduler_and_fits_each_pool_node() -> None:
    pools = fleet_pools(1000 / FULL_FLEET_NODES, load_pool_profiles())
    first, second = make_workload(pools, 2000), make_workload(pools, 2000)
    assert first == second
    assert len({pod.name for pod in first}) == 2000
    per_node = {p.name: p.devices_per_node for p in pools}
    assert all(1 <= pod.devices <= per_node[pod.pool] for pod in first)
    assert {pod.pool for pod in first} == set(per_node)


def test_phase_one_admits_a_little_less_than_the_pods_ask_and_the_halls_leave_room() -> None:
    pools = fleet_pools(5000 / FULL_FLEET_NODES, load_pool_profiles())
    workload = make_workload(pools, 10_000)
    budgets = {b.name: b for b in plan_budgets(pools, workload)}
    idle = sum(p.idle_watts for p in pools)
    step = sum(
        pod.devices * next(p for p in pools if p.name == pod.pool).profile.delta_watts_per_device
        for pod in workload
    )
    phase = budgets["bench-phase-1"]
    assert idle + PHASE_ADMITS * step <= phase.allocatable_watts < idle + step
    for name in ("bench-hall-a", "bench-hall-b", "bench-site"):
        assert budgets[name].allocatable_watts > 0


def test_power_is_recomputed_from_bound_pods_and_pool_profiles() -> None:
    nodes = [_node("n1", "h200", 8), _node("n2", "h200", 8)]
    pods = [_pod("n1", 8), _pod("n2", 2), _pod("n2", 1, phase="Succeeded"), _pod("", 8)]
    n1 = 4500 + 8 * 700
    n2 = 4500 + 2 * 700 + 6 * 90
    budget = BudgetSpec("hall-a", {"hall": "a"}, limit_watts=n1 + n2, reserve_percent=0)
    check = check_power(nodes, pods, [_pool()], [budget])
    assert check.budgets[0]["committed_watts"] == n1 + n2
    assert check.violations == 0 and check.device_overcommits == 0


def test_a_budget_over_its_allocatable_is_a_violation_by_the_excess() -> None:
    nodes = [_node("n1", "h200", 8)]
    committed = 4500 + 8 * 700
    budget = BudgetSpec("hall-a", {"hall": "a"}, limit_watts=10_000, reserve_percent=10)
    check = check_power(nodes, [_pod("n1", 8)], [_pool()], [budget])
    assert check.violations == 1
    assert check.over_watts == committed - 9_000


def test_an_overrun_that_rounding_each_node_would_hide_is_a_violation() -> None:
    # Ten full H200 nodes at PUE 1.001: 10,100 W IT each, 10,110.1 W facility each. Floored
    # per node that is 10 x 10,110 = 101,100 W, within an allocatable of 101,100 W; summed
    # exactly it is 101,101 W, one watt over.
    nodes = [_node(f"n{i}", "h200", 8) for i in range(10)]
    pods = [_pod(f"n{i}", 8) for i in range(10)]
    budget = BudgetSpec("hall-a", {"hall": "a"}, 101_100, reserve_percent=0, pue_milli=1001)
    check = check_power(nodes, pods, [_pool()], [budget])
    assert check.violations == 1
    assert check.budgets[0]["committed_watts"] == 101_101
    assert check.over_watts == 1


def test_a_fraction_of_a_watt_over_is_a_violation_of_at_least_one_watt() -> None:
    # One node: 10,110.1 W facility against 10,110 W allocatable.
    budget = BudgetSpec("hall-a", {"hall": "a"}, 10_110, reserve_percent=0, pue_milli=1001)
    check = check_power([_node("n1", "h200", 8)], [_pod("n1", 8)], [_pool()], [budget])
    assert check.violations == 1
    assert check.budgets[0]["committed_watts"] == 10_111
    assert check.over_watts == 1


def test_a_budget_exactly_at_its_allocatable_is_no_violation() -> None:
    # Rounding each node up would report 10 x 10,111 = 101,110 W: an overrun that is not.
    nodes = [_node(f"n{i}", "h200", 8) for i in range(10)]
    pods = [_pod(f"n{i}", 8) for i in range(10)]
    budget = BudgetSpec("hall-a", {"hall": "a"}, 101_101, reserve_percent=0, pue_milli=1001)
    check = check_power(nodes, pods, [_pool()], [budget])
    assert check.violations == 0 and check.over_watts == 0
    assert check.budgets[0]["committed_watts"] == 101_101


def test_the_budget_manifest_writes_the_pue_thousandths_exactly() -> None:
    budget = BudgetSpec("b", {"hall": "a"}, 1_000_000, reserve_percent=5, pue_milli=1001)
    assert budget_manifest(budget)["spec"]["pue"] == "1.001"
    assert budget_manifest(BudgetSpec("b", {}, 1000, 0))["spec"]["pue"] == "1.000"


def test_more_devices_requested_than_a_node_has_is_an_overcommit() -> None:
    check = check_power([_node("n1", "h200", 8)], [_pod("n1", 8), _pod("n1", 1)], [_pool()], [])
    assert check.device_overcommits == 1


def test_cpu_ticks_are_read_past_a_command_name_with_spaces_and_parentheses() -> None:
    fields = ["S"] + ["0"] * 10 + ["100", "20", "3", "4"] + ["0"] * 30
    stat = "1234 (python (bench) x) " + " ".join(fields)
    assert parse_stat_cpu_ticks(stat) == 127


def test_pod_sizes_shrink_to_one_device_when_the_mix_would_not_fit_the_nodes() -> None:
    assert size_mix_share(10_000, 45_160) == 1.0  # 5,000 Ulsan nodes: the full mix fits
    assert size_mix_share(10_000, 9_032) == 0.0  # 1,000 nodes: one device each, still too many
    share = size_mix_share(10_000, 15_000)
    assert 0.0 < share < 1.0
