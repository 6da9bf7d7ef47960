"""labctl CLI commands for protocol files: `validate`, `plan`, `schema`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from labctl.cli.output import Col, esc, print_csv, print_json, print_table, visible

if TYPE_CHECKING:
    from labctl.protocol.problems import Problem


def _console():  # the CLI's shared consoles (imported late: cli/__init__ imports this module)
    from labctl.cli import console, err_console

    return console, err_console


def _print_problems(problems: list[Problem]) -> None:
    _, err = _console()
    for p in problems:
        err.print(visible(p), highlight=False, markup=False, soft_wrap=True)


def validate(
    files: Annotated[list[Path], typer.Argument(help="protocol files")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Check protocol files; print every problem as file:line:col: field: message (exit 2 if any)."""
    from labctl.protocol import load_protocol
    from labctl.protocol.problems import FileProblemsError

    console, _ = _console()
    results = []
    failed = False
    for f in files:
        try:
            loaded = load_protocol(f)
            results.append(
                {
                    "file": str(f),
                    "ok": True,
                    "problems": [],
                    "sha256": loaded.sha256,
                    "steps": len(loaded.model.steps),
                }
            )
            if not as_json:
                console.print(f"{f}: ok ({len(loaded.model.steps)} steps)", highlight=False, markup=False,
                              soft_wrap=True)
        except FileProblemsError as exc:
            failed = True
            results.append({"file": str(f), "ok": False, "problems": [p.as_dict() for p in exc.problems]})
            if not as_json:
                _print_problems(exc.problems)
    if as_json:
        print_json(console, results)
    if failed:
        raise typer.Exit(2)


def plan(
    file: Annotated[Path, typer.Argument(help="protocol file")],
    station: Annotated[Path | None, typer.Option("--station", "-s", help="station file")] = None,
    param: Annotated[list[str] | None, typer.Option("-p", "--param", help="override: name=value")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="the steps as CSV")] = False,
) -> None:
    """Resolve parameters, check limits, estimate durations and consumables; exit 2 if there are errors."""
    from labctl.protocol import load_protocol, make_plan, parse_overrides
    from labctl.protocol.problems import FileProblemsError
    from labctl.station import load_station

    console, _ = _console()
    try:
        loaded = load_protocol(file, parse_overrides(param))
        st = load_station(station) if station else None
    except FileProblemsError as exc:
        if as_json:
            print_json(console, {"ok": False, "problems": [p.as_dict() for p in exc.problems]})
        else:
            _print_problems(exc.problems)
        raise typer.Exit(2) from None
    result = make_plan(loaded, st)
    if as_json:
        print_json(console, result.as_dict())
    elif as_csv:
        print_csv(
            ["step", "line", "kind", "what", "duration_s", "instruments", "warnings", "errors"],
            (
                [s.index + 1, s.line, s.kind, s.summary, s.duration, " ".join(s.instruments),
                 " | ".join(s.warnings), " | ".join(s.errors)]
                for s in result.steps
            ),
        )
    else:
        _show_plan(result)
    if not result.ok:
        raise typer.Exit(2)


PLAN_COLUMNS = (
    Col("#", key=True, justify="right"),
    Col("line", key=True, justify="right", drop=2),
    Col("step", key=True),
    Col("what", wrap=True, min=24),
    Col("duration", key=True, justify="right"),
    Col("instruments", drop=1, min=12),
)


def _plan_rows(result) -> list[list[str]]:  # type: ignore[no-untyped-def]
    from labctl.units import human_duration

    rows = [
        [str(s.index + 1), str(s.line), s.kind, s.summary, human_duration(s.duration),
         ", ".join(s.instruments)]
        for s in result.steps
    ]
    rows.append(["", "", "total", "", human_duration(result.duration), ""])
    return rows


def _show_plan(result) -> None:  # type: ignore[no-untyped-def]
    """The plan for people; every string from the file or the station is escaped (never read as markup)."""
    from labctl.units import fmt

    console, _ = _console()
    console.print(
        f"[bold]{esc(result.protocol)}[/]  ({esc(result.path)}, sha256 {result.sha256[:12]})", highlight=False
    )
    if result.parameters:
        console.print(
            "parameters: " + ", ".join(f"{k}={v}" for k, v in result.parameters.items()),
            highlight=False, markup=False,
        )
    print_table(console, PLAN_COLUMNS, _plan_rows(result))
    for s in result.steps:
        where = f"step {s.index + 1} (line {s.line})"
        for w in s.warnings:
            console.print(f"[yellow]warning:[/] {where}: {esc(w)}", highlight=False)
        for e in s.errors:
            console.print(f"[red]error:[/] {where}: {esc(e)}", highlight=False)
    if result.consumables:
        console.print("[bold]consumables[/]")
        for name, volume in result.consumables.items():
            console.print(f"  {name}: {fmt(volume, 'volume')}", highlight=False, markup=False)
    if result.instruments:
        console.print("[bold]instruments[/]")
        for role, present in result.instruments.items():
            mark = (
                "[green]present[/]" if present else ("[red]missing[/]" if result.station else "not checked")
            )
            console.print(f"  {esc(role)}: {mark}", highlight=False)
    for o in result.overrides:
        console.print(
            f"[yellow]override[/] step {int(o['step']) + 1}: {esc(o['hazard'])} — {esc(o['reason'])}",
            highlight=False,
        )
    for w in result.general_warnings:
        console.print(f"[yellow]warning:[/] {esc(w)}", highlight=False)
    for e in result.general_errors:
        console.print(f"[red]error:[/] {esc(e)}", highlight=False)
    n_err = len(result.errors)
    console.print("[green]plan ok[/]" if result.ok else f"[red]{n_err} error(s)[/]")


def schema() -> None:
    """Print the JSON Schema of protocol files (for editor autocompletion)."""
    from labctl.protocol import protocol_schema

    console, _ = _console()
    print_json(console, protocol_schema())


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("validate")(validate)
    app.command("plan")(plan)
    app.command("schema")(schema)
