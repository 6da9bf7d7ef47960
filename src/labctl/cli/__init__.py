"""The `labctl` command line (typer). The only place that prints.

Each command group lives in its own module with a `register(app)` function, so the groups grow
independently: protocol files (validate/plan/schema), simulators (sim serve), runs (run/pause/resume/abort/
ack/recover), the store (runs list/show/export/io, audit), analysis (runs report/compare).

Start-up is kept short (issue 18; figures in benchmarks/RESULTS.md): command modules import only typer at
their top and everything heavy (the store and SQLAlchemy, the simulators, numpy, scipy, pint and the protocol
models) inside the command that needs it; a command builds only its own group (`COMMANDS`); the rich consoles
are built on first use; `runs list` reads SQLite without SQLAlchemy (`labctl.store.readonly`) and `validate`
parses known units without pint (`labctl.units`). `tests/test_import_budget.py` fails when a heavy module
creeps back into the start path.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from labctl.errors import LabctlError

COMMAND_MODULES = ["protocol_cmds", "sim_cmds", "run_cmds", "store_cmds", "analysis_cmds", "plugins_cmds",
                   "queue_cmds", "web_cmds", "users_cmds", "campaign_cmds"]
#: top-level command -> the modules that register it, so that `labctl validate ...` builds (and typer
#: inspects) only its own group (tests/cli/test_cli_startup.py holds this to what the modules register)
COMMANDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("validate", "plan", "schema"), ("protocol_cmds",)),
    "sim": ("sim_cmds",),
    **dict.fromkeys(("run", "pause", "resume", "abort", "ack"), ("run_cmds",)),
    "runs": ("store_cmds", "analysis_cmds"),
    **dict.fromkeys(("audit", "recover"), ("store_cmds",)),
    "plugins": ("plugins_cmds",),
    **dict.fromkeys(("submit", "runner", "worker", "workers", "queue"), ("queue_cmds",)),
    "serve": ("web_cmds",),
    "users": ("users_cmds",),
    "campaign": ("campaign_cmds",),
}
HELP = "Lab-automation controller for protective overlayers on Li-metal anodes."


def _build_app(modules: tuple[str, ...] | list[str] = tuple(COMMAND_MODULES)) -> Any:
    """The typer app with the command groups of `modules` registered (each module imports only typer at its
    top); all of them unless a command's own are enough."""
    import typer

    # plain click help: typer's rich help imports rich.markdown and markdown-it (~0.1 s of every --help)
    app = typer.Typer(name="labctl", help=HELP, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False, rich_markup_mode=None)
    for module in modules:
        importlib.import_module(f"labctl.cli.{module}").register(app)

    @app.callback()
    def _root() -> None:
        """Lab-automation controller for protective overlayers on Li-metal anodes."""

    @app.command("version")
    def version() -> None:
        """Print labctl's version."""
        _print_version()

    return app


def _print_version() -> None:
    from labctl import __version__

    sys.stdout.write(f"labctl {__version__}\n")


def __getattr__(name: str) -> Any:
    """`app` (the typer app), `console` (stdout) and `err_console` (stderr), built when first asked for, so
    that `labctl version` needs neither typer nor rich."""
    if name == "app":
        return globals().setdefault("app", _build_app())
    if name in ("console", "err_console"):
        from rich.console import Console

        globals().setdefault("console", Console())
        globals().setdefault("err_console", Console(stderr=True))
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _err(markup: str) -> None:
    from labctl.cli import err_console

    # whole lines on stderr (a `file:line:col:` stays with its message when piped), data never read as markup
    err_console.print(markup, highlight=False, soft_wrap=True)


def _app_for(argv: list[str]) -> Any:
    """The app with only the group that `argv` names (typer turns every command's signature into click
    options when the app is called: ~40 commands, a tenth of `labctl validate`'s start-up); the whole app
    for `--help`, no command, or a name it does not know (whose error lists every command)."""
    modules = COMMANDS.get(argv[0]) if argv else None
    if modules is None:
        from labctl.cli import app

        return app
    return _build_app(modules)


def main() -> None:
    """Console-script entry point: user errors become a clear message and an exit code, no traceback."""
    if sys.argv[1:] == ["version"]:  # the one command with nothing to parse: no typer, no rich
        _print_version()
        return
    from labctl.cli.output import esc as escape

    try:
        _app_for(sys.argv[1:])()  # standalone mode: typer reports usage errors itself and exits
    except LabctlError as exc:
        _err(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except Exception as exc:  # anything unexpected: keep the traceback for a bug report, off the terminal
        import tempfile
        import traceback

        fd, path = tempfile.mkstemp(prefix="labctl-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exc(file=fh)
        _err(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
             f"(details written to {escape(path)}; please report it)")
        sys.exit(70)
