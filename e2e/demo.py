"""`make demo`: the Ulsan site in miniature, scheduled by wattsched within its megawatts.

1. Start a local control plane (real etcd and kube-apiserver) with the fake kubelet.
2. Install the CRDs, the Ulsan pools, and the Ulsan budgets with every limit scaled by the
   fleet scale, so the small cluster is as oversubscribed as the real site.
3. Create the fleet's Nodes at that scale, and start `wattsched run` as a process.
4. Submit a mixed workload (single pods and gangs, GPUs and NPUs, three PriorityClasses),
   more than phase 1 can power, and show budgets and pools live until placements settle.
5. Show why a pending pod waits and the final tables, and leave the cluster and the operator
   running for the admin to explore; ``make demo-down`` (``python -m e2e.demo down``) stops them.

State lives under ./.demo/ (gitignored). Run: ``python -m e2e.demo [--scale 0.03] [--stop]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from e2e.fleet import apply_fleet
from e2e.operator_process import OperatorProcess
from e2e.providers.build import binaries
from e2e.providers.local import main as local_main
from e2e.providers.rest import KubeError, KubeREST
from e2e.suite.kube import Kubectl

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / ".demo"
CLUSTER_DIR = DEMO_DIR / "cluster"
NAMESPACE = "ulsan-demo"
LEASE_NAMESPACE = "wattsched-system"
PRIORITY_CLASSES = {"demo-critical": 10000, "demo-standard": 1000, "demo-batch": 100}


def say(message: str) -> None:
    print(f"[wattsched demo] {message}", flush=True)


def scale_power(text: str, scale: float) -> str:
    """'41MW' at 0.03 -> '1.23MW' (whole watts, in the syntax the CRD accepts)."""
    from wattsched.api.units import format_power, parse_power

    watts = int(Decimal(parse_power(text)) * Decimal(str(scale)))
    return format_power(watts).replace(" ", "")


def scaled_budgets(scale: float) -> list[dict[str, Any]]:
    budgets = list(yaml.safe_load_all((REPO / "examples/ulsan/budgets.yaml").read_text()))
    for budget in budgets:
        spec = budget["spec"]
        spec["limit"] = scale_power(spec["limit"], scale)
        for entry in spec.get("schedule") or ():
            entry["limit"] = scale_power(entry["limit"], scale)
    return budgets


def _pod(
    name: str, resource: str, count: int, priority_class: str, gang: tuple[str, int] | None = None
) -> dict[str, Any]:
    labels, annotations = {"app": name.rsplit("-", 1)[0]}, {}
    if gang is not None:
        labels["wattsched.io/gang"] = gang[0]
        annotations["wattsched.io/gang-size"] = str(gang[1])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "schedulerName": "wattsched",
            "priorityClassName": priority_class,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "main",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {
                        "requests": {resource: str(count), "cpu": "1"},
                        "limits": {resource: str(count)},
                    },
                }
            ],
        },
    }


def workload(scale: float) -> Iterator[dict[str, Any]]:
    """Training gangs on H200 and B200, inference on RNGD, ATOM and Trainium2."""
    rng = random.Random(2027)
    n = max(1, round(40 * scale / 0.03))  # about as many units as the fleet at this scale
    for g in range(max(1, n // 8)):
        for m in range(8):  # an 8-node H200 training job: all 64 GPUs or none
            yield _pod(f"llm-train-{g}-{m}", "nvidia.com/gpu", 8, "demo-standard",
                       gang=(f"llm-train-{g}", 8))  # fmt: skip
    for g in range(max(1, n // 10)):
        for m in range(4):
            yield _pod(f"b200-finetune-{g}-{m}", "nvidia.com/gpu", 8, "demo-batch",
                       gang=(f"b200-finetune-{g}", 4))  # fmt: skip
    for i in range(n * 3):
        yield _pod(f"rngd-serve-{i}", "furiosa.ai/rngd", rng.choice((1, 2, 4)), "demo-critical")
    for i in range(n * 3):
        yield _pod(f"atom-serve-{i}", "rebellions.ai/ATOM", rng.choice((1, 2, 4)),
                   rng.choice(("demo-critical", "demo-batch")))  # fmt: skip
    for i in range(n):
        yield _pod(f"trn2-embed-{i}", "aws.amazon.com/neuron", rng.choice((4, 8, 16)),
                   "demo-standard")  # fmt: skip
    for i in range(n * 2):
        yield _pod(f"h200-notebook-{i}", "nvidia.com/gpu", rng.choice((1, 2)), "demo-batch")


def _post_all(rest: KubeREST, path: str, objects: list[dict[str, Any]]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def post(obj: dict[str, Any]) -> None:
        try:
            rest.post(path, obj)
        except KubeError as err:
            if err.status != 409:
                raise

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(post, objects))


def placement_counts(rest: KubeREST) -> tuple[int, int, int]:
    """(bound, pending with a reason, pending without one yet)."""
    pods = rest.list_all(f"/api/v1/namespaces/{NAMESPACE}/pods")[0]
    bound = sum(1 for p in pods if p["spec"].get("nodeName"))
    reasoned = sum(
        1
        for p in pods
        if not p["spec"].get("nodeName")
        and any(
            c.get("type") == "PodScheduled" and c.get("status") == "False"
            for c in p.get("status", {}).get("conditions") or ()
        )
    )
    return bound, reasoned, len(pods) - bound - reasoned


def show_tables(kubectl: Kubectl, header: str) -> None:
    tables = kubectl.run("get", "pb,ap", check=False).stdout
    if sys.stdout.isatty():
        print("\033[2J\033[H", end="")
    print(f"--- {header}\n{tables}", flush=True)


def stop_demo() -> int:
    """Stop what an earlier `make demo` left running: the operator, then the control plane."""
    pid_file = DEMO_DIR / "operator.pid"
    if pid_file.exists():
        try:
            pid = int(pid_file.read_text())
            os.killpg(pid, signal.SIGTERM)
            for _ in range(100):
                with contextlib.suppress(ChildProcessError):  # reap it if it is our child
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        break
                os.kill(pid, 0)
                time.sleep(0.2)
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
        pid_file.unlink(missing_ok=True)
    return local_main(["down", "--dir", str(CLUSTER_DIR)])


def run_demo(scale: float, stop_at_end: bool, settle_seconds: float, crds: Path) -> int:
    stop_demo()
    DEMO_DIR.mkdir(exist_ok=True)
    if local_main(["up", "--dir", str(CLUSTER_DIR), "--detach"]) != 0:
        return 1
    kubeconfig = CLUSTER_DIR / "kubeconfig"
    kubectl = Kubectl(binaries().kubectl, kubeconfig)
    try:
        rest = KubeREST(kubeconfig, max_connections=16)
        say("installing the CRDs and the Ulsan pools")
        kubectl.run("apply", "--server-side", "-f", str(crds))
        for crd in ("acceleratorpools", "powerbudgets"):
            kubectl.run("wait", "--for=condition=Established", f"crd/{crd}.wattsched.io")
        kubectl.run("apply", "-f", str(REPO / "examples/ulsan/pools.yaml"))
        budgets = scaled_budgets(scale)
        say(f"applying the Ulsan budgets with every limit x {scale:g} (the fleet's scale), so "
            "this small cluster is as oversubscribed as the site:")  # fmt: skip
        for budget in budgets:
            schedule = ", ".join(f"{e['limit']} from {e['from']}"
                                 for e in budget["spec"].get("schedule") or ())  # fmt: skip
            say(f"  {budget['metadata']['name']}: {budget['spec']['limit']}"
                + (f" ({schedule})" if schedule else ""))  # fmt: skip
        kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump_all(budgets))
        apply_fleet(kubeconfig, REPO / "examples/ulsan/fleet/site.yaml", scale)
        for name, value in PRIORITY_CLASSES.items():
            _post_all(rest, "/apis/scheduling.k8s.io/v1/priorityclasses", [
                {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                 "metadata": {"name": name}, "value": value},
            ])  # fmt: skip
        for namespace in (NAMESPACE, LEASE_NAMESPACE):
            kubectl.run("create", "namespace", namespace)
            kubectl.run("create", "serviceaccount", "default", "-n", namespace,
                    check=False)  # fmt: skip

        log_path = DEMO_DIR / "operator.log"
        log_path.unlink(missing_ok=True)  # this demo's log only
        # Its own session and no parent-death signal: it outlives this command for the admin
        # to explore, until `make demo-down` stops it by the pid file.
        operator = OperatorProcess(
            kubeconfig,
            log_path,
            lease_namespace=LEASE_NAMESPACE,
            status_interval_seconds=1,
            outlive_parent=True,
        ).start()
        (DEMO_DIR / "operator.pid").write_text(f"{operator.pid}\n")
        say(f"started `wattsched run` (log {log_path}, metrics {operator.url}/metrics)")

        pods = list(workload(scale))
        gangs = len({p["metadata"]["labels"].get("wattsched.io/gang") for p in pods} - {None})
        say(f"submitting {len(pods)} pods ({gangs} gangs) in namespace {NAMESPACE}")
        _post_all(rest, f"/api/v1/namespaces/{NAMESPACE}/pods", pods)

        started, last, stable = time.monotonic(), (-1, -1, -1), 0
        while time.monotonic() - started < settle_seconds:
            time.sleep(2)
            if not operator.alive():
                say(f"the operator exited with {operator.returncode}; see {log_path}")
                stop_at_end = True
                return 1
            counts = placement_counts(rest)
            elapsed = time.monotonic() - started
            show_tables(
                kubectl,
                f"{elapsed:4.0f}s: {counts[0]} bound, {counts[1]} pending with a reason, "
                f"{counts[2]} not yet looked at",
            )
            stable = stable + 1 if counts == last and counts[2] == 0 else 0
            last = counts
            if stable >= 2:
                break
        say(f"placements settled: {last[0]} pods bound, {last[1]} pending")
        for pod in rest.list_all(f"/api/v1/namespaces/{NAMESPACE}/pods")[0]:
            if not pod["spec"].get("nodeName"):
                for condition in pod["status"].get("conditions") or ():
                    if condition.get("type") == "PodScheduled":
                        say(f"why is {pod['metadata']['name']} pending? "
                            f"{condition.get('reason')}: {condition.get('message')}")  # fmt: skip
                break
        print("\n" + kubectl.run("get", "pb").stdout, flush=True)
        print(kubectl.run("get", "ap").stdout, flush=True)
        return 0
    except BaseException:
        stop_at_end = True
        raise
    finally:
        if stop_at_end:
            stop_demo()
            say("stopped the operator and the control plane")
        else:
            say("the cluster and the operator keep running. To reach them:")
            print(f"    export KUBECONFIG={kubeconfig}", flush=True)
            print(f"    {binaries().kubectl} get pb,ap,pods -A", flush=True)
            say("stop them with: make demo-down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.03,
                        help="fleet and budget scale (default 0.03: 186 nodes)")  # fmt: skip
    parser.add_argument("command", nargs="?", choices=("up", "down"), default="up",
                        help="up: run the demo (default); down: stop what it left")  # fmt: skip
    parser.add_argument("--stop", action="store_true",
                        help="stop the cluster and the operator at the end")  # fmt: skip
    parser.add_argument("--settle-seconds", type=float, default=90)
    parser.add_argument("--crds", type=Path, default=REPO / "crds", help="CRD folder")
    args = parser.parse_args(argv)
    if args.command == "down":
        return stop_demo()
    return run_demo(args.scale, args.stop, args.settle_seconds, args.crds)


if __name__ == "__main__":
    raise SystemExit(main())
