"""End-to-end benchmark (not a test): wattsched against kube-scheduler on the same API server.

For each node count N a fresh local control plane (etcd + kube-apiserver, DESIGN.md §6) gets
N fake nodes of the Ulsan fleet (five accelerator pools, scaled to N), the pools and a set of
nested power budgets sized so that the pods' power demand exceeds phase 1 a little. Then each
scheduler in turn, on the same empty namespace, schedules the same M pods:

- the scheduler process starts and reports ready (and, for wattsched, holds its Lease);
- M pods are created from a thread pool, each naming the scheduler under test and asking for
  1 to 8 devices of one pool (by a nodeSelector on the pool label);
- a watch on the namespace records, on this process's monotonic clock, when each pod's
  spec.nodeName appears; the run ends when every pod is bound, or when nothing more was bound
  for a settle period after the last creation;
- the pods are deleted before the next scheduler starts.

Measured per scheduler: throughput (pods bound / seconds from the first creation to the last
binding), p50 and p99 creation-to-binding latency (request sent -> binding seen in the watch),
CPU seconds of the scheduler process during the run (utime + stime, children included, from
/proc), its peak RSS (VmHWM), the API server's and etcd's CPU in the same window, and the power
budgets' committed watts recomputed from the bound pods, the nodes and the pools' power
profiles, independently of wattsched's ledger. The machine is shared: the load average is
recorded with every run, and the figure that matters is the ratio within one run.

    .venv/bin/python bench/e2e.py                         # 1,000 and 5,000 nodes, 10,000 pods
    .venv/bin/python bench/e2e.py --nodes 1000 --pods 2000
    .venv/bin/python bench/e2e.py --record                # also bench/results/e2e.{json,md}
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `e2e` importable
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from e2e.fleet import (  # noqa: E402
    HALL_LABEL,
    PHASE_LABEL,
    POOL_LABEL,
    SITE_LABEL,
    create_nodes,
    fleet_nodes,
    load_fleet,
)
from e2e.operator_process import OperatorProcess  # noqa: E402
from e2e.providers.build import KUBERNETES_VERSION, ensure_control_plane  # noqa: E402
from e2e.providers.local import LocalControlPlane, free_port  # noqa: E402
from e2e.providers.rest import JSON, KubeError, KubeREST  # noqa: E402
from wattsched.percentile import nearest_rank, percentile  # noqa: E402

RESULTS = REPO / "bench" / "results"
SITE_FILE = REPO / "examples" / "ulsan" / "fleet" / "site.yaml"
POOLS_FILE = REPO / "examples" / "ulsan" / "pools.yaml"
CRDS = REPO / "crds"
FULL_FLEET_NODES = 6200
NAMESPACE = "wattsched-bench"
LEASE_NAMESPACE = "wattsched-bench-system"
RUN_LABEL = "bench.wattsched.io/run"
KUBE_SCHEDULER = "kube-scheduler"
WATTSCHED = "wattsched"
SCHEDULER_NAMES = {KUBE_SCHEDULER: "default-scheduler", WATTSCHED: "wattsched"}
# Device counts per pod and their shares: mostly small inference pods, some whole nodes.
POD_SIZES: tuple[tuple[int, float], ...] = ((1, 0.70), (2, 0.17), (4, 0.08), (8, 0.05))
# The budgets (see plan_budgets): phase 1 admits this share of the pods' placeable power.
PHASE_ADMITS = 0.95
CREATE_THREADS = 16
PROGRESS_SECONDS = 2.0
READY_TIMEOUT_SECONDS = 120.0
DELETE_TIMEOUT_SECONDS = 300.0


def say(message: str) -> None:
    print(f"[bench e2e {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the site: pools, workload, budgets (pure) -------------------------------------------------


@dataclass(frozen=True)
class PowerProfile:
    device_watts: int
    idle_device_watts: int
    node_base_watts: int

    def node_watts(self, devices: int, allocated: int) -> int:
        """DESIGN.md §2: base + allocated at full power + the rest idle."""
        return (
            self.node_base_watts
            + allocated * self.device_watts
            + (devices - allocated) * self.idle_device_watts
        )

    @property
    def delta_watts_per_device(self) -> int:
        return self.device_watts - self.idle_device_watts


@dataclass(frozen=True)
class PoolSpec:
    """A pool as the benchmark sees it: its selector, resources, power and node shape."""

    name: str
    selector: Mapping[str, str]
    resource_names: tuple[str, ...]
    profile: PowerProfile
    resource: str = ""  # what its nodes advertise (the fleet's resourceName)
    devices_per_node: int = 0
    nodes: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)  # hall, phase, site of its nodes

    @property
    def devices(self) -> int:
        return self.nodes * self.devices_per_node

    @property
    def idle_watts(self) -> int:
        return self.nodes * self.profile.node_watts(self.devices_per_node, 0)


@dataclass(frozen=True)
class PodSpec:
    name: str
    pool: str
    resource: str
    devices: int


@dataclass(frozen=True)
class BudgetSpec:
    name: str
    selector: Mapping[str, str]
    limit_watts: int
    reserve_percent: int
    pue_milli: int = 1000  # PUE in thousandths (the API's "1.25" is 1250): exact, integer

    @property
    def allocatable_watts(self) -> int:
        return self.limit_watts * (100 - self.reserve_percent) // 100


def load_pool_profiles(path: Path = POOLS_FILE) -> dict[str, PoolSpec]:
    """The AcceleratorPools of a manifest file, by name (selector, resources, power)."""
    pools = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc or doc.get("kind") != "AcceleratorPool":
            continue
        spec = doc["spec"]
        power = spec["power"]
        pools[doc["metadata"]["name"]] = PoolSpec(
            name=doc["metadata"]["name"],
            selector=dict(spec["nodeSelector"]["matchLabels"]),
            resource_names=tuple(spec["accelerator"]["resourceNames"]),
            profile=PowerProfile(
                int(power["deviceWatts"]), int(power["idleDeviceWatts"]),
                int(power["nodeBaseWatts"]),
            ),
        )  # fmt: skip
    return pools


def fleet_pools(scale: float, profiles: Mapping[str, PoolSpec]) -> list[PoolSpec]:
    """The fleet file's pools at ``scale``, joined with their power profiles."""
    fleet = load_fleet(SITE_FILE)
    pools = []
    for pool in fleet.pools:
        known = profiles[pool.name]
        pools.append(
            PoolSpec(
                name=pool.name,
                selector=known.selector,
                resource_names=known.resource_names,
                profile=known.profile,
                resource=pool.resource_name,
                devices_per_node=pool.devices_per_node,
                nodes=pool.count_at(scale),
                labels={SITE_LABEL: fleet.site, HALL_LABEL: pool.hall, PHASE_LABEL: pool.phase},
            )
        )
    return pools


