"""The operator's telemetry glue: whom to ask, and that every failure falls back to nameplate."""

from __future__ import annotations

from dataclasses import replace

from wattsched.controllers.telemetry import TelemetryAnswer, apply_answer, telemetry_jobs
from wattsched.scheduling import ClusterState
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool
from wattsched.telemetry.readings import NodeReading

POOL = {"pool": "h200"}
NOW = 10_000.0


def site(window: int = 900, percentile: int = 99) -> ClusterState:
    state = ClusterState()
    state.upsert_pool(
        replace(gpu_pool("h200", POOL, 700, 90, 1000), telemetry_query="DCGM_FI_DEV_POWER_USAGE")
    )
    state.upsert_pool(  # AWS Neuron publishes no power metric: stays on nameplate
        replace(
            gpu_pool("trn2", {"pool": "trn2"}, 500, 60, 1000, 1, resource="aws.amazon.com/neuron"),
            vendor="aws",
            telemetry_query=None,
        )
    )
    for name, pool in (("n1", "h200"), ("n2", "h200"), ("t1", "trn2")):
        resource = "aws.amazon.com/neuron" if pool == "trn2" else "nvidia.com/gpu"
        state.upsert_node(gpu_node(name, {"pool": pool, "site": "s"}, resource=resource))
    state.upsert_budget(
        replace(
            budget("site", {"site": "s"}, 100_000),
            admission="Measured",
            window_seconds=window,
            percentile=percentile,
            stale_after_seconds=120,
        )
    )
    state.upsert_pod(gpu_pod("p", gpus=8, node_name="n1"))
    state.advance_to(NOW + 3600)  # the pod is old news: its draw is in the data
    return state


def test_one_job_per_pool_with_a_metric_in_a_measured_budget() -> None:
    jobs = telemetry_jobs(site(window=600, percentile=95), step_seconds=15)
    assert [(j.pool, j.query, j.window_seconds, j.percentile) for j in jobs] == [
        ("h200", "DCGM_FI_DEV_POWER_USAGE", 600, 95)
    ]


def test_no_measured_budget_means_no_query_at_all() -> None:
    state = site()
    old = state.budgets["site"]
    state.upsert_budget(replace(old, admission="Committed"))
    assert telemetry_jobs(state, 15) == ()


def test_fresh_readings_count_and_the_rest_stays_at_nameplate() -> None:
    state = site()
    at = NOW + 3600
    answer = TelemetryAnswer(
        at,
        {"h200": {"n1": NodeReading(4000, 8, at - 10), "n2": NodeReading(720, 8, at - 500)}},
    )
    apply_answer(state, answer, at)
    figures = state.budget_status("site")
    assert figures.stale_nodes == ("n2",)  # too old; t1 has no metric: nameplate, not stale
    assert figures.measured_watts == 4000 + 1000  # devices plus the node's base watts


def test_pods_bound_before_a_restart_count_as_recent_for_a_window() -> None:
    """A new leader cannot know when its pods started to draw: at their committed watts."""
    state = site()
    rebuilt = ClusterState.from_objects(
        state.nodes.values(), state.pools.values(), state.budgets.values(),
        state.pods.values(), now_seconds=NOW + 3600,
    )  # fmt: skip
    at = NOW + 3600
    low = {"h200": {n: NodeReading(720, 8, at - 1) for n in ("n1", "n2")}}
    apply_answer(rebuilt, TelemetryAnswer(at, low), at)
    assert rebuilt.budget_status("site").estimated_watts == (
        rebuilt.budget_status("site").committed_watts
    )
    rebuilt.advance_to(at + 901)  # a window later the data shows them: the gain appears
    apply_answer(rebuilt, TelemetryAnswer(at + 901, {"h200": {
        n: NodeReading(720, 8, at + 900) for n in ("n1", "n2")}}), at + 901)  # fmt: skip
    figures = rebuilt.budget_status("site")
    assert figures.estimated_watts is not None
    assert figures.estimated_watts < figures.committed_watts


def test_no_answer_at_all_leaves_every_node_at_nameplate() -> None:
    state = site()
    apply_answer(state, None, NOW + 3600)
    figures = state.budget_status("site")
    assert figures.estimated_watts == figures.committed_watts
    assert figures.stale_nodes == ("n1", "n2")
