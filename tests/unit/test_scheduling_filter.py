"""Filter: every reason a node refuses a pod, and kube-scheduler's summary of them."""

from wattsched.scheduling import (
    ClusterState,
    NodeAffinity,
    Plan,
    Scheduler,
    SchedulerConfig,
    SelectorRequirement,
    Taint,
    Toleration,
)
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool
from wattsched.scheduling.filters import unschedulable_message

POOL = {"pool": "h200"}
UNLIMITED = budget("unlimited", POOL, 10**9)


def one_cycle(state: ClusterState, *pods: object) -> Plan:
    for pod in pods:
        state.upsert_pod(pod)  # type: ignore[arg-type]
    return Scheduler().schedule(state)


def pool_state() -> ClusterState:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL))
    state.upsert_budget(UNLIMITED)  # fail closed: only nodes under a budget take GPUs
    return state


def test_not_ready_and_cordoned_nodes_take_nothing() -> None:
    state = pool_state()
    state.upsert_node(gpu_node("down", POOL, ready=False))
    state.upsert_node(gpu_node("cordoned", POOL, unschedulable=True))
    plan = one_cycle(state, gpu_pod("p"))
    assert plan.unschedulable[0].message == (
        "0/2 nodes fit: 1 node(s) were not ready, 1 node(s) were unschedulable"
    )


def test_a_no_schedule_taint_needs_a_toleration_and_prefer_no_schedule_does_not() -> None:
    state = pool_state()
    state.upsert_node(gpu_node("tainted", POOL, taints=(Taint("gpu", "h200", "NoSchedule"),)))
    state.upsert_node(gpu_node("soft", POOL, gpus=1, taints=(Taint("x", "", "PreferNoSchedule"),)))
    plan = one_cycle(state, gpu_pod("big", gpus=4))
    assert plan.unschedulable[0].message == (
        "0/2 nodes fit: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint {gpu: h200}"
    )
    tolerant = gpu_pod("tolerant", gpus=4, tolerations=(Toleration("gpu", "Exists"),))
    assert one_cycle(state, tolerant).bindings[0].node == "tainted"


def test_node_selector_and_required_affinity_both_apply() -> None:
    state = pool_state()
    state.upsert_node(gpu_node("a", {**POOL, "hall": "a"}))
    state.upsert_node(gpu_node("b", {**POOL, "hall": "b", "gen": "2"}))
    state.upsert_node(gpu_node("c", {**POOL, "hall": "b", "gen": "3"}))
    affinity = NodeAffinity(((SelectorRequirement("gen", "Gt", ("2",)),),))
    pod = gpu_pod("p", node_selector={"hall": "b"}, affinity=affinity)
    assert one_cycle(state, pod).bindings[0].node == "c"
    state.remove_node("c")
    plan = one_cycle(state, gpu_pod("q", node_selector={"hall": "b"}, affinity=affinity))
    assert plan.unschedulable[0].message == (
        "0/2 nodes fit: 2 node(s) didn't match Pod's node affinity/selector"
    )


def test_cpu_memory_pods_and_extended_resources_are_each_checked() -> None:
    state = pool_state()
    state.upsert_node(gpu_node("small-cpu", POOL, cpu_millis=500))
    state.upsert_node(gpu_node("small-mem", POOL, memory_bytes=100))
    state.upsert_node(gpu_node("no-slots", POOL, pods=0))
    state.upsert_node(gpu_node("no-gpu", {}, gpus=0))
    plan = one_cycle(state, gpu_pod("p"))
    assert plan.unschedulable[0].message == (
        "0/4 nodes fit: 1 Insufficient cpu, 1 Insufficient memory, "
        "1 Insufficient nvidia.com/gpu, 1 Too many pods"
    )


def test_no_device_is_allocated_twice() -> None:
    state = pool_state()
    state.upsert_node(gpu_node("n", POOL, gpus=8))
    plan = one_cycle(state, *(gpu_pod(f"p{i}", gpus=3, created_order=i) for i in range(3)))
    assert len(plan.bindings) == 2
    assert state.node_usage("n")["nvidia.com/gpu"] == 6


def test_power_must_fit_in_every_budget_that_contains_the_node() -> None:
    state = pool_state()
    idle = 3000 + 8 * 90
    state.upsert_budget(budget("site", {"site": "u"}, 10**6))
    state.upsert_budget(budget("row-1", {"row": "1"}, idle + 2 * 610))  # room for 2 devices
    state.upsert_node(gpu_node("n", {**POOL, "site": "u", "row": "1"}))
    plan = one_cycle(state, gpu_pod("three", gpus=3), gpu_pod("two", gpus=2, created_order=1))
    assert [binding.pod[1] for binding in plan.bindings] == ["two"]
    assert plan.unschedulable[0].message == (
        "0/1 nodes fit: 1 PowerBudget row-1 (needs 1.8 kW, headroom 1.2 kW)"
    )
    assert state.budget_status("row-1").headroom_watts == 0


def test_power_fit_uses_facility_watts_and_the_reserve() -> None:
    state = pool_state()
    idle = 3000 + 8 * 90
    # pue 1.5 and 10% reserve: allocatable 0.9 * limit must hold 1.5 * IT watts.
    limit = (idle + 610) * 1500 // 1000 * 100 // 90 + 1
    state.upsert_budget(budget("b", POOL, limit, reserve_percent=10, pue_milli=1500))
    state.upsert_node(gpu_node("n", POOL))
    plan = one_cycle(state, gpu_pod("a"), gpu_pod("b", created_order=1))
    assert len(plan.bindings) == 1
    status = state.budget_status("b")
    assert 0 <= status.headroom_watts < 1500 * 610 // 1000