def split_proportionally(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder; sums to ``total``)."""
    weight_sum = sum(weights)
    if weight_sum <= 0:
        raise ValueError(f"weights must sum to more than 0, got {list(weights)}")
    exact = [total * w / weight_sum for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for index in by_remainder[: total - sum(counts)]:
        counts[index] += 1
    return counts


def size_mix_share(pods: int, devices: int) -> float:
    """The share of pods drawn from POD_SIZES; the rest ask for one device.

    The pods should fit the nodes' devices (with 10% to spare), so that what keeps pods pending
    is power, not a full cluster: a full cluster would make "the last binding" depend on how
    each scheduler fragments the nodes rather than on how fast it is. When even one device per
    pod does not fit (10,000 pods on 1,000 nodes of 8), every pod asks for one and the excess
    stays pending under both schedulers."""
    mean = sum(size * share for size, share in POD_SIZES)
    room = 0.9 * devices
    if pods * mean <= room:
        return 1.0
    if pods >= room:
        return 0.0
    return (room / pods - 1) / (mean - 1)


def make_workload(pools: Sequence[PoolSpec], pods: int, seed: int = 7) -> list[PodSpec]:
    """``pods`` pods, shared among the pools by device capacity, sizes drawn from POD_SIZES.

    Seeded, so both schedulers (and every repeat) get the very same pods, in the same order:
    pools interleaved, as a mixed stream of submissions would be."""
    rng = random.Random(seed)
    sizes = [size for size, _ in POD_SIZES]
    weights = [share for _, share in POD_SIZES]
    mixed = size_mix_share(pods, sum(p.devices for p in pools))
    per_pool = split_proportionally(pods, [p.devices for p in pools])
    queue = [pool for pool, count in zip(pools, per_pool, strict=True) for _ in range(count)]
    rng.shuffle(queue)
    workload = []
    for index, pool in enumerate(queue):
        drawn = rng.choices(sizes, weights)[0]
        devices = min(drawn if rng.random() < mixed else 1, pool.devices_per_node)
        workload.append(PodSpec(f"p-{index:05d}", pool.name, pool.resource, devices))
    return workload


def plan_budgets(pools: Sequence[PoolSpec], workload: Sequence[PodSpec]) -> list[BudgetSpec]:
    """Nested budgets (site > phase 1 > halls) sized from the workload, so power binds a little.

    A pool's placeable power is its idle draw plus, for the devices the pods ask of it (at most
    all it has), the step from idle to full power. Phase 1 (every node) admits the idle draw and
    PHASE_ADMITS of the placeable step: a power-blind scheduler that places everything overruns
    it, a power-aware one leaves a few pods pending. The halls and the site leave room, so the
    phase is the budget that binds."""
    demand: dict[str, int] = {}
    for pod in workload:
        demand[pod.pool] = demand.get(pod.pool, 0) + pod.devices
    idle = {p.name: p.idle_watts for p in pools}
    step = {
        p.name: min(demand.get(p.name, 0), p.devices) * p.profile.delta_watts_per_device
        for p in pools
    }

    def limit_for(allocatable_watts: float, reserve_percent: int) -> int:
        # Whole kilowatts, rounded so that the allocatable is at least what was asked.
        watts = allocatable_watts * 100 / (100 - reserve_percent)
        return math.ceil(watts / 1000) * 1000

    site = next(iter(pools)).labels[SITE_LABEL]
    budgets = [
        BudgetSpec("bench-site", {SITE_LABEL: site},
                   limit_for(1.25 * sum(idle[p] + step[p] for p in idle), 2), 2),
        BudgetSpec("bench-phase-1", {PHASE_LABEL: "1"},
                   limit_for(sum(idle.values()) + PHASE_ADMITS * sum(step.values()), 5), 5),
    ]  # fmt: skip
    for hall in sorted({p.labels[HALL_LABEL] for p in pools}):
        names = [p.name for p in pools if p.labels[HALL_LABEL] == hall]
        hall_watts = sum(idle[n] + step[n] for n in names)
        budgets.append(
            BudgetSpec(f"bench-hall-{hall}", {HALL_LABEL: hall}, limit_for(1.02 * hall_watts, 3), 3)
        )
    return budgets


def budget_manifest(budget: BudgetSpec) -> JSON:
    return {
        "apiVersion": "wattsched.io/v1alpha1",
        "kind": "PowerBudget",
        "metadata": {"name": budget.name},
        "spec": {
            "nodeSelector": {"matchLabels": dict(budget.selector)},
            "limit": f"{budget.limit_watts // 1000}kW",
            "reservePercent": budget.reserve_percent,
            "pue": f"{budget.pue_milli // 1000}.{budget.pue_milli % 1000:03d}",
            # Admit: the benchmark measures placement; shedding is another benchmark's story.
            "enforcement": "Admit",
        },
    }


def pod_manifest(pod: PodSpec, scheduler_name: str, run_id: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": NAMESPACE, "labels": {RUN_LABEL: run_id}},
        "spec": {
            "schedulerName": scheduler_name,
            "nodeSelector": {POOL_LABEL: pod.pool},
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "worker",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {
                        "requests": {pod.resource: str(pod.devices)},
                        "limits": {pod.resource: str(pod.devices)},
                    },
                }
            ],
        },
    }


# -- power and devices, recomputed from the cluster's objects (pure) ----------------------------


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _pod_requests(pod: JSON) -> dict[str, int]:
    """Requests summed over containers; init containers count as their maximum (as Kubernetes)."""
    total: dict[str, int] = {}
    for container in pod["spec"].get("containers", []):
        for name, value in container.get("resources", {}).get("requests", {}).items():
            if "/" in name:  # extended resources are integers
                total[name] = total.get(name, 0) + int(value)
    for container in pod["spec"].get("initContainers", []):
        for name, value in container.get("resources", {}).get("requests", {}).items():
            if "/" in name:
                total[name] = max(total.get(name, 0), int(value))
    return total


@dataclass
class PowerCheck:
    budgets: list[JSON]
    violations: int  # budgets whose committed watts exceed their allocatable watts
    over_watts: int  # summed excess over those budgets
    device_overcommits: int  # (node, resource) pairs with more requested than allocatable


def check_power(
    nodes: Iterable[JSON], pods: Iterable[JSON], pools: Sequence[PoolSpec],
    budgets: Sequence[BudgetSpec],
) -> PowerCheck:  # fmt: skip
    """Committed watts per budget from the bound pods, the nodes and the pools' profiles.

    Independent of wattsched's engine, and exact: IT watts are summed per budget as integers,
    then multiplied by the PUE in thousandths, which is facility power in milliwatts. Nothing
    is rounded per node (a floor per node would hide an overrun of almost a watt a node; a
    ceiling would invent one), and a budget is over exactly when those milliwatts exceed its
    allocatable; the reported committed and over watts are rounded up from there, so an
    overrun never reads as 0 W."""
    by_node: dict[str, dict[str, int]] = {}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if not node or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        used = by_node.setdefault(node, {})
        for name, count in _pod_requests(pod).items():
            used[name] = used.get(name, 0) + count
    it_watts = {b.name: 0 for b in budgets}
    overcommits = 0
    for node in nodes:
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels", {})
        allocatable = node["status"].get("allocatable", {})
        used = by_node.get(name, {})
        overcommits += sum(1 for r, n in used.items() if n > int(allocatable.get(r, 0)))
        pool = next((p for p in pools if _selects(p.selector, labels)), None)
        if pool is None:
            continue
        devices = sum(int(allocatable.get(r, 0)) for r in pool.resource_names)
        allocated = min(devices, sum(used.get(r, 0) for r in pool.resource_names))
        watts = pool.profile.node_watts(devices, allocated)
        for budget in budgets:
            if _selects(budget.selector, labels):
                it_watts[budget.name] += watts
    rows: list[JSON] = []
    for budget in budgets:
        facility_milliwatts = it_watts[budget.name] * budget.pue_milli
        over_milliwatts = facility_milliwatts - budget.allocatable_watts * 1000
        rows.append({
            "budget": budget.name,
            "limit_watts": budget.limit_watts,
            "allocatable_watts": budget.allocatable_watts,
            "committed_watts": _milliwatts_to_watts_up(facility_milliwatts),
            "over_watts": _milliwatts_to_watts_up(max(0, over_milliwatts)),
            "violated": over_milliwatts > 0,
        })  # fmt: skip
    return PowerCheck(
        budgets=rows,
        violations=sum(1 for r in rows if r["violated"]),
        over_watts=sum(int(r["over_watts"]) for r in rows),
        device_overcommits=overcommits,
    )


def _milliwatts_to_watts_up(milliwatts: int) -> int:
    return -(-milliwatts // 1000)


# -- processes (/proc) ------------------------------------------------------------------------


def parse_stat_cpu_ticks(stat: str) -> int:
    """utime + stime + cutime + cstime from a /proc/<pid>/stat line."""
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(x) for x in fields[11:15])  # fields 14..17 of the full line


def cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    return parse_stat_cpu_ticks(stat) / os.sysconf("SC_CLK_TCK")


def peak_rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def load_average() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1m": round(one, 2), "5m": round(five, 2), "15m": round(fifteen, 2)}


# -- the schedulers under test ---------------------------------------------------------------


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return int(err.code), ""
    except OSError:
        return 0, ""


class KubeScheduler:
    """kube-scheduler of the same release: default profile, client QPS/burst 5000, no election;
    a child process in its own session, its log in the run folder."""

    name = KUBE_SCHEDULER

    def __init__(self, plane: LocalControlPlane, workdir: Path) -> None:
        self.plane = plane
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"
        self.port = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> KubeScheduler:
        argv = self.argv()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up; see {self.log_path}:\n"
                                   f"{self.log_tail()}")  # fmt: skip
            if self.is_ready():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {READY_TIMEOUT_SECONDS:.0f}s; "
                           f"see {self.log_path}:\n{self.log_tail()}")  # fmt: skip

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def argv(self) -> list[str]:
        self.port = free_port()
        kubeconfig = str(self.plane.kubeconfig)
        config = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            # The client's rate limiter must not be the bound: the API server is.
            "clientConnection": {"kubeconfig": kubeconfig, "qps": 5000, "burst": 5000},
            "leaderElection": {"leaderElect": False},
            "profiles": [{"schedulerName": SCHEDULER_NAMES[KUBE_SCHEDULER]}],
        }
        config_path = self.workdir / "kube-scheduler.yaml"
        config_path.write_text(yaml.safe_dump(config))
        assert self.plane.bins is not None
        return [
            str(self.plane.bins.kube_scheduler),
            f"--config={config_path}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'kube-scheduler-certs'}",
            "--v=1",
        ]

    def is_ready(self) -> bool:
        # Its serving certificate is self-signed, on 127.0.0.1: nothing to verify.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return _get(f"https://127.0.0.1:{self.port}/readyz", context)[0] == 200


class Wattsched:
    """`python -m wattsched run` through the one wrapper of the operator process
    (e2e/operator_process.py): the chart's defaults, JSON logs; ready once it holds the Lease."""

    name = WATTSCHED

    def __init__(self, plane: LocalControlPlane, workdir: Path) -> None:
        self.operator = OperatorProcess(
            plane.kubeconfig,
            workdir / f"{self.name}.log",
            lease_namespace=LEASE_NAMESPACE,
            scheduler_name=SCHEDULER_NAMES[WATTSCHED],
            lease_name=f"bench-{os.getpid()}-{uuid.uuid4().hex[:8]}",  # never an old holder's
            log_format="json",
        )

    @property
    def pid(self) -> int:
        return self.operator.pid

    def start(self) -> Wattsched:
        self.operator.start().wait_ready(READY_TIMEOUT_SECONDS, leading=True)
        return self

    def stop(self) -> None:
        self.operator.stop()


