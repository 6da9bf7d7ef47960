"""labctl CLI commands for campaigns: `campaign validate|plan|schema|run|resume|approve|reject|status|report`
(approve/reject: a planner campaign's pending suggestions, as `run --approve` and the web app decide them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
                how = (f"planner {c.model.planner.name}, budget {c.model.planner.budget}" if c.model.planner
                       else c.model.design.kind)
                console.print(f"{f}: ok ({len(c.model.factors)} factors, {how})",
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
        design = plan_design(c, _first_batch(c) if c.model.planner else make_design(c))
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


def _first_batch(c: Any) -> Any:
    """A planner campaign has no fixed design: `plan` shows the planner's first batch (no observations yet),
    each point planned, so a bad range shows before anything runs."""
    from labctl.campaign.design import Design, DesignPoint
    from labctl.campaign.planners import make_for, suggest

    spec = c.model.planner
    seed = spec.seed if spec.seed is not None else 0
    defaults = {k: v for p in c.protocols.values() for k, v in p.parameters.items()}
    pts = suggest(make_for(c.model, defaults, seed=seed), spec.batch, [], [])
    return Design(f"planner:{spec.name} (first batch of {spec.budget})", seed,
                  [DesignPoint(seq=i, point=i, replicate=0, block=None, values=v) for i, v in enumerate(pts)])


@campaign_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of campaign files (for editor autocompletion)."""
    from labctl.campaign import campaign_schema

    console, _ = _consoles()
    print_json(console, campaign_schema())


Db = Annotated[str | None, typer.Option("--db", envvar="LABCTL_DB", help="Database URL or SQLite file.")]
StationOpt = Annotated[Path | None, typer.Option(
    "--station", "-s", help="station file the local runner serves (default: the campaign's, or the simulated "
    "one)")]
MaxPar = Annotated[int, typer.Option("--max-parallel", help="runs at a time in the local runner (a linked "
                                      "campaign: test runs at a time over the cycler's channels)")]
CyclerOpt = Annotated[Path | None, typer.Option(
    "--cycler", help="linked campaigns: the station or multi-channel rack the test runs go to (default: the "
    "campaign's)")]
NoRunner = Annotated[bool, typer.Option("--no-runner", help="leave the runs to bench workers; wait for them")]
Wait = Annotated[float | None, typer.Option("--wait", help="with --no-runner: give up waiting after S s")]


def _open(db: str | None) -> Any:
    from labctl.store import Store

    return Store.open(db)


def _say(text: str) -> None:
    _consoles()[0].print(visible(text), highlight=False, markup=False, soft_wrap=True)


Approve = Annotated[bool, typer.Option(
    "--approve", help="planner campaigns: accept, edit or reject each suggestion before it is queued")]


def _decide(store: Any, cid: int, proposals: list[dict[str, Any]]) -> bool:
    """`--approve`: each proposal shown with what it was based on; accept, edit (values re-checked and
    planned), reject (with a reason) or quit (the proposals stay; `resume --approve` asks again)."""
    import getpass

    from labctl.campaign import state, suggestions

    who = getpass.getuser()
    linked = state.is_linked(state.get(store, cid))  # its cells are queued as their fabrication first
    for s in proposals:
        _say(f"suggestion {s['id']} (batch {s['batch']}, {s['planner'].get('name')}, from "
             f"{s['observations']} observation(s), sha256 {s['observations_sha256'][:12]}): "
             + ", ".join(f"{k}={v}" for k, v in s["values"].items()))
        while True:
            choice = typer.prompt("[a]ccept, [e]dit, [r]eject or [q]uit", default="a").strip().lower()[:1]
            try:
                if choice == "q":
                    return False
                if choice == "r":
                    reason = typer.prompt("reason", default="rejected at the prompt")
                    suggestions.reject(store, cid, s["id"], actor=who, reason=reason)
                    break
                values = None
                if choice == "e":
                    values = {k: typer.prompt(k, default=v) for k, v in s["values"].items()}
                elif choice != "a":
                    continue
                rid = suggestions.approve(store, cid, s["id"], values=values, actor=who)
                what = "fabrication request" if linked else "request"
                _say(f"queued as {what} {rid}" if rid is not None else "refused by its plan (not queued)")
                break
            except suggestions.SuggestionError as exc:
                _consoles()[1].print(visible(str(exc)), highlight=False, markup=False, soft_wrap=True)
    return True


