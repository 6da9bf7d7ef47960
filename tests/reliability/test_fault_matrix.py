"""Run-level instrument fault matrix (issue 9): every simulator fault kind on every role, in the middle of a
real dry run (armed when a step that uses the role starts, after preflight), through the real engine, drivers,
`labsim://` links and a SQLite store.

Each case must end in a terminal state (no hang: a pytest timeout guards it; no exception out of
`Run.execute()`, no `run.exception` traceback event), and its record must be trustworthy:

- a run that did not complete says why, naming the faulted role, with a labctl error (never a bare
  ValueError/KeyError parsed out of a bad reply);
- every instrument made ready at preflight has a recorded safe-state outcome; every *healthy* one is
  confirmed safe; a faulted one whose safe state could not be confirmed is named in the run's reason;
- every stored measurement is finite, in time order, and inside the range the same protocol stores without
  a fault (a garbled reply is never parsed into a number);
- after a dropped link the driver's first words to the instrument are its identify command (recorded as
  `re-identified after reconnect`) before anything else is sent;
- a non-idempotent command (pump RUN, RF on, stage move, Keithley INIT) whose reply is lost is never re-sent
  blindly: the next thing the instrument hears is something else (a status read).

`EXPECTED` below is the outcome table (role x kind -> outcome), measured and asserted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labctl import errors as labctl_errors
from labctl.compose import prepare_run, station_from
from labctl.drivers.aebus_rf import RF_ON, packet
from labctl.engine import errors as engine_errors
from labctl.simulators.core import FaultKind
from labctl.store import Store

ROOT = Path(__file__).resolve().parents[2]
STATION = ROOT / "stations" / "simulated.yaml"
SEED = 1

# Three short real protocols that between them use every role of the simulated bench.
PROTOCOLS = {
    "immersion": """labctl: 1
name: fault matrix immersion
sample: {id: FM-IMM, substrate: Li foil 450 um, area: 1.13 cm^2}
steps:
  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.1 M, volume: 20 mL,
                   temperature: 25 degC, stir: 200 rpm, water: 10 ppm}
  - prepare_bath: {bath: solvent, solvent: THF, volume: 20 mL}
  - immerse: {bath: alloy, depth: 12 mm, speed: 5 mm/s, time: 10 s, rinse: {bath: solvent, time: 5 s},
              dry: 10 s}
""",
    "plasma": """labctl: 1
name: fault matrix nitride
sample: {id: FM-N, substrate: Li foil 450 um, area: 1.13 cm^2}
steps:
  - nitride: {gas: N2, impurity: 0.5 ppm, flow: 80 sccm, pressure: 2 Pa, power: 50 W, ramp_rate: 50 W/min,
              base_pressure: 5e-4 Pa, time: 1 min}
""",
    "cell": """labctl: 1
name: fault matrix cell
sample: {id: FM-CELL, substrate: Li foil 450 um, area: 1.13 cm^2, li_thickness: 450 um}
steps:
  - ocv: {duration: 1 min, sample_every: 10 s}
  - eis: {frequencies: 10 kHz..1 Hz, points_per_decade: 3, amplitude: 10 mV}
  - cycle_symmetric: {current_density: 1 mA/cm^2, capacity: 0.05 mAh/cm^2, cycles: 2, sample_every: 10 s,
                      voltage_limit: 0.5 V}
""",
}


@dataclass(frozen=True)
class Target:
    """Where a role's fault fires: the `skip`+1-th message matching `match` after step `step` started."""

    protocol: str
    step: int
    match: bytes | None = None
    skip: int = 2


