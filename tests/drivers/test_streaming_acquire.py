"""Keithley 2450 acquisition handing its points over while it measures (real clock; issue 14.6), and the
executors' `streamed` helper that stores every point exactly once whether a driver streams or not."""

from __future__ import annotations

import numpy as np

from labctl.drivers.keithley2450 import Keithley2450
from labctl.roles import Spectrum, Trace
from labctl.steps.streaming import streamed
from labctl.testing import ScriptedTransport

OK = (b":SYST:ERR?\n", b'0,"No error;0;0,0"\n')


def _data(t0: float, n: int, v: float) -> bytes:
    return ",".join(f"{(t0 + k) * 0.25:.9e},{v:.9e},{1e-3:.9e}" for k in range(n)).encode() + b"\n"


def test_acquire_reads_the_buffer_while_the_trigger_model_runs(monkeypatch):
    monkeypatch.setattr(Keithley2450, "STREAM_EVERY", 0.5)
    t = ScriptedTransport(
        [
            (b":FORM:DATA ASC\n", b""),
            (b":SOUR:FUNC CURR\n", b""),
            (b':SENS:FUNC "VOLT:DC"\n', b""),
            (b":SOUR:CURR 0.001\n", b""),
            (b":OUTP 1\n", b""),
            (b':TRAC:MAKE "labctl", 10\n', b""),
            (b':TRIG:LOAD "DurationLoop", 1, 0.25, "labctl"\n', b""),
            (b":INIT\n", b""),
            OK,
            # 0.5 s in: two points so far, handed over at once
            (b':TRAC:ACT? "labctl"\n', b"2\n"),
            (b':TRAC:DATA? 1, 2, "labctl", REL, READ, SOUR\n', _data(0, 2, 0.1)),
            # 1.0 s: two more (only the new ones are read)
            (b':TRAC:ACT? "labctl"\n', b"4\n"),
            (b':TRAC:DATA? 3, 4, "labctl", REL, READ, SOUR\n', _data(2, 2, 0.2)),
            (b":TRIG:STAT?\n", b"IDLE;IDLE;9\n"),
            # the last point, finished while the trigger model went idle
            (b':TRAC:ACT? "labctl"\n', b"5\n"),
            (b':TRAC:DATA? 5, 5, "labctl", REL, READ, SOUR\n', _data(4, 1, 0.3)),
            (b":SOUR:CURR:VLIM:TRIP?\n", b"0\n"),
        ]
    )
    t.clock.is_virtual = False  # as on the wall clock (the scripted clock still advances instantly)
    k = Keithley2450(t, name="potentiostat", data_format="ASCII")
    batches: list[tuple[float, list[float]]] = []
    trace = k.acquire(
        current=1e-3,
        duration=1.0,
        interval=0.25,
        on_points=lambda p: batches.append((t.clock.monotonic(), list(p.voltage))),
    )
    t.assert_done()
    assert [b[1] for b in batches] == [[0.1, 0.1], [0.2, 0.2], [0.3]]
    assert [b[0] - batches[0][0] for b in batches][:2] == [0.0, 0.5]  # handed over during the acquisition
    assert trace.t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert trace.voltage.tolist() == [0.1, 0.1, 0.2, 0.2, 0.3]


def test_streamed_stores_every_point_once_whether_the_driver_streams_or_not():
    def streaming(*, n: int, on_points) -> Trace:
        on_points(Trace(np.arange(2.0), np.ones(2), np.zeros(2)))
        return Trace(np.arange(float(n)), np.ones(n), np.zeros(n))  # 2 handed over, n - 2 left

    def bulk(*, n: int) -> Spectrum:
        return Spectrum(np.arange(float(n)), np.ones(n), np.zeros(n))

    got: list[list[float]] = []
    trace = streamed(streaming, lambda p: got.append(p.t.tolist()), n=5)
    assert got == [[0.0, 1.0], [2.0, 3.0, 4.0]] and len(trace.t) == 5
    got.clear()
    spec = streamed(bulk, lambda p: got.append(p.freq.tolist()), n=3)
    assert got == [[0.0, 1.0, 2.0]] and len(spec.freq) == 3
