"""grbl-streamer (Michael Franzl's GRBL host library, unmodified) drives the GRBL simulator over a pty: it
resets the controller and waits for the banner, polls `?`, asks `$#` and `$G` by itself, then the test
unlocks, streams a small job with its character-counting streamer, jogs, and shuts down with a soft reset.
No `error:` and no `ALARM` may come back after the unlock, and the controller ends Idle at Z = 0.

Only a pty: grbl-streamer opens `serial.Serial(path)`, which takes a device path, not a `socket://` URL,
so it cannot reach the TCP exposure without changing its code.

grbl-streamer is not thread safe: it fills GRBL's receive buffer from the calling thread while its reader
thread counts every `ok` (its own `$G` polls' too) against the streamed lines and streams more, with no lock.
An `ok` that arrives during `job_run` can so skip a line (CI saw the last line of the job never sent). The
test therefore waits for the answers to everything sent before the job, and the job opens with a dwell so
that its first `ok` comes after the calling thread has queued every line."""

from __future__ import annotations

import queue
import time

import pytest

from labctl.clock import RealClock
from labctl.simulators.exposures import serve_pty
from labctl.simulators.grbl import GrblSim

grbl_streamer = pytest.importorskip("grbl_streamer")


class Events:
    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()
        self.seen: list[tuple] = []

    def __call__(self, event: str, *data: object) -> None:
        self.q.put((event, *data))

    def wait(self, accept, timeout: float = 10.0) -> tuple:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            self.seen.append(item)
            if accept(item):
                return item
        raise AssertionError(f"event not seen within {timeout} s; last events: {self.seen[-8:]}")

    def drain(self) -> None:
        while not self.q.empty():
            self.seen.append(self.q.get())


def _state(mode: str, z: float | None = None):
    def accept(item: tuple) -> bool:
        return item[0] == "on_stateupdate" and item[1] == mode and (z is None or abs(item[2][2] - z) < 1e-6)
    return accept


@pytest.mark.pty
@pytest.mark.timeout(60)
def test_grbl_streamer_connect_configure_move_shutdown():
    core = GrblSim("grbl-streamer", clock=RealClock(), settings={122: 1000.0})
    events = Events()
    with serve_pty(core) as exp:
        g = grbl_streamer.GrblStreamer(events)
        g.poll_interval = 0.05
        g.cnect(exp.path, 115200)
        try:
            events.wait(lambda e: e[0] == "on_boot")
            g.poll_start()
            events.wait(lambda e: e[0] == "on_hash_stateupdate")
            assert set(g.settings_hash) >= {"G54", "G55", "G56", "G57", "G58", "G59", "G28", "G30", "G92",
                                            "TLO", "PRB"}
            events.wait(_state("Alarm"))                      # homing enabled: boots locked
            g.killalarm()
            events.wait(_state("Idle"))
            events.wait(lambda e: e[0] == "on_read" and e[1].startswith("[GC:"))   # the $G Idle makes it ask
            events.wait(lambda e: e[0] == "on_rx_buffer_percent")                  # ... and that $G's ok
            g.send_immediately("G21 G90 (millimetres, absolute: a comment longer than the rest of the line)")
            events.wait(lambda e: e[0] == "on_rx_buffer_percent")                  # its ok, before the job
            g.write("G4 P0.3\nG1 Z-2 F600\nG4 P0.1\nG1 Z-1 F600")
            g.job_run()
            events.wait(lambda e: e[0] == "on_job_completed")
            events.wait(_state("Idle", -1.0))
            g.send_immediately("$J=G91 Z1 F600")
            events.wait(_state("Idle", 0.0))
            g.softreset()
            events.wait(lambda e: e[0] == "on_boot")
        finally:
            g.disconnect()
    events.drain()
    errors = [e for e in events.seen if e[0] in ("on_error", "on_alarm")]
    assert errors == []
    assert core.machine_state() == ("Idle", (0.0, 0.0, 0.0))
    sent = [e[1] for e in events.seen if e[0] == "on_write"]
    assert "$#\n" in sent and "$G\n" in sent and "$X\n" in sent   # what it asked by itself