ROLES: dict[str, Target] = {
    "stage": Target("immersion", 2),
    "pump.stock": Target("immersion", 0, rb"^01"),      # both pumps share one RS-232 core: by address
    "pump.solvent": Target("immersion", 1, rb"^02"),
    "hotplate": Target("immersion", 0, rb"^IN_", 0),     # a query (IKA set commands have no reply)
    "gauge": Target("plasma", 0),
    "mfc": Target("plasma", 0),
    "rf": Target("plasma", 0),
    "qcm": Target("plasma", 0),
    "potentiostat": Target("cell", 2, rb"^:TRAC:DATA\?", 1),  # the 2nd buffer read of the cycling
    "eis": Target("cell", 1, rb"\A\n\Z", 0),          # the blank line that runs the EIS script
}
#: A second position per role, deeper in the run (the 13th matching message after the step started: a
#: stage descent, a pump's STP in the final safe state, temperature/flow/pressure/power/QCM polling, the
#: Keithley's trigger-state poll, an EIS script line). Asserted outcomes in `LATE_EXPECTED`.
LATE: dict[str, Target] = {
    "stage": Target("immersion", 2, None, 12),
    "pump.stock": Target("immersion", 0, rb"^01", 12),
    "pump.solvent": Target("immersion", 1, rb"^02", 12),
    "hotplate": Target("immersion", 0, None, 12),
    "gauge": Target("plasma", 0, None, 12),
    "mfc": Target("plasma", 0, None, 12),
    "rf": Target("plasma", 0, None, 12),
    "qcm": Target("plasma", 0, None, 12),
    "potentiostat": Target("cell", 2, rb"\?", 8),
    "eis": Target("cell", 0, None, 12),
}
#: the first bytes each role's driver sends to identify the instrument
IDENTIFY: dict[str, bytes] = {
    "stage": rb"^\$I", "pump.stock": rb"^01VER", "pump.solvent": rb"^02VER", "hotplate": rb"^IN_NAME",
    "gauge": rb"^AYT", "mfc": rb"^AVE", "rf": re.escape(packet(1, 128)), "qcm": rb"^!.@",
    "potentiostat": rb"^\*IDN\?", "eis": rb"^t\n",
}
#: what a driver sends to clear the line before it speaks again (not a command to the instrument)
LINE_CLEAR: dict[str, bytes] = {"gauge": b"\x03", "eis": b"Z\n"}
#: how one role's messages are told apart on a shared link
ADDRESS: dict[str, bytes] = {"pump.stock": rb"^01", "pump.solvent": rb"^02"}
#: non-idempotent commands: role -> (protocol, step, pattern)
ONE_SHOT: dict[str, tuple[str, int, bytes]] = {
    "pump.stock": ("immersion", 0, rb"^01RUN"),
    "rf": ("plasma", 0, re.escape(packet(1, RF_ON))),
    "stage": ("immersion", 2, rb"G1 "),
    "potentiostat": ("cell", 2, rb":INIT"),
}
KINDS = [k.value for k in FaultKind]
TRANSIENT = frozenset({"no_reply", "trickle", "truncate", "garbage", "late", "disconnect"})
#: The outcome table, measured: role -> the kinds after which the run COMPLETES (one bounded retry of an
#: idempotent read or setpoint, after a resync, or a reopen + re-identify); every other kind ends the run
#: FAILED, safely, with the reason recorded. Why the others fail:
#: - stage: the fault hits a move (G1), which is never retried; the run fails and the stage is lifted.
#: - eis: the fault hits the EIS script (re-running a measurement is not a retry), so the step fails.
#: - power_cycle: detected by the pump (A?R alarm), RF (control mode back to front panel), stage (banner),
#:   Keithley (its buffer is gone), EmStat (the script is lost), MFC and hotplate (after a retry they re-read
#:   what was commanded -- setpoint and gas; heater, motor and setpoint -- and say they restarted if it was
#:   lost; early in the immersion nothing was on yet, so the hotplate's retried setpoint completes); the
#:   gauge and QCM lose nothing the run still needs at that moment, so their retried exchange completes.
#: - instrument_error / stuck_busy: a refusal or a busy instrument is reported, never retried (the IKA has no
#:   error reply: its "error" is silence, retried like a lost reply).
EXPECTED: dict[str, frozenset[str]] = {
    "stage": frozenset(),
    "pump.stock": TRANSIENT,
    "pump.solvent": TRANSIENT,
    "hotplate": TRANSIENT | {"power_cycle", "instrument_error"},
    "gauge": TRANSIENT | {"power_cycle"},
    "mfc": TRANSIENT,
    "rf": TRANSIENT,
    "qcm": TRANSIENT | {"power_cycle"},
    "potentiostat": TRANSIENT,
    "eis": frozenset(),
}
#: Late position, measured: role -> kinds after which the run completes. Notes: a pump's STP whose reply is
#: lost in the final safe state is confirmed by a status read (not re-sent); a fault on an EmStat script
#: line that has no reply of its own changes nothing. (`:SYST:ERR?` is never retried: reading pops the queue.)
LATE_EXPECTED: dict[str, frozenset[str]] = {
    "stage": frozenset(),
    "pump.stock": TRANSIENT,
    "pump.solvent": TRANSIENT,
    "hotplate": TRANSIENT | {"instrument_error"},
    "gauge": TRANSIENT | {"power_cycle"},
    "mfc": TRANSIENT | {"power_cycle"},
    "rf": TRANSIENT,
    "qcm": TRANSIENT | {"power_cycle", "stuck_busy"},
    "potentiostat": TRANSIENT,
    "eis": (TRANSIENT - {"disconnect"}) | {"instrument_error"},
}
LABCTL_ERRORS = {
    name
    for mod in (labctl_errors, engine_errors)
    for name, obj in vars(mod).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
}


