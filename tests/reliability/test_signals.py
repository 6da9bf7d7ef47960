"""Signals to a real `labctl run` subprocess: each ends in the documented state within 5 s, safe, recorded.

README ("Interrupting a run"): Ctrl-C once pauses at the next safe point (then `labctl resume|abort RUN`
from another terminal); Ctrl-C twice and SIGTERM abort (exit 130). After each: every instrument preflight
touched has its safe state recorded, the state change names who asked, and the audit chain verifies.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import pytest
from labctl_proc import LABCTL, PROTOCOLS, RunProc, check_record, env_for, write_protocol

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


@pytest.mark.timeout(60)
def test_ctrl_c_held_down_through_the_end_of_the_run_does_not_cut_the_summary(tmp_path):
    """Ctrl-C every 2 ms until the process exits: the signals that arrive after the run's own handler is gone
    (its end recorded, the summary being written) are ignored, not a KeyboardInterrupt that loses it."""
    run = start_resting(tmp_path)
    t0 = time.monotonic()
    while run.proc.poll() is None and time.monotonic() - t0 < LIMIT_S:
        with contextlib.suppress(ProcessLookupError):
            run.proc.send_signal(signal.SIGINT)
        time.sleep(0.002)
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


# -- a link that never answers (a bench run, the real clock) ------------------------------------------------


@pytest.fixture
def silent_link():
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte: its port."""
    import socket
    import threading

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in held:
        conn.close()


def start_silent_bench_run(tmp_path: Path, port: int) -> RunProc:
    """`labctl run` (a bench run: no --simulate, the wall clock) of an EIS step, the EmStat on the silent
    link."""
    station = tmp_path / "silent.yaml"
    station.write_text(
        "labctl_station: 1\nname: silent bench\ninstruments:\n"
        f'  eis: {{driver: emstat4, port: "socket://127.0.0.1:{port}"}}\ncell: {{area: 1.13 cm^2}}\n'
    )
    protocol = write_protocol(
        tmp_path / "eis.yaml", "silent link",
        "  - eis: {frequencies: 10 kHz..1 Hz, points_per_decade: 2, amplitude: 10 mV}\n",
    )
    db = tmp_path / "labctl.db"
    env = env_for(tmp_path, db)
    proc = subprocess.Popen([*LABCTL, "run", str(protocol), "--station", str(station), "--json"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return RunProc(proc, db, env, tmp_path)


def assert_safe_state_recorded(run: RunProc) -> None:
    """The silent EmStat's safe state was attempted and its failure recorded; no lease is left held."""
    (failed,) = [e for e in run.events("instrument.safe_failed") if e["data"]["role"] == "eis"]
    assert "reply" in failed["data"]["error"]
    assert run._query("SELECT COUNT(*) FROM leases WHERE run_id = ?", run.run_id) == [(0,)]


@pytest.mark.timeout(60)
def test_a_link_that_never_answers_fails_the_run_naming_the_role(tmp_path, silent_link):
    run = start_silent_bench_run(tmp_path, silent_link)
    code, summary, err, wall = run.finish(timeout=30)
    assert "Traceback" not in err, err
    assert wall < 15, f"a silent link held the run {wall:.1f} s"  # bounded: per-exchange deadlines
    assert code == 1 and summary is not None and summary["state"] == "failed", (code, summary, err)
    assert summary["reason"].startswith("PreflightError: eis:"), summary["reason"]
    assert "within the deadline" in summary["reason"]
    assert run.state() == "failed"
    assert_safe_state_recorded(run)


@pytest.mark.timeout(60)
def test_sigterm_while_a_link_never_answers(tmp_path, silent_link):
    """SIGTERM while the run waits on the silent link in preflight: the wait is cut at once, the safe state
    is attempted and recorded, the run ends aborted within 5 s."""
    run = start_silent_bench_run(tmp_path, silent_link)
    try:
        run.wait_for(lambda: run.events("preflight.leases"), "preflight reached the instruments")
        time.sleep(0.2)  # the EmStat's identification is waiting for a reply that never comes
        run.proc.send_signal(signal.SIGTERM)
        code, summary, err, wall = run.finish(timeout=LIMIT_S + 25)
    finally:
        run.kill()
    assert "Traceback" not in err, err
    assert wall < LIMIT_S, f"exited {wall:.1f} s after SIGTERM"
    assert code == ABORTED_EXIT and summary is not None and summary["state"] == "aborted", (code, summary)
    assert run.state() == "aborted"
    (change,) = [e for e in run.events("run.state") if e["data"]["to"] == "aborted"]
    assert change["actor"] == "SIGTERM"
    assert_safe_state_recorded(run)


def test_after_the_run_ends_a_late_ctrl_c_is_ignored_and_before_it_interrupts() -> None:
    """The mechanism behind the test above, in-process and deterministic: `labctl run` installs a handler that
    `Control.signals` restores when the run's own handling ends; it raises KeyboardInterrupt while the run has
    not ended and ignores the signal once the end is recorded."""
    import os
    from types import SimpleNamespace

    from labctl.cli.run_cmds import _interrupt_until_ended
    from labctl.engine.control import Control
    from labctl.engine.machine import RunState

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    run = SimpleNamespace(machine=SimpleNamespace(state=RunState.RUNNING))
    try:
        _interrupt_until_ended(run)
        handler = signal.getsignal(signal.SIGINT)
        with Control().signals():  # the run's own handling, then back to ours
            assert signal.getsignal(signal.SIGINT) is not handler
        assert signal.getsignal(signal.SIGINT) is handler
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # the handler runs at the next bytecode boundary
        run.machine.state = RunState.ABORTED
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # ignored: nothing raised, the process is alive
    finally:
        for s, h in before.items():
            signal.signal(s, h)
