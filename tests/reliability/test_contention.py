"""Runs competing on one SQLite database (real `labctl run` subprocesses).

Two runs wanting one instrument: the second is refused at preflight, naming the holder (run, pid, host), and
the first carries on. Two runs on disjoint instruments complete in parallel without "database is locked"
reaching anyone. A lease left by a kill -9 is reclaimed (heartbeat older than 30 s and the pid gone) and
the reclaim is audited.
"""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest
from labctl_proc import PROTOCOLS, RunProc, check_record, write_protocol

from labctl.store import leases


def ocv_rest(tmp_path):
    """The potentiostat and the EIS instrument (a 2 s OCV), then a 10 min rest."""
    return write_protocol(
        tmp_path / "hold.yaml", "contention: OCV then rest",
        "  - ocv: {duration: 2 s, sample_every: 0.5 s}\n  - rest: {duration: 10 min}\n",
    )


def clean(err: str) -> None:
    assert "database is locked" not in err and "Traceback" not in err, err[-3000:]


@pytest.mark.timeout(90)
def test_second_run_on_a_leased_instrument_is_refused_naming_the_holder(tmp_path):
    protocol = ocv_rest(tmp_path)
    a = RunProc.start(tmp_path, protocol, "--realtime")
    try:
        a.wait_step(1)
        b = RunProc.start(tmp_path, protocol)
        code, summary, err, _ = b.finish(timeout=60)
        clean(err)
        assert code != 0 and summary is not None and summary["state"] == "failed", (code, summary)
        reason = summary["reason"]
        assert f"leased by run {a.run_id}" in reason and f"pid {a.proc.pid}" in reason, reason
        assert leases.HOST in reason
        assert not b.events("instrument.ready"), "refused before touching any instrument"
        assert a.proc.poll() is None and a.state() == "running"  # A is unaffected
        a.proc.send_signal(signal.SIGTERM)
        code, summary, err, _ = a.finish(timeout=30)
        clean(err)
        assert summary["state"] == "aborted"
    finally:
        a.kill()
    check_record(a, "aborted", actor="SIGTERM")


@pytest.mark.timeout(90)
def test_disjoint_runs_complete_in_parallel_on_one_database(tmp_path):
    """OCV + rest on the wall clock (potentiostat, EIS) holds its leases while an immersion dry run (stage,
    pumps, hotplate) starts and ends on the same database."""
    db = tmp_path / "shared.db"
    hold = write_protocol(
        tmp_path / "short.yaml", "contention: short hold",
        "  - ocv: {duration: 2 s, sample_every: 0.5 s}\n  - rest: {duration: 4 s}\n",
    )
    first = RunProc.start(tmp_path, hold, "--realtime", db=db)
    first.wait_step(1)
    second = RunProc.start(tmp_path, PROTOCOLS / "li-in-immersion.yaml", db=db)
    results = [first.finish(timeout=80), second.finish(timeout=80)]
    for code, summary, err, _ in results:
        clean(err)
        assert code == 0 and summary["state"] == "completed", (code, summary, err[-2000:])
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        spans = con.execute("SELECT started_at, ended_at FROM runs ORDER BY id").fetchall()
        assert con.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
    assert len(spans) == 2
    (s1, e1), (s2, e2) = spans
    assert s1 < e2 and s2 < e1, "the two runs overlapped in time"
    for run in (first, second):
        check_record(run, "completed")


def _kill_9_holding(tmp_path, protocol) -> RunProc:
    a = RunProc.start(tmp_path, protocol, "--realtime")
    a.wait_step(1)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(timeout=10)
    return a


def _reclaimed(tmp_path, a: RunProc, protocol) -> None:
    b = RunProc.start(tmp_path, protocol)
    code, summary, err, _ = b.finish(timeout=60)
    clean(err)
    assert code == 0 and summary["state"] == "completed", (summary, err[-2000:])
    reclaimed = b.events("lease.reclaimed")
    assert reclaimed and {e["data"]["from_run"] for e in reclaimed} == {a.run_id}
    assert {e["data"]["pid"] for e in reclaimed} == {a.proc.pid}
    check_record(b, "completed")


@pytest.mark.timeout(90)
def test_stale_lease_after_kill_9_is_reclaimed(tmp_path):
    """The dead holder's last heartbeat is set 35 s back (as if the 30 s staleness had passed)."""
    protocol = ocv_rest(tmp_path)
    a = _kill_9_holding(tmp_path, protocol)
    fresh = RunProc.start(tmp_path, protocol)  # a fresh heartbeat protects even a dead holder
    code, summary, err, _ = fresh.finish(timeout=60)
    clean(err)
    assert code != 0 and f"leased by run {a.run_id}" in summary["reason"]
    with sqlite3.connect(a.db) as con:
        con.execute("UPDATE leases SET heartbeat_at = heartbeat_at - ? WHERE run_id = ?",
                    (leases.STALE_AFTER + 5, a.run_id))
    _reclaimed(tmp_path, a, protocol)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_stale_lease_after_kill_9_is_reclaimed_after_real_staleness(tmp_path):
    protocol = ocv_rest(tmp_path)
    a = _kill_9_holding(tmp_path, protocol)
    time.sleep(leases.STALE_AFTER + 2)
    _reclaimed(tmp_path, a, protocol)
