"""The cycle as a whole: queue order, scoring, determinism and bounded cycles."""

from wattsched.scheduling import ClusterState, Scheduler, SchedulerConfig, ScoreWeights
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

POOL = {"pool": "h200"}
UNLIMITED = budget("unlimited", POOL, 10**9)
IDLE = 3000 + 8 * 90


def state_with(nodes: int, gpus: int = 8) -> ClusterState:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(UNLIMITED)  # fail closed: only nodes under a budget take GPUs
    for i in range(nodes):
        rack = {"wattsched.io/rack": f"r{i // 2}", "wattsched.io/hall": f"h{i // 4}"}
        state.upsert_node(gpu_node(f"n{i}", {**POOL, **rack}, gpus=gpus))
    return state


def test_higher_priority_goes_first_then_older_then_by_key() -> None:
    state = state_with(1, gpus=2)
    state.upsert_pod(gpu_pod("late-low", priority=0, created_order=1))
    state.upsert_pod(gpu_pod("young-high", priority=10, created_order=9))
    state.upsert_pod(gpu_pod("b-low", priority=0, created_order=0))
    state.upsert_pod(gpu_pod("a-low", priority=0, created_order=0))
    plan = Scheduler().schedule(state)
    assert [b.pod[1] for b in plan.bindings] == ["young-high", "a-low"]
    assert [u.pod[1] for u in plan.unschedulable] == ["b-low", "late-low"]


def test_default_score_packs_devices_onto_the_fullest_fitting_node() -> None:
    state = state_with(3)
    state.upsert_pod(gpu_pod("seed", gpus=5, node_name="n1"))
    state.upsert_pod(gpu_pod("p", gpus=2))
    plan = Scheduler().schedule(state)
    assert plan.bindings[0].node == "n1"
    state.upsert_pod(gpu_pod("q", gpus=2))
    assert Scheduler().schedule(state).bindings[0].node != "n1"  # n1 has only 1 left


def test_power_headroom_weight_spreads_across_budgets_instead() -> None:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_node(gpu_node("tight", {**POOL, "row": "1"}))
    state.upsert_node(gpu_node("loose", {**POOL, "row": "2"}))
    state.upsert_budget(budget("row-1", {"row": "1"}, IDLE + 8 * 610))
    state.upsert_budget(budget("row-2", {"row": "2"}, 10 * IDLE))
    state.upsert_pod(gpu_pod("seed", gpus=4, node_name="tight"))
    state.upsert_pod(gpu_pod("p", gpus=1))
    packing = Scheduler().schedule(state)
    assert packing.bindings[0].node == "tight"
    state.forget(("default", "p"))
    config = SchedulerConfig(weights=ScoreWeights(device_packing=0, power_headroom=1))
    assert Scheduler(config).schedule(state).bindings[0].node == "loose"


def test_the_same_state_gives_the_same_plan() -> None:
    def build() -> ClusterState:
        state = state_with(8)
        state.upsert_budget(budget("b", POOL, 8 * IDLE + 20 * 610))
        for i in range(30):
            state.upsert_pod(gpu_pod(f"p{i}", gpus=1 + i % 3, priority=i % 4, created_order=i))
        return state

    assert Scheduler().schedule(build()) == Scheduler().schedule(build())


def test_max_pods_bounds_the_bindings_of_one_cycle() -> None:
    state = state_with(4)
    for i in range(10):
        state.upsert_pod(gpu_pod(f"p{i}", created_order=i))
    plan = Scheduler().schedule(state, max_pods=3)
    assert len(plan.bindings) == 3
    assert state.pending_count() == 7


def test_a_small_window_still_finds_the_one_node_that_fits() -> None:
    state = state_with(50)
    for i in range(49):
        state.upsert_pod(gpu_pod(f"fill{i}", gpus=8, node_name=f"n{i}"))
    state.upsert_pod(gpu_pod("p", gpus=8))
    plan = Scheduler(SchedulerConfig(min_feasible_nodes=1)).schedule(state)
    assert plan.bindings[0].node == "n49"


def test_a_cycle_leaves_no_budget_over_allocatable() -> None:
    state = state_with(10)
    state.upsert_budget(budget("site", POOL, 10 * IDLE + 37 * 610, reserve_percent=3))
    for i in range(100):
        state.upsert_pod(gpu_pod(f"p{i}", gpus=1 + i % 4, created_order=i))
    plan = Scheduler().schedule(state)
    assert plan.bindings
    assert state.budget_status("site").headroom_watts >= 0


def test_a_pod_that_fit_nowhere_waits_until_room_is_freed() -> None:
    state = state_with(1)
    state.upsert_pod(gpu_pod("big", gpus=8, node_name="n0"))
    state.upsert_pod(gpu_pod("p", gpus=1))
    scheduler = Scheduler()
    assert scheduler.schedule(state).unschedulable
    assert scheduler.schedule(state).unschedulable == []  # parked: nothing was freed
    state.remove_pod(("default", "big"))
    assert [b.pod[1] for b in scheduler.schedule(state).bindings] == ["p"]


def test_a_parked_pod_is_still_retried_every_flush_period() -> None:
    state = state_with(1)
    state.upsert_pod(gpu_pod("big", gpus=8, node_name="n0"))
    state.upsert_pod(gpu_pod("p", gpus=1))
    scheduler = Scheduler(SchedulerConfig(unschedulable_flush_cycles=2))
    attempts = [len(scheduler.schedule(state).unschedulable) for _ in range(5)]
    assert attempts == [1, 0, 1, 0, 1]


def test_twins_of_a_failed_pod_get_the_same_reason_without_a_new_search() -> None:
    state = state_with(1, gpus=1)
    for i in range(3):
        state.upsert_pod(gpu_pod(f"p{i}", gpus=2, created_order=i))
    plan = Scheduler().schedule(state)
    assert len({u.message for u in plan.unschedulable}) == 1
    assert len(plan.unschedulable) == 3
