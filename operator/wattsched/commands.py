"""The registry of `wattsched` subcommands: a leaf, so that no layer imports the CLI.

Each layer registers its own subcommand here (`@command`); `cli` imports those layers and
builds the parser from what they registered. Nothing here imports any other wattsched module.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = Callable[[argparse.Namespace], int]
"""What a subcommand runs, once its arguments are parsed; returns the exit code."""

CommandBuilder = Callable[[argparse.ArgumentParser], Command]
"""Adds a subcommand's arguments to its parser and returns what the subcommand runs."""

COMMANDS: dict[str, tuple[str, CommandBuilder]] = {}


def command(name: str, help_text: str) -> Callable[[CommandBuilder], CommandBuilder]:
    """Register a subcommand; each layer registers its own, so the CLI knows none of them."""

    def register(build: CommandBuilder) -> CommandBuilder:
        COMMANDS[name] = (help_text, build)
        return build

    return register
