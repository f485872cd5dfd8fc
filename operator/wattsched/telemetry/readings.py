"""From a pool's telemetry settings to one PromQL query, and from its answer to readings.

One query per pool per interval, not one per node: at 12,800 nodes a per-node query would be
Prometheus' heaviest client. The query returns three series per node, told apart by a label:
- observed: the p-th percentile over the window of the node's summed device watts (a subquery,
  so the sum is taken at every step before the percentile);
- oldest: the timestamp of the node's oldest current device sample, for staleness;
- devices: how many devices report, since a node that reports half its GPUs would look half
  as hungry as it is.
A node is fresh only when every device reports and the oldest sample is younger than staleAfter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KIND_LABEL = "wattsched_reading"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True, slots=True)
class PoolTelemetry:
    """What the telemetry loop needs of one AcceleratorPool with a power metric."""

    pool: str
    query: str  # PromQL giving watts per device, e.g. DCGM_FI_DEV_POWER_USAGE
    node_label: str  # the label naming the node, e.g. Hostname
    window_seconds: int = 900
    percentile: int = 99
    step_seconds: int = 30  # the subquery's resolution: about the scrape interval


@dataclass(frozen=True, slots=True)
class NodeReading:
    device_watts: int  # summed over the node's devices, at the window percentile, rounded up
    devices: int  # devices reporting
    oldest_sample_seconds: float  # unix time of the oldest current device sample


def pool_query(telemetry: PoolTelemetry) -> str:
    """The pool's one query; its answer is read by `parse_answer`."""
    if not _LABEL_NAME.match(telemetry.node_label):
        raise ValueError(
            f"node label {telemetry.node_label!r} is not a Prometheus label name "
            "(letters, digits and _, not starting with a digit), e.g. Hostname"
        )
    q, by = telemetry.query, telemetry.node_label
    quantile = telemetry.percentile / 100
    window = f"{telemetry.window_seconds}s:{telemetry.step_seconds}s"
    parts = (
        ("observed", f"quantile_over_time({quantile}, (sum by ({by}) ({q}))[{window}])"),
        ("oldest", f"min by ({by}) (timestamp({q}))"),
        ("devices", f"count by ({by}) ({q})"),
    )
    return " or ".join(
        f'label_replace({expr}, "{KIND_LABEL}", "{kind}", "", "")' for kind, expr in parts
    )


def parse_answer(telemetry: PoolTelemetry, answer: Mapping[str, Any]) -> dict[str, NodeReading]:
    """Readings per node from the JSON of /api/v1/query; a node missing any part has none."""
    if answer.get("status") != "success":
        raise ValueError(f"Prometheus answered {answer.get('status')!r}: {answer.get('error')}")
    data = answer.get("data") or {}
    if data.get("resultType") != "vector":
        raise ValueError(f"expected a vector, Prometheus answered {data.get('resultType')!r}")
    parts: dict[str, dict[str, float]] = {}
    for sample in data.get("result") or ():
        metric = sample.get("metric") or {}
        node = metric.get(telemetry.node_label)
        kind = metric.get(KIND_LABEL)
        value = float(sample["value"][1])
        if node and kind and math.isfinite(value):
            parts.setdefault(node, {})[kind] = value
    readings = {}
    for node, values in parts.items():
        if {"observed", "oldest", "devices"} <= values.keys() and values["observed"] >= 0:
            readings[node] = NodeReading(
                math.ceil(values["observed"]), int(values["devices"]), values["oldest"]
            )
    return readings


def fresh_observed_it_watts(
    readings: Mapping[str, NodeReading],
    expected: Mapping[str, tuple[int, int]],
    now_seconds: float,
    stale_after_seconds: float,
) -> tuple[dict[str, int], list[str]]:
    """(observed IT watts of each fresh node, the stale nodes), for the nodes in `expected`:
    node -> (its devices, its nodeBaseWatts). Fresh: every device reports, recently enough."""
    fresh: dict[str, int] = {}
    stale: list[str] = []
    for node in sorted(expected):
        devices, base_watts = expected[node]
        reading = readings.get(node)
        if (
            reading is None
            or reading.devices < devices
            or now_seconds - reading.oldest_sample_seconds > stale_after_seconds
        ):
            stale.append(node)
            continue
        fresh[node] = reading.device_watts + base_watts
    return fresh, stale