def _drive(store: Any, cid: int, station: Path | None, max_parallel: int, no_runner: bool,
           wait: float | None, approve: bool = False, cycler: Path | None = None) -> None:
    from labctl.campaign import state, suggestions
    from labctl.campaign.drive import drive
    from labctl.campaign.planners import PlannerError

    if approve:  # a finished or cancelled campaign refuses (SuggestionError: `error: ...`, exit 2)
        suggestions.check_open(state.get(store, cid))
    try:
        prog = drive(store, cid, runner=not no_runner, station=station, max_parallel=max_parallel, wait=wait,
                     say=_say, decide=_decide if approve else None, cycler=cycler)
    except PlannerError as exc:  # nothing was queued from the failed proposal
        _consoles()[1].print(visible(f"campaign {cid}: {exc}"), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    _say(f"campaign {cid}: " + ", ".join(f"{k} {v}" for k, v in prog.items()))


@campaign_app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="campaign file")],
    simulate: Annotated[bool, typer.Option("--simulate", help="dry runs on the simulated bench")] = False,
    station: StationOpt = None,
    max_parallel: MaxPar = 1,
    no_runner: NoRunner = False,
    wait: Wait = None,
    cycler: CyclerOpt = None,
    approve: Approve = False,
    db: Db = None,
) -> None:
    """Plan every point, record the campaign, submit each planned cell as a run request and run them (a local
    runner unless --no-runner); cells whose plan fails are reported and never queued."""
    from labctl.campaign.drive import start
    from labctl.protocol.problems import FileProblemsError

    store = _open(db)
    try:
        try:
            cid = start(store, file, simulate=simulate, say=_say)
        except FileProblemsError as exc:
            _problems(exc, False)
            return
        _say(f"campaign {cid} recorded; resume it with `labctl campaign resume {cid}`")
        _drive(store, cid, station, max_parallel, no_runner, wait, approve, cycler)
    finally:
        store.close()


@campaign_app.command("resume")
def resume(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    station: StationOpt = None,
    max_parallel: MaxPar = 1,
    no_runner: NoRunner = False,
    wait: Wait = None,
    cycler: CyclerOpt = None,
    approve: Approve = False,
    db: Db = None,
) -> None:
    """Go on with a campaign whose process stopped: cells already submitted are not submitted again."""
    store = _open(db)
    try:
        _drive(store, campaign_id, station, max_parallel, no_runner, wait, approve, cycler)
    finally:
        store.close()


def _pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"`{v}` is not NAME=VALUE", param_hint="--value")
        out[name.strip()] = value.strip()
    return out


@campaign_app.command("approve")
def approve_cmd(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    suggestion_id: Annotated[int, typer.Argument(help="suggestion id (`campaign status ID --json`)")],
    value: Annotated[list[str] | None, typer.Option(
        "--value", "-v", help="edit: NAME=VALUE for a factor (give every factor); default: as suggested",
    )] = None,
    db: Db = None,
) -> None:
    """Accept a planner campaign's pending suggestion, as suggested or edited (values checked by the factor
    rules, then planned); the campaign's process (`campaign resume ID`) runs it. A finished or cancelled
    campaign refuses."""
    import getpass

    from labctl.campaign import state, suggestions

    values = _pairs(value) if value else None
    store = _open(db)
    try:
        camp = state.get(store, campaign_id)
        rid = suggestions.approve(store, campaign_id, suggestion_id, values=values, actor=getpass.getuser())
    finally:
        store.close()
    what = "fabrication request" if state.is_linked(camp) else "request"
    _say(f"suggestion {suggestion_id} " + (f"queued as {what} {rid}" if rid is not None
                                           else "refused by its plan (not queued)"))


@campaign_app.command("reject")
def reject_cmd(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    suggestion_id: Annotated[int, typer.Argument(help="suggestion id (`campaign status ID --json`)")],
    reason: Annotated[str, typer.Option("--reason", help="why (audited)")] = "rejected at the command line",
    db: Db = None,
) -> None:
    """Turn a planner campaign's pending suggestion down; it never runs and does not spend the budget."""
    import getpass

    from labctl.campaign import suggestions

    store = _open(db)
    try:
        suggestions.reject(store, campaign_id, suggestion_id, actor=getpass.getuser(), reason=reason)
    finally:
        store.close()
    _say(f"suggestion {suggestion_id} rejected")


@campaign_app.command("cancel")
def cancel_cmd(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    reason: Annotated[str, typer.Option("--reason", help="why (audited)")] = "",
    db: Db = None,
) -> None:
    """Stop a running campaign: its queued requests are cancelled, nothing more is queued or approved. Runs
    already started go on and are observed when they end (abort one with `labctl abort RUN`)."""
    import getpass

    from labctl.campaign import state

    store = _open(db)
    try:
        out = state.cancel(store, campaign_id, actor=getpass.getuser(), reason=reason)
    finally:
        store.close()
    running = out["running"]
    _say(f"campaign {campaign_id} cancelled: {len(out['cancelled'])} queued request(s) cancelled"
         + (f"; run(s) {', '.join(map(str, running))} left running (`labctl abort RUN` stops one)"
            if running else ""))


