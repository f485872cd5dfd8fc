"""The cache hands the loop a state rebuilt from the watch, and only what really changed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from wattsched.cluster.cache import ClusterCache
from wattsched.cluster.status import budget_status, pool_status
from wattsched.power.ledger import PoolUsage

NOW = datetime(2029, 1, 31, 23, 59, 58, tzinfo=UTC)


def node(name: str, gpus: int = 8) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": {"pool": "h200", "hall": "a"}},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


POOL = {
    "metadata": {"name": "h200", "uid": "uid-pool", "generation": 1},
    "spec": {
        "nodeSelector": {"matchLabels": {"pool": "h200"}},
        "accelerator": {"vendor": "nvidia", "model": "H200", "resourceNames": ["nvidia.com/gpu"]},
        "power": {"deviceWatts": 700, "idleDeviceWatts": 100, "nodeBaseWatts": 1000},
    },
}
BUDGET = {
    "metadata": {"name": "hall-a", "uid": "uid-budget", "generation": 1},
    "spec": {"nodeSelector": {"matchLabels": {"hall": "a"}}, "limit": "10kW",
             "reservePercent": 0, "enforcement": "Shed",
             "schedule": [{"from": "2029-02-01T00:00:00Z", "limit": "2kW"}]},
}  # fmt: skip


def pod(name: str, gpus: int, node_name: str | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                     "creationTimestamp": "2029-01-31T00:00:00Z"},
        "spec": {"schedulerName": "wattsched", "nodeName": node_name,
                 "containers": [{"name": "c", "resources": {"requests":
                                                            {"nvidia.com/gpu": str(gpus)}}}]},
        "status": status,
    }  # fmt: skip


def filled_cache() -> ClusterCache:
    cache = ClusterCache("wattsched")
    cache.node_event(None, node("n1"))
    cache.pool_event(None, POOL)
    cache.budget_event(None, BUDGET)
    cache.pod_event(None, pod("bound", 2, "n1"))
    cache.pod_event(None, pod("waiting", 4))
    return cache


def test_the_state_is_rebuilt_from_everything_the_watch_showed() -> None:
    state = filled_cache().build_state(NOW)
    assert state.node_watts("n1") == 1000 + 2 * 700 + 6 * 100
    assert [p.name for p in state.pending()] == ["waiting"]
    assert state.budgets["hall-a"].limit_watts == 10_000


def test_an_unchanged_translation_wakes_nobody() -> None:
    cache = filled_cache()
    state = cache.build_state(NOW)
    running = pod("bound", 2, "n1", phase="Running")  # the kubelet's status update
    cache.pod_event("MODIFIED", running)
    assert not cache.changed.is_set()
    assert not cache.apply_changes(state, NOW)


def test_changes_reach_the_state_and_a_deleted_pod_leaves_the_ledger() -> None:
    cache = filled_cache()
    state = cache.build_state(NOW)
    cache.pod_event("DELETED", pod("bound", 2, "n1"))
    assert cache.changed.is_set()
    assert cache.apply_changes(state, NOW)
    assert state.node_watts("n1") == 1000 + 8 * 100


def test_a_scheduled_limit_takes_effect_at_its_instant_without_an_event() -> None:
    cache = filled_cache()
    state = cache.build_state(NOW)
    change = cache.next_limit_change(NOW)
    assert change == datetime(2029, 2, 1, tzinfo=UTC)
    assert not cache.apply_changes(state, NOW)
    assert cache.apply_changes(state, change)
    assert state.budgets["hall-a"].limit_watts == 2_000


def test_the_cache_is_synced_once_the_watch_showed_every_listed_object() -> None:
    async def scenario() -> None:
        cache = ClusterCache("wattsched")
        cache.node_event(None, node("n1"))  # the watch may run ahead of the LIST
        cache.expect("nodes", ["uid-n1", "uid-n2"])
        cache.expect("pods", [])
        cache.expect("acceleratorpools", [])
        assert not cache.synced.is_set()
        cache.expect("powerbudgets", [])
        assert not cache.synced.is_set()
        cache.node_event(None, node("n2"))
        assert cache.synced.is_set()

    asyncio.run(scenario())


def test_an_object_deleted_before_the_watch_began_does_not_keep_the_cache_unsynced() -> None:
    async def scenario() -> None:
        cache = ClusterCache("wattsched")
        cache.expect("nodes", ["uid-n1", "uid-gone"])
        for kind in ("pods", "acceleratorpools", "powerbudgets"):
            cache.expect(kind, [])  # type: ignore[arg-type]
        cache.node_event(None, node("n1"))
        assert not cache.synced.is_set()  # uid-gone was deleted before kopf's first list
        cache.still_listed("nodes", ["uid-n1"])
        assert cache.synced.is_set()

    asyncio.run(scenario())


def test_status_keeps_transition_times_and_says_when_over() -> None:
    cache = filled_cache()
    state = cache.build_state(NOW)
    source = cache.budgets["hall-a"]
    first = budget_status(source, state.budget_status("hall-a"), NOW)
    assert first["committedWatts"] == 3000 and first["headroomWatts"] == 7000
    assert first["nextChange"] == {"at": "2029-02-01T00:00:00Z", "limitWatts": 2000}
    later = datetime(2029, 1, 31, 23, 59, 59, tzinfo=UTC)
    cache.budget_event("MODIFIED", {**BUDGET, "status": first})
    again = budget_status(cache.budgets["hall-a"], state.budget_status("hall-a"), later)
    assert again == first  # nothing changed: nothing to patch
    cache.apply_changes(state, datetime(2029, 2, 1, tzinfo=UTC))
    over = budget_status(cache.budgets["hall-a"], state.budget_status("hall-a"), later)
    within = {c["type"]: c for c in over["conditions"]}["WithinLimit"]
    assert (within["status"], within["reason"]) == ("False", "Shedding")
    assert within["lastTransitionTime"] == "2029-01-31T23:59:59Z"


def test_a_pool_reports_a_node_another_pool_also_selects() -> None:
    cache = filled_cache()
    usage = PoolUsage(nodes=1, ready_nodes=1, devices=8, allocated_devices=2,
                      committed_watts=3000)  # fmt: skip
    status = pool_status(cache.pools["h200"], usage, {"n1": ("h200", "other")}, NOW)
    conflict = {c["type"]: c for c in status["conditions"]}["Conflict"]
    assert conflict["status"] == "True"
    assert "n1" in conflict["message"] and "other" in conflict["message"]
    assert status["committed"] == "3kW"
