"""Shed: bring every over `enforcement: Shed` budget back within allocatable (invariant 5).

All over budgets are solved together, not one after another: with nested budgets (a hall inside
a site) one eviction often restores both, and a pick made for the first budget must not stand
when a later pick makes it unnecessary.

The promise, per shed: every over Shed budget ends within allocatable; no victim could have been
kept (irredundant); and no victim could be swapped for an unpicked one of lower priority. A
victim is a pod or a running gang whole (`victims.Victim`).

Evicting the *fewest* victims is a multi-dimensional subset-sum problem, NP-hard in general and
not worth solving exactly here: priorities matter more than counts, and an eviction's cost is the
work it loses, not a number. So, in four moves:
1. What is already going counts: evicting pods free their watts first, so a shed is never asked
   for twice. A budget that even every candidate cannot restore (base and idle watts, or other
   schedulers' pods, exceed it) loses every candidate that frees a watt in it: an over facility
   limit is a breaker waiting to trip, and then everything is lost anyway.
2. Greedy from the lowest priority up; within one priority the victim that covers most of the
   remaining deficits first (fewest evictions), then the newest (least work lost), then the key.
   A victim that covers no remaining deficit is passed over. Taking a whole priority level
   before the next makes the highest priority evicted the lowest that can restore every budget.
3. Trim: walk the picks back from the last and drop every one all budgets can do without.
4. Swap: while some pick can be replaced by an unpicked victim of lower priority with every
   budget still restored, replace it and trim again. Each swap lowers the picks' priorities, so
   this ends; what it ends on passes all three checks, and with one budget it is what the greedy
   pass and the trim already found.
Brute force on small states (tests/unit/test_scheduling_shed_oracle.py) pins these properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wattsched.domain import Eviction, PodKey
from wattsched.power.watts import it_capacity_watts
from wattsched.scheduling.state import ClusterState
from wattsched.scheduling.victims import (
    Victim,
    freed_by_budget,
    freed_it_watts,
    victim_of,
)

__all__ = ["SHED_REASON", "ShedCandidate", "choose_victims", "freed_it_watts", "shed"]

SHED_REASON = "Shed"


@dataclass(frozen=True, slots=True)
class ShedCandidate:
    """A victim with the IT watts it frees in each over budget (only those where it frees any)."""

    victim: Victim
    freed: Mapping[str, int]


def shed(state: ClusterState, going: set[PodKey]) -> list[Eviction]:
    """Evictions for every over Shed budget at once; `going` is updated with them."""
    deficits = _deficits(state, going)
    if not deficits:
        return []
    candidates: dict[PodKey, ShedCandidate] = {}
    for node in sorted(state.nodes):
        if not any(budget in deficits for budget in state.node_budgets(node)):
            continue
        for pod in state.pods_on(node):
            if pod.key in going or not pod.managed:
                continue
            victim = victim_of(state, pod, going)
            if victim is None or victim.key in candidates:
                continue
            freed = {
                budget: watts
                for budget, watts in freed_by_budget(state, victim).items()
                if budget in deficits
            }
            if freed:
                candidates[victim.key] = ShedCandidate(victim, freed)
    evictions: list[Eviction] = []
    for pick in choose_victims(deficits, list(candidates.values())):
        budget = _restores(state, pick)
        for pod, node in pick.victim.placed:
            going.add(pod.key)
            evictions.append(Eviction(pod.key, node, SHED_REASON, budget))
    return evictions


def _deficits(state: ClusterState, going: set[PodKey]) -> dict[str, int]:
    """IT watts each over Shed budget must still give back once what is going has gone."""
    deficits: dict[str, int] = {}
    for name in sorted(state.budgets):
        budget = state.budgets[name]
        if budget.enforcement != "Shed":
            continue
        capacity = it_capacity_watts(budget.allocatable_watts, budget.pue_milli)
        it_watts = state.budget_usage(name).it_watts
        if budget.measured:  # a Measured budget sheds on what admission counts, the estimate
            it_watts -= state.measured_figures().gain_it_watts.get(name, 0)
        over = it_watts - capacity
        if over > 0:
            deficits[name] = over
    if not deficits:
        return deficits
    for key in sorted(going):
        node = state.node_of(key)
        pod = state.pods.get(key)
        if node is None or pod is None:
            continue
        watts = freed_it_watts(state, pod, node)
        for name in state.node_budgets(node):
            if name in deficits:
                deficits[name] -= watts
    return {name: over for name, over in deficits.items() if over > 0}


def _restores(state: ClusterState, pick: ShedCandidate) -> str:
    """The budget an eviction is reported against: the smallest over domain it frees watts in."""
    return min(pick.freed, key=lambda name: (state.budget_usage(name).nodes, name))


def choose_victims(
    deficits: Mapping[str, int], candidates: list[ShedCandidate]
) -> list[ShedCandidate]:
    """The victims to evict so that every deficit is covered (see the module docstring)."""
    remaining = dict(deficits)
    total: dict[str, int] = {}
    for candidate in candidates:
        for budget, watts in candidate.freed.items():
            total[budget] = total.get(budget, 0) + watts
    hopeless = {budget for budget, over in deficits.items() if total.get(budget, 0) < over}
    forced = [c for c in candidates if hopeless.intersection(c.freed)]
    for candidate in forced:
        _take(remaining, candidate.freed)
    forced_keys = {c.victim.key for c in forced}
    start = dict(remaining)

    def order(candidate: ShedCandidate) -> tuple[int, int, int, int, PodKey]:
        coverage = sum(min(w, max(start[b], 0)) for b, w in candidate.freed.items())
        return (
            candidate.victim.priority,
            -coverage,
            -sum(candidate.freed.values()),
            -candidate.victim.created_order,
            candidate.victim.key,
        )

    ordered = sorted((c for c in candidates if c.victim.key not in forced_keys), key=order)
    picks: list[ShedCandidate] = []
    for candidate in ordered:
        if all(over <= 0 for over in remaining.values()):
            break
        if any(remaining[b] > 0 for b in candidate.freed):
            picks.append(candidate)
            _take(remaining, candidate.freed)
    _trim(picks, remaining)
    rank = {c.victim.key: i for i, c in enumerate(ordered)}
    # Each swap lowers the multiset of picked priorities, so the loop ends; the bound is a guard.
    for _ in range(len(ordered) * len(ordered) + 1):
        if not _swap_once(picks, ordered, remaining):
            break
        picks.sort(key=lambda c: rank[c.victim.key])
        _trim(picks, remaining)
    return forced + picks


def _take(remaining: dict[str, int], freed: Mapping[str, int]) -> None:
    for budget, watts in freed.items():
        if budget in remaining:
            remaining[budget] -= watts


def _give_back(remaining: dict[str, int], freed: Mapping[str, int]) -> None:
    for budget, watts in freed.items():
        if budget in remaining:
            remaining[budget] += watts


def _needed(remaining: Mapping[str, int], freed: Mapping[str, int]) -> bool:
    """Whether giving this pick's watts back would leave some budget over."""
    return any(remaining.get(b, 0) + w > 0 for b, w in freed.items() if b in remaining)


def _trim(picks: list[ShedCandidate], remaining: dict[str, int]) -> None:
    """Drop, last pick first, every pick that all budgets can do without."""
    for candidate in reversed(list(picks)):
        if not _needed(remaining, candidate.freed):
            picks.remove(candidate)
            _give_back(remaining, candidate.freed)


def _swap_once(
    picks: list[ShedCandidate], ordered: list[ShedCandidate], remaining: dict[str, int]
) -> bool:
    """Replace one pick, the highest priority first, by a lower-priority victim that does too."""
    picked = {c.victim.key for c in picks}
    for pick in sorted(picks, key=lambda c: (-c.victim.priority, c.victim.key)):
        # What a replacement must free in each budget that would be over without this pick.
        need = {
            b: w + remaining[b]
            for b, w in pick.freed.items()
            if b in remaining and remaining[b] + w > 0
        }
        for other in ordered:
            if other.victim.priority >= pick.victim.priority:
                break  # `ordered` is by priority: nothing lower is left
            if other.victim.key in picked:
                continue
            if all(other.freed.get(b, 0) >= w for b, w in need.items()):
                picks.remove(pick)
                _give_back(remaining, pick.freed)
                picks.append(other)
                _take(remaining, other.freed)
                return True
    return False
