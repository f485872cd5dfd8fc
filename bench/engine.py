"""Benchmark of the placement engine (not a test): an Ulsan-shaped cluster run to saturation.

A generated site of mixed pools (H200, B200, L40S, FuriosaAI RNGD, Rebellions ATOM, Trainium2)
under nested power budgets (site > hall > phase > row), and a queue of pending pods, 10% of
them in gangs of 8 to 64. wattsched's cycles run until the queue stops moving; then a
power-blind baseline (kube-scheduler's default: least-allocated spreading, no power) places the
same input, and the report shows which budgets it overruns.

    python bench/engine.py                       # 10,000 nodes, 100,000 pods
    python bench/engine.py --nodes 1000 --pods 10000
    python bench/engine.py --record              # also write bench/results/engine.{json,md}
    python bench/engine.py --measured --record   # every budget Measured: engine_measured.*

With --measured the same input runs twice: on nameplate, then with every budget
`admission: Measured` while telemetry ticks (see `run_measured`), and the report compares them.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import random
import re
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from wattsched.percentile import percentile
from wattsched.power import format_watts, recompute_ledger
from wattsched.power.measured import oversubscribed_watts
from wattsched.power.watts import devices_in, facility_watts
from wattsched.scheduling import (
    Budget,
    ClusterState,
    LabelSelector,
    Node,
    Plan,
    Pod,
    Pool,
    PowerProfile,
    Scheduler,
    SchedulerConfig,
)
from wattsched.translate.custom import VENDOR_TELEMETRY

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
            # The vendor's exporter, as translation defaults it; AWS Neuron has none.
            telemetry_query=VENDOR_TELEMETRY.get(spec.vendor, (None, ""))[0],
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
    load_before = os.getloadavg()
    cpu_start = time.process_time()
    run = saturate(scheduler, state, max_pods)
    latencies, placed, decisions = run.latencies, run.placed, run.decisions
    total = sum(latencies)
    cpu_seconds = time.process_time() - cpu_start
    audit = audit_cycle(state, config)
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


@dataclass
class Saturation:
    latencies: list[float]  # wall seconds of each cycle, the last one binding nothing
    placed: int
    decisions: int  # pods bound or found unschedulable with a reason
    evicted: int


def saturate(scheduler: Scheduler, state: ClusterState, max_pods: int) -> Saturation:
    """Cycles until the queue stops moving: the first cycle that binds and evicts nothing."""
    run = Saturation([], 0, 0, 0)
    while True:
        start = time.perf_counter()
        plan = scheduler.schedule(state, max_pods=max_pods)
        run.latencies.append(time.perf_counter() - start)
        run.placed += len(plan.bindings)
        run.decisions += len(plan.bindings) + len(plan.unschedulable)
        run.evicted += len(plan.evictions)
        for eviction in plan.evictions:  # the API would evict them; here they simply go
            state.remove_pod(eviction.pod)
        if not plan.bindings and not plan.evictions:
            return run


def audit_cycle(state: ClusterState, config: SchedulerConfig) -> Plan:
    """One more cycle with backoff, preemption and shedding off: every pending pod is tried
    again, which both names what each waits for and proves parking hid no placeable pod."""
    return Scheduler(
        SchedulerConfig(
            min_feasible_nodes=config.min_feasible_nodes,
            park_unschedulable=False,
            preemption=False,
            shedding=False,
        )
    ).schedule(state)


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


# -- every budget Measured (DESIGN.md §2b) ---------------------------------------------------

OVERSUBSCRIPTION_PERCENT = 30
OVERSUBSCRIPTION_WHY = (
    "the bench has no node agent, so no device can be capped and the worst case is the "
    "committed ledger: with the default 0 Measured admits nothing beyond nameplate. 30% is "
    "the top of what measure-and-cap systems fit under one feed (9-33%: Thunderbolt, Flex, "
    "POLCA), an admin's explicit choice, with the Shed budgets as the net"
)
# A serving device's p99 draw over the window, in thousandths of its range above idle: one
# seeded draw per node, so nodes differ (models, batch sizes) but a run is reproducible.
SERVING_PERMILLE = (300, 600)  # 45% on average
WORST_CASE_REASON = re.compile(r"PowerBudget (\S+) \(needs [^,)]*, worst-case headroom")
MAX_TICKS = 12  # telemetry ticks after the first; a run stops earlier once a tick places nothing


def measured_budgets(budgets: list[Budget], oversubscription_percent: int) -> list[Budget]:
    return [
        replace(b, admission="Measured", max_oversubscription_percent=oversubscription_percent)
        for b in budgets
    ]


def serving_permille(nodes: list[Node], seed: int) -> dict[str, int]:
    rng = random.Random(f"{seed}/serving")  # a str seed: the same draw in every process
    return {node.name: rng.randint(*SERVING_PERMILLE) for node in nodes}


def telemetry_readings(state: ClusterState, permille: Mapping[str, int]) -> dict[str, int]:
    """Observed IT watts per node, as its pool's exporter shows them at the window percentile:
    base watts, free devices at idle, allocated devices at the node's serving draw."""
    readings: dict[str, int] = {}
    for name, node in state.nodes.items():
        pool = state.node_pool(name)
        if pool is None:
            continue
        profile = pool.profile
        devices = devices_in(node.allocatable, pool.resource_names)
        busy = devices_in(state.node_usage(name), pool.resource_names)
        serving = profile.idle_device_watts + (
            (profile.device_watts - profile.idle_device_watts) * permille[name] // 1000
        )
        readings[name] = (
            profile.node_base_watts + (devices - busy) * profile.idle_device_watts + busy * serving
        )
    return readings


