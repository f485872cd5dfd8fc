"""A fake kubelet for the fake accelerator nodes of the local control plane.

There are no kubelets on the local control plane, so nothing would ever run a pod or finish
deleting one: a pod bound to a node would stay Pending, and an evicted pod would keep its
deletionTimestamp for ever. For every node labelled ``wattsched.io/fake-node: "true"`` this
loop does what a kubelet would, as far as the API can see:

- a pod bound to the node becomes Running, with Ready, ContainersReady, Initialized and
  PodScheduled conditions and running container statuses;
- a pod with a deletionTimestamp (a delete, an eviction) is deleted for good with
  gracePeriodSeconds=0, as a kubelet does once the containers have stopped;
- a pod annotated ``wattsched.io/fake-run-seconds: "N"`` is Succeeded N seconds after it started;
- the node's Ready condition is True, or False while the node is annotated
  ``wattsched.io/fake-ready: "false"`` (how a test takes a node down).

It works from two watches (nodes, and bound pods), not by polling, and patches from a few
worker threads; each pod always goes to the same worker, so its updates stay in order.

In-process: ``with FakeKubelet(kubeconfig_or_api_client): ...`` or ``start()``/``stop()``.
Command line: ``python -m e2e.providers.kubelet --kubeconfig K``.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import queue
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType, TracebackType
from typing import Any

from e2e.providers.rest import JSON, KubeError, KubeREST, Watch

FAKE_NODE_LABEL = "wattsched.io/fake-node"
FAKE_READY_ANNOTATION = "wattsched.io/fake-ready"
FAKE_RUN_SECONDS_ANNOTATION = "wattsched.io/fake-run-seconds"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
WATCH_TIMEOUT_SECONDS = 300  # the server ends a watch after this; it is then resumed


def _say(message: str) -> None:
    print(f"[wattsched kubelet] {message}", file=sys.stderr, flush=True)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_is_fake(node: JSON) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    return bool(labels.get(FAKE_NODE_LABEL) == "true")


def _ready_condition(node: JSON) -> str | None:
    for condition in node.get("status", {}).get("conditions", None) or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return None


def node_ready_patch(node: JSON) -> JSON | None:
    """The status patch that makes the node's Ready condition what it should be, or None."""
    annotations = node.get("metadata", {}).get("annotations") or {}
    want_ready = annotations.get(FAKE_READY_ANNOTATION, "true") != "false"
    want = "True" if want_ready else "False"
    if _ready_condition(node) == want:
        return None
    now = _now()
    return {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": want,
                    "reason": "KubeletReady" if want_ready else "KubeletNotReady",
                    "message": "wattsched fake kubelet "
                    + ("is posting ready status" if want_ready else f"({FAKE_READY_ANNOTATION})"),
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ]
        }
    }


def pod_running_patch(pod: JSON, pod_ip: str, host_ip: str | None) -> JSON:
    now = _now()
    spec = pod.get("spec", {})

    def statuses(key: str, running: bool) -> list[JSON]:
        result = []
        for container in spec.get(key) or []:
            state: JSON = (
                {"running": {"startedAt": now}}
                if running
                else {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": now,
                        "finishedAt": now,
                    }
                }
            )
            result.append(
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": running,
                    "started": running,
                    "restartCount": 0,
                    "state": state,
                }
            )
        return result

    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": now}
        for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
    ]
    status: JSON = {
        "phase": "Running",
        "startTime": now,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "conditions": conditions,
        "containerStatuses": statuses("containers", True),
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = statuses("initContainers", False)
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    return {"status": status}


def pod_succeeded_patch(pod: JSON) -> JSON:
    now = _now()
    containers = []
    for container in pod.get("spec", {}).get("containers") or []:
        containers.append(
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": pod.get("status", {}).get("startTime", now),
                        "finishedAt": now,
                    }
                },
            }
        )
    conditions = [
        {"type": kind, "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}
        for kind in ("Ready", "ContainersReady")
    ]
    return {
        "status": {"phase": "Succeeded", "conditions": conditions, "containerStatuses": containers}
    }


def _pod_path(pod: JSON, suffix: str = "") -> str:
    meta = pod["metadata"]
    return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}{suffix}"