# -- running ------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    result: Any
    store: Store
    cores: dict[str, Any]
    events: list[dict[str, Any]]
    fault: Any = None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fault_matrix")
    for name, text in PROTOCOLS.items():
        (d / f"{name}.yaml").write_text(text)
    old = os.environ.get("LABCTL_AUDIT_KEY")
    os.environ["LABCTL_AUDIT_KEY"] = str(d / "audit.key")
    Store.open(f"sqlite:///{d / 'empty.db'}").close()
    yield d
    if old is None:
        os.environ.pop("LABCTL_AUDIT_KEY", None)
    else:
        os.environ["LABCTL_AUDIT_KEY"] = old


def dry_run(workdir: Path, protocol: str, db: Path, arm: Any = None) -> Outcome:
    """One in-process dry run as `labctl run --simulate` wires it; `arm(cores, step_index)` at each step."""
    prepared = prepare_run(workdir / f"{protocol}.yaml", station=STATION, simulate=True, seed=SEED)
    cores = {role: prepared.bench.bench.core(role) for role in prepared.roles}
    if not db.exists():  # a copy of an empty migrated database (migrating each one costs 0.1 s)
        shutil.copy(workdir / "empty.db", db)
    store = Store.open(f"sqlite:///{db}")

    def progress(kind: str, data: dict[str, Any]) -> None:
        if kind == "step.started" and arm is not None:
            arm(cores, data["index"])

    try:
        run = prepared.make_run(store, operator="matrix", progress=progress, handle_signals=False)
        result = run.execute()  # must return, never raise
    finally:
        prepared.close()
        store.flush()
    return Outcome(result, store, cores, store.events(result.run_id))


def faulted_run(workdir: Path, tmp_path: Path, role: str, kind: str, *, target: Target | None = None,
                times: int = 1) -> Outcome:
    t = target or ROLES[role]
    armed: dict[str, Any] = {}

    def arm(cores: dict[str, Any], index: int) -> None:
        if index == t.step and "fault" not in armed:
            armed["fault"] = cores[role].inject(kind, match=t.match, skip=t.skip, times=times, delay=5.0)

    out = dry_run(workdir, t.protocol, tmp_path / "run.db", arm)
    out.fault = armed.get("fault")
    assert out.fault is not None and out.fault._used >= 1, "the fault never fired"
    return out


STREAMS = ("cycling", "ocv", "eis", "ce", "qcm")


@pytest.fixture(scope="module")
def baselines(workdir: Path) -> dict[str, dict[str, Any]]:
    """Each protocol without a fault: it completes; the value range of every stored column."""
    out: dict[str, dict[str, Any]] = {}
    for name in PROTOCOLS:
        o = dry_run(workdir, name, workdir / f"base-{name}.db")
        try:
            assert o.result.state.value == "completed", o.result.reason
            ranges = {}
            for stream in STREAMS:
                for col, values in o.store.measurements(o.result.run_id, stream).items():
                    v = np.asarray(values, dtype=float)
                    v = v[np.isfinite(v)]
                    if len(v):
                        ranges[(stream, col)] = (float(v.min()), float(v.max()))
            received = {role: list(core.received) for role, core in o.cores.items()}
            points = {st: _count(o.store.measurements(o.result.run_id, st)) for st in STREAMS}
            out[name] = {"ranges": ranges, "received": received, "points": points}
        finally:
            o.store.close()
    return out


