"""`labctl <command>` builds only the command's own group (labctl.cli.COMMANDS, issue 18): the map must name
every command each module registers, and the partial app must answer exactly as the whole app does."""

from __future__ import annotations

import importlib

import pytest
import typer
from typer.testing import CliRunner

from labctl import cli


def _registered(module: str) -> set[str]:
    """Top-level names `module` registers on an app of its own."""
    app = typer.Typer()
    importlib.import_module(f"labctl.cli.{module}").register(app)
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    return names | {g.name for g in app.registered_groups}


def test_the_map_names_what_each_module_registers() -> None:
    seen: set[str] = set()
    for module in cli.COMMAND_MODULES:
        for name in _registered(module):
            assert module in cli.COMMANDS.get(name, ()), f"{name} (from {module}) is not in cli.COMMANDS"
            seen.add(name)
    assert seen == set(cli.COMMANDS)
    assert {m for ms in cli.COMMANDS.values() for m in ms} == set(cli.COMMAND_MODULES)


ARGS = [[name, "--help"] for name in sorted(cli.COMMANDS)] + [
    ["runs", "list", "--help"], ["runs", "report", "--help"], ["runs", "compare", "--help"],
    ["queue", "list", "--help"], ["audit", "verify", "--help"], ["validate"], ["runs", "list", "--bogus"],
    ["sim"], ["runs", "nope"],
]


@pytest.mark.parametrize("args", ARGS, ids=[" ".join(a) for a in ARGS])
def test_the_partial_app_answers_as_the_whole_app(args: list[str]) -> None:
    runner = CliRunner()
    whole = runner.invoke(cli.app, args, prog_name="labctl", env={"COLUMNS": "100"})
    part = runner.invoke(cli._app_for(args), args, prog_name="labctl", env={"COLUMNS": "100"})
    assert (part.exit_code, part.output) == (whole.exit_code, whole.output)
    assert whole.output.strip()


def test_help_version_and_unknown_names_get_the_whole_app() -> None:
    for args in ([], ["--help"], ["nope"], ["version"]):
        assert cli._app_for(args) is cli.app