def devices_allocated(state: ClusterState) -> tuple[int, int]:
    """(devices allocated, devices) over every pool node: what is left when power stops binding."""
    allocated = total = 0
    for name, node in state.nodes.items():
        pool = state.node_pool(name)
        if pool is not None:
            total += devices_in(node.allocatable, pool.resource_names)
            allocated += devices_in(state.node_usage(name), pool.resource_names)
    return allocated, total


def unsafe_budgets(state: ClusterState) -> list[str]:
    """Budgets breaking either line of §2b: estimate over allocatable, or committed watts over
    allocatable x (1 + maxOversubscriptionPercent/100)."""
    unsafe = []
    for name, budget in sorted(state.budgets.items()):
        status = state.budget_status(name)
        bound = oversubscribed_watts(status.allocatable_watts, budget.max_oversubscription_percent)
        if (status.estimated_watts or 0) > status.allocatable_watts:
            unsafe.append(f"{name}: estimate {status.estimated_watts} W > allocatable")
        if status.committed_watts > bound:
            unsafe.append(f"{name}: committed {status.committed_watts} W > {bound} W")
    return unsafe


def worst_case_budgets(messages: list[str]) -> dict[str, int]:
    """How many unschedulable pods name each budget's worst case (not its estimate)."""
    counts: dict[str, int] = {}
    for message in messages:
        for name in set(WORST_CASE_REASON.findall(message)):
            counts[name] = counts.get(name, 0) + 1
    return counts


