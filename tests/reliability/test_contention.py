"""Runs competing on one SQLite database (real `labctl run` subprocesses).

Two runs wanting one instrument: the second is refused at preflight, naming the holder (run, pid, host), and
the first carries on. Two runs on disjoint instruments complete in parallel without "database is locked"
reaching anyone. A run killed with -9 while holding instruments is recovered by the next run that wants them
(pid dead on this host; on another host, heartbeat older than 30 s), all of it audited.
"""

from __future__ import annotations

import signal
import sqlite3

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


@pytest.mark.timeout(120)
def test_disjoint_runs_complete_in_parallel_on_one_database(tmp_path):
    """OCV on the wall clock (potentiostat, EIS), then an operator step: the run holds its leases until it is
    acknowledged, and an immersion dry run (stage, pumps, hotplate) starts and ends on the same database
    meanwhile (the overlap comes from that order, not from timing)."""
    db = tmp_path / "shared.db"
    hold = write_protocol(
        tmp_path / "short.yaml", "contention: short hold",
        "  - ocv: {duration: 2 s, sample_every: 0.5 s}\n  - operator: {message: hold the instruments}\n",
    )
    first = RunProc.start(tmp_path, hold, "--realtime", "--interactive", db=db)
    try:
        first.wait_for(lambda: first.state() == "awaiting_operator", "the first run at its operator step", 60)
        second = RunProc.start(tmp_path, PROTOCOLS / "li-in-immersion.yaml", db=db)
        second_result = second.finish(timeout=80)
        acked = first.cli("ack", str(first.run_id))
        assert acked.returncode == 0, acked.stdout + acked.stderr
        results = [first.finish(timeout=60), second_result]
    finally:
        first.kill()
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


def _kill_9_holding(tmp_path, protocol, **env: str) -> RunProc:
    a = RunProc.start(tmp_path, protocol, "--realtime", **env)
    a.wait_step(1)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(timeout=10)
    return a


def _recovered_by_next_run(tmp_path, a: RunProc, protocol) -> RunProc:
    b = RunProc.start(tmp_path, protocol)
    code, summary, err, _ = b.finish(timeout=60)
    clean(err)
    assert code == 0 and summary["state"] == "completed", (summary, err[-2000:])
    check_record(a, "interrupted", actor="labctl recover")
    (recovered,) = a.events("run.recovered")
    assert recovered["data"]["instruments"], "the dead run's leases were released by the recovery"
    check_record(b, "completed")
    return b


@pytest.mark.timeout(90)
def test_next_run_recovers_a_killed_holder_then_completes(tmp_path):
    """Same host, dead pid: the next run on those instruments recovers the dead run first (safe state,
    interrupted, leases released, all recorded) instead of waiting for the heartbeat to go stale."""
    protocol = ocv_rest(tmp_path)
    a = _kill_9_holding(tmp_path, protocol)
    _recovered_by_next_run(tmp_path, a, protocol)
    skipped = [e["data"]["role"] for e in a.events("recover.safe_skipped")]
    assert sorted(skipped) == ["eis", "potentiostat"], "a dry run's simulators ended with its process"


@pytest.mark.timeout(90)
def test_stale_lease_of_another_host_is_reclaimed(tmp_path):
    """A holder on another host cannot be checked by pid: its lease is taken over once its heartbeat is older
    than the staleness limit, and the takeover is recorded."""
    protocol = ocv_rest(tmp_path)
    a = _kill_9_holding(tmp_path, protocol, LABCTL_HOST="other-bench-pc")  # ran on another host
    fresh = RunProc.start(tmp_path, protocol)  # a fresh heartbeat protects a holder we cannot see
    code, summary, err, _ = fresh.finish(timeout=60)
    clean(err)
    assert code != 0 and f"leased by run {a.run_id}" in summary["reason"]
    with sqlite3.connect(a.db) as con:
        con.execute("UPDATE leases SET heartbeat_at = heartbeat_at - ? WHERE run_id = ?",
                    (leases.STALE_AFTER + 5, a.run_id))
        con.execute("UPDATE runs SET heartbeat_at = heartbeat_at - ? WHERE id = ?",
                    (leases.STALE_AFTER + 5, a.run_id))
    _recovered_by_next_run(tmp_path, a, protocol)
