"""Store commands: `labctl runs list|show|export|io`, `labctl audit verify|checkpoint`, `labctl recover`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from labctl.cli.output import Col, esc, print_csv, print_json, print_table, visible
from labctl.errors import ConfigError

runs_app = typer.Typer(
    help="Runs in the store: list, show, export, io (and report, compare).", no_args_is_help=True
)
audit_app = typer.Typer(
    help="The audit chain: verify it, or write a checkpoint to keep elsewhere.", no_args_is_help=True
)

Db = Annotated[str | None, typer.Option("--db", envvar="LABCTL_DB", help="Database URL or SQLite file.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Csv = Annotated[bool, typer.Option("--csv", help="The table as CSV.")]


def _open(db: str | None, *, read_only: bool = True) -> Any:
    """The store; read-only commands refuse a missing file or another application's database instead of
    creating labctl's tables in it."""
    from labctl.store import Store

    return Store.open(db, read_only=read_only)


def _console() -> Any:
    from labctl.cli import console

    return console


def _print_json(obj: Any) -> None:
    print_json(_console(), obj)


RUN_COLUMNS = (
    Col("id", key=True, justify="right"),
    Col("state", key=True),
    Col("mode", key=True, drop=3),
    Col("created", key=True),
    Col("protocol", min=16),
    Col("sample"),
    Col("operator", drop=4),
    Col("steps", key=True, justify="right", drop=2),
    Col("exit reason", drop=1),
)


def _run_row(r: dict[str, Any]) -> list[Any]:
    created = (r["created_at"] or "")[:16].replace("T", " ")  # minutes: the id tells runs of one minute apart
    return [
        r["id"], r["state"], r["mode"], created, r["protocol_name"], r["sample_id"] or "", r["operator"],
        r["n_steps"], r["exit_reason"] or "",
    ]


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
    as_csv: Csv = False,
) -> None:
    """List runs, oldest first."""
    from labctl.store import readonly

    filters = {"state": state, "protocol": protocol, "sample": sample, "since": since}
    con = readonly.connect(db)  # a SQLite file at the newest revision: read without SQLAlchemy (start-up)
    if con is not None:
        try:
            rows = readonly.list_runs(con, **filters)
        finally:
            con.close()
    else:
        store = _open(db)
        try:
            rows = store.runs(**filters)
        finally:
            store.close()
    if as_json:
        _print_json(rows)
    elif as_csv:
        from labctl.store.readonly import RUN_SUMMARY

        keys = list(rows[0]) if rows else [*RUN_SUMMARY, "n_steps"]
        print_csv(keys, ([r[k] for k in keys] for r in rows))
    else:
        print_table(_console(), RUN_COLUMNS, [_run_row(r) for r in rows], title=f"{len(rows)} runs")


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
    from labctl.display import run_steps

    for e in evs:
        e["data"] = json.loads(e["data"])
    values = run_steps(info)  # each step's values in the units its protocol used
    if as_json:  # SI values with their unit's name
        steps = [
            {**s, **{k: v.json(s[k]) for k in ("params", "achieved", "summary")}}
            for s, v in zip(info["steps"], values, strict=True)
        ]
        _print_json({**info, "steps": steps, "streams": streams, "instruments": used, "events": evs})
        return
    con = _console()
    con.print(
        f"[bold]run {info['id']}[/]: {esc(info['protocol_name'])} ({esc(info['protocol_path'])}) "
        f"[bold]{esc(info['state'])}[/]"
        + (f" -- exit reason: {esc(info['exit_reason'])}" if info["exit_reason"] else ""),
        highlight=False,
        soft_wrap=True,
    )
    # user data from here on: printed as it is (never as markup), one logical line per line when piped
    plain = {"highlight": False, "markup": False, "soft_wrap": True}
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
        con.print(f"  {key}: {visible(info[key])}", **plain)
    con.print(f"  parameters: {json.dumps(info['parameters'], ensure_ascii=False)}", **plain)
    con.print(f"  versions: {', '.join(f'{k} {v}' for k, v in info['versions'].items())}", **plain)
    con.print("[bold]steps: commanded vs achieved[/]")
    for s, v in zip(info["steps"], values, strict=True):
        con.print(
            f"  [bold]#{s['index']} {esc(s['kind'])}[/] {esc(s['status'])}"
            + (f" -- {esc(s['reason'])}" if s["reason"] else ""),
            highlight=False,
            soft_wrap=True,
        )
        con.print(f"      commanded: {visible(v.text(s['params']))}", **plain)
        if s["achieved"] is not None:
            con.print(f"      achieved:  {visible(v.text(s['achieved']))}", **plain)
        summary = {k: x for k, x in (s["summary"] or {}).items() if k != "commanded"}  # commanded: above
        if summary:
            con.print(f"      summary:   {visible(v.text(summary))}", **plain)
    leases = ", ".join(x["instrument"] + (" (held)" if x["held"] else "") for x in used["leases"])
    con.print(f"  instruments leased: {visible(leases) or 'none'}", **plain)
    talked = ", ".join(f"{x['instrument']} ({x['records']} records)" for x in used["io"])
    con.print(f"  instrument I/O: {visible(talked) or 'none'}", **plain)
    for st in streams:
        con.print(f"  stream {st['stream']} (step id {st['step_id']}): {st['points']} points", **plain)
    shown = evs[-events:] if events else evs
    print_table(
        con,
        EVENT_COLUMNS,
        [
            (e["seq"], _iso(e["t"]), e["kind"], e["actor"], json.dumps(e["data"], ensure_ascii=False))
            for e in shown
        ],
        title=f"audit events ({len(shown)} of {len(evs)})",
    )


