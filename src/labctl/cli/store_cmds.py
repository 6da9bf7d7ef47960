"""Store commands: `labctl runs list|show|export|io`, `labctl audit verify|checkpoint`, `labctl recover`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labctl.errors import ConfigError

runs_app = typer.Typer(
    help="Runs in the store: list, show, export, io (and report, compare).", no_args_is_help=True
)
audit_app = typer.Typer(
    help="The audit chain: verify it, or write a checkpoint to keep elsewhere.", no_args_is_help=True
)

Db = Annotated[str | None, typer.Option("--db", envvar="LABCTL_DB", help="Database URL or SQLite file.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _open(db: str | None, *, read_only: bool = True) -> Any:
    """The store; read-only commands refuse a missing file or another application's database instead of
    creating labctl's tables in it."""
    from labctl.store import Store

    return Store.open(db, read_only=read_only)


def _console() -> Any:
    from labctl.cli import console

    return console


def _print_json(obj: Any) -> None:
    _console().print_json(json.dumps(obj, default=str))


@runs_app.command("list")
def list_runs(
    state: Annotated[str | None, typer.Option("--state", help="Only runs in this state.")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", help="Protocol name contains this.")] = None,
    sample: Annotated[str | None, typer.Option("--sample", help="Only runs of this sample id.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Created on or after (ISO date/time, UTC).")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List runs, oldest first."""
    store = _open(db)
    try:
        rows = store.runs(state=state, protocol=protocol, sample=sample, since=since)
    finally:
        store.close()
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"{len(rows)} runs")
    for col in ("id", "protocol", "state", "mode", "sample", "operator", "created", "steps", "exit reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["protocol_name"],
            r["state"],
            r["mode"],
            r["sample_id"] or "",
            r["operator"],
            (r["created_at"] or "")[:19],
            str(r["n_steps"]),
            r["exit_reason"] or "",
        )
    _console().print(table)


@runs_app.command("show")
def show(
    run: Annotated[int, typer.Argument(help="Run id.")],
    events: Annotated[int, typer.Option("--events", help="Show the last N audit events (0: all).")] = 30,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """A run's provenance, steps (commanded vs achieved), instruments, data streams and audit events."""
    store = _open(db)
    try:
        info = store.run(run)
        streams = store.streams(run)
        evs = store.events(run)
        used = store.instruments(run)
    finally:
        store.close()
    for e in evs:
        e["data"] = json.loads(e["data"])
    if as_json:
        _print_json({**info, "streams": streams, "instruments": used, "events": evs})
        return
    con = _console()
    con.print(
        f"[bold]run {info['id']}[/]: {info['protocol_name']} ({info['protocol_path']}) "
        f"[bold]{info['state']}[/]"
        + (f" -- exit reason: {info['exit_reason']}" if info["exit_reason"] else ""),
        highlight=False,
    )
    for key in (
        "protocol_sha256",
        "station_name",
        "mode",
        "seed",
        "operator",
        "host",
        "pid",
        "sample_id",
        "created_at",
        "started_at",
        "ended_at",
    ):
        con.print(f"  {key}: {info[key]}", highlight=False)
    con.print(f"  parameters: {json.dumps(info['parameters'])}", highlight=False)
    con.print(f"  versions: {', '.join(f'{k} {v}' for k, v in info['versions'].items())}", highlight=False)
    con.print("[bold]steps: commanded vs achieved[/]")
    for s in info["steps"]:
        con.print(
            f"  [bold]#{s['index']} {s['kind']}[/] {s['status']}"
            + (f" -- {s['reason']}" if s["reason"] else ""),
            highlight=False,
        )
        con.print(f"      commanded: {_compact(s['params'])}", highlight=False, markup=False)
        if s["achieved"] is not None:
            con.print(f"      achieved:  {_compact(s['achieved'])}", highlight=False, markup=False)
        if s["summary"]:
            con.print(f"      summary:   {_compact(s['summary'])}", highlight=False, markup=False)
    leases = ", ".join(x["instrument"] + (" (held)" if x["held"] else "") for x in used["leases"])
    con.print(f"  instruments leased: {leases or 'none'}", highlight=False)
    talked = ", ".join(f"{x['instrument']} ({x['records']} records)" for x in used["io"])
    con.print(f"  instrument I/O: {talked or 'none'}", highlight=False)
    for st in streams:
        con.print(
            f"  stream {st['stream']} (step id {st['step_id']}): {st['points']} points", highlight=False
        )
    shown = evs[-events:] if events else evs
    table = Table(title=f"audit events ({len(shown)} of {len(evs)})")
    for col in ("seq", "time", "kind", "actor", "data"):
        table.add_column(col, overflow="fold")
    for e in shown:
        table.add_row(
            str(e["seq"]), _iso(e["t"]), e["kind"], e["actor"], json.dumps(e["data"], ensure_ascii=False)
        )
    con.print(table)


def _compact(d: dict[str, Any]) -> str:
    """`key=value` pairs, floats to 6 significant digits, nulls left out."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.6g}"
        if isinstance(v, dict):
            return "{" + _compact(v) + "}"
        return json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v

    return ", ".join(f"{k}={fmt(v)}" for k, v in d.items() if v is not None)


def _iso(t: float) -> str:
    from labctl.store.queries import iso

    return (iso(t) or "")[:23]


@runs_app.command("export")
def export(
    run: Annotated[int, typer.Argument(help="Run id.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    stream: Annotated[str, typer.Option("--stream", help="Measurement stream.")] = "cycling",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Export a measurement stream (cycling: Battery Data Format column names)."""
    from labctl.store.export import export_run

    store = _open(db)
    try:
        path, rows, cols = export_run(store, run, stream=stream, fmt=fmt, out=out)
    finally:
        store.close()
    if as_json:
        _print_json({"path": str(path), "rows": rows, "columns": cols})
    else:
        _console().print(f"{rows} rows x {len(cols)} columns written to {path}", highlight=False)


@runs_app.command("io")
def io(
    run: Annotated[int, typer.Argument(help="Run id.")],
    instrument: Annotated[str | None, typer.Option("--instrument", help="Only this instrument.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """The bytes exchanged with the instruments during a run."""
    store = _open(db)
    try:
        store.run(run)
        rows = store.io(run, instrument)
    finally:
        store.close()
    if as_json:
        _print_json(
            [
                {
                    **{k: v for k, v in r.items() if k != "bytes"},
                    "data": (r["bytes"] or b"").decode("latin-1"),
                }
                for r in rows
            ]
        )
        return
    con = _console()
    for r in rows:
        data = r["bytes"] or b""
        shown = repr(data[:80]) + (
            f" ... ({r['length']} bytes, sha256 {r['sha256'][:12]})" if r["sha256"] else ""
        )
        con.print(
            f"{r['t']:.6f} {r['instrument']:<14} {r['direction']:<5} {shown} {r['note']}",
            highlight=False,
            markup=False,
        )


@audit_app.command("verify")
def verify(
    run: Annotated[int | None, typer.Argument(help="Run id (default: the whole chain).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Verify the whole chain.")] = False,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Checkpoint JSON to verify against.")
    ] = None,
    db: Db = None,
) -> None:
    """Check the hash chain; print the first broken entry and exit 1 if it does not verify."""
    cp = None
    if checkpoint is not None:
        try:
            cp = json.loads(checkpoint.read_text())
            cp = {"seq": int(cp["seq"]), "hash": str(cp["hash"]), "mac": str(cp["mac"])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{checkpoint}: not a labctl checkpoint ({exc})") from exc
    store = _open(db)
    try:
        result = store.verify(None if all_ else run, cp)
        bad = None
        if not result.ok and result.first_bad_seq is not None:
            bad = next((e for e in store.events() if e["seq"] == result.first_bad_seq), None)
        problems, sealed, unsealed = store.verify_records(None if all_ else run) if result.ok else ([], 0, 0)
    finally:
        store.close()
    con = _console()
    if not result.ok:
        con.print(
            f"[bold red]audit chain BROKEN[/] at seq {result.first_bad_seq}: {result.reason} "
            f"({result.checked} entries verified before it)",
            highlight=False,
        )
        if bad is not None:
            con.print(json.dumps(bad, default=str), highlight=False, markup=False)
        raise typer.Exit(1)
    con.print(
        f"audit chain OK: {result.checked} entries verified" + (" against the checkpoint" if cp else "")
    )
    if problems:
        con.print(f"[bold red]records DO NOT match the chain[/] ({len(problems)} problems):", highlight=False)
        for p in problems:
            con.print(f"  {p}", highlight=False, markup=False)
        raise typer.Exit(1)
    con.print(
        f"records match the chain: runs, steps and {sealed} sealed measurement streams"
        + (f"; {unsealed} chunks unsealed (their writer never closed: a killed run)" if unsealed else ""),
        highlight=False,
    )


@audit_app.command("checkpoint")
def checkpoint_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the checkpoint here.")] = None,
    db: Db = None,
) -> None:
    """Print (or write) the chain head with its MAC; keep it outside the database to catch truncation."""
    store = _open(db)
    try:
        cp = store.checkpoint()
    finally:
        store.close()
    if out is not None:
        out.write_text(json.dumps(cp, indent=2) + "\n")
        _console().print(f"checkpoint at seq {cp['seq']} written to {out}")
    else:
        _print_json(cp)


@audit_app.command("key")
def key_cmd(db: Db = None) -> None:
    """The audit key in use (LABCTL_AUDIT_KEY) and its fingerprint, and the one the database expects."""
    from labctl.store import audit
    from labctl.store.db import reading

    path = audit.key_path()
    have = audit.fingerprint(audit.load_key(create=False))
    store = _open(db)
    try:
        with reading(store.engine) as conn:
            rec = audit.recorded_fingerprint(conn)
    finally:
        store.close()
    con = _console()
    con.print(f"audit key {path}: fingerprint {have}", highlight=False, markup=False)
    if rec is None:
        con.print("the database has recorded no key fingerprint yet (it is recorded on the next write)")
    elif rec[1] == have:
        con.print(f"the database expects this key (fingerprint recorded at seq {rec[0]})")
    else:
        con.print(f"[bold red]the database expects another key[/]: fingerprint {rec[1]} (seq {rec[0]})")
        raise typer.Exit(1)


def recover(
    db: Db = None,
    as_json: Json = False,
    run: Annotated[int | None, typer.Option("--run", help="Recover this run only.")] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="With --run: also when its process cannot be shown dead (audited)."),
    ] = False,
    operator: Annotated[str | None, typer.Option("--operator", help="Who forces it (default: you).")] = None,
) -> None:
    """Find runs whose process died, make the instruments they held safe, mark them interrupted."""
    import getpass

    from labctl.engine.recovery import ACTOR, recover_dead_runs, recover_one

    if force and run is None:
        raise ConfigError("--force needs --run ID: it takes over one run you know is dead")
    store = _open(db, read_only=False)
    try:
        if run is None:
            done = [r.as_dict() for r in recover_dead_runs(store)]
        else:
            actor = (operator or getpass.getuser()) if force else ACTOR
            done = [recover_one(store, run, actor=actor, force=force).as_dict()]
    finally:
        store.close()
    if as_json:
        _print_json(done)
        return
    con = _console()
    if not done:
        con.print("no dead runs")
    for r in done:
        con.print(describe_recovery(r), highlight=False)


def describe_recovery(r: dict) -> str:
    """One paragraph for a recovered run: steps in doubt, what was made safe, what needs a person."""
    steps = ", ".join(f"{s['index']} ({s['kind']})" for s in r["steps_in_doubt"]) or "none"
    lines = [f"run {r['run_id']} marked interrupted; steps in doubt: {steps}"]
    for s in r["safe"]:
        if s["ok"]:
            lines.append(f"  {s['role']}: safe ({', '.join(f'{k}={v}' for k, v in s['confirmed'].items())})")
        else:
            why = s['error']
            lines.append(f"  {s['role']}: [bold red]NOT confirmed safe[/] ({why}) -- make it safe by hand")
    for role, why in r["skipped"].items():
        lines.append(f"  {role}: not reached ({why})")
    lines.append(f"  leases released: {', '.join(r['instruments']) or 'none'}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add `runs`, `audit` and `recover`."""
    app.add_typer(runs_app, name="runs")
    app.add_typer(audit_app, name="audit")
    app.command("recover")(recover)