class SchedulerUnderTest(Protocol):
    """What a run needs of a scheduler: start it (ready when this returns), its pid, stop it."""

    name: str

    @property
    def pid(self) -> int: ...

    def start(self) -> SchedulerUnderTest: ...

    def stop(self) -> None: ...


SCHEDULERS: dict[str, Callable[[LocalControlPlane, Path], SchedulerUnderTest]] = {
    KUBE_SCHEDULER: KubeScheduler,
    WATTSCHED: Wattsched,
}


# -- watching bindings -------------------------------------------------------------------------


class BindingWatch:
    """Records, on the monotonic clock, when each pod of the namespace first shows a node."""

    def __init__(self, rest: KubeREST, resource_version: str) -> None:
        self.rest = rest
        self.resource_version = resource_version
        self.added_at: dict[str, float] = {}
        self.bound_at: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.watch: Any = None
        self.relists = 0
        self.thread = threading.Thread(target=self._run, name="binding-watch", daemon=True)

    def start(self) -> BindingWatch:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.watch is not None:
            self.watch.close()
        self.thread.join(timeout=10)

    def bound(self) -> int:
        with self.lock:
            return len(self.bound_at)

    def _seen(self, pod: JSON, now: float) -> None:
        name = pod["metadata"]["name"]
        with self.lock:
            self.added_at.setdefault(name, now)
            if pod.get("spec", {}).get("nodeName"):
                self.bound_at.setdefault(name, now)

    def _run(self) -> None:
        path = f"/api/v1/namespaces/{NAMESPACE}/pods"
        while not self.stopping.is_set():
            try:
                self.watch = self.rest.watch(path, self.resource_version, timeoutSeconds=3600)
                for event in self.watch:
                    now = time.monotonic()
                    obj = event.get("object", {})
                    if event.get("type") == "ERROR":
                        raise KubeError("WATCH", path, int(obj.get("code", 500)), b"{}")
                    self.resource_version = obj.get("metadata", {}).get(
                        "resourceVersion", self.resource_version
                    )
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._seen(obj, now)
                    if self.stopping.is_set():
                        return
            except KubeError as err:
                if self.stopping.is_set():
                    return
                # Expired (410) or refused: relist; bindings seen only now are timed now.
                self.relists += 1
                say(f"binding watch restarts after {err}; relisting")
                items, self.resource_version = self.rest.list_all(path)
                now = time.monotonic()
                for pod in items:
                    self._seen(pod, now)
            except Exception as err:  # a broken connection: watch again from where we were
                if self.stopping.is_set():
                    return
                say(f"binding watch broke ({err!r}); watching again")
                time.sleep(0.2)


