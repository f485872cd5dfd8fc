"""The simulated site: pools, budgets with their limit timelines, and node cohorts.

Built once per scenario from the pool and budget manifests, then shared read-only by every
policy's run, so all policies see the very same fleet and the very same limits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from wattsched.api.manifests import ManifestError, load_manifests
from wattsched.api.models import AcceleratorPool, PowerBudget
from wattsched.api.units import parse_power
from wattsched.domain import (
    HALL_LABEL,
    RACK_LABEL,
    Budget,
    Node,
    Pool,
)
from wattsched.sim.scenario import Scenario, ScenarioError
from wattsched.translate import engine_budget, engine_pool

SITE_LABEL = "wattsched.io/site"
POOL_LABEL = "wattsched.io/pool"
PODS_PER_NODE = 110
_RACK_FULL = 1 << 30


@dataclass(frozen=True, slots=True)
class LimitStep:
    """From `at_seconds` (virtual clock) on, the budget's limit is `limit_watts`."""

    at_seconds: int
    limit_watts: int


@dataclass(frozen=True, slots=True)
class SiteBudget:
    """A budget and every limit it will have over the run, already scaled."""

    budget: Budget  # with the limit in force at the start
    steps: tuple[LimitStep, ...]  # first step at 0; strictly increasing, each a real change

    def at(self, seconds: int) -> Budget:
        limit = self.steps[0].limit_watts
        for step in self.steps:
            if step.at_seconds > seconds:
                break
            limit = step.limit_watts
        return replace(self.budget, limit_watts=limit)


@dataclass(frozen=True, slots=True)
class Cohort:
    commissioned_seconds: int
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Site:
    pools: dict[str, Pool]
    budgets: dict[str, SiteBudget]
    cohorts: tuple[Cohort, ...]  # ordered by commissioning instant, then scenario order

    @property
    def all_nodes(self) -> list[Node]:
        return [node for cohort in self.cohorts for node in cohort.nodes]


def _scaled(watts: int, scale: float) -> int:
    return max(1, round(watts * scale))


def limit_steps(resource: PowerBudget, scenario: Scenario) -> tuple[LimitStep, ...]:
    """The manifest's schedule plus the scenario's extra entries, on the virtual clock.

    Permanent extra entries (no `until`) join the manifest schedule; dips replace the limit
    within [from, until) and give it back afterwards, whatever it has become meanwhile.
    """
    spec = resource.spec
    name = resource.metadata.name
    horizon = scenario.horizon_seconds
    permanent: list[tuple[int, int]] = [(0, spec.effective_limit_watts(scenario.start_at))]
    for entry in spec.schedule or []:
        at = scenario.seconds_at(entry.from_)
        if 0 < at < horizon:
            permanent.append((at, entry.limit_watts))
    dips: list[tuple[int, int, int]] = []
    for extra in scenario.budget_schedule:
        if extra.budget != name:
            continue
        at = max(0, scenario.seconds_at(extra.from_))
        watts = parse_power(extra.limit)
        if extra.until is None:
            permanent.append((at, watts))
        else:
            dips.append((at, scenario.seconds_at(extra.until), watts))
    permanent.sort(key=lambda step: step[0])

    def limit_at(seconds: int) -> int:
        watts = permanent[0][1]
        for at, value in permanent:
            if at <= seconds:
                watts = value
        active = [dip for dip in dips if dip[0] <= seconds < dip[1]]
        if active:
            watts = max(active)[2]  # the latest-starting dip in force wins
        return watts

    instants = sorted(
        {0}
        | {at for at, _ in permanent}
        | {at for at, _, _ in dips}
        | {until for _, until, _ in dips}
    )
    steps: list[LimitStep] = []
    for at in instants:
        if not 0 <= at < horizon:
            continue
        watts = _scaled(limit_at(at), scenario.scale)
        if not steps or steps[-1].limit_watts != watts:
            steps.append(LimitStep(at, watts))
    return tuple(steps)


