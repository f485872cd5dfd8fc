"""The node-class fast path gives the answer, and the reasons, of a plain per-node filter.

The engine checks static filters once per pod shape, power once per node class (same pool, same
budgets), and walks nodes with cursors and caches. The reference here checks every node on its
own, in the same order of concerns, with the one power rule (`power.fits`) and nothing cached.
Nodes of a pool share their allocatable, as a pool's servers do, so "too big for the class" and
"too big for the node" are the same question.
"""

from __future__ import annotations

from collections import Counter
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from wattsched.domain import Node, Pod, Taint, Toleration
from wattsched.power import delta_watts, devices_in, fits, is_accelerator_resource
from wattsched.scheduling import ClusterState, Scheduler, SchedulerConfig
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool
from wattsched.scheduling.filters import (
    PodShape,
    insufficient,
    power_reason,
    static_reason,
    unguarded_kind,
    unguarded_reason,
    unschedulable_message,
)

POOL_SHAPES = {  # pool -> (resource, devices per node)
    "h200": ("nvidia.com/gpu", 8),
    "rngd": ("furiosa.ai/rngd", 4),
    "dup": ("nvidia.com/gpu", 8),  # claims h200's rack-0 nodes too: a conflict
}


@st.composite
def sites(draw: st.DrawFn) -> tuple[ClusterState, Pod]:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", {"pool": "h200"}, 700, 90, 3000, created_order=1))
    state.upsert_pool(
        gpu_pool("rngd", {"pool": "rngd"}, 180, 30, 1500, 2, resource="furiosa.ai/rngd")
    )
    if draw(st.booleans()):
        state.upsert_pool(gpu_pool("dup", {"pool": "h200", "rack": "r0"}, 1000, 100, 100, 3))
    for i in range(draw(st.integers(1, 10))):
        pool = draw(st.sampled_from(["h200", "rngd", "none"]))
        resource, devices = POOL_SHAPES.get(pool, ("nvidia.com/gpu", 8))
        labels = {"pool": pool, "rack": f"r{i % 3}", "site": draw(st.sampled_from("uuv"))}
        taints = (Taint("dedicated", "x"),) if draw(st.integers(0, 5)) == 0 else ()
        state.upsert_node(
            gpu_node(
                f"n{i}",
                labels,
                gpus=devices,
                resource=resource,
                pods=draw(st.sampled_from([110, 110, 2])),
                taints=taints,
                ready=draw(st.integers(0, 6)) > 0,
            )
        )
    for name, labels in (("site", {"site": "u"}), ("rack-0", {"rack": "r0"})):
        if draw(st.booleans()):
            state.upsert_budget(
                budget(
                    name,
                    labels,
                    draw(st.integers(1, 80)) * 1000,
                    draw(st.sampled_from([0, 5])),
                    draw(st.sampled_from([1000, 1300])),
                )
            )
    for j, node in enumerate(sorted(state.nodes)):
        allocatable = state.nodes[node].allocatable
        resource = next((r for r in allocatable if "/" in r), None)
        if resource and draw(st.booleans()):
            used = draw(st.integers(1, allocatable[resource]))
            state.upsert_pod(gpu_pod(f"bound-{j}", gpus=used, resource=resource, node_name=node))
    resource = draw(st.sampled_from(["nvidia.com/gpu", "furiosa.ai/rngd", "none"]))
    pod = gpu_pod(
        "p",
        gpus=0 if resource == "none" else draw(st.integers(1, 8)),
        resource="nvidia.com/gpu" if resource == "none" else resource,
        node_selector=MappingProxyType({"rack": "r1"} if draw(st.integers(0, 4)) == 0 else {}),
        tolerations=(Toleration("dedicated", "Exists"),) if draw(st.booleans()) else (),
    )
    return state, pod


def reference(state: ClusterState, pod: Pod) -> tuple[set[str], str]:
    """(every node the pod fits, the `0/N nodes fit` message), one node at a time."""
    shape = PodShape.of(pod)
    requests = tuple(sorted(pod.requests.items()))
    listed = frozenset(r for p in state.pools.values() for r in p.resource_names)
    accelerators = tuple(r for r, q in requests if q and is_accelerator_resource(r, listed))
    reasons: Counter[str] = Counter()
    unguarded: dict[tuple[str, ...], list[str]] = {}
    feasible: set[str] = set()
    for name in sorted(state.nodes):
        node: Node = state.nodes[name]
        static = static_reason(shape, node)
        if static is not None:
            reasons[static] += 1
            continue
        too_big = next((r for r, q in requests if q > node.allocatable.get(r, 0)), None)
        if too_big is not None:
            reasons[insufficient(too_big)] += 1
            continue
        pool = state.node_pool(name)
        budgets = tuple(state.budgets[b] for b in state.node_budgets(name))
        if accelerators:
            conflict = state.ledger.conflicts.get(name, ())
            kind = unguarded_kind(pool, conflict, budgets, accelerators)
            if kind is not None:
                unguarded.setdefault(kind, []).append(name)
                continue
        delta = delta_watts(pool.profile, devices_in(pod.requests, pool.resource_names)) if (
            pool is not None) else 0  # fmt: skip
        usage = state.ledger.budgets
        if delta > 0 and not all(
            fits(usage[b.name].it_watts, delta, b.pue_milli, b.allocatable_watts) for b in budgets
        ):
            reason = power_reason(budgets, usage, {}, delta)
            assert reason is not None
            reasons[reason] += 1
            continue
        used = state.node_usage(name)
        short = next(
            (r for r, q in requests if used.get(r, 0) + q > node.allocatable.get(r, 0)), None
        )
        if short is not None:
            reasons[insufficient(short)] += 1
            continue
        if state.node_pod_count(name) >= node.allocatable.get("pods", 10**9):
            reasons["Too many pods"] += 1
            continue
        feasible.add(name)
    for kind, names in unguarded.items():
        reasons[unguarded_reason(kind, names)] += len(names)
    return feasible, unschedulable_message(len(state.nodes), reasons)


@settings(max_examples=600, deadline=None)
@given(sites())
def test_the_fast_path_answers_as_a_plain_per_node_filter(site: tuple[ClusterState, Pod]) -> None:
    state, pod = site
    feasible, message = reference(state, pod)
    state.upsert_pod(pod)
    plan = Scheduler(SchedulerConfig(preemption=False, shedding=False)).schedule(state)
    if feasible:
        assert [b.node for b in plan.bindings] != [], f"fits {sorted(feasible)}, yet: {plan}"
        assert plan.bindings[0].node in feasible
    else:
        assert plan.bindings == []
        assert [u.message for u in plan.unschedulable] == [message]
