"""Shed: over Shed budgets evict the fewest, lowest-priority victims that restore them all."""

import pytest

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


# -- several Shed budgets at once, and gangs (invariants 3 and 5) ---------------------------


def nested_site(site: str, hall: str) -> ClusterState:
    """A site budget over a hall budget, both Shed, both over at the same instant.

    Two single-device nodes with no idle or base watts, so each figure is a pod's watts: the
    hall node runs a 1,220 W pod and a 720 W one (1,940 W); the site adds a 3,160 W node.
    """
    state = ClusterState()
    state.upsert_pool(gpu_pool("p", {"pool": "p"}, device_watts=1, idle_device_watts=0,
                               node_base_watts=0))  # fmt: skip
    in_hall = {"pool": "p", "site": "s", "hall": "h"}
    state.upsert_node(gpu_node("hall-node", in_hall, gpus=2000))
    state.upsert_node(gpu_node("site-node", {"pool": "p", "site": "s"}, gpus=4000))
    state.upsert_pod(gpu_pod("hall-big", gpus=1220, priority=0, node_name="hall-node"))
    state.upsert_pod(gpu_pod("hall-small", gpus=720, priority=5, node_name="hall-node"))
    state.upsert_pod(gpu_pod("site-pod", gpus=3160, priority=0, node_name="site-node"))
    state.upsert_budget(budget(site, {"site": "s"}, 4_100, enforcement="Shed"))
    state.upsert_budget(budget(hall, {"hall": "h"}, 1_840, enforcement="Shed"))
    return state


@pytest.mark.parametrize(("site", "hall"), [("site", "hall"), ("a-site", "b-hall")])
def test_nested_budgets_over_at_once_are_restored_by_the_one_eviction_that_serves_both(
    site: str, hall: str
) -> None:
    """Whichever budget sorts first: solving them one by one took a site pod as well."""
    state = nested_site(site, hall)
    assert state.budget_usage(site).it_watts == 5_100
    assert state.budget_usage(hall).it_watts == 1_940
    plan = Scheduler().schedule(state)
    assert [e.pod[1] for e in plan.evictions] == ["hall-big"]
    assert plan.evictions[0].budget == hall  # reported against the smallest domain it frees


def gang_pods(name: str, size: int, gpus: int, priority: int, nodes: list[str]) -> list[object]:
    return [
        gpu_pod(
            f"{name}-{i}",
            gpus=gpus,
            priority=priority,
            gang=f"default/{name}",
            gang_size=size,
            node_name=nodes[i],
        )
        for i in range(size)
    ]


def test_shedding_takes_a_running_gang_whole_never_one_member() -> None:
    state = loaded("Shed")
    for pod in gang_pods("train", 2, 8, 0, ["n0", "n1"]):
        state.upsert_pod(pod)  # type: ignore[arg-type]
    state.upsert_pod(gpu_pod("serve", gpus=4, priority=5, node_name="n2"))
    # Over by 4.8 kW-ish: one member would do by watts, but the gang goes whole or not at all.
    state.upsert_budget(budget("b", POOL, 4 * IDLE + 20 * W - 4800, enforcement="Shed"))
    assert shed_names(state) == ["train-0", "train-1"]


def test_a_gang_is_kept_whole_when_a_lower_single_pod_restores_the_budget() -> None:
    state = loaded("Shed")
    for pod in gang_pods("train", 2, 4, 3, ["n0", "n1"]):
        state.upsert_pod(pod)  # type: ignore[arg-type]
    state.upsert_pod(gpu_pod("batch", gpus=4, priority=1, node_name="n2"))
    state.upsert_budget(budget("b", POOL, 4 * IDLE + 12 * W - 100, enforcement="Shed"))
    assert shed_names(state) == ["batch"]