@campaign_app.command("status")
def status(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="refresh live until the campaign ends "
                                         "(Ctrl-C to stop watching; the campaign goes on)")] = False,
    every: Annotated[float, typer.Option("--every", help="with --follow: seconds between looks")] = 2.0,
    db: Db = None,
) -> None:
    """Each cell of the campaign: factor values, request and run, and what its life says so far."""
    from labctl.campaign import lineage, state

    console, _ = _consoles()
    store = _open(db)
    try:
        if follow and not as_json:
            _follow(store, campaign_id, console, max(every, 0.2))
            return
        state.observe(store, campaign_id)  # cells whose run ended since the last look
        camp, rows, prog = state.get(store, campaign_id), state.points(store, campaign_id), \
            state.progress(store, campaign_id)
        cells = lineage.lineage(store, campaign_id) if state.is_linked(camp) else []
    finally:
        store.close()
    if as_json:
        print_json(console, {"campaign": {k: v for k, v in camp.items() if k not in ("text", "protocols")},
                             "progress": prog, "points": rows, "lineage": cells,
                             "suggestions": _suggestions(db, camp)})
        return
    print_table(console, *_status_table(camp, rows, prog))
    if cells:
        print_table(console, *_lineage_table(campaign_id, cells))


def _suggestions(db: str | None, camp: dict[str, Any]) -> list[dict[str, Any]]:
    """A planner campaign's proposals (each with the hash of what it was based on and its decision)."""
    from labctl.campaign import suggestions

    if not suggestions.is_planned(camp):
        return []
    store = _open(db)
    try:
        return suggestions.all_suggestions(store, camp["id"])
    finally:
        store.close()


def _follow(store: Any, campaign_id: int, console: Any, every: float) -> None:
    """`status --follow`: the table redrawn in place (rich Live) until the campaign is finished (or,
    cancelled, has no run left going)."""
    import time

    from rich.live import Live

    from labctl.campaign import state
    from labctl.cli.output import table

    def look() -> tuple[Any, bool]:
        state.observe(store, campaign_id)
        camp, rows, prog = state.get(store, campaign_id), state.points(store, campaign_id), \
            state.progress(store, campaign_id)
        cols, body, title = _status_table(camp, rows, prog)
        done = camp["state"] == "finished" or (camp["state"] != "running" and not prog["pending"])
        return table(cols, body, width=console.width, title=title), done

    try:
        view, done = look()
        with Live(view, console=console, auto_refresh=False) as live:
            while not done:
                time.sleep(every)
                view, done = look()
                live.update(view, refresh=True)
    except KeyboardInterrupt:
        pass


def _status_table(camp: dict[str, Any], rows: list[dict[str, Any]], prog: dict[str, int]
                  ) -> tuple[list[Any], list[list[Any]], str]:
    from labctl.api.campaign import parse_campaign_factors

    names = parse_campaign_factors(camp["text"])
    cols = [Col("#", key=True, justify="right"), *(Col(n) for n in names), Col("request", key=True),
            Col("run", key=True, justify="right"), Col("status", key=True), Col("hours", justify="right"),
            Col("reason", wrap=True)]
    table = []
    for r in rows:
        hours = "" if r["hours"] is None else f"{r['hours']:.4g}"
        table.append([r["seq"] + 1, *(r["values"].get(n, "") for n in names), r["request_state"] or "",
                      r["run_id"] or "", r["status"] or "", hours,
                      r["reason"] or "; ".join(r["plan_errors"]) or r["request_reason"]])
    return cols, table, f"campaign {camp['id']} {camp['name']} ({camp['state']}): " + ", ".join(
        f"{k} {v}" for k, v in prog.items())


def _lineage_table(campaign_id: int, cells: list[dict[str, Any]]) -> tuple[list[Any], list[list[Any]], str]:
    """A linked campaign's cells: sample -> fabrication run -> cell (who assembled it) -> test run."""
    prefix = f"campaign{campaign_id}-"  # samples and channels are named after the campaign
    cols = [Col("#", key=True, justify="right"), Col("sample", key=True), Col("fab run", justify="right"),
            Col("assembled by"), Col("test run", justify="right"), Col("channel"), Col("state", key=True),
            Col("reason", wrap=True)]
    body = [[c["seq"] + 1, c["sample_id"].removeprefix(prefix), c["fabrication_run"] or "",
             c["assembly"].get("acknowledged_by") or "", c["test_run"] or "",
             (c["channel"] or "").removeprefix(prefix), c["state"], c["reason"]] for c in cells]
    return cols, body, "lineage: sample -> fabrication run -> cell -> test run"


@campaign_app.command("report")
def report(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for km.png and report.md")] = Path("."),
    db: Db = None,
) -> None:
    """Kaplan–Meier curves per condition (PNG) and a Markdown report with Weibull median lives."""
    from labctl.api.campaign import CampaignHandle
    from labctl.campaign import state

    store = _open(db)
    try:
        state.get(store, campaign_id)
        state.observe(store, campaign_id)
        paths = CampaignHandle(store, campaign_id).report(out)
    finally:
        store.close()
    for p in paths.values():
        _say(f"wrote {p}")


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")