EVENT_COLUMNS = (
    Col("seq", key=True, justify="right"),
    Col("time", key=True),
    Col("kind", key=True),
    Col("actor", drop=1),
    Col("data", wrap=True, min=30),
)


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
    meta = path.with_name(path.name + ".meta.json") if fmt == "csv" else None  # parquet: in the schema
    if as_json:
        _print_json({"path": str(path), "rows": rows, "columns": cols, "metadata": str(meta or path)})
    else:
        _console().print(
            f"{rows} rows x {len(cols)} columns written to {path}"
            + (f" (provenance and step values in {meta})" if meta else ""),
            highlight=False, markup=False, soft_wrap=True,
        )


@runs_app.command("io")
def io(
    run: Annotated[int, typer.Argument(help="Run id.")],
    instrument: Annotated[str | None, typer.Option("--instrument", help="Only this instrument.")] = None,
    db: Db = None,
    as_json: Json = False,
    as_csv: Csv = False,
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
    if as_csv:
        print_csv(
            ["t", "instrument", "direction", "length", "sha256", "note", "data_hex"],
            (
                [r["t"], r["instrument"], r["direction"], r["length"], r["sha256"], r["note"],
                 (r["bytes"] or b"").hex()]
                for r in rows
            ),
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
            soft_wrap=True,  # one exchange per line, whatever the width
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
            f"[bold red]audit chain BROKEN[/] at seq {result.first_bad_seq}: {esc(result.reason)} "
            f"({result.checked} entries verified before it)",
            highlight=False,
            soft_wrap=True,
        )
        if bad is not None:
            con.print(visible(json.dumps(bad, default=str)), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    con.print(
        f"audit chain OK: {result.checked} entries verified" + (" against the checkpoint" if cp else "")
    )
    if problems:
        con.print(f"[bold red]records DO NOT match the chain[/] ({len(problems)} problems):", highlight=False)
        for p in problems:
            con.print(f"  {visible(p)}", highlight=False, markup=False, soft_wrap=True)
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
        _console().print(f"checkpoint at seq {cp['seq']} written to {out}", highlight=False, markup=False)
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
        con.print(describe_recovery(r), highlight=False, soft_wrap=True)


def describe_recovery(r: dict) -> str:
    """One paragraph (rich markup, data escaped) for a recovered run: steps in doubt, what was made safe, what
    needs a person."""
    steps = ", ".join(f"{s['index']} ({esc(s['kind'])})" for s in r["steps_in_doubt"]) or "none"
    lines = [f"run {r['run_id']} marked interrupted; steps in doubt: {steps}"]
    for s in r["safe"]:
        role = esc(s["role"])
        if s["ok"]:
            lines.append(f"  {role}: safe ({esc(', '.join(f'{k}={v}' for k, v in s['confirmed'].items()))})")
        else:
            lines.append(
                f"  {role}: [bold red]NOT confirmed safe[/] ({esc(s['error'])}) -- make it safe by hand"
            )
    for role, why in r["skipped"].items():
        lines.append(f"  {esc(role)}: not reached ({esc(why)})")
    lines.append(f"  leases released: {esc(', '.join(r['instruments'])) or 'none'}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add `runs`, `audit` and `recover`."""
    app.add_typer(runs_app, name="runs")
    app.add_typer(audit_app, name="audit")
    app.command("recover")(recover)
