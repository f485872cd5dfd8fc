"""Shed: bring every over `enforcement: Shed` budget back within allocatable (invariant 5).

The choice, per budget, in three moves:
1. What is already going counts: pods marked evicting (and those picked for a budget earlier in
   this pass) free their watts, so a shed is never asked for twice.
2. Greedy from the lowest priority up; within one priority the pod that frees the most watts
   first (fewest evictions), then the newest (least work lost), then the key.
   Taking a whole priority level before touching the next makes the highest priority evicted
   the lowest that can possibly restore the budget.
3. Trim: walk the picks back from the last (highest priority) and drop every one the budget can
   do without. After the trim no pick is redundant, and no unpicked lower-priority pod frees
   as much as a pick (it would have made that pick redundant).

If evicting every candidate still cannot restore the budget (base and idle watts, or pods of
other schedulers, exceed the limit), all candidates go: an over facility limit is a breaker
waiting to trip, and then everything is lost anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from wattsched.power.watts import delta_watts
from wattsched.scheduling.filters import devices_requested
from wattsched.scheduling.model import Budget, Eviction, Pod, PodKey
from wattsched.scheduling.state import ClusterState

SHED_REASON = "Shed"


@dataclass(frozen=True, slots=True)
class _Candidate:
    pod: Pod
    node: str
    freed_watts: int


def freed_it_watts(state: ClusterState, pod: Pod, node: str) -> int:
    """IT watts a placed pod gives back when it goes: its devices fall to idle."""
    pool = state.node_pool(node)
    if pool is None:
        return 0
    return delta_watts(pool.profile, devices_requested(pod.requests, pool))


def _within(budget: Budget, it_watts: int) -> bool:
    return it_watts * budget.pue_milli <= budget.allocatable_watts * 1000


def shed(state: ClusterState, going: set[PodKey]) -> list[Eviction]:
    """Evictions for every over Shed budget, in budget-name order; `going` is updated."""
    evictions: list[Eviction] = []
    for name in sorted(state.budgets):
        budget = state.budgets[name]
        if budget.enforcement != "Shed":
            continue
        it_watts = state.budget_usage(name).it_watts
        if _within(budget, it_watts):
            continue
        candidates: list[_Candidate] = []
        for node in sorted(state.nodes):
            if name not in state.node_budgets(node):
                continue
            for pod in state.pods_on(node):
                freed = freed_it_watts(state, pod, node)
                if pod.key in going:
                    it_watts -= freed
                elif pod.managed and freed > 0:
                    candidates.append(_Candidate(pod, node, freed))
        if _within(budget, it_watts):
            continue
        picks = _pick(budget, it_watts, candidates)
        for pick in picks:
            going.add(pick.pod.key)
            evictions.append(Eviction(pick.pod.key, pick.node, SHED_REASON, name))
    return evictions


def _pick(budget: Budget, it_watts: int, candidates: list[_Candidate]) -> list[_Candidate]:
    ordered = sorted(
        candidates,
        key=lambda c: (c.pod.priority, -c.freed_watts, -c.pod.created_order, c.pod.key),
    )
    picks: list[_Candidate] = []
    remaining = it_watts
    for candidate in ordered:
        if _within(budget, remaining):
            break
        picks.append(candidate)
        remaining -= candidate.freed_watts
    if not _within(budget, remaining):
        return picks  # cannot restore it: everything that frees a watt goes (see module doc)
    kept: list[_Candidate] = []
    for candidate in reversed(picks):
        if _within(budget, remaining + candidate.freed_watts):
            remaining += candidate.freed_watts
        else:
            kept.append(candidate)
    kept.reverse()
    return kept
