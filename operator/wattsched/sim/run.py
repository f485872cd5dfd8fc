"""Load a scenario once, then run every chosen policy on the same site and the same jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from wattsched.sim.loop import Simulation
from wattsched.sim.policies import Policy
from wattsched.sim.result import RunResult
from wattsched.sim.scenario import Scenario, load_scenario
from wattsched.sim.site import Site, load_site
from wattsched.sim.workload import JobSpec, build_jobs


@dataclass(slots=True)
class Inputs:
    scenario: Scenario
    site: Site
    jobs: list[JobSpec]


@dataclass(slots=True)
class Comparison:
    inputs: Inputs
    runs: list[RunResult] = field(default_factory=list)
    wall_seconds: dict[str, float] = field(default_factory=dict)  # per policy, for the report


def prepare(path: Path, seed: int | None = None) -> Inputs:
    scenario = load_scenario(path)
    if seed is not None:
        scenario = scenario.model_copy(update={"seed": seed})
    site = load_site(scenario, path.parent)
    jobs = build_jobs(scenario, site.pools, path.parent)
    return Inputs(scenario, site, jobs)


def simulate(
    inputs: Inputs,
    policies: tuple[Policy, ...],
    progress: Callable[[Policy], Callable[[int], None] | None] | None = None,
    record_starts: bool = False,
) -> Comparison:
    comparison = Comparison(inputs)
    scenario = inputs.scenario
    for policy in policies:
        if scenario.min_feasible_nodes is not None:
            config = replace(policy.config, min_feasible_nodes=scenario.min_feasible_nodes)
            policy = replace(policy, config=config)
        began = time.perf_counter()  # wall time for the report only; the loop never sees it
        simulation = Simulation(
            inputs.site,
            inputs.jobs,
            policy,
            horizon_seconds=scenario.horizon_seconds,
            sample_seconds=scenario.sample_seconds,
            cycle_seconds=scenario.cycle_seconds,
            progress=progress(policy) if progress is not None else None,
            record_starts=record_starts,
        )
        comparison.runs.append(simulation.run())
        comparison.wall_seconds[policy.name] = time.perf_counter() - began
    return comparison
