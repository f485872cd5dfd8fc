"""ClusterState: assume/forget, the queue, and a restart that rebuilds from bound pods."""

import pytest

from wattsched.power import recompute_ledger
from wattsched.scheduling import ClusterState, Scheduler
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

POOL = {"pool": "h200"}
KEY = ("default", "p")


def small_state() -> ClusterState:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(budget("b", POOL, 100_000))
    state.upsert_node(gpu_node("n1", POOL))
    return state


def test_an_unbound_managed_pod_is_pending_and_a_bound_one_is_not() -> None:
    state = small_state()
    state.upsert_pod(gpu_pod("p"))
    state.upsert_pod(gpu_pod("q", node_name="n1"))
    state.upsert_pod(gpu_pod("other", managed=False))
    assert [pod.name for pod in state.pending()] == ["p"]


def test_assume_counts_the_pod_at_once_and_forget_gives_it_back() -> None:
    state = small_state()
    idle = state.budget_usage("b").it_watts
    state.upsert_pod(gpu_pod("p", gpus=2))
    state.assume(KEY, "n1")
    assert state.budget_usage("b").it_watts == idle + 2 * 610
    assert not state.pending()
    state.forget(KEY)
    assert state.budget_usage("b").it_watts == idle
    assert [pod.key for pod in state.pending()] == [KEY]


def test_a_watch_event_before_the_bind_lands_keeps_the_assumption() -> None:
    state = small_state()
    state.upsert_pod(gpu_pod("p", gpus=2))
    state.assume(KEY, "n1")
    state.upsert_pod(gpu_pod("p", gpus=2))  # e.g. a label change, still no nodeName
    assert state.is_assumed(KEY)
    assert state.node_of(KEY) == "n1"
    state.upsert_pod(gpu_pod("p", gpus=2, node_name="n1"))
    assert not state.is_assumed(KEY)
    assert state.node_of(KEY) == "n1"


def test_assume_and_forget_refuse_pods_in_the_wrong_phase() -> None:
    state = small_state()
    state.upsert_pod(gpu_pod("p", node_name="n1"))
    with pytest.raises(ValueError, match="not pending"):
        state.assume(KEY, "n1")
    with pytest.raises(ValueError, match="not assumed"):
        state.forget(KEY)


def test_a_restart_rebuilds_the_same_ledger_from_bound_pods() -> None:
    state = small_state()
    for i in range(5):
        state.upsert_pod(gpu_pod(f"p{i}", created_order=i))
    plan = Scheduler().schedule(state)
    bound = [
        gpu_pod(f"p{i}", created_order=i, node_name=state.node_of(("default", f"p{i}")))
        for i in range(5)
    ]
    assert len(plan.bindings) == 5
    rebuilt = ClusterState.from_objects(
        state.nodes.values(), state.pools.values(), state.budgets.values(), bound
    )
    assert rebuilt.ledger == state.ledger
    assert rebuilt.ledger == recompute_ledger(
        rebuilt.nodes.values(),
        rebuilt.pools.values(),
        rebuilt.budgets.values(),
        rebuilt.placements(),
    )


def test_a_limit_change_moves_no_watt_in_the_ledger() -> None:
    state = small_state()
    before = state.budget_usage("b").it_watts
    state.upsert_budget(budget("b", POOL, 1_000))
    assert state.budget_usage("b").it_watts == before
    assert state.budget_status("b").over


def test_an_evicting_pod_still_counts_until_it_is_removed() -> None:
    state = small_state()
    state.upsert_pod(gpu_pod("p", gpus=4, node_name="n1"))
    watts = state.budget_usage("b").it_watts
    state.mark_evicting(KEY)
    assert state.is_evicting(KEY)
    assert state.budget_usage("b").it_watts == watts
    state.remove_pod(KEY)
    assert state.budget_usage("b").it_watts == watts - 4 * 610
    assert not state.is_evicting(KEY)
