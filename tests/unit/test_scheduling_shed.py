"""Shed: an over Shed budget evicts the fewest, lowest-priority pods that restore it."""

from wattsched.scheduling import ClusterState, Scheduler
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

POOL = {"pool": "h200"}
IDLE = 3000 + 8 * 90
W = 700 - 90  # IT watts one device adds


def loaded(enforcement: str, *bound: tuple[str, int, int]) -> ClusterState:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(budget("b", POOL, 10**7, enforcement=enforcement))
    for n in range(4):
        state.upsert_node(gpu_node(f"n{n}", POOL))
    for i, (name, gpus, priority) in enumerate(bound):
        state.upsert_pod(
            gpu_pod(name, gpus=gpus, priority=priority, created_order=i, node_name=f"n{i % 4}")
        )
    return state


def shed_names(state: ClusterState) -> list[str]:
    plan = Scheduler().schedule(state)
    assert all(e.reason == "Shed" and e.budget == "b" for e in plan.evictions)
    return sorted(e.pod[1] for e in plan.evictions)


def test_a_limit_drop_sheds_the_lowest_priority_pods_first() -> None:
    state = loaded("Shed", ("high", 4, 10), ("low-a", 2, 0), ("low-b", 2, 0), ("mid", 4, 5))
    state.upsert_budget(budget("b", POOL, 4 * IDLE + 8 * W, enforcement="Shed"))
    assert shed_names(state) == ["low-a", "low-b"]


def test_within_a_priority_the_fewest_pods_are_shed() -> None:
    state = loaded("Shed", ("one", 1, 0), ("two", 2, 0), ("four", 4, 0), ("keep", 4, 9))
    state.upsert_budget(budget("b", POOL, 4 * IDLE + 7 * W, enforcement="Shed"))
    assert shed_names(state) == ["four"]


def test_a_higher_pod_is_shed_only_when_no_lower_one_would_do() -> None:
    state = loaded("Shed", ("tiny-low", 1, 0), ("big-mid", 6, 5), ("high", 1, 10))
    state.upsert_budget(budget("b", POOL, 4 * IDLE + 2 * W, enforcement="Shed"))
    assert shed_names(state) == ["big-mid"]  # tiny-low alone cannot restore it, so it stays


def test_pods_already_evicting_are_not_evicted_again_and_count_as_going() -> None:
    state = loaded("Shed", ("a", 4, 0), ("b", 4, 0))
    state.upsert_budget(budget("b", POOL, 4 * IDLE + 4 * W, enforcement="Shed"))
    scheduler = Scheduler()
    assert len(scheduler.schedule(state).evictions) == 1
    assert scheduler.schedule(state).evictions == []


def test_an_admit_budget_never_sheds() -> None:
    state = loaded("Admit", ("a", 8, 0))
    state.upsert_budget(budget("b", POOL, IDLE))
    assert shed_names(state) == []


def test_only_managed_pods_are_shed() -> None:
    state = loaded("Shed", ("a", 2, 0))
    state.upsert_pod(gpu_pod("foreign", gpus=8, priority=-5, node_name="n3", managed=False))
    state.upsert_budget(budget("b", POOL, 4 * IDLE + 8 * W, enforcement="Shed"))
    assert shed_names(state) == ["a"]
