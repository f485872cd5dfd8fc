"""`wattsched run` reads each knob from its flag, else its environment variable, else a default."""

import argparse

import pytest

from wattsched.controllers.main import RunOptions, add_run_arguments

UNGUARDED_ENV = "WATTSCHED_ALLOW_UNGUARDED_NODES"


def run_options(*argv: str) -> RunOptions:
    parser = argparse.ArgumentParser(prog="wattsched run")
    add_run_arguments(parser)  # the environment is read here, as when the command starts
    return RunOptions.from_args(parser.parse_args(argv))


def test_unguarded_nodes_are_refused_unless_the_admin_opts_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(UNGUARDED_ENV, raising=False)
    assert run_options().allow_unguarded_nodes is False
    assert run_options("--allow-unguarded-nodes").allow_unguarded_nodes is True


def test_the_environment_variable_opts_in_and_the_flag_still_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(UNGUARDED_ENV, "true")
    assert run_options().allow_unguarded_nodes is True
    assert run_options("--allow-unguarded-nodes=false").allow_unguarded_nodes is False


def test_a_value_that_is_not_a_boolean_stops_the_command_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(UNGUARDED_ENV, "maybe")
    with pytest.raises(SystemExit):
        run_options()
    assert "'maybe' is not a boolean: write true or false" in capsys.readouterr().err
