"""The `wattsched` command: one entry point for the operator, the CRDs and the simulator.

The top of the layers: it imports each layer that registers a subcommand (`commands`).

Each subcommand imports its own module lazily, so `wattsched crds` does not pull in kopf
and `wattsched run` does not pull in matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from wattsched.commands import COMMANDS, Command, command


@command("crds", "write the CustomResourceDefinitions generated from the API models")
def _crds(parser: argparse.ArgumentParser) -> Command:
    parser.add_argument("--out", type=Path, default=Path("crds"), help="folder (default: crds)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the files in --out differ from the models",
    )

    def run(args: argparse.Namespace) -> int:
        from wattsched.api.crd import KINDS, crd_filename, render, write_crds

        if args.check:
            stale = [
                crd_filename(kind)
                for kind in KINDS
                if not (args.out / crd_filename(kind)).exists()
                or (args.out / crd_filename(kind)).read_text() != render(kind)
            ]
            if stale:
                print(f"CRDs out of date in {args.out}: {', '.join(stale)}; run `make crds`")
                return 1
            print(f"CRDs in {args.out} match the models")
            return 0
        for path in write_crds(args.out):
            print(f"wrote {path}")
        return 0

    return run


@command("validate", "check AcceleratorPool and PowerBudget manifests as the API server would")
def _validate(parser: argparse.ArgumentParser) -> Command:
    parser.add_argument("files", nargs="+", type=Path, help="YAML manifests")

    def run(args: argparse.Namespace) -> int:
        from wattsched.api.manifests import ManifestError, load_manifests

        failed = 0
        for path in args.files:
            try:
                resources = load_manifests(path)
            except ManifestError as err:
                print(f"{path}: {err}", file=sys.stderr)
                failed += 1
                continue
            for resource in resources:
                print(f"{path}: {resource.kind}/{resource.metadata.name} is valid")
        return 1 if failed else 0

    return run


def _register_layers() -> None:
    """Each layer registers its own subcommand on import; the imports are deferred to here
    so that `import wattsched.cli` stays cheap for the layers themselves."""
    import wattsched.controllers.main
    import wattsched.sim.cli  # noqa: F401


def build_parser() -> argparse.ArgumentParser:
    _register_layers()
    parser = argparse.ArgumentParser(
        prog="wattsched",
        description="Power-aware scheduling of accelerator pods within megawatt limits.",
    )
    from wattsched import __version__

    parser.add_argument("--version", action="version", version=f"wattsched {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, build) in sorted(COMMANDS.items()):
        child = sub.add_parser(name, help=help_text, description=help_text)
        child.set_defaults(_run=build(child))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args._run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