def load_site(scenario: Scenario, base_dir: Path) -> Site:
    pools: dict[str, Pool] = {}
    budget_resources: list[PowerBudget] = []
    for relative in scenario.manifests:
        path = base_dir / relative
        try:
            resources = load_manifests(path)
        except ManifestError as err:
            raise ScenarioError(f"manifests: {err}") from None
        for resource in resources:
            if isinstance(resource, AcceleratorPool):
                name = resource.metadata.name
                pools[name] = engine_pool(name, resource.spec, created_order=len(pools))
            else:
                budget_resources.append(resource)
    if not pools:
        raise ScenarioError(f"manifests {scenario.manifests} hold no AcceleratorPool")

    budgets: dict[str, SiteBudget] = {}
    for resource in budget_resources:
        steps = limit_steps(resource, scenario)
        budget = engine_budget(resource.metadata.name, resource.spec, steps[0].limit_watts)
        budgets[budget.name] = SiteBudget(budget, steps)
    unknown = sorted({e.budget for e in scenario.budget_schedule} - set(budgets))
    if unknown:
        raise ScenarioError(
            f"budgetSchedule names budget(s) {', '.join(unknown)} that no manifest defines "
            f"(budgets: {', '.join(sorted(budgets)) or 'none'})"
        )
    return Site(pools, budgets, build_cohorts(scenario, pools))


def build_cohorts(scenario: Scenario, pools: dict[str, Pool]) -> tuple[Cohort, ...]:
    numbered: dict[str, int] = {}
    racks: dict[str, tuple[int, int]] = {}  # hall -> (rack number, nodes in it so far)
    cohorts: list[tuple[int, int, Cohort]] = []
    for order, entry in enumerate(scenario.nodes):
        pool = pools.get(entry.pool)
        if pool is None:
            raise ScenarioError(
                f"nodes[{order}].pool: {entry.pool!r} is not a pool in the manifests "
                f"(pools: {', '.join(sorted(pools))})"
            )
        resource = entry.resource_name or pool.resource_names[0]
        if resource not in pool.resource_names:
            raise ScenarioError(
                f"nodes[{order}].resourceName: {resource!r} is not one of pool {pool.name}'s "
                f"resourceNames {list(pool.resource_names)}"
            )
        count = 0 if entry.count == 0 else max(1, round(entry.count * scenario.scale))
        at = (
            0
            if entry.commissioned_at is None
            else max(0, scenario.seconds_at(entry.commissioned_at))
        )
        nodes: list[Node] = []
        for _ in range(count):
            index = numbered.get(pool.name, 0)
            numbered[pool.name] = index + 1
            labels = {SITE_LABEL: scenario.site, POOL_LABEL: pool.name, **entry.labels}
            hall = labels.get(HALL_LABEL, "x")
            rack, filled = racks.get(hall, (1, 0))
            if filled >= entry.nodes_per_rack:
                rack, filled = rack + 1, 0
            racks[hall] = (rack, filled + 1)
            labels.setdefault(RACK_LABEL, f"{hall}-r{rack:03d}")
            node = Node(
                f"{pool.name}-{index:05d}",
                MappingProxyType(labels),
                MappingProxyType({resource: entry.devices_per_node, "pods": PODS_PER_NODE}),
            )
            if not pool.selector.matches(node.labels):
                raise ScenarioError(
                    f"nodes[{order}]: nodes of pool {pool.name} with labels {labels} do not "
                    "match the pool's nodeSelector"
                )
            nodes.append(node)
        if nodes:
            cohorts.append((at, order, Cohort(at, tuple(nodes))))
        for hall, (rack, _) in list(racks.items()):
            racks[hall] = (rack, _RACK_FULL)  # the next cohort starts a fresh rack
    cohorts.sort(key=lambda item: (item[0], item[1]))
    return tuple(cohort for _, _, cohort in cohorts)