def run_measured(
    nodes: list[Node],
    pools: list[Pool],
    budgets: list[Budget],
    pods: list[Pod],
    max_pods: int,
    config: SchedulerConfig,
    seed: int,
) -> dict[str, Any]:
    """The same input with every budget Measured, telemetry ticking once a window and a minute.

    Tick 0 reads the idle site and places to saturation: every pod placed is recent, counted at
    its committed watts, so it places what nameplate does. Each later tick moves the clock past
    the window (the pods placed so far are old: their draw is in the data), sets readings that
    show it, and places to saturation again, until a tick places nothing. The readings are
    computed outside the timed cycles; the gains they move are recomputed inside the first
    cycle after them, as in the operator.
    """
    budgets = measured_budgets(budgets, OVERSUBSCRIPTION_PERCENT)
    build_start = time.perf_counter()
    state = ClusterState.from_objects(nodes, pools, budgets, pods)
    build_seconds = time.perf_counter() - build_start
    permille = serving_permille(nodes, seed)
    tick_seconds = max(b.window_seconds for b in budgets) + 60
    scheduler = Scheduler(config)
    load_before = os.getloadavg()
    latencies: list[float] = []
    placed = decisions = evicted = 0
    cpu_seconds = telemetry_seconds = 0.0
    ticks: list[dict[str, Any]] = []
    unsafe: list[str] = []
    for tick in range(MAX_TICKS + 1):
        start = time.perf_counter()
        state.advance_to(tick * tick_seconds)
        state.set_readings(telemetry_readings(state, permille))
        telemetry_seconds += time.perf_counter() - start
        cpu_start = time.process_time()
        run = saturate(scheduler, state, max_pods)
        cpu_seconds += time.process_time() - cpu_start
        latencies += run.latencies
        site = state.budget_status("ulsan-site")
        allocated, devices = devices_allocated(state)
        seconds = sum(run.latencies)
        ticks.append(
            {
                "at_seconds": tick * tick_seconds,
                "old_pods": placed,  # placed a window or more ago: in the data
                "pods_placed": run.placed,  # recent until the next tick
                "pods_evicted": run.evicted,
                "cycles": len(run.latencies),
                "seconds": round(seconds, 3),
                "first_cycle_ms": round(run.latencies[0] * 1000, 1),
                "pods_per_second": round(run.placed / seconds) if seconds else 0,
                "devices_allocated_percent": round(100 * allocated / devices, 1),
                "site_estimated_watts": site.estimated_watts,
                "site_committed_watts": site.committed_watts,
            }
        )
        placed += run.placed
        decisions += run.decisions
        evicted += run.evicted
        unsafe += [f"tick {tick}: {problem}" for problem in unsafe_budgets(state)]
        if tick and not run.placed and not run.evicted:
            break
    total = sum(latencies)
    load_after = os.getloadavg()
    # Ticks 0 and 1 alone: place, age and read, place again; later ticks only settle.
    first_two = ticks[:2]
    first_two_seconds = sum(t["seconds"] for t in first_two)
    first_two_placed = sum(t["pods_placed"] for t in first_two)
    audit = audit_cycle(state, config)
    unschedulable = [u.message for u in audit.unschedulable]
    at_saturation = {name: state.budget_status(name) for name in sorted(state.budgets)}
    # One more tick with no cycle: every pod is old, so the meters show what the pods draw.
    state.advance_to(len(ticks) * tick_seconds)
    state.set_readings(telemetry_readings(state, permille))
    unsafe += [f"final readings: {problem}" for problem in unsafe_budgets(state)]
    waiting_for = waiting_budgets(state, unschedulable)
    worst_case = worst_case_budgets(unschedulable)
    report: dict[str, Any] = {
        "oversubscription_percent": OVERSUBSCRIPTION_PERCENT,
        "oversubscription_why": OVERSUBSCRIPTION_WHY,
        "serving_permille_range": list(SERVING_PERMILLE),
        "serving_permille_mean": round(sum(permille.values()) / len(permille)),
        "window_seconds": max(b.window_seconds for b in budgets),
        "tick_seconds": tick_seconds,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "build_seconds": round(build_seconds, 2),
        "telemetry_seconds": round(telemetry_seconds, 2),
        "ticks": ticks,
        "cycles": len(latencies),
        "max_pods_per_cycle": max_pods,
        "pods_placed": placed,
        "pods_evicted": evicted,
        "pods_pending": state.pending_count(),
        "placeable_pods_parking_hid": len(audit.bindings),
        "schedule_seconds": round(total, 2),
        "pods_per_second": round(placed / total) if total else 0,
        "first_two_ticks_pods_per_second": (
            round(first_two_placed / first_two_seconds) if first_two_seconds else 0
        ),
        "schedule_cpu_seconds": round(cpu_seconds, 2),
        "pods_per_cpu_second": round(placed / cpu_seconds) if cpu_seconds else 0,
        "pod_decisions": decisions,
        "decisions_per_second": round(decisions / total) if total else 0,
        "cycle_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "cycle_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "peak_rss_mib": round(peak_rss_mib()),
        "unsafe": unsafe,
        "budgets": [],
    }
    for name, status in at_saturation.items():
        final = state.budget_status(name)
        bound = oversubscribed_watts(status.allocatable_watts, OVERSUBSCRIPTION_PERCENT)
        report["budgets"].append(
            {
                "name": name,
                "enforcement": state.budgets[name].enforcement,
                "nodes": status.nodes,
                "committed_watts": status.committed_watts,
                "estimated_watts": status.estimated_watts,
                "measured_watts": final.measured_watts,  # the meters once every pod is old
                "allocatable_watts": status.allocatable_watts,
                "oversubscribed_watts": bound,
                "estimate_fill_percent": round(
                    100 * (status.estimated_watts or 0) / status.allocatable_watts, 2
                ),
                "worst_case_fill_percent": round(100 * status.committed_watts / bound, 2),
                "measured_fill_percent": round(
                    100 * (final.measured_watts or 0) / status.allocatable_watts, 2
                ),
                "pods_waiting_for_it": waiting_for.get(name, 0),
                "pods_waiting_for_its_worst_case": worst_case.get(name, 0),
            }
        )
    report["sample_unschedulable"] = sorted(set(unschedulable))[:3]
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