class FakeKubelet:
    """Plays the kubelet of every fake node; see the module docstring."""

    def __init__(self, source: Any, *, workers: int = 4) -> None:
        self.rest = KubeREST(source, max_connections=workers + 4)
        self._workers = workers
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queues: list[queue.Queue[tuple[str, JSON] | None]] = []
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()
        # node name -> host IP ("" when the node has none); only fake nodes.
        self._nodes: dict[str, str] = {}
        # pods bound to a node not seen yet (it may arrive after the pod): node -> uid -> pod
        self._waiting: dict[str, dict[str, JSON]] = {}
        self._deleting: set[str] = set()  # uids whose final delete was sent
        self._timers: list[tuple[float, int, JSON]] = []
        self._timer_seq = itertools.count()
        self._timer_wakeup = threading.Condition(self._lock)
        self._ip_counter = itertools.count(1)
        self.pods_started = 0
        self.pods_deleted = 0
        self.pods_succeeded = 0
        self.errors: list[str] = []

    # - lifecycle -

    def __enter__(self) -> FakeKubelet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> FakeKubelet:
        """List and take over the fake nodes, then watch nodes and pods in the background."""
        if self._threads:
            return self
        self._stopping.clear()
        for index in range(self._workers):
            work: queue.Queue[tuple[str, JSON] | None] = queue.Queue()
            self._queues.append(work)
            self._spawn(f"fake-kubelet-worker-{index}", functools.partial(self._work, work))
        nodes, node_version = self.rest.list_all("/api/v1/nodes", labelSelector=_FAKE_SELECTOR)
        for node in nodes:
            self._on_node("ADDED", node)
        self._spawn(
            "fake-kubelet-nodes",
            lambda: self._watch_forever(
                "/api/v1/nodes", {"labelSelector": _FAKE_SELECTOR}, self._on_node, node_version
            ),
        )
        self._spawn(
            "fake-kubelet-pods",
            lambda: self._watch_forever(
                "/api/v1/pods", {"fieldSelector": "spec.nodeName!="}, self._on_pod, None
            ),
        )
        self._spawn("fake-kubelet-timers", self._run_timers)
        _say(f"watching {len(nodes)} fake nodes and their pods")
        return self

    def stop(self) -> None:
        if not self._threads:
            return
        self._stopping.set()
        with self._lock:
            watches = list(self._watches)
            self._timer_wakeup.notify_all()
        for watch in watches:
            watch.close()
        for work in self._queues:
            work.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        self._queues.clear()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # - watches -

    def _watch_forever(
        self,
        path: str,
        query: dict[str, Any],
        handle: Callable[[str, JSON], None],
        resource_version: str | None,
    ) -> None:
        """List (when there is no version to resume from), then watch; relist on 410 Gone."""
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    items, resource_version = self.rest.list_all(path, **query)
                    for item in items:
                        handle("ADDED", item)
                watch = self.rest.watch(
                    path, resource_version, timeoutSeconds=WATCH_TIMEOUT_SECONDS, **query
                )
                with self._lock:
                    if self._stopping.is_set():  # stop() ran while this watch was opening
                        watch.close()
                        return
                    self._watches.add(watch)
                try:
                    for event in watch:
                        kind, obj = event.get("type", ""), event.get("object", {})
                        if kind == "ERROR":
                            resource_version = None  # mostly 410 Gone: relist
                            break
                        resource_version = obj.get("metadata", {}).get(
                            "resourceVersion", resource_version
                        )
                        if kind != "BOOKMARK":
                            handle(kind, obj)
                finally:
                    with self._lock:
                        self._watches.discard(watch)
                    watch.close()
            except KubeError as err:
                if err.status == 410:
                    resource_version = None
                else:
                    self._error(f"watch {path}: {err}")
                    self._stopping.wait(1.0)
            except Exception as err:  # a watch must outlive any one failure
                if not self._stopping.is_set():
                    self._error(f"watch {path}: {err!r}")
                    self._stopping.wait(1.0)

    def _on_node(self, kind: str, node: JSON) -> None:
        name = node["metadata"]["name"]
        if kind == "DELETED" or not node_is_fake(node):
            with self._lock:
                self._nodes.pop(name, None)
            return
        host_ip = ""
        for address in node.get("status", {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                host_ip = address.get("address", "")
        with self._lock:
            self._nodes[name] = host_ip
            waiting = self._waiting.pop(name, {})
        if node_ready_patch(node) is not None:
            self._dispatch(name, ("node", node))
        for pod in waiting.values():
            self._dispatch(pod["metadata"]["uid"], ("pod", pod))

    def _on_pod(self, kind: str, pod: JSON) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        node = pod.get("spec", {}).get("nodeName", "")
        if kind == "DELETED":
            with self._lock:
                self._deleting.discard(uid)
                self._waiting.get(node, {}).pop(uid, None)
            return
        with self._lock:
            if node not in self._nodes:
                # Perhaps a node this kubelet has not seen yet; wait for it. Pods of real
                # nodes wait here for nothing, which costs a dict entry.
                self._waiting.setdefault(node, {})[uid] = pod
                return
        if self._needs_work(pod):
            self._dispatch(uid, ("pod", pod))

    def _needs_work(self, pod: JSON) -> bool:
        if pod["metadata"].get("deletionTimestamp"):
            return bool(pod["metadata"]["uid"] not in self._deleting)
        return bool(pod.get("status", {}).get("phase", "Pending") == "Pending")

    def _dispatch(self, key: str, item: tuple[str, JSON]) -> None:
        if self._queues:
            self._queues[zlib.crc32(key.encode()) % len(self._queues)].put(item)

    # - the kubelet's work -

    def _work(self, work: queue.Queue[tuple[str, JSON] | None]) -> None:
        while True:
            item = work.get()
            if item is None:
                return
            kind, obj = item
            try:
                if kind == "node":
                    self._reconcile_node(obj)
                elif kind == "pod":
                    self._reconcile_pod(obj)
                elif kind == "finish":
                    self._finish_pod(obj)
            except KubeError as err:
                if err.status not in (404, 409):  # gone, or changed under us: a later event
                    self._error(str(err))
            except Exception as err:  # one pod must not stop the kubelet
                self._error(repr(err))

    def _reconcile_node(self, node: JSON) -> None:
        patch = node_ready_patch(node)
        if patch is not None:
            self.rest.patch(f"/api/v1/nodes/{node['metadata']['name']}/status", patch)

    def _reconcile_pod(self, pod: JSON) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            with self._lock:
                if meta["uid"] in self._deleting:
                    return
                self._deleting.add(meta["uid"])
            self.rest.delete(
                _pod_path(pod),
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": meta["uid"]},
                },
            )
            with self._lock:
                self.pods_deleted += 1
            return
        if pod.get("status", {}).get("phase", "Pending") != "Pending":
            return
        with self._lock:
            host_ip = self._nodes.get(pod["spec"]["nodeName"]) or None
            n = next(self._ip_counter)
        pod_ip = f"10.{128 + (n >> 16) % 64}.{(n >> 8) & 255}.{n & 255}"
        updated = self.rest.patch(
            _pod_path(pod, "/status"), pod_running_patch(pod, pod_ip, host_ip)
        )
        with self._lock:
            self.pods_started += 1
        run_seconds = (meta.get("annotations") or {}).get(FAKE_RUN_SECONDS_ANNOTATION)
        if run_seconds is not None:
            self._finish_later(updated, float(run_seconds))

    def _finish_later(self, pod: JSON, seconds: float) -> None:
        with self._lock:
            heapq.heappush(self._timers, (time.monotonic() + seconds, next(self._timer_seq), pod))
            self._timer_wakeup.notify()

    def _run_timers(self) -> None:
        with self._lock:
            while not self._stopping.is_set():
                if not self._timers:
                    self._timer_wakeup.wait(1.0)
                    continue
                due, _, pod = self._timers[0]
                delay = due - time.monotonic()
                if delay > 0:
                    self._timer_wakeup.wait(min(delay, 1.0))
                    continue
                heapq.heappop(self._timers)
                self._lock.release()
                try:
                    self._dispatch(pod["metadata"]["uid"], ("finish", pod))
                finally:
                    self._lock.acquire()

    def _finish_pod(self, pod: JSON) -> None:
        current = self.rest.get(_pod_path(pod))
        if current["metadata"]["uid"] != pod["metadata"]["uid"]:
            return
        if current.get("status", {}).get("phase") != "Running":
            return
        self.rest.patch(_pod_path(pod, "/status"), pod_succeeded_patch(current))
        with self._lock:
            self.pods_succeeded += 1

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
            del self.errors[:-100]
        _say(f"error: {message}")


_FAKE_SELECTOR = f"{FAKE_NODE_LABEL}=true"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="admin kubeconfig of the cluster")
    parser.add_argument("--workers", type=int, default=4, help="patching threads")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kubelet = FakeKubelet(args.kubeconfig, workers=args.workers).start()
    try:
        reported = (-1, -1, -1)
        while not stop.wait(10.0):
            counts = (kubelet.pods_started, kubelet.pods_deleted, kubelet.pods_succeeded)
            if counts != reported:
                _say("pods started {}, deleted {}, succeeded {}".format(*counts))
                reported = counts
    finally:
        kubelet.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
