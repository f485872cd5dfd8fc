"""`wattsched simulate SCENARIO.yaml --out DIR`: registered with the main CLI on import."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from wattsched.commands import Command, command
from wattsched.sim.policies import DEFAULT_POLICIES, Policy, parse_policies


class ProgressBar:
    """One line on stderr per policy, redrawn every ~1 % of simulated time."""

    def __init__(
        self,
        label: str,
        horizon_seconds: int,
        start_label: Callable[[int], str],
        stream: TextIO | None = None,
        width: int = 30,
    ) -> None:
        self.label = label
        self.horizon = max(1, horizon_seconds)
        self.start_label = start_label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last_percent = -1

    def __call__(self, seconds: int) -> None:
        percent = min(100, seconds * 100 // self.horizon)
        if percent == self._last_percent:
            return
        self._last_percent = percent
        filled = self.width * percent // 100
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label:<12} [{bar}] {percent:3d}% {self.start_label(seconds)}")
        if percent == 100:
            self.stream.write("\n")
        self.stream.flush()


@command("simulate", "run the digital twin: a scenario through the real engine, per policy")
def _simulate(parser: argparse.ArgumentParser) -> Command:
    parser.add_argument("scenario", type=Path, help="scenario YAML (its format is in the README)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the report")
    parser.add_argument(
        "--policies",
        default=",".join(DEFAULT_POLICIES),
        help=f"comma-separated, from {', '.join(DEFAULT_POLICIES)} (default: all)",
    )
    parser.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        from wattsched.sim.metrics import summarize
        from wattsched.sim.report import write_outputs
        from wattsched.sim.run import prepare, simulate
        from wattsched.sim.scenario import ScenarioError

        try:
            policies = parse_policies(args.policies)
        except ValueError as err:
            print(f"--policies: {err}", file=sys.stderr)
            return 2
        try:
            inputs = prepare(args.scenario, args.seed)
        except ScenarioError as err:
            print(f"{err}", file=sys.stderr)
            return 1
        start = inputs.scenario.start_at

        def progress(policy: Policy) -> Callable[[int], None] | None:
            if args.quiet:
                return None
            return ProgressBar(
                policy.name,
                inputs.scenario.horizon_seconds,
                lambda s: (start + timedelta(seconds=s)).strftime("%Y-%m-%d"),
            )

        comparison = simulate(inputs, policies, progress)
        summaries = [summarize(result) for result in comparison.runs]
        table = write_outputs(comparison, summaries, args.out)
        print(table)
        print(f"report: {args.out / 'report.md'}")
        return 0

    return run
