"""Kubernetes objects become the engine's dataclasses exactly as kube-scheduler would read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from wattsched.translate import (
    budget_from_object,
    node_from_object,
    pod_from_object,
    pod_is_relevant,
    pod_requests,
    pool_from_object,
)
from wattsched.translate.quantity import QuantityError, parse_quantity, resource_amount


def container(**requests: str) -> dict[str, Any]:
    return {"name": "c", "resources": {"requests": {k.replace("_com_", ".com/"): v
                                                    for k, v in requests.items()}}}  # fmt: skip


def pod(**spec: Any) -> dict[str, Any]:
    meta = spec.pop("metadata", {})
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", **meta},
        "spec": {"schedulerName": "wattsched", "containers": [container(cpu="1")], **spec},
        "status": spec.pop("status", {}),
    }


@pytest.mark.parametrize(
    ("resource", "text", "amount"),
    [
        ("cpu", "500m", 500),
        ("cpu", "2", 2000),
        ("cpu", "0.25", 250),
        ("memory", "1Gi", 2**30),
        ("memory", "1e3", 1000),
        ("memory", "64M", 64_000_000),
        ("nvidia.com/gpu", "8", 8),
        ("nvidia.com/gpu", "0.5", 1),  # rounded up, as Kubernetes' Value() does
    ],
)
def test_quantities_become_the_integers_the_engine_counts(
    resource: str, text: str, amount: int
) -> None:
    assert resource_amount(resource, text) == amount


def test_a_malformed_quantity_is_refused_with_examples() -> None:
    with pytest.raises(QuantityError, match="500m"):
        parse_quantity("five")


def test_requests_sum_containers_and_take_the_largest_init_container() -> None:
    spec = {
        "containers": [container(cpu="1", nvidia_com_gpu="2"), container(cpu="500m")],
        "initContainers": [container(cpu="4"), container(nvidia_com_gpu="1")],
    }
    assert pod_requests(spec) == {"cpu": 4000, "nvidia.com/gpu": 2}


def test_sidecars_add_to_everything_after_them_and_overhead_is_added() -> None:
    sidecar = {**container(cpu="1"), "restartPolicy": "Always"}
    spec = {
        "initContainers": [container(cpu="2"), sidecar, container(cpu="2")],
        "containers": [container(cpu="1")],
        "overhead": {"cpu": "100m"},
    }
    # Init peak: 1 (sidecar) + 2 = 3; running: 1 + 1 = 2; plus 0.1 overhead.
    assert pod_requests(spec) == {"cpu": 3100}


def test_limits_stand_in_for_requests_that_are_not_given() -> None:
    spec = {"containers": [{"name": "c", "resources": {"limits": {"furiosa.ai/rngd": "2"}}}]}
    assert pod_requests(spec) == {"furiosa.ai/rngd": 2}


def test_a_pod_carries_priority_selector_affinity_tolerations_and_its_gang() -> None:
    obj = pod(
        metadata={"labels": {"wattsched.io/gang": "train"},
                  "annotations": {"wattsched.io/gang-size": "16"}},
        priority=1000,
        nodeSelector={"wattsched.io/hall": "a"},
        tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "wattsched.io/pool", "operator": "In", "values": ["h200-hall-a"]}]}]}}},
    )  # fmt: skip
    translated = pod_from_object(obj, "wattsched", created_order=7)
    p = translated.pod
    assert translated.invalid is None
    assert (p.priority, p.created_order, p.gang, p.gang_size) == (1000, 7, "ns/train", 16)
    assert dict(p.node_selector) == {"wattsched.io/hall": "a"}
    assert p.tolerations[0].operator == "Exists"
    assert p.affinity is not None
    assert p.affinity.matches({"wattsched.io/pool": "h200-hall-a"})
    assert not p.affinity.matches({"wattsched.io/pool": "b200-hall-a"})
    assert p.managed and p.node_name is None


@pytest.mark.parametrize("size", ["sixteen", "0", "-2", "1.5"])
def test_a_bad_gang_size_makes_the_pod_invalid_with_a_clear_reason(size: str) -> None:
    obj = pod(metadata={"labels": {"wattsched.io/gang": "g"},
                        "annotations": {"wattsched.io/gang-size": size}})  # fmt: skip
    translated = pod_from_object(obj, "wattsched", 0)
    assert translated.invalid_reason == "InvalidGangSize"
    assert translated.invalid is not None
    assert size in translated.invalid and "wattsched.io/gang-size" in translated.invalid


def test_a_bound_gang_member_still_belongs_to_its_gang() -> None:
    """Permit counts it toward the gang's size, so a recreated member can rejoin."""
    obj = pod(metadata={"labels": {"wattsched.io/gang": "g"},
                        "annotations": {"wattsched.io/gang-size": "3"}}, nodeName="n1")  # fmt: skip
    translated = pod_from_object(obj, "wattsched", 0)
    assert (translated.pod.gang, translated.pod.gang_size) == ("ns/g", 3)
    assert translated.invalid is None


