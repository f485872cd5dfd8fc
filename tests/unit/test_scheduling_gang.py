"""Permit for gangs: whole or not at all, kept together, never blocking smaller work."""

from wattsched.scheduling import ClusterState, Scheduler
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

POOL = {"pool": "h200"}
UNLIMITED = budget("unlimited", POOL, 10**9)
IDLE = 3000 + 8 * 90


def racks_state(racks: int, per_rack: int) -> ClusterState:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(UNLIMITED)  # fail closed: only nodes under a budget take GPUs
    for r in range(racks):
        for i in range(per_rack):
            labels = {**POOL, "wattsched.io/rack": f"r{r}", "wattsched.io/hall": f"h{r // 2}"}
            state.upsert_node(gpu_node(f"r{r}-n{i}", labels))
    return state


def gang(name: str, size: int, gpus: int = 8, priority: int = 0) -> list[object]:
    return [
        gpu_pod(
            f"{name}-{i}",
            gpus=gpus,
            gang=f"default/{name}",
            gang_size=size,
            priority=priority,
            created_order=i,
        )
        for i in range(size)
    ]


def test_gang_is_bound_whole_or_not_at_all() -> None:
    state = racks_state(1, 3)
    for pod in gang("big", 4):
        state.upsert_pod(pod)  # type: ignore[arg-type]
    plan = Scheduler().schedule(state)
    assert plan.bindings == []
    assert len(plan.unschedulable) == 4
    assert "gang default/big does not fit whole (3/4 pending members placed)" in (
        plan.unschedulable[0].message
    )
    assert all(state.node_usage(n) == {} for n in state.nodes)


def test_a_gang_that_cannot_fit_does_not_block_smaller_work_behind_it() -> None:
    state = racks_state(1, 3)
    for pod in gang("big", 4, priority=10):
        state.upsert_pod(pod)  # type: ignore[arg-type]
    state.upsert_pod(gpu_pod("small", gpus=1, priority=0))
    plan = Scheduler().schedule(state)
    assert [b.pod[1] for b in plan.bindings] == ["small"]


def test_a_gang_waits_until_all_its_members_exist() -> None:
    state = racks_state(1, 4)
    for pod in gang("g", 4)[:3]:
        state.upsert_pod(pod)  # type: ignore[arg-type]
    plan = Scheduler().schedule(state)
    assert plan.bindings == []
    assert plan.unschedulable[0].message == (
        "gang default/g: 3/4 members exist, waiting for the rest before placing any"
    )


def test_a_gang_is_kept_on_one_rack_when_one_rack_can_hold_it() -> None:
    state = racks_state(4, 4)
    state.upsert_pod(gpu_pod("noise", gpus=2, node_name="r2-n0"))
    for pod in gang("g", 4, gpus=4):
        state.upsert_pod(pod)  # type: ignore[arg-type]
    plan = Scheduler().schedule(state)
    racks = {state.nodes[b.node].labels["wattsched.io/rack"] for b in plan.bindings}
    assert len(plan.bindings) == 4
    assert len(racks) == 1


def test_a_gang_that_exceeds_a_budget_reserves_no_watt() -> None:
    state = racks_state(1, 4)
    state.upsert_budget(budget("b", POOL, 4 * IDLE + 3 * 8 * 610))
    before = state.budget_usage("b").it_watts
    for pod in gang("g", 4):
        state.upsert_pod(pod)  # type: ignore[arg-type]
    plan = Scheduler().schedule(state)
    assert plan.bindings == []
    assert "PowerBudget b" in plan.unschedulable[0].message
    assert state.budget_usage("b").it_watts == before


def test_a_gang_short_of_power_binds_in_the_next_cycle_after_room_frees_in_its_budget() -> None:
    """Parked gangs wake only where room comes back; they must wake there, at once."""
    from types import MappingProxyType

    state = ClusterState()
    state.upsert_pool(gpu_pool("a", {"pool": "a"}))
    state.upsert_pool(gpu_pool("b", {"pool": "b"}, created_order=1))
    for name, pool in (("a0", "a"), ("a1", "a"), ("b0", "b")):
        state.upsert_node(gpu_node(name, {"pool": pool}))
    room_for_two_full_nodes = 2 * IDLE + 2 * 8 * (700 - 90)
    state.upsert_budget(budget("feed-a", {"pool": "a"}, room_for_two_full_nodes))
    state.upsert_pod(gpu_pod("filler-a", gpus=8, node_name="a0"))
    state.upsert_pod(gpu_pod("filler-b", gpus=8, node_name="b0"))
    in_pool_a = MappingProxyType({"pool": "a"})
    for i in range(2):
        state.upsert_pod(
            gpu_pod(f"g-{i}", gpus=8, gang="default/g", gang_size=2, node_selector=in_pool_a)
        )
    scheduler = Scheduler()
    assert scheduler.schedule(state).bindings == []

    state.remove_pod(("default", "filler-b"))  # room elsewhere does not make the gang fit
    assert scheduler.schedule(state).bindings == []

    state.remove_pod(("default", "filler-a"))
    plan = scheduler.schedule(state)
    assert sorted(b.pod[1] for b in plan.bindings) == ["g-0", "g-1"]
    assert sorted(b.node for b in plan.bindings) == ["a0", "a1"]


def test_a_recreated_member_joins_its_running_gang_without_waiting_for_the_rest() -> None:
    """gang-size is a minimum, as a PodGroup's minMember: bound members count toward it."""
    state = racks_state(1, 4)
    for pod in gang("g", 3):
        state.upsert_pod(pod)  # type: ignore[arg-type]
    scheduler = Scheduler()
    first = scheduler.schedule(state)
    assert len(first.bindings) == 3
    for binding in first.bindings:  # the watch shows them bound
        bound = state.pods[binding.pod]
        state.upsert_pod(gpu_pod(bound.name, gpus=8, gang="default/g", gang_size=3,
                                 node_name=binding.node))  # fmt: skip
    state.remove_pod(("default", "g-1"))  # a node failed; the Job recreates the pod
    state.upsert_pod(gpu_pod("g-1-again", gpus=8, gang="default/g", gang_size=3))
    plan = scheduler.schedule(state)
    assert [b.pod[1] for b in plan.bindings] == ["g-1-again"]


def test_an_extra_member_of_a_running_gang_is_placed_like_a_single_pod() -> None:
    state = racks_state(1, 4)
    for i in range(2):
        state.upsert_pod(gpu_pod(f"g-{i}", gpus=8, gang="default/g", gang_size=2,
                                 node_name=f"r0-n{i}"))  # fmt: skip
    state.upsert_pod(gpu_pod("g-extra", gpus=8, gang="default/g", gang_size=2))
    plan = Scheduler().schedule(state)
    assert [b.pod[1] for b in plan.bindings] == ["g-extra"]


def test_members_that_disagree_on_the_gang_size_are_told_so_and_not_placed() -> None:
    state = racks_state(1, 4)
    state.upsert_pod(gpu_pod("a", gpus=1, gang="default/g", gang_size=2))
    state.upsert_pod(gpu_pod("b", gpus=1, gang="default/g", gang_size=3))
    plan = Scheduler().schedule(state)
    assert plan.bindings == []
    assert {u.pod[1] for u in plan.unschedulable} == {"a", "b"}
    assert all(u.reason == "InvalidGang" for u in plan.unschedulable)
    assert plan.unschedulable[0].message == (
        'gang default/g: its members disagree on wattsched.io/gang-size ("2" by default/a; '
        '"3" by default/b); give every member of the gang the same size'
    )