# -- checks -------------------------------------------------------------------------------------------------


def _count(columns: dict[str, Any]) -> int:
    return max((len(np.asarray(v)) for v in columns.values()), default=0)


def _data(event: dict[str, Any]) -> dict[str, Any]:
    return json.loads(event["data"]) if isinstance(event["data"], str) else event["data"]


def check_record(out: Outcome, role: str, baseline: dict[str, Any]) -> str:
    """The invariants of every case; returns the run's end state."""
    res, events = out.result, out.events
    state = res.state.value
    assert state in ("completed", "failed", "aborted"), state
    kinds = [e["kind"] for e in events]
    assert "run.exception" not in kinds, "an unexpected exception reached the run (traceback recorded)"
    terminal = [_data(e)["to"] for e in events if e["kind"] == "run.state"]
    assert terminal[-1] == state and sum(s in ("completed", "failed", "aborted") for s in terminal) == 1
    for step in res.steps:
        if step.reason and ":" in step.reason.split(" ")[0]:
            name = step.reason.split(":")[0]
            assert name in LABCTL_ERRORS or not name.isidentifier(), f"unclear step reason {step.reason!r}"
    if state != "completed":
        assert role in res.reason, res.reason  # the faulted role is named
        name = res.reason.split(":")[0]
        assert not name.isidentifier() or name in LABCTL_ERRORS, f"unclear run reason {res.reason!r}"

    ready = {_data(e)["role"] for e in events if e["kind"] == "instrument.ready"}
    safe = {_data(e)["role"] for e in events if e["kind"] == "instrument.safe"}
    unsafe = {_data(e)["role"] for e in events if e["kind"] == "instrument.safe_failed"}
    assert ready and ready <= safe | unsafe, f"no safe-state record for {ready - safe - unsafe}"
    shared = {role, *(r for r in out.cores if out.cores[r] is out.cores[role])}  # pumps share a link
    assert unsafe <= shared, f"healthy instruments not confirmed safe: {unsafe - shared}"
    for r in unsafe:
        assert "safe state not confirmed for" in res.reason and r in res.reason, res.reason

    for stream in STREAMS:
        columns = out.store.measurements(res.run_id, stream)
        if "t" in columns and len(columns["t"]) > 1:
            assert np.all(np.diff(np.asarray(columns["t"], dtype=float)) > 0), f"{stream}: time not in order"
        for col, values in columns.items():
            v = np.asarray(values, dtype=float)
            if not len(v):
                continue
            assert np.all(np.isfinite(v)), f"{stream}.{col}: non-finite values stored"
            if col == "t" or (stream, col) not in baseline["ranges"]:
                continue
            lo, hi = baseline["ranges"][(stream, col)]
            pad = 0.5 * (hi - lo) + 1e-9 * max(abs(lo), abs(hi), 1.0)
            assert lo - pad <= v.min() and v.max() <= hi + pad, (
                f"{stream}.{col} stored [{v.min():g}, {v.max():g}], fault-free run [{lo:g}, {hi:g}]")
    if state == "completed" and "points" in baseline:  # a retried read neither lost nor duplicated points
        got = {st: _count(out.store.measurements(res.run_id, st)) for st in STREAMS}
        assert got == baseline["points"], f"stored points {got}, fault-free run {baseline['points']}"
    return state


def check_reidentified(out: Outcome, role: str) -> None:
    """After the link was reopened, the first bytes sent are the identify command."""
    mine = ADDRESS.get(role)
    rows = [r for r in out.store.io(out.result.run_id) if role in r["instrument"].split("+")
            and (mine is None or r["direction"] != "tx" or re.search(mine, r["bytes"]))]
    opens = [i for i, r in enumerate(rows) if r["direction"] == "event" and r["note"].startswith("open")]
    assert len(opens) >= 2, "the dropped link was never reopened"
    for i in opens[1:]:
        first_tx = next((r for r in rows[i + 1:] if r["direction"] == "tx"
                         and r["bytes"] != LINE_CLEAR.get(role)), None)
        if first_tx is None:
            continue
        assert re.search(IDENTIFY[role], first_tx["bytes"]), (
            f"first bytes after reopening: {first_tx['bytes']!r}, not the identify command")
    notes = [r["note"] for r in rows if r["direction"] == "event"]
    assert "re-identified after reconnect" in notes or out.result.state.value != "completed"


