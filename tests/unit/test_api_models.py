"""The typed models accept what DESIGN.md §1 allows and refuse the rest with clear messages."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from wattsched.api.manifests import load_manifests
from wattsched.api.models import AcceleratorPool, PowerBudget

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ulsan"


def budget(**spec: Any) -> PowerBudget:
    base: dict[str, Any] = {
        "nodeSelector": {"matchLabels": {"wattsched.io/phase": "1"}},
        "limit": "41MW",
    }
    base.update(spec)
    return PowerBudget.model_validate({"metadata": {"name": "b"}, "spec": base})


def pool(**power: Any) -> AcceleratorPool:
    body: dict[str, Any] = {"deviceWatts": 700, "idleDeviceWatts": 90, "nodeBaseWatts": 3000}
    body.update(power)
    return AcceleratorPool.model_validate(
        {
            "metadata": {"name": "p"},
            "spec": {
                "nodeSelector": {"matchLabels": {"wattsched.io/pool": "p"}},
                "accelerator": {
                    "vendor": "nvidia",
                    "model": "H200-SXM",
                    "resourceNames": ["nvidia.com/gpu"],
                },
                "power": body,
            },
        }
    )


def test_every_ulsan_sample_is_valid() -> None:
    resources = [r for path in sorted(EXAMPLES.glob("*.yaml")) for r in load_manifests(path)]
    kinds = sorted({r.kind for r in resources})
    assert kinds == ["AcceleratorPool", "PowerBudget"]
    assert len(resources) >= 9


def test_budget_defaults_are_a_safe_margin_facility_equals_it_and_admit_only() -> None:
    spec = budget().spec
    assert (spec.reserve_percent, spec.pue, spec.enforcement) == (5, "1.0", "Admit")


def test_effective_limit_follows_the_schedule_step_at_its_instant() -> None:
    spec = budget(schedule=[{"from": "2029-02-01T00:00:00Z", "limit": "103MW"}]).spec
    step = datetime(2029, 2, 1, tzinfo=UTC)
    assert spec.effective_limit_watts(datetime(2027, 11, 1, tzinfo=UTC)) == 41_000_000
    assert spec.effective_limit_watts(step) == 103_000_000
    assert spec.next_change(datetime(2028, 1, 1, tzinfo=UTC)) == (step, 103_000_000)
    assert spec.next_change(step) is None


def test_a_demand_response_dip_lowers_then_restores_the_limit() -> None:
    spec = budget(
        schedule=[
            {"from": "2028-07-01T14:00:00Z", "limit": "35MW"},
            {"from": "2028-07-01T18:00:00Z", "limit": "41MW"},
        ]
    ).spec
    assert spec.effective_limit_watts(datetime(2028, 7, 1, 15, tzinfo=UTC)) == 35_000_000
    assert spec.effective_limit_watts(datetime(2028, 7, 1, 19, tzinfo=UTC)) == 41_000_000


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"nodeSelector": {}}, "nodeSelector must not be empty"),
        ({"nodeSelector": {"matchLabels": {}}}, "nodeSelector must not be empty"),
        ({"limit": "0MW"}, "greater than zero"),
        ({"limit": "41"}, "String should match pattern"),
        ({"reservePercent": 60}, "less than or equal to 50"),
        ({"pue": "0.8"}, "between 1.0 and 3.0"),
        ({"enforcement": "Evict"}, "'Admit' or 'Shed'"),
        (
            {
                "schedule": [
                    {"from": "2029-02-01T00:00:00Z", "limit": "103MW"},
                    {"from": "2028-02-01T00:00:00Z", "limit": "50MW"},
                ]
            },
            "strictly increasing",
        ),
        (
            {
                "nodeSelector": {
                    "matchExpressions": [{"key": "wattsched.io/hall", "operator": "In"}]
                }
            },
            "values must be non-empty",
        ),
    ],
)
def test_invalid_budgets_are_refused_with_a_message_naming_the_rule(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        budget(**spec)


def test_an_idle_device_cannot_draw_more_than_an_allocated_one() -> None:
    with pytest.raises(ValidationError, match="idleDeviceWatts"):
        pool(idleDeviceWatts=800)


def test_device_watts_are_bounded_to_what_a_device_can_draw() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 5000"):
        pool(deviceWatts=6000, idleDeviceWatts=0)


@pytest.mark.parametrize("limit", ["100.000001GW", "99999GW", "100001MW", "100000000001W"])
def test_a_limit_above_100_gigawatts_is_refused_as_a_slip_of_the_unit(limit: str) -> None:
    with pytest.raises(ValidationError, match=f"limit {limit} is above 100GW, the largest"):
        budget(limit=limit)
    with pytest.raises(ValidationError, match=f"limit {limit} is above 100GW, the largest"):
        budget(schedule=[{"from": "2029-02-01T00:00:00Z", "limit": limit}])


@pytest.mark.parametrize(
    ("limit", "watts"),
    [("100GW", 100_000_000_000), ("100000MW", 100_000_000_000), ("41MW", 41_000_000)],
)
def test_a_limit_up_to_100_gigawatts_is_accepted(limit: str, watts: int) -> None:
    spec = budget(limit=limit, schedule=[{"from": "2029-02-01T00:00:00Z", "limit": limit}]).spec
    assert spec.limit_watts == watts
    assert spec.effective_limit_watts(datetime(2030, 1, 1, tzinfo=UTC)) == watts


# -- measured power (DESIGN.md §2b) -------------------------------------------------------------


def _budget_spec(**extra: object) -> dict[str, object]:
    return {"nodeSelector": {"matchLabels": {"x": "y"}}, "limit": "41MW", **extra}


def test_admission_defaults_to_committed_so_existing_budgets_do_not_change() -> None:
    from wattsched.api.budget import PowerBudgetSpec

    spec = PowerBudgetSpec.model_validate(_budget_spec())
    assert spec.admission == "Committed" and spec.measured is None
    assert spec.measured_settings.window_seconds == 900
    assert spec.measured_settings.stale_after_seconds == 120


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"measured": {"window": "15m"}}, "only with admission: Measured"),
        ({"admission": "Measured", "measured": {"window": "30s"}}, "outside 60s..86400s"),
        (
            {"admission": "Measured", "measured": {"capAtPercent": 90, "releaseAtPercent": 95}},
            "must be below capAtPercent",
        ),
    ],
)
def test_measured_settings_that_cannot_work_are_refused_with_a_reason(
    extra: dict[str, object], message: str
) -> None:
    from pydantic import ValidationError

    from wattsched.api.budget import PowerBudgetSpec

    with pytest.raises(ValidationError, match=message):
        PowerBudgetSpec.model_validate(_budget_spec(**extra))


def test_a_pool_takes_its_vendors_exporter_unless_it_names_a_query() -> None:
    from wattsched.api.pool import AcceleratorPoolSpec
    from wattsched.translate import engine_pool

    def spec(vendor: str, **extra: object) -> AcceleratorPoolSpec:
        return AcceleratorPoolSpec.model_validate(
            {
                "nodeSelector": {"matchLabels": {"p": vendor}},
                "accelerator": {"vendor": vendor, "model": "m", "resourceNames": ["x.io/d"]},
                "power": {"deviceWatts": 500, "idleDeviceWatts": 60, "nodeBaseWatts": 1000},
                **extra,
            }
        )

    nvidia = engine_pool("a", spec("nvidia"), 0)
    assert (nvidia.telemetry_query, nvidia.telemetry_node_label) == (
        "DCGM_FI_DEV_POWER_USAGE",
        "Hostname",
    )
    assert engine_pool("b", spec("rebellions"), 0).telemetry_query == (
        "RBLN_DEVICE_STATUS:CARD_POWER"
    )
    assert engine_pool("c", spec("furiosa"), 0).telemetry_query == (
        'furiosa_npu_hw_power{label="rms"}'
    )
    assert engine_pool("d", spec("aws"), 0).telemetry_query is None  # Neuron: nameplate
    own = spec("nvidia", telemetry={"query": "my_watts", "nodeLabel": "node"})
    assert (
        engine_pool("e", own, 0).telemetry_query,
        engine_pool("e", own, 0).telemetry_node_label,
    ) == (
        "my_watts",
        "node",
    )
