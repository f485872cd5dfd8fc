"""Crashes and handovers: the ledger is rebuilt from the cluster, and only the lease holder binds.

Each test builds its own site, namespace and operators: fifty nodes (H200 and RNGD) under a
budget that binds before the devices do.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_operator_harness import (
    ULSAN_SHAPES,
    ZONE_LABEL,
    Namespace,
    OperatorProcess,
    TestSite,
    assert_no_budget_exceeded,
    assert_no_device_double_booked,
    create_pods,
    delete_pods,
    install_crds,
    list_pods,
    recompute,
    unsettled,
    wait_until,
)

from e2e.providers.rest import KubeREST

H200, RNGD = ULSAN_SHAPES[0], ULSAN_SHAPES[2]
LEASE_SECONDS = 4.0
# A standby takes the lease once it has seen no renewal for a lease duration (LeaderElector
# looks every retry period, under a second here). Three lease durations leave room for a slow,
# shared machine and still fail a standby that does not take over.
HANDOVER_BOUND_SECONDS = 3 * LEASE_SECONDS
FAKE_RUN_SECONDS = "wattsched.io/fake-run-seconds"


@pytest.fixture
def site(control_plane: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A site of the test's own: nodes, pools, budget, priority classes and a namespace."""
    install_crds(control_plane)
    rest = KubeREST(control_plane.kubeconfig, max_connections=16)
    ts = TestSite(rest)
    for shape in (H200, RNGD):
        ts.add_pool(shape)
        ts.add_nodes(shape, 25)
    # Idle: 25 x 5220 + 25 x 1780 = 175 kW; every device allocated: 330.5 kW.
    budgets = [ts.add_budget("site", {ZONE_LABEL: "main"}, "300kW", reserve_percent=5)]
    classes = [ts.add_priority_class(n, v) for n, v in (("low", 10), ("high", 20))]
    namespace = Namespace(rest, ts.name("failover"))
    try:
        yield {"rest": rest, "site": ts, "budgets": budgets, "classes": classes,
               "ns": namespace.name, "kubeconfig": Path(control_plane.kubeconfig),
               "workdir": tmp_path}  # fmt: skip
    finally:
        # The pods go first and for good (the fake kubelet needs their nodes for that), so
        # that the next test's operators start on a cluster where nothing of this one churns.
        names = [pod["metadata"]["name"] for pod in list_pods(rest, namespace.name)]
        delete_pods(rest, namespace.name, names)
        wait_until(lambda: not list_pods(rest, namespace.name), 60, "the test's pods gone")
        namespace.delete()
        ts.delete()


def _operator(site: dict[str, Any], **kwargs: Any) -> OperatorProcess:
    return OperatorProcess(
        site["kubeconfig"],
        site["workdir"],
        scheduler_name=site["site"].scheduler_name,
        lease_namespace=site["ns"],
        lease_duration_seconds=LEASE_SECONDS,
        **kwargs,
    )


def _check_invariants(site: dict[str, Any]) -> None:
    ledger = recompute(site["rest"])
    assert_no_device_double_booked(ledger)
    assert_no_budget_exceeded(ledger, site["budgets"])


