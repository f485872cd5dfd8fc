"""Benchmark of the placement engine (not a test): an Ulsan-shaped cluster run to saturation.

A generated site of mixed pools (H200, B200, L40S, FuriosaAI RNGD, Rebellions ATOM, Trainium2)
under nested power budgets (site > hall > phase > row), and a queue of pending pods, 10% of
them in gangs of 8 to 64. wattsched's cycles run until the queue stops moving; then a
power-blind baseline (kube-scheduler's default: least-allocated spreading, no power) places the
same input, and the report shows which budgets it overruns.

    python bench/engine.py                       # 10,000 nodes, 100,000 pods
    python bench/engine.py --nodes 1000 --pods 10000
    python bench/engine.py --record              # also write bench/results/engine.{json,md}
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from wattsched.percentile import percentile
from wattsched.power import format_watts, recompute_ledger
from wattsched.power.watts import facility_watts
from wattsched.scheduling import (
    Budget,
    ClusterState,
    LabelSelector,
    Node,
    Pod,
    Pool,
    PowerProfile,
    Scheduler,
    SchedulerConfig,
)

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 1024**3
NODES_PER_RACK = 4  # 4 x ~9 kW H200 servers: a ~36 kW rack
RACKS_PER_ROW = 10


@dataclass(frozen=True)
class PoolSpec:
    name: str
    vendor: str
    model: str
    resource: str
    devices_per_node: int
    profile: PowerProfile


POOL_SPECS = {
    spec.name: spec
    for spec in (
        PoolSpec("h200", "nvidia", "H200-SXM", "nvidia.com/gpu", 8, PowerProfile(700, 90, 3000)),
        PoolSpec("b200", "nvidia", "B200", "nvidia.com/gpu", 8, PowerProfile(1000, 140, 3500)),
        PoolSpec("l40s", "nvidia", "L40S", "nvidia.com/gpu", 4, PowerProfile(350, 35, 1200)),
        PoolSpec("rngd", "furiosa", "RNGD", "furiosa.ai/rngd", 8, PowerProfile(180, 35, 1500)),
        PoolSpec(
            "atom", "rebellions", "ATOM", "rebellions.ai/ATOM", 8, PowerProfile(150, 25, 1400)
        ),
        PoolSpec(
            "trn2", "aws", "Trainium2", "aws.amazon.com/neuron", 16, PowerProfile(500, 60, 4000)
        ),
    )
}
# Hall A is phase 1; hall B is phases 2 and 3. Rows of a hall cycle through its pool mix.
HALL_MIX = {
    "a": ("h200", "h200", "h200", "h200", "l40s", "rngd", "rngd", "atom", "atom", "h200"),
    "b": ("b200", "b200", "b200", "b200", "b200", "h200", "h200", "trn2", "trn2", "rngd"),
}


def selector(labels: Mapping[str, str]) -> LabelSelector:
    return LabelSelector(MappingProxyType(dict(labels)))


def generate_nodes(count: int) -> list[Node]:
    nodes: list[Node] = []
    hall_a = count * 2 // 5
    for i in range(count):
        hall = "a" if i < hall_a else "b"
        index = i if hall == "a" else i - hall_a
        rack = index // NODES_PER_RACK
        row = rack // RACKS_PER_ROW
        pool = POOL_SPECS[HALL_MIX[hall][row % len(HALL_MIX[hall])]]
        hall_rows = ((hall_a if hall == "a" else count - hall_a) - 1) // (
            NODES_PER_RACK * RACKS_PER_ROW
        ) + 1
        phase = "1" if hall == "a" else ("2" if row < hall_rows // 2 else "3")
        labels = {
            "wattsched.io/site": "ulsan",
            "wattsched.io/hall": f"hall-{hall}",
            "wattsched.io/phase": phase,
            "wattsched.io/row": f"{hall}-{row:02d}",
            "wattsched.io/rack": f"{hall}-{row:02d}-{rack % RACKS_PER_ROW:02d}",
            "wattsched.io/pool": pool.name,
        }
        allocatable = {
            "cpu": 192_000,
            "memory": 2048 * GIB,
            "pods": 110,
            pool.resource: pool.devices_per_node,
        }
        nodes.append(Node(f"node-{i:05d}", MappingProxyType(labels), MappingProxyType(allocatable)))
    return nodes


def generate_pools() -> list[Pool]:
    return [
        Pool(
            spec.name,
            selector({"wattsched.io/pool": spec.name}),
            (spec.resource,),
            spec.profile,
            created_order=order,
            vendor=spec.vendor,
            model=spec.model,
        )
        for order, spec in enumerate(POOL_SPECS.values())
    ]


BUDGET_SHAPES: tuple[tuple[str, dict[str, str], int, int, int, str], ...] = (
    # name, domain, fraction of the dynamic range (permille), reserve %, PUE milli, enforcement
    ("ulsan-site", {"wattsched.io/site": "ulsan"}, 700, 5, 1000, "Admit"),
    ("hall-a", {"wattsched.io/hall": "hall-a"}, 750, 5, 1000, "Admit"),
    ("hall-b", {"wattsched.io/hall": "hall-b"}, 800, 5, 1000, "Admit"),
    ("ulsan-phase-1", {"wattsched.io/phase": "1"}, 720, 5, 1250, "Admit"),
    ("ulsan-phase-2", {"wattsched.io/phase": "2"}, 650, 5, 1250, "Shed"),
    ("ulsan-phase-3", {"wattsched.io/phase": "3"}, 800, 5, 1250, "Admit"),
    ("row-a-00", {"wattsched.io/row": "a-00"}, 500, 0, 1000, "Shed"),
    ("row-b-01", {"wattsched.io/row": "b-01"}, 550, 0, 1000, "Shed"),
)


def generate_budgets(nodes: list[Node], pools: list[Pool]) -> list[Budget]:
    """Limits between idle and full draw of each domain, so power binds before devices do."""
    by_name = {pool.name: pool for pool in pools}
    budgets = []
    for name, domain, permille, reserve, pue, enforcement in BUDGET_SHAPES:
        sel = selector(domain)
        idle = full = 0
        for node in nodes:
            if not sel.matches(node.labels):
                continue
            pool = by_name[node.labels["wattsched.io/pool"]]
            devices = node.allocatable[pool.resource_names[0]]
            profile = pool.profile
            idle += profile.node_base_watts + devices * profile.idle_device_watts
            full += profile.node_base_watts + devices * profile.device_watts
        it_limit = idle + (full - idle) * permille // 1000
        limit = facility_watts(it_limit, pue) * 100 // (100 - reserve)
        # Round to 10 kW as an operator would write it ("4.1MW"), not to the watt.
        limit = limit // 10_000 * 10_000 or 10_000
        budgets.append(Budget(name, sel, limit, reserve, pue, enforcement))
    return budgets


def generate_pods(count: int, nodes: list[Node], seed: int) -> list[Pod]:
    rng = random.Random(seed)
    device_weights: dict[str, int] = {}
    for node in nodes:
        for resource_name, quantity in node.allocatable.items():
            if "/" in resource_name:
                device_weights[resource_name] = device_weights.get(resource_name, 0) + quantity
    resources = sorted(device_weights)
    weights = [device_weights[r] for r in resources]
    shapes: dict[tuple[str, int], Mapping[str, int]] = {}

    def requests(resource_name: str, devices: int) -> Mapping[str, int]:
        key = (resource_name, devices)
        if key not in shapes:  # pods of one shape share one mapping: 100k dicts add up
            shapes[key] = MappingProxyType(
                {"cpu": 8_000 * devices, "memory": 64 * GIB * devices, resource_name: devices}
            )
        return shapes[key]

    pods: list[Pod] = []
    gang_target = count // 10
    gang_pods = 0
    serial = 0
    gang_no = 0
    while gang_pods < gang_target:
        size = min(rng.randint(8, 64), gang_target - gang_pods)
        resource_name = rng.choice(["nvidia.com/gpu", "nvidia.com/gpu", "aws.amazon.com/neuron"])
        per_pod = 8 if resource_name == "nvidia.com/gpu" else 16
        priority = rng.choice([100, 100, 1000])
        gang = f"train/gang-{gang_no:04d}"
        for member in range(size):
            pods.append(
                Pod(
                    "train",
                    f"gang-{gang_no:04d}-{member:02d}",
                    f"uid-g{gang_no}-{member}",
                    priority,
                    created_order=rng.randrange(count),
                    requests=requests(resource_name, per_pod),
                    gang=gang,
                    gang_size=size,
                )
            )
        gang_pods += size
        gang_no += 1
    while len(pods) < count:
        resource_name = rng.choices(resources, weights)[0]
        devices = rng.choices([1, 2, 4, 8], [40, 25, 20, 15])[0]
        if resource_name == "nvidia.com/gpu" and devices == 8 and rng.random() < 0.3:
            devices = 4  # L40S nodes hold 4
        serial += 1
        pods.append(
            Pod(
                "serve",
                f"pod-{serial:06d}",
                f"uid-{serial}",
                rng.choices([0, 100, 1000], [60, 30, 10])[0],
                created_order=rng.randrange(count),
                requests=requests(resource_name, devices),
            )
        )
    return pods


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_wattsched(
    nodes: list[Node],
    pools: list[Pool],
    budgets: list[Budget],
    pods: list[Pod],
    max_pods: int,
    config: SchedulerConfig,
) -> dict[str, Any]:
    build_start = time.perf_counter()
    state = ClusterState.from_objects(nodes, pools, budgets, pods)
    build_seconds = time.perf_counter() - build_start
    scheduler = Scheduler(config)
    latencies: list[float] = []
    load_before = os.getloadavg()
    cpu_start = time.process_time()
    placed = 0
    decisions = 0
    unschedulable: list[str] = []
    while True:
        start = time.perf_counter()
        plan = scheduler.schedule(state, max_pods=max_pods)
        latencies.append(time.perf_counter() - start)
        placed += len(plan.bindings)
        decisions += len(plan.bindings) + len(plan.unschedulable)
        unschedulable = [u.message for u in plan.unschedulable]
        for eviction in plan.evictions:  # the API would evict them; here they simply go
            state.remove_pod(eviction.pod)
        if not plan.bindings and not plan.evictions:
            break
    total = sum(latencies)
    cpu_seconds = time.process_time() - cpu_start
    # One more cycle with backoff, preemption and shedding off: every pending pod is tried
    # again, which both names what each waits for and proves parking hid no placeable pod.
    audit = Scheduler(
        SchedulerConfig(
            min_feasible_nodes=config.min_feasible_nodes,
            park_unschedulable=False,
            preemption=False,
            shedding=False,
        )
    ).schedule(state)
    unschedulable = [u.message for u in audit.unschedulable]
    waiting_for = waiting_budgets(state, unschedulable)
    load_after = os.getloadavg()
    report: dict[str, Any] = {
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "build_seconds": round(build_seconds, 2),
        "cycles": len(latencies),
        "max_pods_per_cycle": max_pods,
        "pods_placed": placed,
        "pods_pending": state.pending_count(),
        "placeable_pods_parking_hid": len(audit.bindings),
        "schedule_seconds": round(total, 2),
        "pods_per_second": round(placed / total) if total else 0,
        "schedule_cpu_seconds": round(cpu_seconds, 2),
        "pods_per_cpu_second": round(placed / cpu_seconds) if cpu_seconds else 0,
        "pod_decisions": decisions,
        "decisions_per_second": round(decisions / total) if total else 0,
        "decisions_per_cpu_second": round(decisions / cpu_seconds) if cpu_seconds else 0,
        "cycle_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "cycle_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "peak_rss_mib": round(peak_rss_mib()),
        "budgets": [],
    }
    for budget in sorted(budgets, key=lambda b: b.name):
        status = state.budget_status(budget.name)
        report["budgets"].append(
            {
                "name": budget.name,
                "enforcement": budget.enforcement,
                "nodes": status.nodes,
                "committed_watts": status.committed_watts,
                "allocatable_watts": status.allocatable_watts,
                "fill_percent": round(100 * status.committed_watts / status.allocatable_watts, 2),
                "over": status.over,
                "pods_waiting_for_it": waiting_for.get(budget.name, 0),
            }
        )
    report["sample_unschedulable"] = sorted(set(unschedulable))[:3]
    return report


def waiting_budgets(state: ClusterState, messages: list[str]) -> dict[str, int]:
    """How many unschedulable pods name each budget as a binding constraint."""
    counts: dict[str, int] = {}
    for message in messages:
        for name in state.budgets:
            if f"PowerBudget {name} " in message:
                counts[name] = counts.get(name, 0) + 1
    return counts


def run_power_blind(
    nodes: list[Node], pools: list[Pool], budgets: list[Budget], pods: list[Pod]
) -> dict[str, Any]:
    """kube-scheduler's default, as far as it matters here: fit, then least-allocated, no power.

    Least-allocated over each node's device resource (a heap keyed by the used fraction), pods
    in the same queue order, gang members placed one by one (the default has no gangs).
    """
    start = time.perf_counter()
    heaps: dict[str, list[tuple[float, str]]] = {}
    free: dict[str, dict[str, int]] = {}
    for node in nodes:
        free[node.name] = dict(node.allocatable)
        for resource_name in node.allocatable:
            if "/" in resource_name:
                heaps.setdefault(resource_name, []).append((0.0, node.name))
    for heap in heaps.values():
        heapq.heapify(heap)
    totals = {node.name: node.allocatable for node in nodes}
    placements: list[tuple[Pod, str]] = []
    for pod in sorted(pods, key=lambda p: (-p.priority, p.created_order, p.namespace, p.name)):
        device = next((r for r in pod.requests if "/" in r), None)
        if device is None or device not in heaps:
            continue
        heap = heaps[device]
        _, name = heap[0]
        room = free[name]
        if all(room.get(r, 0) >= q for r, q in pod.requests.items()):
            for r, q in pod.requests.items():
                room[r] -= q
            placements.append((pod, name))
            used = 1 - room[device] / totals[name][device]
            heapq.heapreplace(heap, (used, name))
    seconds = time.perf_counter() - start
    ledger = recompute_ledger(nodes, pools, budgets, placements)
    report: dict[str, Any] = {
        "pods_placed": len(placements),
        "seconds": round(seconds, 2),
        "budgets": [],
    }
    for budget in sorted(budgets, key=lambda b: b.name):
        committed = facility_watts(ledger.budgets[budget.name].it_watts, budget.pue_milli)
        over = committed - budget.allocatable_watts
        report["budgets"].append(
            {
                "name": budget.name,
                "committed_watts": committed,
                "allocatable_watts": budget.allocatable_watts,
                "over_watts": max(0, over),
                "over_percent": round(100 * max(0, over) / budget.allocatable_watts, 1),
            }
        )
    return report


def render(result: dict[str, Any]) -> str:
    ws, blind = result["wattsched"], result["power_blind"]
    lines = [
        f"# Engine benchmark: {result['nodes']:,} nodes, {result['pods']:,} pending pods",
        "",
        f"Python {result['python']} on {result['machine']}; "
        f"{result['gang_pods']:,} pods in {result['gangs']} gangs of 8..64.",
        "",
        "## wattsched",
        "",
        f"- pods placed: {ws['pods_placed']:,} in {ws['cycles']} cycles "
        f"(at most {ws['max_pods_per_cycle']:,} bindings each); "
        f"{ws['pods_pending']:,} left pending; the audit cycle (no backoff) placed "
        f"{ws['placeable_pods_parking_hid']} more",
        f"- pods placed per second: **{ws['pods_per_second']:,}** "
        f"(scheduling wall time {ws['schedule_seconds']} s; state built in "
        f"{ws['build_seconds']} s); per CPU second: {ws['pods_per_cpu_second']:,} "
        f"({ws['schedule_cpu_seconds']} s of CPU: the machine is shared)",
        f"- pod decisions (bound or unschedulable with a reason): {ws['pod_decisions']:,}, "
        f"{ws['decisions_per_second']:,} per second, {ws['decisions_per_cpu_second']:,} per CPU "
        "second",
        f"- load average (1, 5, 15 min) before: {ws['load_average_before']}, after: "
        f"{ws['load_average_after']} on {os.cpu_count()} cores",
        "- pods placed per second = pods bound / the summed wall time of every cycle run, "
        "up to and including the first cycle that binds and evicts nothing (saturation); "
        "per CPU second uses the process CPU time of the same cycles",
        f"- cycle latency: p50 {ws['cycle_p50_ms']} ms, p99 {ws['cycle_p99_ms']} ms",
        f"- peak RSS: {ws['peak_rss_mib']} MiB",
        "",
        "| budget | enforcement | nodes | committed | allocatable | fill | pods waiting | over |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for b in ws["budgets"]:
        lines.append(
            f"| {b['name']} | {b['enforcement']} | {b['nodes']:,} | "
            f"{format_watts(b['committed_watts'])} | {format_watts(b['allocatable_watts'])} | "
            f"{b['fill_percent']}% | {b['pods_waiting_for_it']:,} | "
            f"{'**yes**' if b['over'] else 'no'} |"
        )
    lines += [
        "",
        f"Sample reasons: {'; '.join(ws['sample_unschedulable']) or 'none'}",
        "",
        "## Power-blind baseline (least-allocated, no power)",
        "",
        f"- pods placed: {blind['pods_placed']:,} in {blind['seconds']} s",
        "",
        "| budget | committed | allocatable | over by |",
        "| --- | ---: | ---: | ---: |",
    ]
    for b in blind["budgets"]:
        over = f"{format_watts(b['over_watts'])} ({b['over_percent']}%)" if b["over_watts"] else "-"
        lines.append(
            f"| {b['name']} | {format_watts(b['committed_watts'])} | "
            f"{format_watts(b['allocatable_watts'])} | {over} |"
        )
    lines += ["", "## Targets", ""]
    for name, ok in result["targets"].items():
        lines.append(f"- {name}: {'met' if ok else '**missed**'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--pods", type=int, default=100_000)
    parser.add_argument("--max-pods", type=int, default=5_000, help="bindings per cycle")
    parser.add_argument("--min-feasible-nodes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--record", action="store_true", help="write bench/results/engine.*")
    args = parser.parse_args(argv)

    nodes = generate_nodes(args.nodes)
    pools = generate_pools()
    budgets = generate_budgets(nodes, pools)
    pods = generate_pods(args.pods, nodes, args.seed)
    config = SchedulerConfig(min_feasible_nodes=args.min_feasible_nodes)
    ws = run_wattsched(nodes, pools, budgets, pods, args.max_pods, config)
    blind = run_power_blind(nodes, pools, budgets, pods)
    gangs = {pod.gang for pod in pods if pod.gang is not None}
    waiting = [b for b in ws["budgets"] if b["pods_waiting_for_it"]]
    result: dict[str, Any] = {
        "nodes": args.nodes,
        "pods": args.pods,
        "gangs": len(gangs),
        "gang_pods": sum(1 for pod in pods if pod.gang is not None),
        "seed": args.seed,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
        "wattsched": ws,
        "power_blind": blind,
        "targets": {
            "at least 5,000 pods/s": ws["pods_per_second"] >= 5_000,
            "peak RSS at most 1 GiB": ws["peak_rss_mib"] <= 1024,
            "no budget over": not any(b["over"] for b in ws["budgets"]),
            "every budget pods wait for at 97% or more": all(
                b["fill_percent"] >= 97 for b in waiting
            ),
        },
    }
    text = render(result)
    print(text)
    if args.record:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "engine.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "engine.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
