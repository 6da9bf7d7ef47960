"""`labctl run FILE` and the run controls `labctl pause|resume|abort|ack RUN` (through the store)."""

from __future__ import annotations

import contextlib
import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from labctl.errors import ConfigError

SIMULATED_STATION = "stations/simulated.yaml"


def _overrides(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-p expects name=value, got {p!r}")
        out[key.strip()] = value.strip()
    return out


def _open_store(db: str | None) -> Any:
    try:
        from labctl.store import Store
    except ImportError as exc:
        raise ConfigError(f"the store is not available ({exc})") from exc
    return Store.open(db)


def _db_label(store: Any, db: str | None) -> str:
    return str(getattr(store, "url", None) or db or "labctl.db")


def _find_station(station: str | None, simulate: bool) -> Path:
    if station:
        return Path(station)
    if not simulate:
        raise ConfigError("a bench run needs --station (or use --simulate for a dry run)")
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (base / SIMULATED_STATION).is_file():
            return base / SIMULATED_STATION
    raise ConfigError(f"no {SIMULATED_STATION} found; pass --station")


def _recover_holders(store: Any, keys: list[str], *, quiet: bool) -> None:
    """Before leasing: a run that died holding one of these instruments is recovered first (its instruments
    made safe and recorded, the run marked interrupted, its leases released), as `labctl recover` would."""
    from labctl.cli import console
    from labctl.cli.store_cmds import describe_recovery
    from labctl.engine.recovery import recover_dead_runs

    for done in recover_dead_runs(store, holding=set(keys)):
        if not quiet:
            console.print(describe_recovery(done.as_dict()), highlight=False)


def _terminal_prompt(message: str) -> bool:
    typer.prompt(f"{message}\nPress Enter when done", default="", show_default=False)
    return True


def run(
    file: Annotated[Path, typer.Argument(help="Protocol file (YAML).")],
    station: Annotated[str | None, typer.Option("--station", "-s", help="Station file.")] = None,
    simulate: Annotated[bool, typer.Option("--simulate", help="Dry run on the simulators.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the simulated world.")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="Simulate on the wall clock.")] = False,
    param: Annotated[
        list[str] | None, typer.Option("-p", "--param", help="Override a parameter: name=value.")
    ] = None,
    sample: Annotated[str | None, typer.Option("--sample", help="Sample id.")] = None,
    operator: Annotated[str | None, typer.Option("--operator", help="Who runs it.")] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (default $LABCTL_DB or ./labctl.db).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
    interactive: Annotated[
        bool, typer.Option("--interactive", help="Ask operator steps even in a dry run.")
    ] = False,
) -> None:
    """Run a protocol on the bench, or dry-run it on the simulators with --simulate."""
    from labctl.cli import console
    from labctl.clock import RealClock, VirtualClock
    from labctl.drivers.transport import require_simulators, sealed
    from labctl.engine import protocol_adapter as pa
    from labctl.engine.instruments import build_instruments, lease_keys, roles_for
    from labctl.engine.progress import LiveDisplay, summary_json, summary_table
    from labctl.engine.run import Run
    from labctl.engine.simulate import close_bench, make_bench, make_world

    protocol = pa.load_protocol(file, _overrides(param or []))  # a bounded read: regular files only
    station_path = _find_station(station, simulate)
    station_model, info = pa.station_from(station_path)
    spec = pa.run_spec(protocol, sample_id=sample)
    ests: list[float | None] = [None] * len(spec.steps)

    def check() -> None:
        plan = pa.plan_check(protocol, station_model)
        ests[:] = [s.duration for s in plan.steps]  # in place: the live display holds this list
        for step, estimate in zip(spec.steps, ests, strict=True):
            step.estimate_s = estimate

    roles, missing = roles_for([s.kind for s in spec.steps], info)
    if missing:
        raise ConfigError(
            f"station {info.name!r} lacks the instruments {', '.join(missing)} this protocol needs"
        )
    if simulate:  # every link an in-process simulator, or refused here, before the store or any port opens
        require_simulators({role: r.link for role, r in info.roles.items()}, station=str(station_path))
    clock = VirtualClock() if simulate and not realtime else RealClock()
    world = bench = store = None
    seal = contextlib.ExitStack()
    try:
        if simulate:
            seal.enter_context(sealed("a dry run (--simulate)"))  # the transport refuses anything else too
            world = make_world(info, clock=clock, seed=seed)
            bench = make_bench(info, clock=clock, world=world, seed=seed, roles=roles)
        store = _open_store(db)
        if hasattr(store, "check_audit_key"):
            store.check_audit_key()  # another key than the chain's: refused before anything is recorded
        _recover_holders(store, lease_keys(info, roles), quiet=as_json)
        display = None if as_json else LiveDisplay(console, name=spec.name, clock=clock, estimates=ests)
        r = Run(
            spec,
            store=store,
            instruments={},
            station=info,
            clock=clock,
            mode="dry-run" if simulate else "bench",
            seed=seed,
            operator=operator or getpass.getuser(),
            interactive=interactive,
            world=world,
            progress=display or (lambda k, d: None),
            prompt=None if as_json or (simulate and not interactive) else _terminal_prompt,
            plan_check=check,
            lease_keys=lease_keys(info, roles),
            station_text=info.text,
        )
        area = pa.sample_area(spec)
        if area:
            r.notes["cell_area"] = area
        run_id = r.create()
        try:
            r.instruments = build_instruments(info, roles, clock=clock, recorder=store.io_recorder(run_id))
        except Exception as exc:  # recorded as failed, not left an orphan in `created`; then reported
            r.refuse(str(exc))
            raise
        if display is not None:
            with display:
                result = r.execute()
        else:
            result = r.execute()
    finally:
        _ignore_late_signals()  # the run has ended (safe state done): a late Ctrl-C must not cut the summary
        if bench is not None:
            close_bench(bench)
        store_error = _try(store.flush) if store is not None and hasattr(store, "flush") else None
        seal.close()
    label = _db_label(store, db)
    if as_json:
        console.print_json(json.dumps(summary_json(result, db=label, name=spec.name), default=str))
    else:
        console.print()
        console.print(summary_table(result))
        console.print(
            f"state [bold]{result.state.value}[/] ({result.reason}); {result.points} data points; "
            f"run {result.run_id} in {label}",
            highlight=False,
        )
        if r.progress.failed is not None:  # recorded as progress.failed; the run went on without the display
            note = f"the live display stopped after an error: {r.progress.failed}"
            console.print(Text(note, style="yellow"))
        bad = [s for s in result.safe if not s.ok]
        for s in bad:
            console.print(f"[bold red]safe state NOT confirmed[/] for {s.role}: {s.error}")
    store_error = _try(store.close) or store_error
    if store_error is not None:  # the summary above is what the instruments did; the store could not keep up
        from labctl.store.errors import StoreError

        raise StoreError(f"the store failed, the record of run {result.run_id} is incomplete: {store_error}")
    if not result.ok:
        raise typer.Exit(130 if result.state.value == "aborted" else 1)