def _watch_in_child(
    kubeconfig: str, resource_version: str, bound: Any, stop: Any, results: Any
) -> None:
    """The body of the watch process: count bindings into ``bound``, hand the times back."""
    watch = BindingWatch(KubeREST(kubeconfig, max_connections=2), resource_version).start()
    while not stop.wait(0.1):
        bound.value = watch.bound()
    watch.stop()
    with watch.lock:
        results.send((dict(watch.added_at), dict(watch.bound_at), watch.relists))
    results.close()


class BindingWatchProcess:
    """A BindingWatch in a process of its own, so the pod creators' threads never delay it.

    time.monotonic() is CLOCK_MONOTONIC, one clock for every process of the machine: the
    child's binding times and this process's creation times are on the same time line."""

    def __init__(self, kubeconfig: Path, resource_version: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._bound = context.Value("i", 0)
        self._stop = context.Event()
        self._results, child_end = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_watch_in_child,
            args=(str(kubeconfig), resource_version, self._bound, self._stop, child_end),
            name="binding-watch",
            daemon=True,
        )
        self.process.start()
        child_end.close()

    def bound(self) -> int:
        return int(self._bound.value)

    def stop(self) -> tuple[dict[str, float], dict[str, float], int]:
        """When each pod was first seen, and bound (pod name -> monotonic time), and how often
        the watch had to relist."""
        self._stop.set()
        try:
            if self._results.poll(30):
                added_at, bound_at, relists = self._results.recv()
                return dict(added_at), dict(bound_at), int(relists)
            raise RuntimeError("the binding watch process sent nothing back within 30s")
        finally:
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()