def test_a_bound_pod_with_a_malformed_gang_size_is_just_alone() -> None:
    obj = pod(metadata={"labels": {"wattsched.io/gang": "g"},
                        "annotations": {"wattsched.io/gang-size": "x"}}, nodeName="n1")  # fmt: skip
    translated = pod_from_object(obj, "wattsched", 0)
    assert translated.pod.gang is None and translated.invalid is None


def test_a_gang_label_without_a_size_is_invalid() -> None:
    obj = pod(metadata={"labels": {"wattsched.io/gang": "g"}})
    assert "no annotation" in (pod_from_object(obj, "wattsched", 0).invalid or "")


def test_every_bound_live_pod_counts_but_only_ours_are_placed() -> None:
    theirs_pending = pod(schedulerName="default-scheduler")
    theirs_bound = pod(schedulerName="default-scheduler", nodeName="n1")
    ours_done = pod(nodeName="n1", status={"phase": "Succeeded"})
    ours_leaving = pod(metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"})
    assert not pod_is_relevant(theirs_pending, "wattsched")
    assert pod_is_relevant(theirs_bound, "wattsched")
    assert not pod_is_relevant(ours_done, "wattsched")
    assert not pod_is_relevant(ours_leaving, "wattsched")
    bound = pod_from_object(theirs_bound, "wattsched", 0).pod
    assert bound.node_name == "n1" and not bound.managed


def test_a_node_reads_allocatable_taints_readiness_and_cordon() -> None:
    node = node_from_object({
        "metadata": {"name": "n1", "labels": {"wattsched.io/pool": "h200-hall-a"}},
        "spec": {"unschedulable": True, "taints": [{"key": "k", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "224", "memory": "2Ti", "nvidia.com/gpu": "8",
                                   "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "False"}]},
    })  # fmt: skip
    assert node.allocatable["cpu"] == 224_000
    assert node.allocatable["nvidia.com/gpu"] == 8
    assert node.allocatable["pods"] == 110
    assert node.unschedulable and not node.ready
    assert node.taints[0].key == "k"


POOL = {
    "metadata": {"name": "h200", "generation": 3, "creationTimestamp": "2026-01-01T00:00:10Z"},
    "spec": {
        "nodeSelector": {"matchLabels": {"wattsched.io/pool": "h200"}},
        "accelerator": {"vendor": "nvidia", "model": "H200", "resourceNames": ["nvidia.com/gpu"]},
        "power": {"deviceWatts": 700, "idleDeviceWatts": 90, "nodeBaseWatts": 4500},
    },
}


def test_a_pool_becomes_a_pool_with_its_power_profile_and_age() -> None:
    source = pool_from_object(POOL)
    assert source.generation == 3
    assert source.pool.profile.device_watts == 700
    assert source.pool.selector.matches({"wattsched.io/pool": "h200"})
    assert source.pool.created_order == int(datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC).timestamp())


def test_a_budget_resolves_its_schedule_at_the_instant_given() -> None:
    source = budget_from_object({
        "metadata": {"name": "phase-1", "generation": 2},
        "spec": {"nodeSelector": {"matchLabels": {"wattsched.io/phase": "1"}}, "limit": "41MW",
                 "reservePercent": 5, "pue": "1.2", "enforcement": "Shed",
                 "schedule": [{"from": "2029-02-01T00:00:00Z", "limit": "103MW"}]},
    })  # fmt: skip
    before = source.at(datetime(2029, 1, 31, 23, 59, 59, tzinfo=UTC))
    after = source.at(datetime(2029, 2, 1, tzinfo=UTC))
    assert (before.limit_watts, after.limit_watts) == (41_000_000, 103_000_000)
    assert (before.reserve_percent, before.pue_milli, before.enforcement) == (5, 1200, "Shed")
