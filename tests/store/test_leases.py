"""Instrument leases, stale-holder reclaim, crash recovery helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from labctl.store import LeaseConflict, Store, leases


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def age_lease(store: Store, run_id: int, *, pid: int, seconds: float) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE leases SET pid = :p, heartbeat_at = :h WHERE run_id = :r"),
            {"p": pid, "h": time.time() - seconds, "r": run_id},
        )
        conn.execute(text("UPDATE runs SET pid = :p WHERE id = :r"), {"p": pid, "r": run_id})


def test_second_run_is_refused_naming_the_holder(store: Store, new_run) -> None:
    a, b = new_run(store), new_run(store)
    store.acquire_leases(a, ["potentiostat@TCPIP::10.0.0.5::5025::SOCKET", "stage@/dev/ttyUSB0"])
    with pytest.raises(LeaseConflict) as err:
        store.acquire_leases(b, ["stage@/dev/ttyUSB0", "hotplate@/dev/ttyUSB1"])
    msg = str(err.value)
    assert f"leased by run {a}" in msg and f"pid {os.getpid()}" in msg and leases.HOST in msg
    assert "since 20" in msg and "stage@/dev/ttyUSB0" in msg
    assert err.value.exit_code == 4
    # all or nothing: b got no lease, not even the free hotplate
    with store.engine.connect() as conn:
        held = conn.execute(text("SELECT instrument, run_id FROM leases ORDER BY instrument")).all()
    assert [tuple(r) for r in held] == [
        ("potentiostat@TCPIP::10.0.0.5::5025::SOCKET", a),
        ("stage@/dev/ttyUSB0", a),
    ]
    store.acquire_leases(b, ["hotplate@/dev/ttyUSB1"])  # disjoint instruments: runs in parallel
    store.acquire_leases(a, ["stage@/dev/ttyUSB0"])  # re-acquiring one's own lease is fine


def test_release_frees_the_instruments(store: Store, new_run) -> None:
    a, b = new_run(store), new_run(store)
    store.acquire_leases(a, ["gauge@/dev/ttyS0"])
    store.release_leases(a)
    store.acquire_leases(b, ["gauge@/dev/ttyS0"])
    assert store.run(b)["leases"][0]["instrument"] == "gauge@/dev/ttyS0"


def test_stale_lease_of_a_dead_process_is_reclaimed_with_an_audit_event(store: Store, new_run) -> None:
    a, b = new_run(store), new_run(store)
    store.set_run_state(a, "running")
    store.acquire_leases(a, ["rf@/dev/ttyS3"])
    pid = dead_pid()
    age_lease(store, a, pid=pid, seconds=leases.STALE_AFTER + 5)
    store.acquire_leases(b, ["rf@/dev/ttyS3"])
    assert store.run(b)["leases"][0]["instrument"] == "rf@/dev/ttyS3"
    (ev,) = [e for e in store.events(b) if e["kind"] == "lease.reclaimed"]
    data = json.loads(ev["data"])
    assert (data["instrument"], data["from_run"], data["pid"], data["host"]) == (
        "rf@/dev/ttyS3",
        a,
        pid,
        leases.HOST,
    )
    assert store.verify().ok


@pytest.mark.parametrize("case", ["fresh heartbeat, dead pid", "stale heartbeat, live pid"])
def test_a_lease_is_not_stale_unless_old_and_dead(store: Store, new_run, case: str) -> None:
    a, b = new_run(store), new_run(store)
    store.set_run_state(a, "running")
    store.acquire_leases(a, ["mfc@/dev/ttyS4"])
    if case.startswith("fresh"):
        age_lease(store, a, pid=dead_pid(), seconds=1)
    else:
        age_lease(store, a, pid=os.getpid(), seconds=leases.STALE_AFTER + 5)
    with pytest.raises(LeaseConflict):
        store.acquire_leases(b, ["mfc@/dev/ttyS4"])


def test_heartbeat_keeps_a_lease_fresh(store: Store, new_run) -> None:
    a = new_run(store)
    store.acquire_leases(a, ["qcm@/dev/ttyS5"])
    age_lease(store, a, pid=os.getpid(), seconds=100)
    store.heartbeat(a)
    with store.engine.connect() as conn:
        hb = conn.execute(text("SELECT heartbeat_at FROM leases")).scalar()
    assert time.time() - hb < 5


def test_lease_of_a_finished_run_is_reclaimed(store: Store, new_run) -> None:
    a, b = new_run(store), new_run(store)
    store.acquire_leases(a, ["eis@/dev/ttyACM0"])
    store.set_run_state(a, "failed", reason="crashed before releasing")
    store.acquire_leases(b, ["eis@/dev/ttyACM0"])
    assert [e["kind"] for e in store.events(b)].count("lease.reclaimed") == 1


def test_dead_runs_are_found_and_marked_interrupted(store: Store, new_run) -> None:
    live, dead, done = new_run(store), new_run(store), new_run(store)
    for r in (live, dead):
        store.set_run_state(r, "running")
    store.set_run_state(done, "completed")
    store.acquire_leases(dead, ["stage@/dev/ttyUSB0"])
    sid = store.start_step(dead, 1)
    store.acquire_leases(live, ["pump.stock@/dev/ttyUSB2"])
    age_lease(store, dead, pid=dead_pid(), seconds=2)
    found = store.find_dead_runs()
    assert [r["id"] for r in found] == [dead]
    report = store.mark_interrupted(dead)
    assert report["steps_in_doubt"] == [{"index": 1, "kind": "wait"}]
    assert report["instruments"] == ["stage@/dev/ttyUSB0"]
    run = store.run(dead)
    assert run["state"] == "interrupted" and run["leases"] == []
    step = next(s for s in run["steps"] if s["id"] == sid)
    assert step["status"] == "failed" and "in doubt" in step["reason"] and step["summary"]["in_doubt"]
    kinds = [e["kind"] for e in store.events(dead)]
    assert kinds[-2:] == ["run.state", "run.recovered"]
    assert store.find_dead_runs() == []
    assert store.verify().ok
