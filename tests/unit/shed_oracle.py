"""A brute-force judge of one shed (invariants 3 and 5), independent of the engine's choice.

Given the state a shed ran on, the pods already going and the pods it evicted, it rebuilds the
candidate victims on its own (a pod, or every placed member of its gang), and checks:
- gangs whole: a victim is evicted entirely or not at all;
- feasible: every over Shed budget ends within allocatable (when that is possible at all;
  otherwise every candidate that frees a watt in a hopeless budget is evicted);
- irredundant: no victim could be kept;
- no needless priority: no victim could be swapped for an unpicked lower-priority one;
- and, by enumerating every subset when there are few candidates, that the highest priority
  evicted is the lowest any feasible choice has.
"""

from __future__ import annotations

from itertools import combinations

from wattsched.scheduling import ClusterState, PodKey

BRUTE_FORCE_UP_TO = 10  # candidates: 2**10 subsets


def _freed(state: ClusterState, key: PodKey) -> dict[str, int]:
    node = state.node_of(key)
    assert node is not None
    pool = state.node_pool(node)
    if pool is None:
        return {}
    pod = state.pods[key]
    devices = sum(pod.requests.get(r, 0) for r in pool.resource_names)
    watts = devices * (pool.profile.device_watts - pool.profile.idle_device_watts)
    return {b: watts for b in state.node_budgets(node)} if watts else {}


def check_shed(state: ClusterState, going: set[PodKey], evicted: set[PodKey]) -> None:
    """Assert the shed that evicted `evicted` (with `going` already on their way) was sound."""
    deficits: dict[str, int] = {}
    for name, budget in state.budgets.items():
        if budget.enforcement != "Shed":
            continue
        it = state.budget_usage(name).it_watts
        if budget.measured:  # a Measured budget sheds on its estimate (DESIGN.md §2b)
            it -= state.measured_figures().gain_it_watts.get(name, 0)
        for key in going:
            if state.node_of(key) is not None:
                it -= _freed(state, key).get(name, 0)
        capacity = budget.allocatable_watts * 1000 // budget.pue_milli
        if it > capacity:
            deficits[name] = it - capacity
    # Candidate victims: placed managed pods not going, grouped by gang.
    units: dict[str, list[PodKey]] = {}
    for key in sorted(state.placement):
        if key in going:
            continue
        pod = state.pods[key]
        unit = f"gang:{pod.gang}" if pod.gang is not None else f"pod:{key}"
        units.setdefault(unit, []).append(key)
    freed: dict[str, dict[str, int]] = {}
    priority: dict[str, int] = {}
    for unit, keys in units.items():
        if not all(state.pods[k].managed for k in keys):
            continue
        total: dict[str, int] = {}
        for key in keys:
            for b, w in _freed(state, key).items():
                if b in deficits:
                    total[b] = total.get(b, 0) + w
        if total:
            freed[unit] = total
            priority[unit] = max(state.pods[k].priority for k in keys)
    chosen: set[str] = set()
    for unit, keys in units.items():
        hit = [k for k in keys if k in evicted]
        if hit:
            assert sorted(hit) == sorted(keys), f"{unit} evicted in part: {hit} of {keys}"
            chosen.add(unit)
    assert chosen <= set(freed), f"evicted what frees nothing over: {chosen - set(freed)}"
    if not deficits:
        assert not chosen, f"shed {sorted(chosen)} though no Shed budget was over"
        return

    def left(subset: set[str]) -> dict[str, int]:
        remaining = dict(deficits)
        for unit in subset:
            for b, w in freed[unit].items():
                remaining[b] -= w
        return remaining

    everything = left(set(freed))
    hopeless = {b for b, over in everything.items() if over > 0}
    forced = {u for u in freed if hopeless.intersection(freed[u])}
    assert forced <= chosen, f"hopeless budgets {hopeless} kept {sorted(forced - chosen)}"

    def feasible(subset: set[str]) -> bool:
        return all(over <= 0 for b, over in left(subset).items() if b not in hopeless)

    assert feasible(chosen), f"shed left budgets over: {left(chosen)}"
    free = chosen - forced
    for unit in free:
        assert not feasible(chosen - {unit}), f"{unit} was evicted needlessly"
        for other in set(freed) - chosen:
            if priority[other] < priority[unit]:
                assert not feasible(chosen - {unit} | {other}), (
                    f"{unit} (priority {priority[unit]}) evicted while lower {other} would do"
                )
    optional = sorted(set(freed) - forced)
    if free and len(optional) <= BRUTE_FORCE_UP_TO:
        best = min(
            max(priority[u] for u in subset)
            for size in range(1, len(optional) + 1)
            for subset in map(set, combinations(optional, size))
            if feasible(subset | forced)
        )
        assert max(priority[u] for u in free) == best, "a lower highest priority would do"
