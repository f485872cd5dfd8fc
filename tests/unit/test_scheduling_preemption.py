"""PostFilter: a pod that fits nowhere displaces the fewest, lowest-priority managed pods."""

from wattsched.scheduling import ClusterState, Scheduler, SchedulerConfig
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

POOL = {"pool": "h200"}
IDLE = 3000 + 8 * 90


def full_node_state(*bound: tuple[str, int, int]) -> ClusterState:
    """One 8-GPU node holding (name, gpus, priority) pods."""
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_node(gpu_node("n", POOL))
    for i, (name, gpus, priority) in enumerate(bound):
        state.upsert_pod(
            gpu_pod(name, gpus=gpus, priority=priority, created_order=i, node_name="n")
        )
    return state


def evicted(plan: object) -> list[str]:
    return sorted(e.pod[1] for e in plan.evictions)  # type: ignore[attr-defined]


def test_a_higher_priority_pod_displaces_the_fewest_lowest_priority_pods() -> None:
    state = full_node_state(("low-1", 1, 0), ("low-4", 4, 0), ("mid-3", 3, 5))
    state.upsert_pod(gpu_pod("urgent", gpus=4, priority=10))
    plan = Scheduler().schedule(state)
    assert evicted(plan) == ["low-4"]
    assert plan.evictions[0].reason == "Preempted"
    assert state.is_evicting(("default", "low-4"))
    assert state.nomination(("default", "urgent")) is not None
    assert not plan.bindings  # it waits until the victim is gone


def test_no_pod_of_equal_or_higher_priority_and_no_unmanaged_pod_is_displaced() -> None:
    state = full_node_state(("peer", 8, 10))
    state.upsert_pod(gpu_pod("foreign", gpus=0, priority=0, node_name="n", managed=False))
    state.upsert_pod(gpu_pod("urgent", gpus=4, priority=10))
    assert Scheduler().schedule(state).evictions == []


def test_a_nominated_preemptor_does_not_preempt_again_while_its_victims_go() -> None:
    state = full_node_state(("a", 4, 0), ("b", 4, 0))
    state.upsert_pod(gpu_pod("urgent", gpus=4, priority=10))
    scheduler = Scheduler()
    first = scheduler.schedule(state)
    assert len(first.evictions) == 1
    assert scheduler.schedule(state).evictions == []  # the victim is still terminating
    state.remove_pod(first.evictions[0].pod)
    third = scheduler.schedule(state)
    assert [b.pod[1] for b in third.bindings] == ["urgent"]
    assert state.nomination(("default", "urgent")) is None


def test_a_preemptor_gets_the_room_its_victims_left_before_lower_priority_pods() -> None:
    state = full_node_state(("victim", 8, 0))
    state.upsert_pod(gpu_pod("urgent", gpus=8, priority=10))
    scheduler = Scheduler()
    plan = scheduler.schedule(state)
    state.remove_pod(plan.evictions[0].pod)
    state.upsert_pod(gpu_pod("sneaky", gpus=8, priority=5, created_order=-1))
    plan = scheduler.schedule(state)
    assert [b.pod[1] for b in plan.bindings] == ["urgent"]


def test_preemption_frees_watts_when_power_is_what_refuses() -> None:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(budget("b", POOL, 2 * IDLE + 8 * 610))
    state.upsert_node(gpu_node("n1", POOL))
    state.upsert_node(gpu_node("n2", POOL))
    state.upsert_pod(gpu_pod("low", gpus=8, priority=0, node_name="n1"))
    state.upsert_pod(gpu_pod("urgent", gpus=8, priority=10))
    plan = Scheduler().schedule(state)
    assert "PowerBudget b" in plan.unschedulable[0].message
    assert evicted(plan) == ["low"]


def test_preemption_can_be_switched_off() -> None:
    state = full_node_state(("low", 8, 0))
    state.upsert_pod(gpu_pod("urgent", gpus=8, priority=10))
    assert Scheduler(SchedulerConfig(preemption=False)).schedule(state).evictions == []
