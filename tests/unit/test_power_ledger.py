"""The ledger: nested and overlapping budgets, pool conflicts, incremental == from scratch."""

from wattsched.power import recompute_ledger
from wattsched.scheduling import ClusterState
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

POOL = {"pool": "h200"}


def recomputed(state: ClusterState):  # type: ignore[no-untyped-def]
    return recompute_ledger(
        state.nodes.values(), state.pools.values(), state.budgets.values(), state.placements()
    )


def test_nested_budgets_each_count_every_node_they_contain() -> None:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(budget("site", {"site": "ulsan"}, 10**6))
    state.upsert_budget(budget("hall-a", {"hall": "a"}, 10**6))
    state.upsert_node(gpu_node("a1", {**POOL, "site": "ulsan", "hall": "a"}))
    state.upsert_node(gpu_node("b1", {**POOL, "site": "ulsan", "hall": "b"}))
    idle = 3000 + 8 * 90
    assert state.budget_usage("site").it_watts == 2 * idle
    assert state.budget_usage("hall-a").it_watts == idle
    assert state.budget_usage("site").nodes == 2


def test_a_node_in_no_pool_draws_nothing_but_its_pods_still_use_it() -> None:
    state = ClusterState()
    state.upsert_budget(budget("site", {"site": "ulsan"}, 10**6))
    state.upsert_node(gpu_node("cpu1", {"site": "ulsan"}))
    state.upsert_pod(gpu_pod("p", gpus=2, node_name="cpu1"))
    assert state.budget_usage("site").it_watts == 0
    assert state.budget_usage("site").pods == 1
    assert state.node_usage("cpu1")["nvidia.com/gpu"] == 2


def test_a_node_two_pools_select_goes_to_the_older_and_is_reported() -> None:
    state = ClusterState()
    state.upsert_pool(gpu_pool("young", POOL, device_watts=1000, created_order=5))
    state.upsert_pool(gpu_pool("old", POOL, device_watts=700, created_order=1))
    state.upsert_node(gpu_node("n1", POOL))
    assert state.node_pool("n1") is not None
    assert state.node_pool("n1").name == "old"  # type: ignore[union-attr]
    assert state.pool_conflicts() == {"n1": ("old", "young")}
    assert state.conflicting_nodes("young") == ["n1"]
    assert state.pool_status("young").nodes == 0
    assert state.pool_status("old").nodes == 1


def test_pool_status_counts_devices_allocation_and_watts() -> None:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_node(gpu_node("n1", POOL))
    state.upsert_node(gpu_node("n2", POOL, ready=False))
    state.upsert_pod(gpu_pod("p", gpus=3, node_name="n1"))
    status = state.pool_status("h200")
    assert (status.nodes, status.ready_nodes, status.devices, status.allocated_devices) == (
        2,
        1,
        16,
        3,
    )
    assert status.committed_watts == 2 * (3000 + 8 * 90) + 3 * (700 - 90)


def test_budget_status_applies_pue_and_reserve() -> None:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(budget("b", POOL, 20_000, reserve_percent=5, pue_milli=1300))
    state.upsert_node(gpu_node("n1", POOL))
    status = state.budget_status("b")
    assert status.allocatable_watts == 19_000
    assert status.it_watts == 3720
    assert status.committed_watts == 4836  # ceil(3720 * 1.3)
    assert status.headroom_watts == 19_000 - 4836


def test_incremental_ledger_equals_recomputed_after_every_kind_of_change() -> None:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(budget("site", {"site": "u"}, 10**6))
    for i in range(4):
        state.upsert_node(gpu_node(f"n{i}", {**POOL, "site": "u", "hall": str(i % 2)}))
    state.upsert_pod(gpu_pod("bound", gpus=2, node_name="n0"))
    state.upsert_pod(gpu_pod("pending", gpus=1))
    state.assume(("default", "pending"), "n1")
    assert state.ledger == recomputed(state)
    state.upsert_budget(budget("hall-1", {"hall": "1"}, 10**6))
    state.upsert_pool(gpu_pool("h200", POOL, device_watts=1000))
    assert state.ledger == recomputed(state)
    state.forget(("default", "pending"))
    state.remove_node("n0")
    state.upsert_pod(gpu_pod("early", gpus=1, node_name="n9"))  # its node is not seen yet
    assert state.ledger == recomputed(state)
    state.upsert_node(gpu_node("n9", {**POOL, "site": "u"}))
    state.remove_budget("hall-1")
    state.remove_pool("h200")
    assert state.ledger == recomputed(state)