def _try(call: Any) -> str | None:
    """Call; a failure becomes its first line (a database full or locked must not hide the run's summary)"""
    try:
        call()
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _ignore_late_signals() -> None:
    """After the run: Ctrl-C / SIGTERM still arriving (a hammered key) are ignored while the summary prints"""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def _control(command: str) -> Any:
    def cmd(
        run_id: Annotated[int, typer.Argument(help="Run id.")],
        operator: Annotated[str | None, typer.Option("--operator", help="Who asks.")] = None,
        db: Annotated[str | None, typer.Option("--db", help="Database URL.")] = None,
    ) -> None:
        from labctl.cli import console

        store = _open_store(db)
        try:
            store.run(run_id)
            cid = store.post_control(run_id, command, actor=operator or getpass.getuser())
        finally:
            store.close()
        console.print(
            f"{command} sent to run {run_id} (command {cid}); the run acts on it at its next safe point"
        )

    cmd.__doc__ = {
        "pause": "Pause a run at its next safe point.",
        "resume": "Resume a paused run.",
        "abort": "Abort a run (safe state on every instrument).",
        "ack": "Acknowledge a run's operator step.",
    }[command]
    return cmd


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("run")(run)
    for command in ("pause", "resume", "abort", "ack"):
        app.command(command)(_control(command))