# -- the matrix ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", list(ROLES))
def test_fault_mid_run(workdir, baselines, tmp_path, role, kind):
    out = faulted_run(workdir, tmp_path, role, kind)
    try:
        state = check_record(out, role, baselines[ROLES[role].protocol])
        expected = "completed" if kind in EXPECTED[role] else "failed"
        assert state == expected, f"{role} x {kind}: {state} ({out.result.reason})"
        if state == "completed":  # the fault did bite, and one bounded retry cured it
            notes = [r["note"] for r in out.store.io(out.result.run_id) if role in r["instrument"].split("+")]
            retries = [n for n in notes if n.startswith("retry ")]
            assert retries and all(n.startswith("retry 1/1 ") for n in retries), notes[-10:]
        if kind == "disconnect":
            check_reidentified(out, role)
    finally:
        out.store.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", list(LATE))
def test_fault_late_in_the_run(workdir, baselines, tmp_path, role, kind):
    out = faulted_run(workdir, tmp_path, role, kind, target=LATE[role])
    try:
        state = check_record(out, role, baselines[LATE[role].protocol])
        expected = "completed" if kind in LATE_EXPECTED[role] else "failed"
        assert state == expected, f"{role} x {kind}: {state} ({out.result.reason})"
        if kind == "disconnect" and state == "completed":
            check_reidentified(out, role)
    finally:
        out.store.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("role", list(ROLES))
def test_persistent_silence_ends_failed_and_says_safe_state_unconfirmed(workdir, baselines, tmp_path, role):
    """An instrument that stops answering for good: the run fails; its safe state is reported unconfirmed."""
    t = ROLES[role]
    silent = Target(t.protocol, t.step, ADDRESS.get(role), 2)  # everything to this instrument, from now on
    out = faulted_run(workdir, tmp_path, role, "no_reply", target=silent, times=0)
    try:
        assert check_record(out, role, baselines[ROLES[role].protocol]) == "failed"
        bad = {s.role for s in out.result.safe if not s.ok}
        assert role in bad and "safe state not confirmed for" in out.result.reason
    finally:
        out.store.close()


ONE_SHOT_KINDS = ["no_reply", "late", "garbage", "truncate", "disconnect"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ONE_SHOT_KINDS)
@pytest.mark.parametrize("role", list(ONE_SHOT))
def test_non_idempotent_command_never_resent_blindly(workdir, baselines, tmp_path, role, kind):
    protocol, step, pattern = ONE_SHOT[role]
    target = Target(protocol, step, pattern, 0)
    out = faulted_run(workdir, tmp_path, role, kind, target=target)
    try:
        check_record(out, role, baselines[protocol])
        received = out.cores[role].received
        mine = [m for m in received if role not in ADDRESS or re.search(ADDRESS[role], m)]
        hits = [i for i, m in enumerate(mine) if re.search(pattern, m)]
        first = hits[0]
        assert first + 1 >= len(mine) or not re.search(pattern, mine[first + 1]), (
            f"{pattern!r} re-sent right after its reply was lost")
        base = [m for m in baselines[protocol]["received"][role] if re.search(pattern, m)]
        assert len(hits) <= len(base), f"{pattern!r} sent {len(hits)} times, {len(base)} without a fault"
    finally:
        out.store.close()


def test_fault_free_protocols_complete(baselines):
    assert set(baselines) == set(PROTOCOLS)
    assert baselines["plasma"]["ranges"] and baselines["cell"]["ranges"]


def test_every_role_is_in_the_matrix():
    _, info = station_from(STATION)
    assert set(ROLES) == set(info.roles) == set(IDENTIFY)
    assert len(KINDS) == len(FaultKind) == 9
