"""Signals to a real `labctl run` subprocess: each ends in the documented state within 5 s, safe, recorded.

README ("Interrupting a run"): Ctrl-C once pauses at the next safe point (then `labctl resume|abort RUN`
from another terminal); Ctrl-C twice and SIGTERM abort (exit 130). After each: every instrument preflight
touched has its safe state recorded, the state change names who asked, and the audit chain verifies.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from labctl_proc import PROTOCOLS, RunProc, check_record, write_protocol

LIMIT_S = 5.0  # the bound from the signal to the process having ended (a hang guard, not a benchmark)
ABORTED_EXIT = 130


def rest_protocol(tmp_path: Path) -> Path:
    """Touches the potentiostat and the EIS instrument (a 2 s OCV), then rests 10 min on the real clock."""
    return write_protocol(
        tmp_path / "rest.yaml",
        "signal test: OCV then rest",
        "  - ocv: {duration: 2 s, sample_every: 0.5 s}\n  - rest: {duration: 10 min}\n",
    )


def start_resting(tmp_path: Path) -> RunProc:
    run = RunProc.start(tmp_path, rest_protocol(tmp_path), "--realtime")
    run.wait_step(1)
    return run


def assert_aborted(run: RunProc, actor: str, *, limit: float = LIMIT_S) -> dict:
    code, summary, err, wall = run.finish(timeout=limit + 25)
    assert "Traceback" not in err, err
    assert wall < limit, f"exited {wall:.1f} s after the request"
    assert code == ABORTED_EXIT, (code, err)
    assert summary is not None and summary["state"] == "aborted", summary
    assert all(s["ok"] for s in summary["safe_state"]), summary["safe_state"]
    return check_record(run, "aborted", actor=actor)


@pytest.mark.timeout(90)
def test_sigint_once_pauses_then_resume_and_abort_through_the_store(tmp_path):
    run = start_resting(tmp_path)
    try:
        run.proc.send_signal(signal.SIGINT)
        took = run.wait_for(lambda: run.state() == "paused", "paused after one Ctrl-C", timeout=LIMIT_S)
        assert took < LIMIT_S
        (paused,) = [e for e in run.events("run.state") if e["data"]["to"] == "paused"]
        assert paused["actor"] == "ctrl-c"
        time.sleep(0.5)
        assert run.proc.poll() is None and run.state() == "paused"  # stays paused

        assert run.cli("resume", str(run.run_id), "--operator", "ana").returncode == 0
        run.wait_for(lambda: run.state() == "running", "running after `labctl resume`", timeout=LIMIT_S + 5)
        resumed = [e for e in run.events("run.state") if e["data"]["to"] == "running"]
        assert resumed[-1]["actor"] == "ana"

        posted = time.monotonic()
        assert run.cli("abort", str(run.run_id), "--operator", "bo").returncode == 0
        limit = LIMIT_S + (time.monotonic() - posted)  # the CLI's own start-up is not the run's doing
    finally:
        if run.proc.poll() is not None or run.run_id is None:
            run.kill()
    assert_aborted(run, "bo", limit=limit)
    assert [e["data"]["command"] for e in run.events("control.posted")] == ["resume", "abort"]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_sigint_once_then_abort_while_paused(tmp_path):
    run = start_resting(tmp_path)
    run.proc.send_signal(signal.SIGINT)
    run.wait_for(lambda: run.state() == "paused", "paused", timeout=LIMIT_S)
    run.proc.send_signal(signal.SIGINT)
    assert_aborted(run, "ctrl-c")


@pytest.mark.timeout(60)
def test_sigint_twice_aborts(tmp_path):
    run = start_resting(tmp_path)
    run.proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    run.proc.send_signal(signal.SIGINT)
    assert_aborted(run, "ctrl-c")


@pytest.mark.timeout(60)
def test_sigint_hammered_20_times_in_100_ms(tmp_path):
    run = start_resting(tmp_path)
    for _ in range(20):
        run.proc.send_signal(signal.SIGINT)
        time.sleep(0.005)
    assert_aborted(run, "ctrl-c")


@pytest.mark.timeout(90)
def test_sigterm_aborts_while_the_pumps_dispense(tmp_path):
    """SIGTERM during a real-clock bath preparation: pumps, stage, hotplate, potentiostat, EIS all safe."""
    run = RunProc.start(tmp_path, PROTOCOLS / "li-in-alloy-cycle.yaml", "--realtime")
    run.wait_step(0)
    time.sleep(1.0)  # the pumps are dispensing
    run.proc.send_signal(signal.SIGTERM)
    assert_aborted(run, "SIGTERM")
    roles = {e["data"]["role"] for e in run.events("instrument.safe")}
    assert {"pump.stock", "pump.solvent", "stage", "hotplate"} <= roles


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "sig", ["SIGTERM", "labctl abort", pytest.param("SIGINT twice", marks=pytest.mark.slow)]
)
def test_signal_during_a_real_clock_acquisition(tmp_path, sig):
    """The Keithley holds a 10 min OCV on the wall clock (one instrument wait): the signal, or an abort posted
    from another terminal, still ends the run within 5 s, the output off."""
    protocol = write_protocol(
        tmp_path / "ocv.yaml", "signal test: long OCV", "  - ocv: {duration: 10 min, sample_every: 1 s}\n"
    )
    run = RunProc.start(tmp_path, protocol, "--realtime")
    run.wait_step(0)
    time.sleep(1.0)
    if sig == "SIGTERM":
        run.proc.send_signal(signal.SIGTERM)
    elif sig == "labctl abort":
        posted = run.cli("abort", str(run.run_id), "--operator", "ada")
        assert posted.returncode == 0, posted.stderr
    else:
        run.proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        run.proc.send_signal(signal.SIGINT)
    assert_aborted(run, {"SIGTERM": "SIGTERM", "labctl abort": "ada"}.get(sig, "ctrl-c"))
    (pot,) = [e for e in run.events("instrument.safe") if e["data"]["role"] == "potentiostat"]
    assert pot["data"]["confirmed"]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_signal_during_a_streamed_eis_sweep(tmp_path):
    """An EmStat sweep down to 0.1 Hz on the wall clock (the run blocks reading its stream)."""
    protocol = write_protocol(
        tmp_path / "eis.yaml", "signal test: slow EIS",
        "  - eis: {frequencies: 10 Hz..0.01 Hz, points_per_decade: 10, amplitude: 10 mV, ocv: false}\n",
    )
    run = RunProc.start(tmp_path, protocol, "--realtime")
    run.wait_step(0)
    time.sleep(1.5)
    run.proc.send_signal(signal.SIGTERM)
    assert_aborted(run, "SIGTERM")