# -- one scheduler's run --------------------------------------------------------------------------


@dataclass
class RunFigures:
    scheduler: str
    pods: int
    bound: int
    pending: int
    created_seconds: float  # first creation to last creation
    duration_seconds: float  # first creation to last binding
    throughput_pods_per_second: float
    latency_p50_seconds: float | None  # None with a backlog
    latency_p99_seconds: float | None
    cpu_seconds: float  # the scheduler's, during the run
    peak_rss_bytes: int
    apiserver_cpu_seconds: float
    etcd_cpu_seconds: float
    power_violations: int
    power_over_watts: int
    device_overcommits: int
    budgets: list[JSON]
    load_average_start: dict[str, float]
    load_average_end: dict[str, float]
    watch_relists: int


def create_pods(
    rest: KubeREST, manifests: Sequence[JSON], sent_at: dict[str, float], progress: list[int]
) -> None:
    """POST every pod from a thread pool; records each request's start on the monotonic clock."""
    path = f"/api/v1/namespaces/{NAMESPACE}/pods"
    lock = threading.Lock()

    def post(manifest: JSON) -> None:
        name = manifest["metadata"]["name"]
        for attempt in range(5):
            sent_at[name] = time.monotonic()
            try:
                rest.post(path, manifest)
                break
            except KubeError as err:
                if err.status == 409:  # an earlier attempt landed after all
                    break
                if err.status not in (429, 500, 503, 504) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        with lock:
            progress[0] += 1

    with ThreadPoolExecutor(CREATE_THREADS, thread_name_prefix="create") as pool:
        list(pool.map(post, manifests))


