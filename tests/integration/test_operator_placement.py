"""The operator places real pods on a real API server and keeps pool and budget status true.

One site for the module: 200 fake accelerator nodes across the five Ulsan pool shapes, nested
budgets whose limits bind before the devices do, and one operator process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_operator_harness import (
    GROUP_PATH,
    RUN_LABEL,
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
    pending_reason,
    recompute,
    status_matches,
    unsettled,
    wait_until,
)

from e2e.fleet import make_node
from e2e.providers.rest import KubeREST

NODES_PER_POOL = 40
PODS = 1000
SIZES = (1, 2, 4, 8)
BUDGET_GAUGES = (
    ("wattsched_budget_committed_watts", "committedWatts"),
    ("wattsched_budget_limit_watts", "effectiveLimitWatts"),
    ("wattsched_budget_headroom_watts", "headroomWatts"),
)


def _wait_for_the_second_after(obj: dict[str, Any]) -> None:
    """Until the clock has left the (whole) second of `obj`'s creationTimestamp."""
    created = datetime.strptime(obj["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    created = created.replace(tzinfo=UTC)
    wait_until(lambda: datetime.now(UTC).replace(microsecond=0) > created, 5,
               f"the second after {obj['metadata']['name']} was created",
               interval_seconds=0.05)  # fmt: skip


def wait_for_agreement(
    differences: Callable[[], list[str]], timeout_seconds: float, what: str
) -> None:
    """Poll until `differences()` is empty; fail with the differences still left."""
    left: list[str] = []

    def agree() -> bool:
        left[:] = differences()
        return not left

    try:
        wait_until(agree, timeout_seconds, what, interval_seconds=1)
    except AssertionError:
        raise AssertionError(f"{what}: after {timeout_seconds:.0f}s still {left}") from None


@pytest.fixture(scope="module")
def site(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    install_crds(control_plane)
    rest = KubeREST(control_plane.kubeconfig, max_connections=16)
    site = TestSite(rest)
    for shape in ULSAN_SHAPES:
        site.add_pool(shape)
        site.add_nodes(shape, NODES_PER_POOL)
    main = {ZONE_LABEL: "main"}
    budgets = [
        site.add_budget("site", main, "2MW", reserve_percent=2),
        site.add_budget("phase-1", main, "1.1MW", reserve_percent=5),
        site.add_budget("hall-a", {**main, "wattsched.io/hall": site.name("a")}, "700kW",
                        reserve_percent=3),
        site.add_budget("hall-b", {**main, "wattsched.io/hall": site.name("b")}, "500kW",
                        reserve_percent=3),
    ]  # fmt: skip
    classes = [site.add_priority_class(n, v) for n, v in (("low", 100), ("mid", 1000),
                                                          ("high", 10000))]  # fmt: skip
    namespace = Namespace(rest, site.name("placement"))
    operator = OperatorProcess(
        Path(control_plane.kubeconfig),
        tmp_path_factory.mktemp("placement"),
        scheduler_name=site.scheduler_name,
        lease_namespace=namespace.name,
        lease_duration_seconds=15,
    ).start()
    try:
        operator.wait_ready()
        yield {"rest": rest, "site": site, "budgets": budgets, "classes": classes,
               "ns": namespace.name, "operator": operator}  # fmt: skip
    finally:
        code = operator.stop()
        namespace.delete()
        site.delete()
        assert code == 0, f"the operator exited with {code}:\n{operator.log_tail()}"


def test_a_thousand_pods_are_each_bound_or_pending_with_a_reason(site: dict[str, Any]) -> None:
    rest, ts, ns = site["rest"], site["site"], site["ns"]
    pods = []
    for i in range(PODS):
        shape = ULSAN_SHAPES[i % len(ULSAN_SHAPES)]
        size = SIZES[(i // len(ULSAN_SHAPES)) % len(SIZES)]
        if shape.devices_per_node == 16 and size == 8:
            size = 16  # a whole Trainium2 node
        pods.append(ts.pod(f"p-{i:04d}", ns, shape.resource, size,
                           priority_class=site["classes"][i % 3]))  # fmt: skip
    started = time.monotonic()
    create_pods(rest, pods)
    created = time.monotonic() - started

    def settled() -> bool:
        return not unsettled(list_pods(rest, ns))

    wait_until(settled, 180, "every pod bound or pending with a reason", interval_seconds=2)
    took = time.monotonic() - started
    listed = list_pods(rest, ns)
    bound = [p for p in listed if p["spec"].get("nodeName")]
    print(f"\n{len(bound)} of {PODS} pods bound, the rest pending with a reason; "
          f"created in {created:.1f}s, settled in {took:.1f}s")  # fmt: skip
    # Higher-priority pods may preempt lower ones (DESIGN.md §3); a pod that is gone must have
    # been evicted by wattsched, and say so in an Event.
    gone = {p["metadata"]["name"] for p in pods} - {p["metadata"]["name"] for p in listed}
    events = rest.list_all(f"/api/v1/namespaces/{ns}/events")[0]
    preempted = {e["involvedObject"]["name"] for e in events if e["reason"] == "Preempted"}
    assert gone <= preempted, f"pods gone without a Preempted event: {sorted(gone - preempted)}"
    print(f"{len(gone)} pods were preempted by higher-priority ones")
    assert 0 < len(bound) < PODS, "the site is built so that power binds before devices"
    ledger = recompute(rest)
    assert_no_device_double_booked(ledger)
    assert_no_budget_exceeded(ledger, site["budgets"])
    reasons = {pending_reason(p) or "" for p in listed if not p["spec"].get("nodeName")}
    assert any("PowerBudget" in reason for reason in reasons), reasons


def test_status_equals_a_recomputation_from_the_bound_pods(site: dict[str, Any]) -> None:
    rest, ts = site["rest"], site["site"]
    wait_for_agreement(lambda: status_matches(rest, site["budgets"], ts.pool_names), 30,
                       "statuses equal to the recomputation")  # fmt: skip
    for name in site["budgets"]:
        status = rest.get(f"{GROUP_PATH}/powerbudgets/{name}")["status"]
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Ready"]["status"] == "True"
        assert conditions["WithinLimit"]["status"] == "True", conditions["WithinLimit"]
        assert status["observedGeneration"] == 1
        assert status["committed"] and status["limit"] and status["headroom"]


def test_metrics_match_the_statuses(site: dict[str, Any]) -> None:
    rest, ts, operator = site["rest"], site["site"], site["operator"]

    def differences() -> list[str]:
        # Gauges are set when statuses are computed, and the patch follows: poll until both
        # show the same computation.
        samples = operator.metrics()
        found: list[str] = []

        def compare(what: str, metric: float | None, status_value: Any) -> None:
            if metric != status_value:
                found.append(f"{what}: metric {metric} != status {status_value}")

        for name in site["budgets"]:
            status = rest.get(f"{GROUP_PATH}/powerbudgets/{name}").get("status") or {}
            key = (("budget", name),)
            for metric, field in BUDGET_GAUGES:
                compare(f"{metric} of {name}", samples.get((metric, key)), status.get(field))
        for name in ts.pool_names:
            status = rest.get(f"{GROUP_PATH}/acceleratorpools/{name}").get("status") or {}
            allocated = samples.get(
                ("wattsched_pool_devices", (("pool", name), ("state", "allocated")))
            )
            free = samples.get(("wattsched_pool_devices", (("pool", name), ("state", "free"))))
            devices, allocated_devices = status.get("devices"), status.get("allocatedDevices")
            compare(f"allocated devices of {name}", allocated, allocated_devices)
            compare(f"free devices of {name}", free, (devices or 0) - (allocated_devices or 0))
        pending = sum(1 for p in list_pods(rest, site["ns"]) if not p["spec"].get("nodeName"))
        compare("pending pods", samples.get(("wattsched_pending_pods", ())), pending)
        return found

    wait_for_agreement(differences, 30, "metrics equal to the statuses")
    samples = operator.metrics()
    assert samples[("wattsched_scheduling_attempts_total", (("result", "scheduled"),))] > 0
    assert samples[("wattsched_leader", ())] == 1
    assert samples[("wattsched_build_info", (("version", "0.1.0"),))] == 1
    for metric in ("wattsched_scheduling_cycle_duration_seconds_count",
                   "wattsched_binding_duration_seconds_count"):  # fmt: skip
        assert samples[(metric, ())] > 0


def test_impossible_pods_stay_pending_with_a_clear_reason(site: dict[str, Any]) -> None:
    rest, ts, ns = site["rest"], site["site"], site["ns"]
    create_pods(rest, [
        ts.pod("wants-fpga", ns, "example.com/fpga", 1),
        ts.pod("wants-nine-gpus", ns, "nvidia.com/gpu", 9),
        ts.pod("bad-gang-size", ns, "nvidia.com/gpu", 1, labels={"wattsched.io/gang": "g"},
               annotations={"wattsched.io/gang-size": "sixteen"}),
    ])  # fmt: skip

    def reasons() -> dict[str, str] | None:
        found = {p["metadata"]["name"]: pending_reason(p) for p in list_pods(rest, ns)}
        wanted = {k: found.get(k) for k in ("wants-fpga", "wants-nine-gpus", "bad-gang-size")}
        return wanted if all(wanted.values()) else None  # type: ignore[return-value]

    found = wait_until(reasons, 30, "reasons on the impossible pods")
    assert "example.com/fpga" in found["wants-fpga"], found
    assert "Insufficient nvidia.com/gpu" in found["wants-nine-gpus"], found
    assert "wattsched.io/gang-size" in found["bad-gang-size"], found
    assert "sixteen" in found["bad-gang-size"], found


def test_a_gang_that_does_not_fit_waits_whole_then_binds_whole(site: dict[str, Any]) -> None:
    rest, ts, ns = site["rest"], site["site"], site["ns"]
    h200 = ULSAN_SHAPES[0]
    ts.add_nodes(h200, 16, zone="gang")
    # Under a budget of their own (fail closed: DESIGN.md §2), roomy enough that devices, not
    # power, decide: 16 full nodes commit 161.6 kW.
    ts.add_budget("gang", {ZONE_LABEL: "gang"}, "1MW")
    high = site["classes"][2]
    blockers = [ts.pod(f"blocker-{i}", ns, h200.resource, 8, priority_class=high, zone="gang")
                for i in range(2)]  # fmt: skip
    create_pods(rest, blockers)

    def blockers_bound() -> bool:
        pods = {p["metadata"]["name"]: p for p in list_pods(rest, ns)}
        return all(pods.get(b["metadata"]["name"], {}).get("spec", {}).get("nodeName")
                   for b in blockers)  # fmt: skip

    wait_until(blockers_bound, 30, "the two blockers to be bound")
    gang = [
        ts.pod(f"gang-{i:02d}", ns, h200.resource, 8, priority_class=high, zone="gang",
               labels={"wattsched.io/gang": "train"},
               annotations={"wattsched.io/gang-size": "16"})
        for i in range(16)
    ]  # fmt: skip
    create_pods(rest, gang)
    names = {g["metadata"]["name"] for g in gang}

    def gang_pods() -> list[dict[str, Any]]:
        return [p for p in list_pods(rest, ns) if p["metadata"]["name"] in names]

    wait_until(lambda: all(pending_reason(p) for p in gang_pods()) and len(gang_pods()) == 16,
               30, "every gang member pending with a reason")  # fmt: skip
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert not any(p["spec"].get("nodeName") for p in gang_pods()), "a partial gang bound"
        time.sleep(0.5)
    print(f"\ngang pending: {pending_reason(gang_pods()[0])}")
    delete_pods(rest, ns, [b["metadata"]["name"] for b in blockers])
    wait_until(lambda: all(p["spec"].get("nodeName") for p in gang_pods()), 60,
               "the whole gang to bind once the blockers are gone")  # fmt: skip
    assert len({p["spec"]["nodeName"] for p in gang_pods()}) == 16


def test_overlapping_pools_are_reported_on_both(site: dict[str, Any]) -> None:
    rest, ts = site["rest"], site["site"]
    node = make_node(ts.name("overlap-0"), labels={RUN_LABEL: ts.run_id, ZONE_LABEL: "overlap"},
                     resources={"nvidia.com/gpu": 8})  # fmt: skip
    rest.post("/api/v1/nodes", node)
    ts.node_names.append(node["metadata"]["name"])
    names = []
    for short in ("overlap-old", "overlap-new"):
        if names:  # creationTimestamp has whole seconds: make "older" unambiguous
            _wait_for_the_second_after(rest.get(f"{GROUP_PATH}/acceleratorpools/{names[-1]}"))
        name = ts.name(short)
        rest.post(f"{GROUP_PATH}/acceleratorpools", {
            "apiVersion": "wattsched.io/v1alpha1", "kind": "AcceleratorPool",
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"matchLabels": {RUN_LABEL: ts.run_id, ZONE_LABEL: "overlap"}},
                "accelerator": {"vendor": "nvidia", "model": "H100",
                                "resourceNames": ["nvidia.com/gpu"]},
                "power": {"deviceWatts": 700, "idleDeviceWatts": 90, "nodeBaseWatts": 3000},
            },
        })  # fmt: skip
        ts.pool_names.append(name)
        names.append(name)

    def conflicts() -> dict[str, Any] | None:
        found = {}
        for name in names:
            status = rest.get(f"{GROUP_PATH}/acceleratorpools/{name}").get("status") or {}
            condition = {c["type"]: c for c in status.get("conditions") or ()}.get("Conflict")
            if not condition or condition["status"] != "True":
                return None
            found[name] = condition
        return found

    found = wait_until(conflicts, 30, "Conflict=True on both pools")
    for name, condition in found.items():
        assert node["metadata"]["name"] in condition["message"], condition
        other = names[1] if name == names[0] else names[0]
        assert other in condition["message"], condition
    assert rest.get(f"{GROUP_PATH}/acceleratorpools/{names[0]}")["status"]["nodes"] == 1
    assert rest.get(f"{GROUP_PATH}/acceleratorpools/{names[1]}")["status"]["nodes"] == 0
