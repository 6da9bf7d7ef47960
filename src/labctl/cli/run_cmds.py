"""`labctl run FILE` and the run controls `labctl pause|resume|abort|ack RUN` (through the store)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from labctl.cli.output import esc, visible
from labctl.errors import ConfigError


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
    from labctl.api.submit import find_station  # one resolution for `labctl run` and `Lab.submit`

    return find_station(station, simulate)


def _recover_holders(store: Any, keys: list[str], *, quiet: bool) -> None:
    """Before leasing: a run that died holding one of these instruments is recovered first (its instruments
    made safe and recorded, the run marked interrupted, its leases released), as `labctl recover` would."""
    from labctl.cli import console
    from labctl.cli.store_cmds import describe_recovery
    from labctl.engine.recovery import recover_dead_runs

    for done in recover_dead_runs(store, holding=set(keys)):
        if not quiet:
            console.print(describe_recovery(done.as_dict()), highlight=False, soft_wrap=True)


def _checked_option(option: str, value: str | None, kind: str) -> str | None:
    """`--sample`/`--operator` checked as the protocol file's own fields are (same validators)."""
    if value is None:
        return None
    from labctl.protocol.fields import check_text

    try:
        return check_text(kind, value, option)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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
    from labctl.compose import prepare_run
    from labctl.engine.progress import LiveDisplay, summary_json, summary_table

    sample = _checked_option("--sample", sample, "name")
    operator = _checked_option("--operator", operator, "label")
    prepared = prepare_run(file, station=_find_station(station, simulate), simulate=simulate, seed=seed,
                           realtime=realtime, overrides=_overrides(param or []), sample_id=sample)
    spec = prepared.spec
    store = None
    try:
        store = _open_store(db)
        if hasattr(store, "check_audit_key"):
            store.check_audit_key()  # another key than the chain's: refused before anything is recorded
        _recover_holders(store, prepared.lease_keys, quiet=as_json)
        display = None if as_json else LiveDisplay(console, name=esc(spec.name), clock=prepared.clock,
                                                   estimates=prepared.estimates)
        r = prepared.make_run(
            store,
            operator=operator or getpass.getuser(),
            interactive=interactive,
            progress=display or (lambda k, d: None),
            prompt=None if as_json or (simulate and not interactive) else _terminal_prompt,
        )
        _interrupt_until_ended(r)
        if display is not None:
            with display:
                result = r.execute()
        else:
            result = r.execute()
    finally:
        _ignore_late_signals()  # the run has ended (safe state done): a late Ctrl-C must not cut the summary
        prepared.close()
        store_error = _try(store.flush) if store is not None and hasattr(store, "flush") else None
    label = _db_label(store, db)
    if as_json:
        console.print_json(json.dumps(summary_json(result, db=label, name=spec.name), default=str))
    else:
        console.print()
        from labctl.display import protocol_units

        units = protocol_units(spec.text, spec.parameters)
        console.print(summary_table(result, units), markup=False)  # step reasons carry instrument replies
        console.print(
            f"state [bold]{result.state.value}[/] ({esc(result.reason)}); {result.points} data points; "
            f"run {result.run_id} in {esc(label)}",
            highlight=False,
            soft_wrap=True,
        )
        if r.progress.failed is not None:  # recorded as progress.failed; the run went on without the display
            from rich.text import Text

            note = f"the live display stopped after an error: {r.progress.failed}"
            console.print(Text(visible(note), style="yellow"), soft_wrap=True)
        bad = [s for s in result.safe if not s.ok]
        for s in bad:
            console.print(
                f"[bold red]safe state NOT confirmed[/] for {esc(s.role)}: {esc(s.error)}", highlight=False,
                soft_wrap=True,
            )
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


def _interrupt_until_ended(run: Any) -> None:
    """Ctrl-C / SIGTERM outside the run's own handling (`Control.signals`, which restores this handler when
    it exits): before the run has ended they interrupt as usual; once its end is recorded (safe state done)
    they are ignored, so a hammered key cannot cut the summary between the run and `_ignore_late_signals`."""
    import signal
    import threading

    from labctl.engine.machine import TERMINAL

    def handler(signum: int, frame: Any) -> None:
        if run.machine.state not in TERMINAL:
            raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)


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

        operator = _checked_option("--operator", operator, "label")
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