def run_scheduler(
    which: str, plane: LocalControlPlane, rest: KubeREST, workload: Sequence[PodSpec],
    pools: Sequence[PoolSpec], budgets: Sequence[BudgetSpec], workdir: Path, *,
    settle_seconds: float, timeout_seconds: float, backlog: bool = False,
) -> RunFigures:  # fmt: skip
    """One scheduler on the workload. Streamed (the default): the scheduler runs first and the
    pods arrive while it works. ``backlog``: every pod is created first, then the scheduler
    starts, so only the scheduler (and the API server) bounds the rate."""
    wait_for_no_pods(rest)
    run_id = f"{which}-{int(time.time())}"
    manifests = [pod_manifest(p, SCHEDULER_NAMES[which], run_id) for p in workload]
    process = SCHEDULERS[which](plane, workdir)
    apiserver_pid, etcd_pid = _component_pid(plane, "kube-apiserver"), _component_pid(plane, "etcd")
    watch: BindingWatchProcess | None = None
    cpu_start: dict[int, float] = {}
    load_start = load_average()
    try:
        if not backlog:
            say(f"{which}: starting")
            process.start()
            time.sleep(1.0)  # let its informers settle after it said ready
            cpu_start = {p: cpu_seconds(p) for p in (process.pid, apiserver_pid, etcd_pid)}
            load_start = load_average()
        _, resource_version = rest.list_all(f"/api/v1/namespaces/{NAMESPACE}/pods")
        watch = BindingWatchProcess(plane.kubeconfig, resource_version)
        sent_at: dict[str, float] = {}
        progress = [0]
        failure: list[BaseException] = []

        def creator() -> None:
            try:
                create_pods(rest, manifests, sent_at, progress)
            except BaseException as err:
                failure.append(err)

        say(f"{which}: creating {len(manifests)} pods on {plane_nodes(pools)} nodes")
        creating = threading.Thread(target=creator, name="creator", daemon=True)
        started = time.monotonic()
        creating.start()
        if backlog:
            while creating.is_alive():
                creating.join(timeout=PROGRESS_SECONDS)
                say(f"{which}: {time.monotonic() - started:5.1f}s  created "
                    f"{progress[0]:>6}/{len(manifests)} (backlog: no scheduler yet)")  # fmt: skip
            if failure:
                raise RuntimeError(f"creating pods failed: {failure[0]}") from failure[0]
            load_start = load_average()
            cpu_start = {p: cpu_seconds(p) for p in (apiserver_pid, etcd_pid)}
            say(f"{which}: starting, {len(manifests)} pods waiting")
            process.start()  # its start-up (listing the backlog) is in its CPU figure
            cpu_start[process.pid] = 0.0
        created_done_at: float | None = None
        last_bound, last_change = 0, started
        next_report = started + PROGRESS_SECONDS
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            bound = watch.bound()
            if bound != last_bound:
                last_bound, last_change = bound, now
            if created_done_at is None and not creating.is_alive():
                created_done_at = now
                if failure:
                    raise RuntimeError(f"creating pods failed: {failure[0]}") from failure[0]
            if now >= next_report:
                say(f"{which}: {now - started:5.1f}s  created {progress[0]:>6}/{len(manifests)}"
                    f"  bound {bound:>6}")  # fmt: skip
                next_report = now + PROGRESS_SECONDS
            if bound >= len(manifests):
                break
            quiet_since = max(last_change, created_done_at or now)
            if created_done_at is not None and now - quiet_since >= settle_seconds:
                say(f"{which}: nothing bound for {settle_seconds:.0f}s; "
                    f"{len(manifests) - bound} pods stay pending")  # fmt: skip
                break
            if now - started >= timeout_seconds:
                say(f"{which}: timed out after {timeout_seconds:.0f}s")
                break
        creating.join(timeout=60)
        cpu_end = {p: cpu_seconds(p) for p in cpu_start}
        load_end = load_average()
        peak = peak_rss_bytes(process.pid)
        added_at, bound_at, relists = watch.stop()
        watch = None
    finally:
        if watch is not None:
            watch.stop()
        process.stop()
    say(f"{which}: stopped; checking power and devices from the cluster's objects")
    pods, _ = rest.list_all(f"/api/v1/namespaces/{NAMESPACE}/pods")
    nodes, _ = rest.list_all("/api/v1/nodes")
    power = check_power(nodes, pods, pools, budgets)
    first_sent = min(sent_at.values())
    # Creation to binding, both as the watch saw them: one observer, one clock, and no part of
    # the creation request's own queueing (that is in the throughput, from the first request).
    # With a backlog every pod waited for the scheduler to start: no latency to speak of.
    latencies = [] if backlog else [
        bound_at[n] - added_at.get(n, sent_at[n]) for n in bound_at if n in sent_at
    ]  # fmt: skip
    # Streamed: first creation to last binding. Backlog: first binding to last binding.
    since = min(bound_at.values(), default=math.nan) if backlog else first_sent
    duration = (max(bound_at.values()) - since) if bound_at else math.nan
    figures = RunFigures(
        scheduler=which,
        pods=len(manifests),
        bound=len(bound_at),
        pending=len(manifests) - len(bound_at),
        created_seconds=round(max(sent_at.values()) - first_sent, 3),
        duration_seconds=round(duration, 3),
        throughput_pods_per_second=round(len(bound_at) / duration, 1) if duration > 0 else 0.0,
        latency_p50_seconds=round(percentile(latencies, 50), 3) if latencies else None,
        latency_p99_seconds=round(percentile(latencies, 99), 3) if latencies else None,
        cpu_seconds=round(cpu_end[process.pid] - cpu_start[process.pid], 2),
        peak_rss_bytes=peak,
        apiserver_cpu_seconds=round(cpu_end[apiserver_pid] - cpu_start[apiserver_pid], 2),
        etcd_cpu_seconds=round(cpu_end[etcd_pid] - cpu_start[etcd_pid], 2),
        power_violations=power.violations,
        power_over_watts=power.over_watts,
        device_overcommits=power.device_overcommits,
        budgets=power.budgets,
        load_average_start=load_start,
        load_average_end=load_end,
        watch_relists=relists,
    )
    say(f"{which}: {figures.bound} bound in {figures.duration_seconds:.1f}s = "
        f"{figures.throughput_pods_per_second:.0f} pods/s, "
        f"p99 {_seconds(figures.latency_p99_seconds)}s, "
        f"cpu {figures.cpu_seconds:.1f}s, {figures.power_violations} budget(s) over")  # fmt: skip
    delete_pods(rest)
    return figures


def plane_nodes(pools: Sequence[PoolSpec]) -> int:
    return sum(p.nodes for p in pools)


def _component_pid(plane: LocalControlPlane, name: str) -> int:
    for component in plane.components:
        if component.name == name:
            return component.process.pid
    raise RuntimeError(f"the control plane has no {name}")


def delete_pods(rest: KubeREST) -> None:
    """Delete the namespace's pods (no kubelet: at once) and events; wait until they are gone.

    A collection delete of thousands of pods may outlast the API server's request timeout (504)
    and still go on in the server: so ask again now and then, and poll until none is left."""
    base = f"/api/v1/namespaces/{NAMESPACE}"
    deadline = time.monotonic() + DELETE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for kind in ("pods", "events"):
            with contextlib.suppress(KubeError):
                rest.request("DELETE", f"{base}/{kind}", query={"gracePeriodSeconds": 0},
                             timeout_seconds=120)  # fmt: skip
        for _ in range(60):
            if not rest.get(f"{base}/pods", limit=1).get("items"):
                return
            time.sleep(0.5)
    raise RuntimeError(f"pods of {NAMESPACE} still there after {DELETE_TIMEOUT_SECONDS:.0f}s")


def wait_for_no_pods(rest: KubeREST) -> None:
    if rest.get(f"/api/v1/namespaces/{NAMESPACE}/pods", limit=1).get("items"):
        delete_pods(rest)


# -- one node count --------------------------------------------------------------------------------


