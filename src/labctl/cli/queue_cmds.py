"""Run requests: `labctl submit`, `labctl queue list|show|cancel`, `labctl runner`, `labctl worker`, `labctl
workers` (see `labctl.queue`)."""

from __future__ import annotations

import getpass
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from labctl.cli.output import Col, print_table
from labctl.errors import ConfigError

queue_app = typer.Typer(help="Run requests: list, show (why one waits), cancel.", no_args_is_help=True)

Db = Annotated[str | None, typer.Option("--db", envvar="LABCTL_DB", help="Database URL or SQLite file.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
_REL = re.compile(r"^\+(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _console() -> Any:
    from labctl.cli import console

    return console


def _open(db: str | None, *, read_only: bool = False) -> Any:
    from labctl.store import Store

    return Store.open(db, read_only=read_only)


def parse_not_before(text: str | None, now: float | None = None) -> float | None:
    """`+30m` (s, m, h, d from now) or an ISO 8601 date/time (local time unless it names its zone)."""
    if text is None:
        return None
    now = time.time() if now is None else now
    m = _REL.match(text.strip())
    if m:
        return now + float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ConfigError(
            f"--not-before: {text!r} is neither +N[s|m|h|d] nor an ISO 8601 date/time"
        ) from None


def _pairs(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in items or []:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-p expects name=value, got {p!r}")
        out[key.strip()] = value.strip()
    return out


def submit_cmd(
    file: Annotated[Path, typer.Argument(help="Protocol file (YAML).")],
    param: Annotated[list[str] | None, typer.Option("-p", "--param", help="Parameter: name=value.")] = None,
    sample: Annotated[str | None, typer.Option("--sample", help="Sample id.")] = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher starts first.")] = 0,
    not_before: Annotated[
        str | None, typer.Option("--not-before", help="Not before +N[s|m|h|d] or an ISO date/time.")
    ] = None,
    simulate: Annotated[
        bool, typer.Option("--simulate", help="A dry run (served by --simulate runners).")
    ] = False,
    realtime: Annotated[bool, typer.Option("--realtime", help="Dry run on the wall clock.")] = False,
    instrument: Annotated[
        list[str] | None,
        typer.Option("--instrument", help="Must run on this instrument (role or lease key)."),
    ] = None,
    operator: Annotated[str | None, typer.Option("--operator", help="Who asks.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Queue a run of a protocol; a runner or worker whose station can serve it starts it."""
    from labctl.queue import submit

    rid = submit(
        file,
        parameters=_pairs(param),
        sample=sample,
        priority=priority,
        not_before=parse_not_before(not_before),
        simulate=simulate,
        realtime=realtime,
        instruments=instrument or [],
        requested_by=operator or getpass.getuser(),
        db=db,
    )
    if as_json:
        _console().print_json(json.dumps({"request_id": rid}))
    else:
        _console().print(
            f"request {rid} queued ({file}); `labctl queue show {rid}` follows it", highlight=False
        )


@queue_app.command("list")
def queue_list(
    state: Annotated[str | None, typer.Option("--state", help="Only requests in this state.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List run requests, oldest first."""
    from labctl.store import requests

    store = _open(db, read_only=True)
    try:
        rows = requests.listing(store, state=state)
    finally:
        store.close()
    if as_json:
        _console().print_json(json.dumps(rows, default=str))
        return
    print_table(_console(), REQUEST_COLUMNS, [
        (r["id"], r["protocol_name"], r["state"], r["priority"], r["sample_id"], r["requested_by"],
         r["worker"], r["run_id"], r["reason"])
        for r in rows
    ], title=f"{len(rows)} run requests")


REQUEST_COLUMNS = (
    Col("id", key=True, justify="right"),
    Col("protocol", min=16),
    Col("state", key=True),
    Col("prio", key=True, justify="right", drop=3),
    Col("sample"),
    Col("by", drop=4),
    Col("worker", drop=2),
    Col("run", key=True, justify="right"),
    Col("reason", drop=1),
)
WORKER_COLUMNS = (
    Col("name", key=True),
    Col("kind", key=True),
    Col("station"),
    Col("host", drop=3),
    Col("pid", key=True, justify="right", drop=4),
    Col("state", key=True),
    Col("alive", key=True),
    Col("heartbeat", key=True, drop=2),
    Col("current runs", wrap=True, drop=1),
)


def request_view(store: Any, request_id: int) -> dict[str, Any]:
    """The request with, while it is queued, why it still waits (computed now, from the live workers)."""
    from labctl.queue.matching import why_waiting
    from labctl.store import requests

    out = requests.get(store, request_id)
    out.pop("protocol_text", None)
    if out["state"] == "queued":
        from sqlalchemy import select

        from labctl.store.models import Lease

        with store.engine.connect() as conn:
            leased = {r.instrument: r.run_id for r in conn.execute(select(Lease.instrument, Lease.run_id))}
            conn.rollback()
        out["waiting"] = why_waiting(requests.raw(store, request_id), requests.live_workers(store), leased)
    return out


@queue_app.command("show")
def queue_show(
    request_id: Annotated[int, typer.Argument(help="Request id.")], db: Db = None, as_json: Json = False
) -> None:
    """One request: its state, who took it, its run, and why it still waits."""
    store = _open(db, read_only=True)
    try:
        view = request_view(store, request_id)
    finally:
        store.close()
    if as_json:
        _console().print_json(json.dumps(view, default=str))
        return
    for key, value in view.items():
        _console().print(f"[bold]{key}[/]: {value}", highlight=False)


@queue_app.command("cancel")
def queue_cancel(
    request_id: Annotated[int, typer.Argument(help="Request id.")],
    operator: Annotated[str | None, typer.Option("--operator", help="Who cancels.")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    db: Db = None,
) -> None:
    """Cancel a queued request (a started one is stopped with `labctl abort RUN`)."""
    from labctl.store import requests

    store = _open(db, read_only=True)
    try:
        requests.cancel(store, request_id, actor=operator or getpass.getuser(), reason=reason)
    finally:
        store.close()
    _console().print(f"request {request_id} cancelled")


Station = Annotated[str | None, typer.Option("--station", "-s", help="Station file.")]
Simulate = Annotated[bool, typer.Option("--simulate", help="A dry-run bench: serve dry-run requests.")]
MaxPar = Annotated[int, typer.Option("--max-parallel", help="Runs at a time.")]
Name = Annotated[str | None, typer.Option("--name", help="Worker name (default KIND@HOST).")]


def _station(station: str | None, simulate: bool) -> Path:
    from labctl.cli.run_cmds import _find_station

    path = _find_station(station, simulate)
    if not path.is_file():
        raise ConfigError(f"{path}: no such station file")
    _refuse_rack(path)
    return path


def _refuse_rack(path: Path) -> None:
    """A rack file (a multi-channel cycler) is not a station: a runner or worker serves one station, so name
    the channel stations to serve instead (one runner each; `labctl campaign run` serves a rack itself)."""
    from labctl.campaign.channels import is_rack, load_rack

    if not is_rack(path):
        return
    rack = load_rack(path)
    first = rack.channels[0].path
    raise ConfigError(
        f"{path} is a rack of {len(rack.channels)} channel stations ({rack.name}), not a station: a runner "
        f"or worker serves one station. Start one per channel, e.g. `labctl runner --station {first}`; the "
        "channel station files: " + ", ".join(str(ch.path) for ch in rack.channels)
        + ". (A linked campaign whose `cycler:` is this rack serves every channel itself.)"
    )


def runner_cmd(
    station: Station = None,
    simulate: Simulate = False,
    max_parallel: MaxPar = 1,
    once: Annotated[bool, typer.Option("--once", help="Exit when nothing is left to run here.")] = False,
    name: Name = None,
    db: Db = None,
) -> None:
    """Run queued requests on this PC, each as its own `labctl run` process (the embedded default)."""
    from labctl.queue.runner import make_dispatcher, run_runner

    store = _open(db)
    try:
        d = make_dispatcher(
            store,
            station=_station(station, simulate),
            simulate=simulate,
            max_parallel=max_parallel,
            name=name,
            kind="runner",
        )
        counts = run_runner(d, once=once, say=lambda s: _console().print(s, highlight=False))
    finally:
        store.close()
    _console().print("requests: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)


def worker_cmd(
    station: Station = None,
    simulate: Simulate = False,
    max_parallel: MaxPar = 1,
    name: Name = None,
    db: Db = None,
) -> None:
    """A bench worker on procrastinate (the store on PostgreSQL): runs the requests this station can serve."""
    from labctl.queue.runner import make_dispatcher
    from labctl.queue.worker import run_worker

    store = _open(db)
    try:
        if store.engine.dialect.name != "postgresql":
            raise ConfigError(
                "labctl worker needs the store on PostgreSQL (--db postgresql://...); "
                "on SQLite use `labctl runner`"
            )
        d = make_dispatcher(
            store,
            station=_station(station, simulate),
            simulate=simulate,
            max_parallel=max_parallel,
            name=name,
            kind="worker",
        )
        run_worker(d, say=lambda s: _console().print(s, highlight=False))
    finally:
        store.close()


def workers_cmd(db: Db = None, as_json: Json = False) -> None:
    """Runners and workers: station, heartbeat, alive, current runs."""
    from labctl.store import requests

    store = _open(db, read_only=True)
    try:
        rows = requests.workers(store)
    finally:
        store.close()
    if as_json:
        _console().print_json(json.dumps(rows, default=str))
        return
    print_table(_console(), WORKER_COLUMNS, [
        (w["name"], w["kind"], w["station_name"], w["host"], w["pid"], w["state"],
         "yes" if w["alive"] else "NO", (w["heartbeat_at"] or "")[:23], _current(w["current"]))
        for w in rows
    ], title=f"{len(rows)} workers")


def _current(current: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"req {c['request_id']}" + (f" run {c['run_id']} {c['run_state']}" if c["run_id"] else "")
        for c in current
    )


def register(app: typer.Typer) -> None:
    """Add `submit`, `queue`, `runner`, `worker` and `workers`."""
    app.command("submit")(submit_cmd)
    app.add_typer(queue_app, name="queue")
    app.command("runner")(runner_cmd)
    app.command("worker")(worker_cmd)
    app.command("workers")(workers_cmd)
