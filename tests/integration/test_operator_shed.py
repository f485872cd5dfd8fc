"""Lowering a Shed budget's limit evicts the lowest-priority pods until it is within, no others.

Ten H200 nodes full of 2-GPU pods at four priorities; every pod frees 2 x (700 - 90) W.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_operator_harness import (
    GROUP_PATH,
    ULSAN_SHAPES,
    ZONE_LABEL,
    Namespace,
    OperatorProcess,
    TestSite,
    create_pods,
    install_crds,
    list_pods,
    wait_until,
)

from e2e.providers.rest import KubeREST

H200 = ULSAN_SHAPES[0]
NODES = 10
PRIORITIES = (100, 200, 300, 400)
PODS_PER_PRIORITY = 10
FREED_PER_POD = 2 * (H200.device_watts - H200.idle_device_watts)
FULL_WATTS = NODES * (H200.node_base_watts + H200.devices_per_node * H200.device_watts)


@pytest.fixture(scope="module")
def site(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    install_crds(control_plane)
    rest = KubeREST(control_plane.kubeconfig, max_connections=16)
    ts = TestSite(rest)
    ts.add_pool(H200)
    ts.add_nodes(H200, NODES)
    budget = ts.add_budget("row", {ZONE_LABEL: "main"}, "200kW", enforcement="Shed")
    classes = {value: ts.add_priority_class(f"p{value}", value) for value in PRIORITIES}
    namespace = Namespace(rest, ts.name("shed"))
    operator = OperatorProcess(
        Path(control_plane.kubeconfig),
        tmp_path_factory.mktemp("shed"),
        scheduler_name=ts.scheduler_name,
        lease_namespace=namespace.name,
        lease_duration_seconds=15,
    ).start()
    try:
        operator.wait_ready()
        pods = [
            ts.pod(f"p{value}-{i}", namespace.name, H200.resource, 2,
                   priority_class=classes[value])
            for value in PRIORITIES
            for i in range(PODS_PER_PRIORITY)
        ]  # fmt: skip
        create_pods(rest, pods)
        wait_until(lambda: sum(1 for p in list_pods(rest, namespace.name)
                               if p["spec"].get("nodeName")) == len(pods),
                   60, "all 40 pods bound")  # fmt: skip
        yield {"rest": rest, "site": ts, "budget": budget, "ns": namespace.name,
               "operator": operator}  # fmt: skip
    finally:
        code = operator.stop()
        namespace.delete()
        ts.delete()
        assert code == 0, f"the operator exited with {code}:\n{operator.log_tail()}"


def _survivors(rest: KubeREST, ns: str) -> dict[str, int]:
    return {
        p["metadata"]["name"]: int(p["spec"].get("priority") or 0)
        for p in list_pods(rest, ns)
        if not p["metadata"].get("deletionTimestamp")
    }


def _budget_status(rest: KubeREST, name: str) -> dict[str, Any]:
    return rest.get(f"{GROUP_PATH}/powerbudgets/{name}").get("status") or {}


def _shed_events(rest: KubeREST, ns: str) -> dict[str, str]:
    """Pod -> when wattsched first announced its eviction (just before asking for it)."""
    announced: dict[str, str] = {}
    for event in rest.list_all(f"/api/v1/namespaces/{ns}/events")[0]:
        if event["reason"] == "Shed" and event["involvedObject"]["kind"] == "Pod":
            name, at = event["involvedObject"]["name"], event["firstTimestamp"]
            announced[name] = min(at, announced.get(name, at))  # RFC 3339 sorts as time does
    return announced


def _expect_shed(
    rest: KubeREST,
    ns: str,
    budget: str,
    before: dict[str, int],
    limit_watts: int,
    timeout_seconds: float = 30,
) -> set[str]:
    over = FULL_WATTS - FREED_PER_POD * (len(PRIORITIES) * PODS_PER_PRIORITY - len(before))
    need = math.ceil((over - limit_watts) / FREED_PER_POD)
    wait_until(lambda: len(before) - len(_survivors(rest, ns)) >= need, timeout_seconds,
               f"{need} evictions")  # fmt: skip

    # And then no more: once the operator's own ledger counts exactly the pods left and is
    # within the limit, it has no reason to shed again.
    def settled() -> bool:
        status = _budget_status(rest, budget)
        committed, allocatable = status.get("committedWatts"), status.get("allocatableWatts")
        return (
            status.get("effectiveLimitWatts") == limit_watts
            and status.get("pods") == len(_survivors(rest, ns))
            and committed is not None
            and allocatable is not None
            and committed <= allocatable
        )

    wait_until(settled, 30, f"PowerBudget {budget} to count only the pods left, within its limit")
    after = _survivors(rest, ns)
    gone = set(before) - set(after)
    assert len(gone) == need, f"evicted {len(gone)} pods, the fewest that restore it is {need}"
    announced = set(_shed_events(rest, ns)) & set(before)
    assert announced <= gone, f"set out to evict {sorted(announced - gone)} too"
    assert max(before[name] for name in gone) <= min(after.values()), (
        f"evicted {sorted(gone)} while lower-priority pods stayed"
    )
    return gone


def test_lowering_the_limit_by_an_edit_sheds_the_fewest_lowest_priority_pods(
    site: dict[str, Any],
) -> None:
    rest, ns, budget = site["rest"], site["ns"], site["budget"]
    before = _survivors(rest, ns)
    rest.patch(f"{GROUP_PATH}/powerbudgets/{budget}", {"spec": {"limit": "95kW"}},
               content_type="application/merge-patch+json")  # fmt: skip
    gone = _expect_shed(rest, ns, budget, before, 95_000)
    assert {before[name] for name in gone} == {100}
    status = wait_until(lambda: (s := _budget_status(rest, budget)).get("observedGeneration") == 2
                        and s, 10, "the status of generation 2")  # fmt: skip
    assert status["committedWatts"] <= status["allocatableWatts"] == 95_000
    within = {c["type"]: c for c in status["conditions"]}["WithinLimit"]
    assert within["status"] == "True" and "shed" in within["message"], within
    events = rest.list_all(f"/api/v1/namespaces/{ns}/events")[0]
    shed_events = {
        e["involvedObject"]["name"]: e["message"] for e in events if e["reason"] == "Shed"
    }
    assert gone <= set(shed_events), shed_events
    assert all(budget in message for message in shed_events.values()), shed_events


def test_a_scheduled_limit_sheds_at_its_instant(site: dict[str, Any]) -> None:
    rest, ns, budget = site["rest"], site["ns"], site["budget"]
    before = _survivors(rest, ns)
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    rest.patch(
        f"{GROUP_PATH}/powerbudgets/{budget}",
        {"spec": {"schedule": [{"from": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "limit": "90kW"}]}},
        content_type="application/merge-patch+json",
    )
    status = wait_until(lambda: _budget_status(rest, budget).get("nextChange"), 10, "nextChange")
    assert status == {"at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "limitWatts": 90_000}
    until_then = max(0.0, (at - datetime.now(UTC)).total_seconds())
    gone = _expect_shed(rest, ns, budget, before, 90_000, timeout_seconds=until_then + 30)
    assert {before[name] for name in gone} == {100}
    # None went before the instant: each eviction is announced, in whole seconds, just before
    # it is asked for, and the instant is a whole second.
    announced = _shed_events(rest, ns)
    assert gone <= set(announced), announced
    early = {
        name: announced[name]
        for name in gone
        if datetime.strptime(announced[name], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) < at
    }
    assert not early, f"evicted before the scheduled instant {at:%H:%M:%S}: {early}"
    status = _budget_status(rest, budget)
    assert status["effectiveLimitWatts"] == 90_000
    assert status.get("nextChange") is None