def test_sigkill_while_placing_never_double_books_and_ends_settled(site: dict[str, Any]) -> None:
    rest, ts, ns = site["rest"], site["site"], site["ns"]
    rng = random.Random(4)
    # Pods finish after a few seconds (the fake kubelet marks them Succeeded), so room keeps
    # freeing and placement goes on through every crash.
    pods = [
        ts.pod(f"k-{i:03d}", ns, (H200, RNGD)[i % 2].resource, rng.choice((1, 2, 4)),
               priority_class=site["classes"][i % 2],
               annotations={FAKE_RUN_SECONDS: str(rng.randint(2, 6))})
        for i in range(500)
    ]  # fmt: skip
    operator = _operator(site, lease_name="crash").start()

    def trickle() -> None:  # pods keep arriving across the crashes
        for start in range(0, len(pods), 25):
            create_pods(rest, pods[start : start + 25], 8)
            time.sleep(1.0)

    creator = threading.Thread(target=trickle)
    try:
        operator.wait_ready()
        creator.start()
        for kill in range(5):
            # Each restart waits out the dead leader's lease, then places; kill it mid-way.
            operator.wait_ready()
            wait_until(lambda: operator.metric("wattsched_leader") == 1, HANDOVER_BOUND_SECONDS,
                       "leadership", interval_seconds=0.1)  # fmt: skip
            time.sleep(rng.uniform(0.1, 1.5))
            bound = sum(1 for p in list_pods(rest, ns) if p["spec"].get("nodeName"))
            scheduled = operator.metric("wattsched_scheduling_attempts_total", result="scheduled")
            print(f"\nkill {kill + 1}: SIGKILL with {bound} pods bound, {scheduled:g} by it")
            operator.kill()
            _check_invariants(site)
            operator.start()
        creator.join()
        wait_until(lambda: not unsettled(list_pods(rest, ns)), 120,
                   "every pod bound or pending with a reason", interval_seconds=2)  # fmt: skip
        _check_invariants(site)
        listed = list_pods(rest, ns)
        bound = sum(1 for p in listed if p["spec"].get("nodeName"))
        print(f"after 5 kills: {bound} bound, {len(listed) - bound} pending with a reason")
        assert bound > 0
    finally:
        if creator.ident is not None:  # started
            creator.join(timeout=60)
        code = operator.stop()
    assert code == 0, operator.log_tail()


def test_only_the_lease_holder_binds_and_the_standby_takes_over(site: dict[str, Any]) -> None:
    rest, ts, ns = site["rest"], site["site"], site["ns"]
    replicas = [_operator(site, lease_name="pair", identity=name).start()
                for name in ("replica-a", "replica-b")]  # fmt: skip
    try:
        for replica in replicas:
            replica.wait_ready()
        leader_of = lambda: [r for r in replicas if r.alive() and r.metric("wattsched_leader") == 1]  # noqa: E731
        leaders = wait_until(leader_of, 20, "one leader")
        assert len(leaders) == 1
        leader = leaders[0]
        standby = replicas[1] if leader is replicas[0] else replicas[0]
        first = [ts.pod(f"a-{i:02d}", ns, H200.resource, 1) for i in range(20)]
        create_pods(rest, first)
        wait_until(lambda: all(p["spec"].get("nodeName") for p in list_pods(rest, ns)), 30,
                   "the first pods bound")  # fmt: skip
        scheduled = ("wattsched_scheduling_attempts_total", (("result", "scheduled"),))
        assert leader.metrics()[scheduled] == 20
        assert standby.metrics()[scheduled] == 0, "the standby bound pods"
        assert standby.metric("wattsched_leader") == 0

        leader.kill()
        killed_at = time.monotonic()
        wait_until(lambda: standby.metric("wattsched_leader") == 1, HANDOVER_BOUND_SECONDS,
                   "the standby to take the lease", interval_seconds=0.2)  # fmt: skip
        handover = time.monotonic() - killed_at
        print(f"\nhandover {handover:.1f}s after SIGKILL (lease {LEASE_SECONDS:g}s)")
        assert handover <= HANDOVER_BOUND_SECONDS
        second = [ts.pod(f"b-{i:02d}", ns, RNGD.resource, 1) for i in range(20)]
        create_pods(rest, second)
        wait_until(lambda: all(p["spec"].get("nodeName") for p in list_pods(rest, ns)), 30,
                   "the second pods bound by the new leader")  # fmt: skip
        assert standby.metrics()[scheduled] == 20
        _check_invariants(site)
    finally:
        codes = [replica.stop() for replica in replicas]
    assert codes[replicas.index(standby)] == 0, standby.log_tail()
