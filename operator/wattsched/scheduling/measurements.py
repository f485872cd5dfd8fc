"""What measured power gives each `admission: Measured` budget, from the state's facts.

ClusterState keeps the facts (fresh readings per node, the instant each pod was placed, the
clock its caller set); this computes, per Measured budget, the gain (committed less estimated IT
watts, `power.measured`) and the measured IT watts, once per change of those facts: placements
within a cycle leave every gain as it is, so a cycle reads them without recomputing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from wattsched.domain import Budget, Node, Pod, PodKey, Pool
from wattsched.power.ledger import Ledger
from wattsched.power.measured import measured_gain
from wattsched.power.watts import delta_watts, devices_in


class _State(Protocol):
    """What this reads of ClusterState (a protocol, so the state may import this module)."""

    ledger: Ledger

    @property
    def budgets(self) -> Mapping[str, Budget]: ...

    @property
    def nodes(self) -> Mapping[str, Node]: ...

    def node_budgets(self, node: str) -> tuple[str, ...]: ...

    def node_pool(self, node: str) -> Pool | None: ...

    def pods_on(self, node: str) -> list[Pod]: ...


@dataclass(frozen=True, slots=True)
class MeasuredFigures:
    gain_it_watts: Mapping[str, int] = field(default_factory=dict)  # per Measured budget
    measured_it_watts: Mapping[str, int] = field(default_factory=dict)  # fresh nodes only
    fresh_nodes: Mapping[str, int] = field(default_factory=dict)
    stale_nodes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # sorted names


def measured_figures(
    state: _State,
    observed: Mapping[str, int],
    placed_at: Mapping[PodKey, float],
    now: float,
) -> MeasuredFigures:
    measured = [b for b in state.budgets.values() if b.measured]
    if not measured:
        return MeasuredFigures()
    names = {b.name for b in measured}
    # A node's recent pods are those placed less than the longest window of its budgets ago:
    # the strictest reading of "not in the data yet".
    window = {b.name: b.window_seconds for b in measured}
    gains = dict.fromkeys(names, 0)
    watts = dict.fromkeys(names, 0)
    fresh = dict.fromkeys(names, 0)
    stale: dict[str, list[str]] = {name: [] for name in names}
    for node in sorted(state.nodes):
        mine = [b for b in state.node_budgets(node) if b in names]
        if not mine:
            continue
        pool = state.node_pool(node)
        if pool is None or pool.telemetry_query is None:
            continue  # no power metric at all (AWS Neuron): nameplate, and nothing is stale
        reading = observed.get(node)
        if reading is None:
            for b in mine:
                stale[b].append(node)
            continue
        entry = state.ledger.nodes.get(node)
        committed = entry.watts if entry is not None else 0
        recent = 0
        if pool is not None:
            horizon = max(window[b] for b in mine)
            for pod in state.pods_on(node):
                if now - placed_at.get(pod.key, now) < horizon:
                    recent += delta_watts(
                        pool.profile, devices_in(pod.requests, pool.resource_names)
                    )
        gain = measured_gain(committed, reading, recent)
        for b in mine:
            gains[b] += gain
            watts[b] += reading
            fresh[b] += 1
    return MeasuredFigures(
        gains, watts, fresh, {name: tuple(nodes) for name, nodes in stale.items()}
    )
