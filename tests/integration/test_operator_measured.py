"""Admission on measured power (DESIGN.md §2b) on a real API server, with a real Prometheus
scraping an exporter that speaks dcgm-exporter's metric, and the real operator querying it.

Two H200 nodes under one budget whose nameplate room is exactly four single-GPU pods. Every
count the test expects is computed from §2b's formula, not read off a run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

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

from e2e.providers.power_exporter import DCGM
from e2e.providers.rest import MERGE, KubeREST

JSON = dict[str, Any]
H200 = ULSAN_SHAPES[0]
NODES = 2
DEVICES = H200.devices_per_node
IDLE, DELTA = H200.idle_device_watts, H200.device_watts - H200.idle_device_watts
IDLE_IT = NODES * (H200.node_base_watts + DEVICES * IDLE)
ROOM = 4  # pods the nameplate ledger admits
LIMIT = IDLE_IT + ROOM * DELTA
BUSY = IDLE + DELTA // 2  # a busy device draws half its range above idle
OVERSUBSCRIPTION = 10
WINDOW_SECONDS = 60
STALE_AFTER_SECONDS = 20
PODS = 10
WAIT = 150.0  # a window of data, then a telemetry tick and a cycle, on two shared cores


def admitted_after_data(bound: int) -> int:
    """§2b: the estimate (readings show `bound` busy devices) and the worst case both fit."""
    estimate = IDLE_IT + bound * (BUSY - IDLE)
    by_estimate = (LIMIT - estimate) // DELTA
    worst_bound = LIMIT * (100 + OVERSUBSCRIPTION) // 100
    by_worst = (worst_bound - IDLE_IT - bound * DELTA) // DELTA
    return bound + max(0, min(by_estimate, by_worst))


def test_a_measured_budget_admits_what_the_formula_allows_and_falls_back_to_nameplate(
    control_plane: Any, prometheus: Any, power_exporter: Any, tmp_path: Path
) -> None:
    install_crds(control_plane)
    rest = KubeREST(control_plane.kubeconfig, max_connections=8)
    site = TestSite(rest)
    namespace = Namespace(rest, site.name("measured"))
    nodes = site.add_nodes(H200, NODES, zone="measured")
    site.add_pool(H200)
    budget = site.add_budget("measured", {ZONE_LABEL: "measured"}, f"{LIMIT}W")
    for node in nodes:  # every device idle at first
        power_exporter.set_node_watts(DCGM, node=node, watts_per_device=[IDLE] * DEVICES)
    operator = OperatorProcess(
        Path(control_plane.kubeconfig),
        tmp_path,
        scheduler_name=site.scheduler_name,
        lease_namespace=namespace.name,
        lease_duration_seconds=15,
        extra_args=(f"--prometheus-url={prometheus.url}", "--telemetry-interval-seconds=2"),
    ).start()
    try:
        operator.wait_ready()
        create_pods(
            rest,
            [
                site.pod(f"serve-{i}", namespace.name, H200.resource, 1, zone="measured")
                for i in range(PODS)
            ],
        )

        def bound() -> list[JSON]:
            return [p for p in list_pods(rest, namespace.name) if p["spec"].get("nodeName")]

        def status() -> JSON:
            got: JSON = rest.get(f"{GROUP_PATH}/powerbudgets/{budget}").get("status") or {}
            return got

        def condition(kind: str) -> JSON:
            return next((c for c in status().get("conditions") or () if c["type"] == kind), {})

        def settle_at(count: int, what: str) -> None:
            wait_until(lambda: len(bound()) == count, WAIT, what)
            time.sleep(4)  # and no more than that: a few more turns and telemetry ticks
            assert len(bound()) == count, f"{what}: then {len(bound())} bound"

        def show_draw() -> None:
            """The exporter shows each bound pod's device busy, like dcgm-exporter would."""
            busy = {node: 0 for node in nodes}
            for pod in bound():
                busy[pod["spec"]["nodeName"]] += 1
            for node, n in busy.items():
                watts = [BUSY] * n + [IDLE] * (DEVICES - n)
                power_exporter.set_node_watts(DCGM, node=node, watts_per_device=watts)

        # 1. Committed: the nameplate ledger admits exactly ROOM pods.
        settle_at(ROOM, f"{ROOM} pods bound on nameplate")
        show_draw()

        # 2. Measured: once a window of data shows the draw, the formula's count is admitted.
        rest.patch(
            f"{GROUP_PATH}/powerbudgets/{budget}",
            {
                "spec": {
                    "admission": "Measured",
                    "measured": {
                        "window": f"{WINDOW_SECONDS}s",
                        "staleAfter": f"{STALE_AFTER_SECONDS}s",
                        "maxOversubscriptionPercent": OVERSUBSCRIPTION,
                    },
                }
            },
            content_type=MERGE,
        )
        expected = admitted_after_data(ROOM)
        assert expected > ROOM, "the scenario must show a gain"
        settle_at(expected, f"{expected} pods bound on measured power")
        show_draw()
        wait_until(lambda: condition("TelemetryFresh").get("status") == "True", WAIT,
                   "every node fresh")  # fmt: skip
        figures = status()
        assert figures["committedWatts"] == IDLE_IT + expected * DELTA
        assert figures["estimatedWatts"] <= figures["allocatableWatts"]

        # 3. One exporter stops: its node is named stale, and counts at nameplate.
        stale = nodes[0]
        power_exporter.remove(node=stale)
        wait_until(lambda: condition("TelemetryFresh").get("status") == "False", WAIT,
                   f"{stale} reported stale")  # fmt: skip
        assert stale in condition("TelemetryFresh")["message"]
        assert nodes[1] not in condition("TelemetryFresh")["message"]
        settle_at(expected, "nothing more admitted with a node at nameplate")

        # 4. Prometheus goes away: everything counts at nameplate, nothing more is admitted.
        prometheus.stop()
        wait_until(lambda: all(n in condition("TelemetryFresh").get("message", "")
                               for n in nodes), WAIT, "every node stale")  # fmt: skip
        figures = status()
        assert figures["estimatedWatts"] == figures["committedWatts"]
        settle_at(expected, "nothing beyond the committed ledger admitted")
        waiting = [p for p in list_pods(rest, namespace.name) if not p["spec"].get("nodeName")]
        assert len(waiting) == PODS - expected
    finally:
        code = operator.stop()
        namespace.delete()
        site.delete()
        assert code == 0, f"the operator exited with {code}:\n{operator.log_tail()}"
