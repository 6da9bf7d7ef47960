"""kill -9 of a bench run (real clock, instruments in another process), then `labctl recover` makes them safe.

The instruments are the simulators served by `labctl sim serve --tcp` in their own process, so they outlive
the killed run exactly as real instruments do: the sample is left lowered into the bath with the stirrer
on. `labctl recover` must rebuild the drivers from the station the run recorded, raise the stage, stop the
stirrer and pumps, record each confirmation in the run's audit trail and release the leases.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.clock import RealClock
from labctl.compose import station_from
from labctl.engine.instruments import build_instruments
from labctl.store import Store

ROOT = Path(__file__).resolve().parents[2]
LABCTL = [sys.executable, "-m", "labctl"]
STATION = ROOT / "stations" / "simulated.yaml"
PROTOCOL = """\
labctl: 1
name: immersion left in the bath by a crash
sample: {id: CRASH-1, area: 1 cm^2}
steps:
  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.05 M, volume: 1 mL,
                   rate: 8 mL/min, stir: 200 rpm, settle: 0.5 s}
  - immerse: {bath: alloy, depth: 10 mm, speed: 10 mm/s, time: 120 s}
"""


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def served_station(tmp_path):
    """`labctl sim serve --tcp` in its own process; yields the station file pointing at it."""
    out = tmp_path / "served.yaml"
    proc = subprocess.Popen(
        [*LABCTL, "sim", "serve", "--json", "--station-out", str(out), "-s", str(STATION)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        assert json.loads(line)["roles"]
        yield out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def probe(station):
    """Our own connection to the served stage and hotplate, to see their state without labctl's say-so."""
    inst = build_instruments(station, ["stage", "hotplate"], clock=RealClock())
    for i in inst.values():
        i.connect()
    try:
        yield inst
    finally:
        for i in inst.values():
            i.close()


def _in_bath_run(db: Path) -> int | None:
    if not db.exists():
        return None
    try:
        with Store.open(f"sqlite:///{db}") as store:
            for run in store.runs():
                if any(e["kind"] == "stage.in_bath" for e in store.events(run["id"])):
                    return run["id"]
    except Exception:
        return None
    return None


@pytest.mark.timeout(120)
def test_recover_makes_a_killed_bench_runs_instruments_safe(tmp_path, served_station, monkeypatch):
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "audit.key"))
    db = tmp_path / "bench.db"
    (tmp_path / "crash.yaml").write_text(PROTOCOL)
    env = {**os.environ, "LABCTL_AUDIT_KEY": str(tmp_path / "audit.key"), "LABCTL_DB": str(db)}
    run = subprocess.Popen(
        [*LABCTL, "run", "crash.yaml", "--station", str(served_station), "--json"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        run_id = _wait_for(lambda: _in_bath_run(db), 60, "the sample to be lowered into the bath")
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)

    # The crash left the sample in the bath and the stirrer running: check it on the instruments themselves.
    _, station = station_from(served_station)
    with probe(station) as inst:
        assert inst["stage"].position()[1] < -0.02, "before recovery the sample is still in the bath"

    done = subprocess.run(
        [*LABCTL, "recover", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    (recovered,) = json.loads(done.stdout)
    assert recovered["run_id"] == run_id
    assert [s["kind"] for s in recovered["steps_in_doubt"]] == ["immerse"]
    safe = {s["role"]: s for s in recovered["safe"]}
    assert set(safe) == {"stage", "pump.stock", "pump.solvent", "hotplate"}
    assert all(s["ok"] for s in safe.values()), safe
    assert recovered["skipped"] == {}

    # Independently of what recover says: the stage is up and the stirrer is off.
    with probe(station) as inst:
        assert inst["stage"].position()[1] == pytest.approx(0.0, abs=1e-4)
        assert inst["hotplate"].safe_state()["stirring"] is False

    with Store.open(f"sqlite:///{db}") as store:
        detail = store.run(run_id)
        assert detail["state"] == "interrupted"
        assert detail["leases"] == []
        kinds = [(e["kind"], e["actor"]) for e in store.events(run_id)]
        assert kinds.count(("recover.safe", "labctl recover")) == 4
        assert kinds.count(("recover.identified", "labctl recover")) == 4
        assert store.verify(run_id).ok
        talked = {r["instrument"] for r in store.io(run_id)}
        assert {"stage", "hotplate"} <= talked


@pytest.mark.timeout(120)
def test_recover_records_simulated_instruments_as_ended_with_the_process(tmp_path, monkeypatch):
    """A dry run's simulators lived in its process: recover says so instead of pretending to reach them."""
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "audit.key"))
    db = tmp_path / "dry.db"
    env = {**os.environ, "LABCTL_AUDIT_KEY": str(tmp_path / "audit.key"), "LABCTL_DB": str(db)}
    (tmp_path / "crash.yaml").write_text(PROTOCOL)
    run = subprocess.Popen([*LABCTL, "run", "crash.yaml", "--simulate", "--realtime", "--json"], env=env,
                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_id = _wait_for(lambda: _in_bath_run(db), 60, "the sample to be lowered into the bath")
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
    done = subprocess.run(
        [*LABCTL, "recover", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    (recovered,) = json.loads(done.stdout)
    assert recovered["run_id"] == run_id and recovered["safe"] == []
    assert set(recovered["skipped"]) == {"stage", "pump.stock", "pump.solvent", "hotplate"}
    assert all("ended with it" in why for why in recovered["skipped"].values())
    with Store.open(f"sqlite:///{db}") as store:
        assert store.run(run_id)["state"] == "interrupted"
        assert [e["kind"] for e in store.events(run_id)].count("recover.safe_skipped") == 4
        assert store.verify(run_id).ok
