"""Admission on measured power (DESIGN.md §2b): more pods under the same limit, never unsafe.

Four 8-GPU nodes (700 W a device, 90 W idle, no base watts) under one budget whose nameplate
room is exactly ten single-GPU pods. Each expected count below is computed from the formula.
"""

from __future__ import annotations

from dataclasses import replace

from wattsched.domain import Budget
from wattsched.scheduling import ClusterState, Scheduler, SchedulerConfig
from wattsched.scheduling.builders import budget, gpu_node, gpu_pod, gpu_pool

POOL = {"pool": "h200"}
DEVICE, IDLE = 700, 90
DELTA = DEVICE - IDLE  # committed IT watts a single-GPU pod adds
NODES, GPUS = 4, 8
IDLE_IT = NODES * GPUS * IDLE
LIMIT = IDLE_IT + 10 * DELTA  # nameplate room for exactly ten pods
WINDOW = 900
HALF = IDLE + DELTA // 2  # a busy device drawing half its range above idle


def site(admission: str, oversubscription: int = 0) -> ClusterState:
    state = ClusterState()
    state.upsert_pool(gpu_pool("h200", POOL, DEVICE, IDLE, 0))
    for n in range(NODES):
        state.upsert_node(gpu_node(f"n{n}", POOL, gpus=GPUS))
    state.upsert_budget(
        replace(
            budget("b", POOL, LIMIT),
            admission=admission,
            max_oversubscription_percent=oversubscription,
            window_seconds=WINDOW,
        )
    )
    return state


def submit(state: ClusterState, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        state.upsert_pod(gpu_pod(f"p{i}", gpus=1, created_order=i))


def bound(state: ClusterState) -> int:
    return sum(1 for _ in state.placements())


def readings_at_half_range(state: ClusterState) -> dict[str, int]:
    """What telemetry shows once every placed pod's device draws half its range above idle."""
    busy = {node: 0 for node in state.nodes}
    for _, node in state.placements():
        busy[node] += 1
    return {node: (GPUS - n) * IDLE + n * HALF for node, n in busy.items()}


def settle(scheduler: Scheduler, state: ClusterState) -> None:
    while scheduler.schedule(state).bindings:
        pass


def test_committed_admission_admits_what_nameplate_allows() -> None:
    state = site("Committed")
    submit(state, 30)
    settle(Scheduler(), state)
    assert bound(state) == 10


def test_measured_without_oversubscription_never_admits_more_than_nameplate() -> None:
    state = site("Measured", oversubscription=0)
    submit(state, 30)
    scheduler = Scheduler()
    for hour in range(1, 4):
        state.advance_to(hour * 3600)
        state.set_readings(readings_at_half_range(state))
        settle(scheduler, state)
    assert bound(state) == 10


def test_measured_admits_what_the_estimate_and_the_worst_case_allow_as_data_arrives() -> None:
    over = 50
    worst_bound = LIMIT * (100 + over) // 100
    most = (worst_bound - IDLE_IT) // DELTA  # the worst case's own limit: 17 pods
    state = site("Measured", oversubscription=over)
    submit(state, 30)
    scheduler = Scheduler()
    state.set_readings(readings_at_half_range(state))  # idle: nothing placed yet
    settle(scheduler, state)
    # Every pod just placed is recent, counted at its full committed watts: 10, as nameplate.
    assert bound(state) == 10
    expected = 10
    for hour in range(1, 5):
        state.advance_to(hour * 3600)  # a window later the data shows the pods' real draw
        state.set_readings(readings_at_half_range(state))
        estimate = IDLE_IT + expected * (HALF - IDLE)
        by_estimate = (LIMIT - estimate) // DELTA
        by_worst = (worst_bound - IDLE_IT - expected * DELTA) // DELTA
        expected += max(0, min(by_estimate, by_worst))
        settle(scheduler, state)
        assert bound(state) == expected, f"hour {hour}"
    assert expected == most == 17


def test_a_node_without_a_fresh_reading_counts_at_nameplate() -> None:
    state = site("Measured", oversubscription=100)
    submit(state, 10)
    scheduler = Scheduler()
    settle(scheduler, state)
    state.advance_to(3600)
    readings = readings_at_half_range(state)
    del readings["n0"]  # its exporter stopped: no fresh reading
    state.set_readings(readings)
    figures = state.budget_status("b")
    assert figures.stale_nodes == ("n0",)
    committed_n0 = state.node_watts("n0")
    observed_rest = sum(readings.values())
    assert figures.estimated_watts == committed_n0 + observed_rest
    assert figures.measured_watts == observed_rest


def test_telemetry_lost_entirely_admits_nothing_beyond_the_committed_ledger() -> None:
    state = site("Measured", oversubscription=100)
    submit(state, 30)
    scheduler = Scheduler()
    settle(scheduler, state)
    state.advance_to(3600)
    state.set_readings({})  # Prometheus is away: every node counts at nameplate
    settle(scheduler, state)
    assert bound(state) == 10
    assert state.budget_status("b").estimated_watts == state.budget_status("b").committed_watts


def test_a_measured_shed_budget_sheds_on_the_estimate_not_on_nameplate() -> None:
    state = site("Measured", oversubscription=100)
    submit(state, 30)
    scheduler = Scheduler()
    for hour in range(0, 4):
        state.advance_to(hour * 3600)
        state.set_readings(readings_at_half_range(state))
        settle(scheduler, state)
    admitted = bound(state)
    assert admitted > 10
    old = state.budgets["b"]
    state.upsert_budget(Budget(**{**_fields(old), "enforcement": "Shed"}))
    plan = scheduler.schedule(state)
    assert plan.evictions == []  # over on nameplate, within on the estimate: nothing to shed
    figures = state.budget_status("b")
    assert figures.committed_watts > LIMIT >= figures.estimated_watts


def _fields(b: Budget) -> dict[str, object]:
    return {name: getattr(b, name) for name in b.__dataclass_fields__}


def test_measured_admission_needs_no_option_on_the_scheduler() -> None:
    """It is the budget's choice (spec.admission), not an operator-wide switch."""
    assert not hasattr(SchedulerConfig(), "measured")
