"""Permit for gangs: whole or not at all, kept together, never blocking smaller work."""

from wattsched.scheduling import ClusterState, Scheduler
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

POOL = {"pool": "h200"}
IDLE = 3000 + 8 * 90


def racks_state(racks: int, per_rack: int) -> ClusterState:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
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
