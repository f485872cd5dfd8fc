"""PostFilter: a pod that fits nowhere displaces the fewest, lowest-priority managed pods."""

from wattsched.scheduling import ClusterState, Scheduler, SchedulerConfig
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

POOL = {"pool": "h200"}
UNLIMITED = budget("unlimited", POOL, 10**9)
IDLE = 3000 + 8 * 90


def full_node_state(*bound: tuple[str, int, int]) -> ClusterState:
    """One 8-GPU node holding (name, gpus, priority) pods."""
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(UNLIMITED)  # fail closed: only nodes under a budget take GPUs
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
    scheduler = Scheduler()
    plan = scheduler.schedule(state)
    assert evicted(plan) == ["low-4"]
    assert plan.evictions[0].reason == "Preempted"
    assert state.is_evicting(("default", "low-4"))
    assert scheduler.queue.nomination(("default", "urgent")) is not None
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
    assert scheduler.queue.nomination(("default", "urgent")) is None


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


def test_preemption_takes_a_running_gang_whole_never_one_member() -> None:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(UNLIMITED)
    for name in ("n0", "n1"):
        state.upsert_node(gpu_node(name, POOL))
    for i, node in enumerate(("n0", "n1")):
        state.upsert_pod(gpu_pod(f"train-{i}", gpus=8, priority=0, gang="default/train",
                                 gang_size=2, node_name=node))  # fmt: skip
    state.upsert_pod(gpu_pod("urgent", gpus=8, priority=10))
    plan = Scheduler().schedule(state)
    assert evicted(plan) == ["train-0", "train-1"]
    assert {(e.pod[1], e.node) for e in plan.evictions} == {("train-0", "n0"), ("train-1", "n1")}


def test_a_gang_with_a_member_as_important_as_the_preemptor_is_not_a_victim() -> None:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(UNLIMITED)
    state.upsert_node(gpu_node("n0", POOL))
    state.upsert_node(gpu_node("n1", POOL))
    state.upsert_pod(gpu_pod("g-low", gpus=8, priority=0, gang="default/g", gang_size=2,
                             node_name="n0"))  # fmt: skip
    state.upsert_pod(gpu_pod("g-high", gpus=8, priority=10, gang="default/g", gang_size=2,
                             node_name="n1"))  # fmt: skip
    state.upsert_pod(gpu_pod("urgent", gpus=8, priority=10))
    assert evicted(Scheduler().schedule(state)) == []


def test_power_freed_by_a_gang_member_on_another_node_of_the_budget_counts() -> None:
    """The gang's other member frees watts in the shared budget: that is what lets it fit."""
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    for name in ("n0", "n1"):
        state.upsert_node(gpu_node(name, POOL))
    for i, (node, gpus) in enumerate((("n0", 2), ("n1", 8))):
        state.upsert_pod(gpu_pod(f"g-{i}", gpus=gpus, priority=0, gang="default/g",
                                 gang_size=2, node_name=node))  # fmt: skip
    state.upsert_budget(budget("b", POOL, 2 * IDLE + 10 * (700 - 90)))  # full
    state.upsert_pod(gpu_pod("urgent", gpus=6, priority=10))  # fits n0 by devices, not power
    plan = Scheduler().schedule(state)
    assert evicted(plan) == ["g-0", "g-1"]