def prepare_site(plane: LocalControlPlane, rest: KubeREST, pools: Sequence[PoolSpec],
                 budgets: Sequence[BudgetSpec], scale: float) -> None:  # fmt: skip
    plane.kubectl("apply", "--server-side", "-f", str(CRDS))
    for crd in ("acceleratorpools", "powerbudgets"):
        plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}.wattsched.io",
                      "--timeout=60s")  # fmt: skip
    plane.kubectl("apply", "-f", str(POOLS_FILE))
    for budget in budgets:
        rest.post("/apis/wattsched.io/v1alpha1/powerbudgets", budget_manifest(budget))
    for namespace in (NAMESPACE, LEASE_NAMESPACE):
        rest.post(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        )
        # No controller manager runs (it would only add noise): the ServiceAccount admission
        # plugin still wants the namespace's default ServiceAccount before it admits a pod.
        rest.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
        )
    nodes = fleet_nodes(load_fleet(SITE_FILE), scale)
    say(f"creating {len(nodes)} nodes")
    started = time.monotonic()
    create_nodes(plane.kubeconfig, nodes, threads=CREATE_THREADS)
    say(f"{len(nodes)} nodes in {time.monotonic() - started:.1f}s "
        f"({', '.join(f'{p.name} {p.nodes}' for p in pools)})")  # fmt: skip


def bench_nodes(
    node_count: int, pod_count: int, schedulers: Sequence[str], repeat: int, *,
    settle_seconds: float, timeout_seconds: float, keep: bool, backlog: bool = False,
) -> JSON:  # fmt: skip
    scale = node_count / FULL_FLEET_NODES
    pools = fleet_pools(scale, load_pool_profiles())
    workload = make_workload(pools, pod_count)
    budgets = plan_budgets(pools, workload)
    workdir = Path(tempfile.mkdtemp(prefix=f"wattsched-bench-{node_count}-"))
    say(f"--- {plane_nodes(pools)} nodes, {len(workload)} pods "
        f"({sum(p.devices for p in workload)} devices asked of {sum(p.devices for p in pools)}); "
        f"work folder {workdir}")  # fmt: skip
    plane = LocalControlPlane(
        workdir / "control-plane",
        controller_manager=False,
        fake_kubelet=False,
        extra_apiserver_flags=(
            "--max-requests-inflight=2000",
            "--max-mutating-requests-inflight=1000",
        ),
    )
    samples: dict[str, list[RunFigures]] = {s: [] for s in schedulers}
    with plane:
        rest = KubeREST(plane.kubeconfig, max_connections=CREATE_THREADS + 4)
        prepare_site(plane, rest, pools, budgets, scale)
        for round_index in range(repeat):
            # Alternate who goes first, so neither always meets the warmer (or colder) server.
            order = list(schedulers) if round_index % 2 == 0 else list(reversed(schedulers))
            for which in order:
                samples[which].append(
                    run_scheduler(which, plane, rest, workload, pools, budgets, workdir,
                                  settle_seconds=settle_seconds,
                                  timeout_seconds=timeout_seconds, backlog=backlog)
                )  # fmt: skip
    if not keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    result: JSON = {
        "nodes": plane_nodes(pools),
        "pods": len(workload),
        "devices_requested": sum(p.devices for p in workload),
        "devices_available": sum(p.devices for p in pools),
        "pools": {p.name: p.nodes for p in pools},
        "budgets": [
            {"name": b.name, "limit_watts": b.limit_watts, "allocatable_watts": b.allocatable_watts}
            for b in budgets
        ],
        "schedulers": {},
    }
    for which, runs in samples.items():
        best = _median_run(runs)
        entry = asdict(best)
        entry["repeats"] = [r.throughput_pods_per_second for r in runs]
        result["schedulers"][which] = entry
    result["load_average"] = load_average()
    if KUBE_SCHEDULER in samples and WATTSCHED in samples:
        kube = result["schedulers"][KUBE_SCHEDULER]["throughput_pods_per_second"]
        ours = result["schedulers"][WATTSCHED]["throughput_pods_per_second"]
        result["ratio"] = round(ours / kube, 3) if kube else None
    return result


def _median_run(runs: Sequence[RunFigures]) -> RunFigures:
    """The run whose throughput is the median (nearest rank: the lower middle of an even
    count)."""
    ordered = sorted(runs, key=lambda r: r.throughput_pods_per_second)
    return ordered[nearest_rank(len(ordered), 50) - 1]


# -- report --------------------------------------------------------------------------------------


def _mib(count: int) -> str:
    return f"{count / 2**20:.0f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _violations(figures: Mapping[str, Any]) -> str:
    over = [b for b in figures["budgets"] if b["violated"]]
    if not over:
        return "0"
    names = ", ".join(f"{b['budget']} +{b['over_watts'] / 1000:.0f} kW" for b in over)
    return f"{len(over)} ({names})"