def test_a_pod_without_devices_adds_no_watts_and_passes_an_over_budget() -> None:
    state = pool_state()
    state.upsert_budget(budget("b", POOL, 1))
    state.upsert_node(gpu_node("n", POOL))
    assert one_cycle(state, gpu_pod("cpu-only", gpus=0)).bindings
    assert one_cycle(state, gpu_pod("gpu", gpus=1)).unschedulable


def test_the_summary_orders_reasons_by_count_then_name() -> None:
    message = unschedulable_message(
        200,
        {
            "Insufficient nvidia.com/gpu": 80,
            "PowerBudget ulsan-phase-1 (needs 5.6 kW, headroom 1.2 kW)": 120,
        },
    )
    assert message == (
        "0/200 nodes fit: 120 PowerBudget ulsan-phase-1 (needs 5.6 kW, headroom 1.2 kW), "
        "80 Insufficient nvidia.com/gpu"
    )
    assert unschedulable_message(3, {"b": 1, "a": 1, "c": 1}) == "0/3 nodes fit: 1 a, 1 b, 1 c"


def test_the_budget_with_least_headroom_is_named_when_several_refuse() -> None:
    state = pool_state()
    idle = 3000 + 8 * 90
    state.upsert_budget(budget("hall", {"site": "u"}, idle + 1000))
    state.upsert_budget(budget("row", {"site": "u"}, idle + 100))
    state.upsert_node(gpu_node("n", {**POOL, "site": "u"}))
    plan = one_cycle(state, gpu_pod("p", gpus=8))
    assert plan.unschedulable[0].message == (
        "0/1 nodes fit: 1 PowerBudget row (needs 4.9 kW, headroom 100 W)"
    )


# -- fail closed (DESIGN.md §2, invariant 6) ----------------------------------------------------


def test_an_accelerator_pod_never_goes_to_a_node_in_no_power_budget() -> None:
    state = pool_state()
    state.upsert_node(gpu_node("n7", POOL))
    state.remove_budget("unlimited")
    plan = one_cycle(state, gpu_pod("p"))
    assert plan.bindings == []
    assert plan.unschedulable[0].message == (
        "0/1 nodes fit: 1 node n7 is in no PowerBudget: its power is not guarded"
    )


def test_an_accelerator_pod_never_goes_to_a_node_whose_pool_is_not_there_yet() -> None:
    state = ClusterState()  # no pool at all: the resource is still known to be a GPU
    state.upsert_budget(UNLIMITED)
    for name in ("n1", "n2", "n3", "n4"):
        state.upsert_node(gpu_node(name, POOL))
    plan = one_cycle(state, gpu_pod("p"))
    assert plan.bindings == []
    assert plan.unschedulable[0].message == (
        "0/4 nodes fit: 4 nodes n1, n2, n3 and 1 more are in no AcceleratorPool listing "
        "nvidia.com/gpu: their power is not known"
    )


def test_an_accelerator_pod_never_goes_to_a_node_two_pools_claim() -> None:
    state = pool_state()
    state.upsert_pool(gpu_pool("h200-dup", POOL, created_order=1))
    state.upsert_node(gpu_node("n1", POOL))
    plan = one_cycle(state, gpu_pod("p"))
    assert plan.bindings == []
    assert plan.unschedulable[0].message == (
        "0/1 nodes fit: 1 node n1 is in 2 AcceleratorPools (h200, h200-dup): its power "
        "profile is ambiguous"
    )


def test_a_pool_that_does_not_list_the_resource_does_not_guard_it() -> None:
    state = pool_state()
    state.upsert_node(gpu_node("n1", POOL, resource="rebellions.ai/ATOM"))
    plan = one_cycle(state, gpu_pod("p", resource="rebellions.ai/ATOM"))
    assert "node n1 is in no AcceleratorPool listing rebellions.ai/ATOM" in (
        plan.unschedulable[0].message
    )


def test_pods_without_accelerators_may_use_unguarded_nodes() -> None:
    state = ClusterState()
    state.upsert_node(gpu_node("cpu-node", {}, gpus=0))
    plan = one_cycle(state, gpu_pod("web", gpus=0))
    assert [b.node for b in plan.bindings] == ["cpu-node"]


def test_an_admin_may_allow_unguarded_nodes_explicitly() -> None:
    state = ClusterState()
    state.upsert_node(gpu_node("n1", POOL))
    state.upsert_pod(gpu_pod("p"))
    plan = Scheduler(SchedulerConfig(allow_unguarded_nodes=True)).schedule(state)
    assert [b.node for b in plan.bindings] == ["n1"]


def test_a_budget_applied_after_its_nodes_lets_the_waiting_pods_in() -> None:
    state = ClusterState()
    state.upsert_node(gpu_node("n1", POOL))
    state.upsert_pod(gpu_pod("p"))
    scheduler = Scheduler()
    assert scheduler.schedule(state).bindings == []
    state.upsert_pool(gpu_pool("h200", POOL))
    assert scheduler.schedule(state).bindings == []
    state.upsert_budget(budget("b", POOL, 20_000))
    assert [b.node for b in scheduler.schedule(state).bindings] == ["n1"]
