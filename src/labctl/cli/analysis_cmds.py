"""`labctl runs report` and `labctl runs compare`: the standard answers of a run, from the store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import typer

from labctl.cli.output import Col, esc, fits, print_json, print_table
from labctl.errors import LabctlError


def _store(db: str | None):
    from labctl.store import Store

    return Store.open(db)


def _require_plotting() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise LabctlError("plots need matplotlib: pip install 'labctl[plot]'") from exc


def report_cmd(
    run: int = typer.Argument(..., help="Run id (see `labctl runs list`)."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder to write (default: reports/run-<id>)."),
    db: str = typer.Option(None, "--db", envvar="LABCTL_DB", help="Database URL or SQLite file."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Write PNG figures and a Markdown + HTML summary of a run's metrics and provenance."""
    from labctl.analysis import report
    from labctl.api import connect
    from labctl.cli import console

    _require_plotting()
    folder = out or Path("reports") / f"run-{run}"
    with connect(db) as lab:  # the notebook's `lab.run(N).report(folder)`: the one code path of a report
        metrics = lab.run(run).report(folder)
    if as_json:  # step values as SI with their unit's name, as in `runs show --json`
        print_json(console, json.loads(json.dumps(metrics, default=report._json_default)))
        return
    console.print(f"report of run {run} written to [bold]{esc(folder)}[/]: summary.md, summary.html, "
                  f"{len(metrics['figures'])} figures", highlight=False, soft_wrap=True)
    c = report.first_cycling(metrics)
    if c:
        hours = c.get("hours_to_failure")
        failure = (f"{c.get('failure_mode')} at {hours:.1f} h" if hours is not None
                   else f"none within {c.get('duration_h', 0):.0f} h of cycling (alive at the end)")
        console.print(f"overpotential cycle 10: {c.get('overpotential_cycle10_mV')} mV; failure: {failure}",
                      highlight=False, markup=False)


def compare_cmd(
    runs: list[int] = typer.Argument(..., help="Run ids to compare."),
    csv_out: Path = typer.Option(None, "--csv", help="Also write the table as CSV."),
    plot: Path = typer.Option(None, "--plot", help="Also write an overpotential-vs-time comparison PNG."),
    db: str = typer.Option(None, "--db", envvar="LABCTL_DB", help="Database URL or SQLite file."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Headline metrics of several runs side by side (e.g. bare Li vs coated at the same current)."""
    from labctl.analysis import cycling, report
    from labctl.cli import console

    store = _store(db)
    try:
        datas = [report.load_run(store, r) for r in runs]
    finally:
        store.close()
    rows = report.compare_rows(datas)
    if as_json:
        print_json(console, json.loads(json.dumps(rows, default=report._json_default)))
    else:
        _print_compare(console, rows, report.COMPARE_COLUMNS, report._fmt)
    if csv_out:
        with csv_out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(report.COMPARE_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
    if plot:
        _require_plotting()
        from labctl.analysis import plots

        series = {}
        for data in datas:
            step = next((s for s in data.steps if s.cycling is not None), None)
            if step is None:
                continue
            hc = cycling.half_cycles(step.cycling["t"], step.cycling["voltage"], step.cycling["current"])
            table_c = cycling.cycles(hc)
            series[data.label] = (table_c.t_mid / cycling.HOUR, table_c.plating * 1e3)
        plots.compare_overpotential(series, plot)


def _print_compare(console, rows: list[dict], columns: tuple[str, ...], fmt) -> None:  # type: ignore[no-untyped-def]
    """One row per run when that fits the width; else one row per metric and a column per run (a dozen
    metrics side by side do not fit 80 columns, two to five runs do)."""
    title = "runs compared (overpotential = median |V|, middle 50 % of plating half-cycle)"
    text = {"sample", "protocol"}
    cols = [Col(c, key=c not in text, justify="left" if c in text else "right") for c in columns]
    table = [[fmt(row.get(c)) for c in columns] for row in rows]
    if fits(cols, table, console.width) or not rows:
        print_table(console, cols, table, title=title)
        return
    run_cols = [Col("metric", key=True)] + [Col(f"run {row.get('run')}", justify="right") for row in rows]
    by_metric = [[c] + [fmt(row.get(c)) for row in rows] for c in columns[1:]]
    print_table(console, run_cols, by_metric, title=title)


def register(app: typer.Typer) -> None:
    """Add `report` and `compare` to the `runs` group (the store's, when it has one)."""
    from labctl.cli import store_cmds

    runs_app = getattr(store_cmds, "runs_app", None)
    if runs_app is None:
        runs_app = typer.Typer(help="Runs in the store.", no_args_is_help=True)
        app.add_typer(runs_app, name="runs")
    if any(c.name == "report" for c in runs_app.registered_commands):
        return  # the group is the store module's, shared by every app built in this process
    runs_app.command("report")(report_cmd)
    runs_app.command("compare")(compare_cmd)
