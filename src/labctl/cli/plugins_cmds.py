"""`labctl plugins list`: installed plug-ins (drivers, step kinds, planners), what each provides, whether it
loaded or why not. Never fails because a plug-in is broken: that is what it reports."""

from __future__ import annotations

import json
from typing import Annotated

import typer

plugins_app = typer.Typer(help="Third-party plug-ins: drivers, step kinds, campaign planners.",
                          no_args_is_help=True)


@plugins_app.command("list")
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every entry point in labctl's groups: name, distribution, version, what it provides, loaded or why."""
    from rich.table import Table

    from labctl.cli import console
    from labctl.drivers.registry import plugin_problems as driver_problems
    from labctl.plugins import PLUGIN_API, scan
    from labctl.steps.registry import plugin_problems as step_problems

    found = scan()
    # the registries' own refusals (a name clash with a built-in) on entries that loaded here
    refused = {p.split("'")[1]: p for p in driver_problems() + step_problems() if "reuses" in p}
    rows = [e.as_dict() | ({"loaded": False, "problem": refused[e.name]} if e.loaded and e.name in refused
                           else {}) for e in found]
    if as_json:
        console.print_json(json.dumps({"plugin_api": PLUGIN_API, "plugins": rows}))
        return
    if not rows:
        console.print(f"no plug-ins installed (plugin API {PLUGIN_API}; groups labctl.drivers, labctl.steps, "
                      "labctl.planners)", highlight=False)
        return
    table = Table(title=f"{len(rows)} plug-in entry points (plugin API {PLUGIN_API})")
    for col in ("group", "name", "distribution", "provides", "status"):
        table.add_column(col, overflow="fold")
    for r in rows:
        status = "[green]loaded[/]" if r["loaded"] else f"[red]not loaded[/]: {r['problem']}"
        dist = f"{r['distribution']} {r['version']}".strip() or "?"
        table.add_row(r["group"].removeprefix("labctl."), r["name"], dist, r["provides"], status)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the `plugins` group."""
    app.add_typer(plugins_app, name="plugins")
