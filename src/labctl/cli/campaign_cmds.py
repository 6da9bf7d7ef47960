"""labctl CLI commands for campaigns: `campaign validate|plan|schema`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labctl.cli.output import Col, print_json, print_table, visible

campaign_app = typer.Typer(help="Designed experiments over many cells (campaign files).",
                           no_args_is_help=True)


def _consoles():  # the CLI's shared consoles, imported late (cli/__init__ imports this module)
    from labctl.cli import console, err_console

    return console, err_console


def _problems(exc: Exception, as_json: bool) -> None:
    console, err = _consoles()
    problems = getattr(exc, "problems", [])
    if as_json:
        print_json(console, {"ok": False, "problems": [p.as_dict() for p in problems]})
    else:
        for p in problems:
            err.print(visible(p), highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(2)


@campaign_app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="campaign files")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Check campaign files (and the protocols they name); every problem as file:line:col (exit 2 if any)."""
    from labctl.campaign import load_campaign
    from labctl.protocol.problems import FileProblemsError

    console, err = _consoles()
    results, failed = [], False
    for f in files:
        try:
            c = load_campaign(f)
            results.append({"file": str(f), "ok": True, "problems": [], "sha256": c.sha256})
            if not as_json:
                console.print(f"{f}: ok ({len(c.model.factors)} factors, {c.model.design.kind})",
                              highlight=False, markup=False, soft_wrap=True)
        except FileProblemsError as exc:
            failed = True
            results.append({"file": str(f), "ok": False, "problems": [p.as_dict() for p in exc.problems]})
            if not as_json:
                for p in exc.problems:
                    err.print(visible(p), highlight=False, markup=False, soft_wrap=True)
    if as_json:
        print_json(console, results)
    if failed:
        raise typer.Exit(2)


@campaign_app.command("plan")
def plan(
    file: Annotated[Path, typer.Argument(help="campaign file")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """The design in run order, each point planned; exit 2 if any point fails its plan (it would not run)."""
    from labctl.campaign import load_campaign
    from labctl.campaign.design import make_design, plan_design
    from labctl.protocol.problems import FileProblemsError
    from labctl.units import human_duration

    console, err = _consoles()
    try:
        c = load_campaign(file)
        design = plan_design(c, make_design(c))
    except FileProblemsError as exc:
        _problems(exc, as_json)
        return
    if as_json:
        print_json(console, {"ok": not design.failed, "kind": design.kind, "seed": design.seed,
                             "points": [p.as_dict() for p in design.points]})
    else:
        names = list(c.model.factors)
        cols = [Col("#", key=True, justify="right"), Col("point", key=True, justify="right"),
                Col("rep", key=True, justify="right"),
                *(Col(n) for n in names), Col("duration"), Col("plan", wrap=True)]
        rows = [[p.seq + 1, p.point + 1, p.replicate + 1, *(p.values[n] for n in names),
                 human_duration(p.duration_s), "ok" if p.ok else p.errors[0]] for p in design.points]
        print_table(console, cols, rows, title=f"{c.model.name}: {design.kind}, seed {design.seed}, "
                    f"{len(design.points)} runs")
        for p in design.failed:
            for e in p.errors:
                err.print(visible(f"run {p.seq + 1} (point {p.point + 1}): {e}"), highlight=False,
                          markup=False, soft_wrap=True)
    if design.failed:
        raise typer.Exit(2)


@campaign_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of campaign files (for editor autocompletion)."""
    from labctl.campaign import campaign_schema

    console, _ = _consoles()
    print_json(console, campaign_schema())


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")