def table(results: Sequence[Mapping[str, Any]]) -> str:
    """The side-by-side Markdown table, one row per node count and scheduler."""
    lines = [
        "| nodes | scheduler | bound / pods | pods/s | created/s | p50 s | p99 s | CPU s "
        "| peak RSS MiB | API server CPU s | power violations (budgets over) | ratio |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for result in results:
        ratio = result.get("ratio")
        for which, figures in result["schedulers"].items():
            lines.append(
                f"| {result['nodes']:,} | {which} | {figures['bound']:,} / {figures['pods']:,} "
                f"| {figures['throughput_pods_per_second']:.0f} "
                f"| {figures['pods'] / max(figures['created_seconds'], 1e-9):.0f} "
                f"| {_seconds(figures['latency_p50_seconds'])} "
                f"| {_seconds(figures['latency_p99_seconds'])} "
                f"| {figures['cpu_seconds']:.1f} | {_mib(figures['peak_rss_bytes'])} "
                f"| {figures['apiserver_cpu_seconds']:.1f} | {_violations(figures)} "
                f"| {f'{ratio:.2f}' if which == WATTSCHED and ratio is not None else ''} |"
            )
    return "\n".join(lines)


def markdown(report: Mapping[str, Any]) -> str:
    loads = "; ".join(
        f"{r['nodes']:,} nodes: "
        + ", ".join(f"{s} {f['load_average_start']['1m']}->{f['load_average_end']['1m']}"
                    for s, f in r["schedulers"].items())
        for r in report["results"]
    )  # fmt: skip
    return "\n".join([
        "# End-to-end benchmark: wattsched and kube-scheduler on the same API server",
        "",
        f"Recorded {report['recorded_at']} with `{report['command']}` on "
        f"{report['machine']['cpus']} CPUs (shared; 1-minute load average at start -> end "
        f"of each run: {loads}). "
        f"Kubernetes {report['kubernetes']}; {report['pods']:,} pods per run. "
        "`ratio` is wattsched's throughput over kube-scheduler's in the same run.",
        "",
        table(report["results"]),
        "",
        "Throughput: pods bound / seconds from the first pod creation to the last binding; "
        "created/s: the rate the 16 creating threads got through the API server in that run "
        "(a scheduler that keeps up binds at about that rate, so compare the two). "
        "Latency: pod first seen in a watch to its binding seen in the same watch. CPU: the "
        "scheduler process during the run. Power violations: budgets whose committed watts, "
        "recomputed from the bound pods and the pools' power profiles, exceed "
        "their allocatable watts. "
        "See [bench/README.md](../README.md) for how the inputs are built.",
        "",
        *_backlog_section(report.get("backlog")),
    ])  # fmt: skip


def _backlog_section(backlog: Mapping[str, Any] | None) -> list[str]:
    if not backlog:
        return []
    return [
        "## Backlog: the scheduler alone is the bound",
        "",
        f"Recorded {backlog['recorded_at']} with `{backlog['command']}`: all pods are created "
        "first, then the scheduler starts; throughput is pods bound / seconds from the first "
        "binding to the last, CPU includes the scheduler's start-up (listing the backlog).",
        "",
        table(backlog["results"]),
        "",
    ]


def _print_ratios(results: Sequence[Mapping[str, Any]]) -> None:
    for result in results:
        if "ratio" in result:
            print(f"ratio (wattsched / kube-scheduler throughput) at {result['nodes']:,} nodes: "
                  f"{result['ratio']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1000,5000", help="node counts, comma-separated")
    parser.add_argument("--pods", type=int, default=10_000, help="pods per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scheduler and node count")
    parser.add_argument("--schedulers", default=f"{KUBE_SCHEDULER},{WATTSCHED}",
                        help="comma-separated, of kube-scheduler and wattsched")  # fmt: skip
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=15.0,
        help="end a run when nothing was bound for this long after creation",
    )
    parser.add_argument("--timeout-seconds", type=float, default=900.0, help="per run")
    parser.add_argument("--record", action="store_true", help="write bench/results/e2e.{json,md}")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (logs)")
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="create every pod before the scheduler starts (its rate alone)",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only re-render bench/results/e2e.md from e2e.json and print it",
    )
    args = parser.parse_args(argv)
    if args.render:
        recorded: JSON = json.loads((RESULTS / "e2e.json").read_text())
        (RESULTS / "e2e.md").write_text(markdown(recorded))
        print(table(recorded["results"]))
        _print_ratios(recorded["results"])
        return 0
    node_counts = [int(n) for n in args.nodes.split(",") if n.strip()]
    schedulers = [s.strip() for s in args.schedulers.split(",") if s.strip()]
    unknown = [s for s in schedulers if s not in SCHEDULERS]
    if unknown or not schedulers:
        parser.error(f"--schedulers: unknown {unknown}; choose from {sorted(SCHEDULERS)}")
    if args.repeat < 1 or args.pods < 1 or any(n < 5 for n in node_counts):
        parser.error("--repeat and --pods must be at least 1, and every --nodes at least 5")
    ensure_control_plane()
    results = [
        bench_nodes(n, args.pods, schedulers, args.repeat, settle_seconds=args.settle_seconds,
                    timeout_seconds=args.timeout_seconds, keep=args.keep,
                    backlog=args.backlog)
        for n in node_counts
    ]  # fmt: skip
    report: JSON = {
        "benchmark": "e2e",
        "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python bench/e2e.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "kubernetes": KUBERNETES_VERSION,
        "pods": args.pods,
        "pod_sizes": [{"devices": size, "share": share} for size, share in POD_SIZES],
        "phase_admits": PHASE_ADMITS,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "results": results,
    }
    print(table(results))
    _print_ratios(results)
    if args.record:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / "e2e.json"
        previous = json.loads(path.read_text()) if path.exists() else {}
        if args.backlog:  # a section of its own beside the streamed results
            keep = {k: report[k] for k in ("recorded_at", "command", "results")}
            report = {**(previous or {**report, "results": []}), "backlog": keep}
        elif previous.get("backlog"):
            report["backlog"] = previous["backlog"]
        path.write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / "e2e.md").write_text(markdown(report))
        say(f"wrote {RESULTS / 'e2e.json'} and {RESULTS / 'e2e.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
