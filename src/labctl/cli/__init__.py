"""The `labctl` command line (typer). The only place that prints.

Each command group lives in its own module with a `register(app)` function, so the groups grow
independently: protocol files (validate/plan/schema), simulators (sim serve), runs (run/pause/resume/abort/
ack/recover), the store (runs list/show/export/io, audit), analysis (runs report/compare).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import traceback

import typer
from rich.console import Console

from labctl.errors import LabctlError

app = typer.Typer(name="labctl",
                  help="Lab-automation controller for protective overlayers on Li-metal anodes.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
err_console = Console(stderr=True)

COMMAND_MODULES = ["protocol_cmds", "sim_cmds", "run_cmds", "store_cmds", "analysis_cmds", "queue_cmds"]

for _module in COMMAND_MODULES:
    importlib.import_module(f"labctl.cli.{_module}").register(app)


@app.callback()
def _root() -> None:
    """Lab-automation controller for protective overlayers on Li-metal anodes."""


@app.command("version")
def version() -> None:
    """Print labctl's version."""
    from labctl import __version__

    console.print(f"labctl {__version__}")


def main() -> None:
    """Console-script entry point: user errors become a clear message and an exit code, no traceback."""
    try:
        app()  # standalone mode: typer reports usage errors itself and exits
    except LabctlError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # anything unexpected: keep the traceback for a bug report, off the terminal
        fd, path = tempfile.mkstemp(prefix="labctl-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exc(file=fh)
        err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                          f"(details written to {path}; please report it)", highlight=False)
        sys.exit(70)
