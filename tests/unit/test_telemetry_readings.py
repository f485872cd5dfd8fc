"""Telemetry readings: one query per pool, and a node is fresh only when all of it reports."""

from __future__ import annotations

from typing import Any

import pytest

from wattsched.telemetry.readings import (
    KIND_LABEL,
    NodeReading,
    PoolTelemetry,
    fresh_observed_it_watts,
    parse_answer,
    pool_query,
)

DCGM = PoolTelemetry("h200", "DCGM_FI_DEV_POWER_USAGE", "Hostname", 900, 99, 30)


def answer(*samples: tuple[str, str, float]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"Hostname": node, KIND_LABEL: kind}, "value": [0, str(value)]}
                for node, kind, value in samples
            ],
        },
    }


def test_a_pool_needs_one_query_for_all_its_nodes() -> None:
    query = pool_query(DCGM)
    assert query.count("DCGM_FI_DEV_POWER_USAGE") == 3
    assert "quantile_over_time(0.99, (sum by (Hostname) (DCGM_FI_DEV_POWER_USAGE))[900s:30s])" in (
        query
    )


def test_a_node_label_that_is_not_a_label_name_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match=r"e\.g\. Hostname"):
        pool_query(PoolTelemetry("p", "x", "host-name"))


def test_the_answer_becomes_one_reading_per_node_rounded_up() -> None:
    readings = parse_answer(
        DCGM,
        answer(
            ("n1", "observed", 3160.2),
            ("n1", "oldest", 1000.0),
            ("n1", "devices", 8),
            ("n2", "observed", 900.0),
        ),
    )
    assert readings == {"n1": NodeReading(3161, 8, 1000.0)}  # n2 answered only in part


def test_only_nodes_where_every_device_reports_recently_are_fresh() -> None:
    readings = {
        "fresh": NodeReading(3000, 8, 990.0),
        "old": NodeReading(3000, 8, 800.0),
        "half": NodeReading(1500, 4, 995.0),
    }
    expected = {name: (8, 2500) for name in ("fresh", "old", "half", "silent")}
    fresh, stale = fresh_observed_it_watts(readings, expected, 1000.0, 120.0)
    assert fresh == {"fresh": 5500}
    assert stale == ["half", "old", "silent"]


def test_an_error_answer_is_an_error_not_an_empty_reading() -> None:
    with pytest.raises(ValueError, match="bad_data"):
        parse_answer(DCGM, {"status": "error", "error": "bad_data"})