def render_measured(result: dict[str, Any]) -> str:
    ms, np_ = result["measured"], result["nameplate"]
    over = ms["oversubscription_percent"]
    site = {b["name"]: b for b in np_["budgets"]}["ulsan-site"]
    lines = [
        f"# Engine benchmark, every budget Measured: {result['nodes']:,} nodes, "
        f"{result['pods']:,} pending pods",
        "",
        f"Python {result['python']} on {result['machine']}; "
        f"{result['gang_pods']:,} pods in {result['gangs']} gangs of 8..64. The budgets of the "
        "nameplate benchmark, each with `admission: Measured` and "
        f"`maxOversubscriptionPercent: {over}`: {ms['oversubscription_why']}.",
        "",
        f"Telemetry: each node's allocated devices draw, at the window percentile, a seeded "
        f"{ms['serving_permille_range'][0] / 10:g}-{ms['serving_permille_range'][1] / 10:g}% "
        f"of their range above idle (mean {ms['serving_permille_mean'] / 10:g}%); free devices "
        f"idle; plus the pool's base watts. Window {ms['window_seconds']} s; a tick every "
        f"{ms['tick_seconds']} s moves the clock past the window and sets readings showing "
        "every pod placed so far, then cycles run to saturation.",
        "",
        "## Measured against nameplate: the same pods under the same budgets, in one run",
        "",
        "| | nameplate | measured |",
        "| --- | ---: | ---: |",
        f"| pods placed | {np_['pods_placed']:,} | {ms['pods_placed']:,} |",
        f"| pods placed per second | {np_['pods_per_second']:,} | **{ms['pods_per_second']:,}** |",
        f"| pods placed per CPU second | {np_['pods_per_cpu_second']:,} | "
        f"{ms['pods_per_cpu_second']:,} |",
        f"| cycles (scheduling wall time) | {np_['cycles']} ({np_['schedule_seconds']} s) | "
        f"{ms['cycles']} ({ms['schedule_seconds']} s) |",
        f"| cycle p50 / p99 | {np_['cycle_p50_ms']} / {np_['cycle_p99_ms']} ms | "
        f"{ms['cycle_p50_ms']} / {ms['cycle_p99_ms']} ms |",
        f"| ulsan-site committed | {format_watts(site['committed_watts'])} | "
        f"{format_watts({b['name']: b for b in ms['budgets']}['ulsan-site']['committed_watts'])} |",
        "",
        f"Measured admission placed **{result['extra_pods']:+,} pods** "
        f"({result['extra_percent']:+}%) more than nameplate under the same budgets.",
        "",
        "## Ticks",
        "",
        "| tick | at | old pods (in the data) | pods placed (recent) | cycles | seconds | "
        "first cycle | pods/s | devices allocated | site estimated | site committed |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, tick in enumerate(ms["ticks"]):
        lines.append(
            f"| {i} | {tick['at_seconds']:,} s | {tick['old_pods']:,} | {tick['pods_placed']:,} | "
            f"{tick['cycles']} | {tick['seconds']} | {tick['first_cycle_ms']} ms | "
            f"{tick['pods_per_second']:,} | "
            f"{tick['devices_allocated_percent']}% | "
            f"{format_watts(tick['site_estimated_watts'])} | "
            f"{format_watts(tick['site_committed_watts'])} |"
        )
    lines += [
        "",
        "New readings may free room for any parked pod, so the first cycle of every tick tries "
        "each of them again; a tick that places nothing is what ends the run. Ticks 0 and 1 "
        "alone (place, age and read, place again) placed "
        f"{sum(t['pods_placed'] for t in ms['ticks'][:2]):,} pods at "
        f"{ms['first_two_ticks_pods_per_second']:,} per second; the ticks after them placed "
        f"{sum(t['pods_placed'] for t in ms['ticks'][2:]):,} in "
        f"{round(sum(t['seconds'] for t in ms['ticks'][2:]), 2)} s.",
        "",
        "## wattsched, every budget Measured",
        "",
        f"- pods placed: {ms['pods_placed']:,} in {ms['cycles']} cycles over "
        f"{len(ms['ticks'])} ticks (at most {ms['max_pods_per_cycle']:,} bindings each); "
        f"{ms['pods_evicted']} evicted; {ms['pods_pending']:,} left pending; the audit cycle "
        f"(no backoff) placed {ms['placeable_pods_parking_hid']} more",
        f"- pods placed per second: **{ms['pods_per_second']:,}** (scheduling wall time "
        f"{ms['schedule_seconds']} s, every cycle of every tick; state built in "
        f"{ms['build_seconds']} s; readings computed in {ms['telemetry_seconds']} s, not "
        f"counted); per CPU second: {ms['pods_per_cpu_second']:,} "
        f"({ms['schedule_cpu_seconds']} s of CPU)",
        f"- pod decisions: {ms['pod_decisions']:,}, {ms['decisions_per_second']:,} per second",
        f"- load average (1, 5, 15 min) before: {ms['load_average_before']}, after: "
        f"{ms['load_average_after']} on {os.cpu_count()} cores",
        f"- peak RSS: {ms['peak_rss_mib']} MiB (the nameplate run's included: same process)",
        "",
        "Estimated and committed at saturation; metered once every pod is old (one more tick).",
        "",
        f"| budget | enforcement | nodes | committed | estimated | metered | allocatable | "
        f"x{1 + over / 100:g} | estimate fill | worst-case fill | metered fill | pods waiting "
        "(on the worst case) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for b in ms["budgets"]:
        lines.append(
            f"| {b['name']} | {b['enforcement']} | {b['nodes']:,} | "
            f"{format_watts(b['committed_watts'])} | {format_watts(b['estimated_watts'])} | "
            f"{format_watts(b['measured_watts'])} | {format_watts(b['allocatable_watts'])} | "
            f"{format_watts(b['oversubscribed_watts'])} | {b['estimate_fill_percent']}% | "
            f"{b['worst_case_fill_percent']}% | {b['measured_fill_percent']}% | "
            f"{b['pods_waiting_for_it']:,} ({b['pods_waiting_for_its_worst_case']:,}) |"
        )
    lines += [
        "",
        "Safety, checked at every tick's saturation and on the last readings: "
        + ("; ".join(ms["unsafe"]) if ms["unsafe"] else "no budget's estimate over its "
           f"allocatable, no budget's committed watts over allocatable x {1 + over / 100:g}."),
        "",
        f"Sample reasons: {'; '.join(ms['sample_unschedulable']) or 'none'}",
        "",
        "## Targets",
        "",
    ]  # fmt: skip
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
    parser.add_argument(
        "--measured",
        action="store_true",
        help="every budget Measured, against nameplate on the same input",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="write bench/results/engine.* (engine_measured.* with --measured)",
    )
    args = parser.parse_args(argv)

    nodes = generate_nodes(args.nodes)
    pools = generate_pools()
    budgets = generate_budgets(nodes, pools)
    pods = generate_pods(args.pods, nodes, args.seed)
    config = SchedulerConfig(min_feasible_nodes=args.min_feasible_nodes)
    ws = run_wattsched(nodes, pools, budgets, pods, args.max_pods, config)
    gangs = {pod.gang for pod in pods if pod.gang is not None}
    result: dict[str, Any] = {
        "nodes": args.nodes,
        "pods": args.pods,
        "gangs": len(gangs),
        "gang_pods": sum(1 for pod in pods if pod.gang is not None),
        "seed": args.seed,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
    }
    if args.measured:
        ms = run_measured(nodes, pools, budgets, pods, args.max_pods, config, args.seed)
        extra = ms["pods_placed"] - ws["pods_placed"]
        result |= {
            "nameplate": ws,
            "measured": ms,
            "extra_pods": extra,
            "extra_percent": round(100 * extra / ws["pods_placed"], 1) if ws["pods_placed"] else 0,
            "targets": {
                "at least 5,000 pods/s with every budget Measured": ms["pods_per_second"] >= 5_000,
                "peak RSS at most 1 GiB": ms["peak_rss_mib"] <= 1024,
                "more pods placed than on nameplate": extra > 0,
                "no estimate over allocatable, no committed watts over allocatable x "
                f"{1 + OVERSUBSCRIPTION_PERCENT / 100:g}": not ms["unsafe"],
            },
        }
        text, name = render_measured(result), "engine_measured"
    else:
        blind = run_power_blind(nodes, pools, budgets, pods)
        waiting = [b for b in ws["budgets"] if b["pods_waiting_for_it"]]
        result |= {
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
        text, name = render(result), "engine"
    print(text)
    if args.record:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / f"{name}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
