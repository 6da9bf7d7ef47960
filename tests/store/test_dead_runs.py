"""Dead runs are found by pid AND process start time AND boot id (issue 14.8), and `labctl recover --run ID
--force` takes over a run whose death cannot be decided, audited with the operator as actor."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from labctl.cli import app
from labctl.store import Store, leases

ME = psutil.Process().create_time()


@contextmanager
def recorded_as(**proc: Any) -> Iterator[None]:
    """Record runs and leases as if made by the process `proc` describes (pid, proc_started, boot_id)."""
    real = leases.me
    leases.me = lambda: {**real(), **proc}  # type: ignore[assignment]
    try:
        yield
    finally:
        leases.me = real  # type: ignore[assignment]


def _running(store: Store, new_run, **proc: Any) -> int:
    with recorded_as(**proc):
        rid = new_run(store)
        store.set_run_state(rid, "running")
        store.acquire_leases(rid, [f"socket://10.0.0.{rid}:5025"])
    return rid


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_a_live_run_is_not_dead(store: Store, new_run) -> None:
    rid = _running(store, new_run)
    assert store.find_dead_runs() == [] and store.process_state(rid) == "alive"
    row = store.run(rid)
    assert row["pid"] == os.getpid()


def test_a_run_whose_pid_now_belongs_to_another_process_is_dead(store: Store, new_run) -> None:
    """Our pid, but the run's process started an hour before us: the pid was reused (after a power cut
    the numbers start again), so that run's process is gone."""
    rid = _running(store, new_run, proc_started=ME - 3600)
    assert [d["id"] for d in store.find_dead_runs()] == [rid]
    assert store.process_state(rid) == "dead"
    # and its leases are reclaimed by the next run (stale heartbeat, pid now someone else's)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE leases SET heartbeat_at = :h"), {"h": time.time() - leases.STALE_AFTER - 1})
    other = _running(store, new_run)
    store.acquire_leases(other, [f"socket://10.0.0.{rid}:5025"])
    assert any(e["kind"] == "lease.reclaimed" for e in store.events(other))


def test_a_run_of_another_boot_is_dead(store: Store, new_run) -> None:
    rid = _running(store, new_run, proc_started=ME, boot_id="00000000-0000-0000-0000-000000000000")
    if leases.boot_id() is None:
        pytest.skip("this system has no boot id")
    assert [d["id"] for d in store.find_dead_runs()] == [rid]


def test_the_run_records_its_process_and_the_audit_binds_it(store: Store, new_run) -> None:
    rid = _running(store, new_run)
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT proc_started, boot_id FROM runs WHERE id = :r"), {"r": rid}).one()
        q = text("SELECT proc_started, boot_id FROM leases WHERE run_id = :r")
        lease = conn.execute(q, {"r": rid}).one()
    assert row[0] == leases.process_started(os.getpid()) and row[1] == leases.boot_id()
    assert tuple(lease) == tuple(row)
    created = next(json.loads(e["data"]) for e in store.events(rid) if e["kind"] == "run.created")
    assert created["record"]["proc_started"] == row[0] and created["record"]["boot_id"] == row[1]


def test_recover_run_force_takes_over_an_undecidable_run_audited(db_url: str, store: Store, new_run) -> None:
    """A run recorded before start times were (live pid, no start time) cannot be shown dead: plain
    recover leaves it, --run without --force explains, --force recovers it naming the operator."""
    rid = _running(store, new_run, proc_started=None)
    assert store.process_state(rid) == "unknown" and store.find_dead_runs() == []
    code, out = invoke("recover", "--db", db_url)
    assert code == 0 and "no dead runs" in out
    code, out = invoke("recover", "--run", str(rid), "--db", db_url)
    assert code != 0 and f"recover --run {rid} --force" in " ".join(out.split()), out
    assert store.run(rid)["state"] == "running"
    code, out = invoke("recover", "--force", "--db", db_url)
    assert code != 0 and "--force needs --run" in out
    code, out = invoke("recover", "--run", str(rid), "--force", "--operator", "ada", "--db", db_url, "--json")
    assert code == 0, out
    assert json.loads(out)[0]["run_id"] == rid and store.run(rid)["state"] == "interrupted"
    events = store.events(rid)
    forced = [e for e in events if e["kind"] == "recover.forced"]
    assert forced and forced[0]["actor"] == "ada" and json.loads(forced[0]["data"])["process"] == "unknown"
    last = [e for e in events if e["kind"] == "run.state"][-1]
    assert last["actor"] == "ada" and "with --force" in json.loads(last["data"])["reason"]
    assert store.run(rid)["leases"] == []
    skipped = [json.loads(e["data"]) for e in events if e["kind"] == "recover.safe_skipped"]
    assert skipped and "recorded station cannot be read" in skipped[0]["reason"]  # said, not crashed
    assert store.verify().ok and store.verify_records(rid)[0] == []
    code, out = invoke("recover", "--run", str(rid), "--force", "--db", db_url)
    assert code != 0 and "already ended" in out


def test_force_never_takes_over_a_run_that_is_verifiably_alive(db_url: str, store: Store, new_run) -> None:
    rid = _running(store, new_run)
    code, out = invoke("recover", "--run", str(rid), "--force", "--db", db_url)
    assert code != 0 and "still running" in out and f"labctl abort {rid}" in out, out
    assert store.run(rid)["state"] == "running"


def test_a_step_of_the_wall_clock_does_not_make_a_live_run_dead(store: Store, new_run, monkeypatch) -> None:
    """psutil's start time is boot time + ticks, and the boot time it reads is now - uptime: after the wall
    clock stepped 1 s (NTP, a resumed VM) a live run looked like another process and was recovered as dead.
    Runs record their start in seconds since boot, which no clock step moves."""
    if not leases.Path("/proc/self/stat").exists():
        pytest.skip("seconds since boot come from /proc")
    rid = _running(store, new_run)
    recorded = store.run(rid)
    assert recorded["proc_started"] < leases.UNIX_TIME_FLOOR  # seconds since boot, not a unix time
    real = psutil.Process.create_time
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: real(self) + 1.0)  # the clock stepped
    assert store.find_dead_runs() == [] and store.process_state(rid) == "alive"
    # a reused pid still is another process: started at another time since boot
    other = _running(store, new_run, proc_started=recorded["proc_started"] - 3600)
    assert [d["id"] for d in store.find_dead_runs()] == [other]


def test_records_made_with_unix_start_times_are_still_judged(store: Store, new_run) -> None:
    """Runs recorded before start times counted from boot carry psutil's unix time: still compared."""
    alive = _running(store, new_run, proc_started=ME)
    reused = _running(store, new_run, proc_started=ME - 3600)
    assert [d["id"] for d in store.find_dead_runs()] == [reused]
    assert store.process_state(alive) == "alive"
