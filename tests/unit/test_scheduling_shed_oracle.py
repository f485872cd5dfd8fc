"""Shed on random small sites with nested Shed budgets, judged by a brute force (invariant 5)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from shed_oracle import check_shed

from wattsched.scheduling import ClusterState, Scheduler
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

DOMAINS = (
    ("site", {"site": "s"}),
    ("hall-0", {"hall": "h0"}),
    ("rack-0", {"rack": "r0"}),
    ("rack-1", {"rack": "r1"}),
)


@st.composite
def over_sites(draw: st.DrawFn) -> ClusterState:
    state = ClusterState()
    state.upsert_pool(
        gpu_pool(
            "p",
            {"site": "s"},
            device_watts=draw(st.integers(100, 1000)),
            idle_device_watts=draw(st.integers(0, 90)),
            node_base_watts=draw(st.integers(0, 500)),
        )
    )
    nodes = draw(st.integers(2, 5))
    for n in range(nodes):
        labels = {"site": "s", "hall": f"h{n % 2}", "rack": f"r{n % 3}"}
        state.upsert_node(gpu_node(f"n{n}", labels, gpus=8))
    free = {f"n{n}": 8 for n in range(nodes)}
    for i in range(draw(st.integers(1, 9))):
        gang = draw(st.booleans()) and i % 3 == 0
        size = 2 if gang else 1
        priority = draw(st.integers(0, 3))
        devices = draw(st.integers(1, 4))
        managed = draw(st.sampled_from([True, True, True, False]))
        for member in range(size):
            node = draw(st.sampled_from(sorted(free)))
            if free[node] < devices:
                continue
            free[node] -= devices
            state.upsert_pod(
                gpu_pod(
                    f"p{i}-{member}",
                    gpus=devices,
                    priority=priority,
                    created_order=i,
                    node_name=node,
                    managed=managed,
                    gang=f"default/g{i}" if gang else None,
                    gang_size=size,
                )
            )
    for name, labels in DOMAINS:
        if not draw(st.booleans()):
            continue
        state.upsert_budget(budget(name, labels, 10**9))
        it = state.budget_usage(name).it_watts
        percent = draw(st.integers(40, 110))
        state.upsert_budget(
            budget(
                name,
                labels,
                max(1, it * percent // 100),
                reserve_percent=draw(st.sampled_from([0, 0, 5])),
                pue_milli=draw(st.sampled_from([1000, 1000, 1250])),
                enforcement=draw(st.sampled_from(["Shed", "Shed", "Admit"])),
            )
        )
    return state


@settings(max_examples=400, deadline=None)
@given(over_sites())
def test_shed_across_nested_budgets_is_feasible_irredundant_and_lowest_priority(
    state: ClusterState,
) -> None:
    plan = Scheduler().schedule(state)
    assert plan.bindings == []
    check_shed(state, set(), {e.pod for e in plan.evictions})
