"""Byte-exact transcripts of every public operation of the Keithley 2450 driver (LF terminators included)."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.drivers.keithley2450 import Keithley2450
from labctl.errors import (
    ConfigError,
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    LimitViolation,
    MalformedReply,
    PartialReply,
    SafeStateError,
)
from labctl.roles import Potentiostat
from labctl.testing import ScriptedTransport

OK = (b":SYST:ERR?\n", b'0,"No error;0;0,0"\n')
REAL = [(b":FORM:DATA REAL\n", b""), (b":FORM:BORD SWAP\n", b"")]
ASC = [(b":FORM:DATA ASC\n", b"")]


def first_acquisition(duration_interval: bytes, fmt: list = REAL) -> list[tuple[bytes, bytes]]:
    """What a fresh driver sends to start a 1 mA DurationLoop (format; source current and sense voltage, as
    the 2450 powers on sourcing voltage; the level, output, 10-point buffer)."""
    return [
        *fmt,
        (b":SOUR:FUNC CURR\n", b""),
        (b':SENS:FUNC "VOLT:DC"\n', b""),
        (b":SOUR:CURR 0.001\n", b""),
        (b":OUTP 1\n", b""),
        (b':TRAC:MAKE "labctl", 10\n', b""),
        (b':TRIG:LOAD "DurationLoop", ' + duration_interval + b', "labctl"\n', b""),
        (b":INIT\n", b""),
        OK,
    ]


def make(script, **kw) -> tuple[Keithley2450, ScriptedTransport]:
    t = ScriptedTransport(script)
    return Keithley2450(t, name="potentiostat", **kw), t


def test_is_a_potentiostat():
    assert isinstance(make([])[0], Potentiostat)


def test_identify_checks_the_language():
    idn = b"KEITHLEY INSTRUMENTS,MODEL 2450,04096218,1.7.12b\n"
    k, t = make([(b"*IDN?\n", idn), (b"*LANG?\n", b"SCPI\n")])
    assert k.identify() == idn.decode().strip()
    t.assert_done()
    k, t = make([(b"*IDN?\n", idn), (b"*LANG?\n", b"SCPI2400\n")])
    with pytest.raises(InstrumentError, match=r"'SCPI2400' command mode.*\*LANG SCPI"):
        k.identify()


def test_configure_galvanostatic():
    k, t = make(
        [
            (b":SOUR:FUNC CURR\n", b""),
            (b":SOUR:CURR:VLIM 2\n", b""),
            (b':SENS:FUNC "VOLT:DC"\n', b""),
            (b":SENS:VOLT:RSEN 1\n", b""),
            (b":SENS:VOLT:NPLC 1\n", b""),
            *REAL,
            OK,
        ]
    )
    k.configure_galvanostatic(voltage_limit=2.0)
    t.assert_done()
    k, t = make(
        [
            (b":SOUR:FUNC CURR\n", b""),
            (b":SOUR:CURR:VLIM 0.5\n", b""),
            (b':SENS:FUNC "VOLT:DC"\n', b""),
            (b":SENS:VOLT:RSEN 0\n", b""),
            (b":SENS:VOLT:NPLC 0.1\n", b""),
            *ASC,
            OK,
        ],
        data_format="ASCII",
    )
    k.configure_galvanostatic(voltage_limit=0.5, four_wire=False, nplc=0.1)
    t.assert_done()


def test_data_format_is_checked():
    with pytest.raises(ConfigError, match="data_format 'BINARY'"):
        make([], data_format="BINARY")


def test_limits_before_any_byte():
    k, t = make([], limits={"current": (-0.1, 0.1), "voltage_limit": (None, 5.0)})
    for call in (
        lambda: k.configure_galvanostatic(voltage_limit=6.0),
        lambda: k.configure_galvanostatic(voltage_limit=0.01),
        lambda: k.configure_galvanostatic(voltage_limit=2.0, nplc=20),
        lambda: k.set_current(0.2),
        lambda: k.set_current(float("nan")),
        lambda: k.acquire(current=0.2, duration=1, interval=1),
        lambda: k.acquire(current=0.01, duration=0, interval=1),
        lambda: k.acquire(current=0.01, duration=10, interval=1e-4),
        lambda: k.acquire(current=0.01, duration=1e7, interval=1),
    ):
        with pytest.raises(LimitViolation):
            call()
    assert t.sent == []
    with pytest.raises(LimitViolation, match="wider"):
        make([], limits={"current": (-2.0, 2.0)})


def test_set_current_output_and_a_refused_command():
    k, t = make(
        [
            (b":SOUR:CURR 0.001\n", b""),
            OK,
            (b":SOUR:CURR -1e-05\n", b""),
            OK,
            (b":OUTP 1\n", b""),
            OK,
            (b":OUTP 0\n", b""),
            OK,
        ]
    )
    k.set_current(1e-3)
    k.set_current(-1e-5)
    k.output(True)
    k.output(False)
    t.assert_done()
    k, t = make(
        [
            (b":SOUR:CURR 1\n", b""),
            (b":SYST:ERR?\n", b'-222,"Parameter data out of range;1;2026/11/25 08:00:00.000"\n'),
            (b":SYST:ERR?\n", b'-113,"Undefined header;1;2026/11/25 08:00:00.000"\n'),
            OK,
        ]
    )
    with pytest.raises(
        InstrumentReportedError, match=r"-222 Parameter data out of range \(\+1 more\)"
    ) as exc:
        k.set_current(1.0)
    assert exc.value.code == -222
    t.assert_done()


def block(*values: float) -> bytes:
    """The 2450's binary reply: "#0", little-endian float64 values (FORM:BORD SWAP), LF."""
    return b"#0" + np.array(values, dtype="<f8").tobytes() + b"\n"


def test_read_and_limit_tripped():
    k, t = make(
        [
            *ASC,
            OK,
            (b':READ? "defbuffer1", READ, SOUR\n', b"1.234e-02,1.000000e-03\n"),
            (b":SOUR:CURR:VLIM:TRIP?\n", b"0\n"),
            (b":SOUR:CURR:VLIM:TRIP?\n", b"1\n"),
            (b':READ? "defbuffer1", READ, SOUR\n', b"oops\n"),
            *ASC,  # after a reply that does not parse, the format is told again
            OK,
            (b':READ? "defbuffer1", READ, SOUR\n', b"1,2,3\n"),
        ],
        data_format="ASCII",
    )
    assert k.read() == (pytest.approx(0.01234), pytest.approx(1e-3))
    assert k.limit_tripped() is False
    assert k.limit_tripped() is True
    with pytest.raises(MalformedReply, match="not numbers"):
        k.read()
    with pytest.raises(MalformedReply, match="asked 2 values, got 3"):
        k.read()
    t.assert_done()


def test_read_in_binary():
    # 0.01234 V and 1 mA as the instrument sends them: "#0", 16 bytes, LF (bytes spelled out, not computed)
    reply = b"#0" + bytes.fromhex("f60b76c3b645893ffca9f1d24d62503f") + b"\n"
    assert reply == block(0.01234, 1e-3)
    k, t = make(
        [
            *REAL,
            OK,
            (b':READ? "defbuffer1", READ, SOUR\n', reply),
            (b':READ? "defbuffer1", READ, SOUR\n', b"1.0,2.0\n" + b"x" * 11),  # ASCII: not a #0 block
            *REAL,  # told again
            OK,
            (b':READ? "defbuffer1", READ, SOUR\n', block(-0.5, 0.0)),
        ]
    )
    assert k.read() == (0.01234, 1e-3)
    with pytest.raises(MalformedReply, match="expected a #0 block of 2 float64"):
        k.read()
    assert k.read() == (-0.5, 0.0)
    t.assert_done()


def test_a_cut_binary_block_is_a_partial_reply():
    k, t = make(
        [
            *REAL,
            OK,
            (b':READ? "defbuffer1", READ, SOUR\n', block(0.1, 0.2)[:-5]),  # 5 bytes short, then silence
        ]
    )
    with pytest.raises(PartialReply, match="expected 19 bytes"):
        k.read()
    t.assert_done()


def test_a_refused_binary_query_is_explained_by_the_event_log():
    k, t = make(
        [
            *REAL,
            OK,
            (b':READ? "defbuffer1", READ, SOUR\n', b""),  # the 2450 answers nothing to a refused query
            (
                b":SYST:ERR?\n",
                b'1133,"Parameter 2, Syntax error, expected valid name parameters.;1;'
                b'2026/11/25 08:00:00.000"\n',
            ),
            OK,
        ]
    )
    with pytest.raises(InstrumentReportedError, match="1133 Parameter 2, Syntax error") as exc:
        k.read()
    assert exc.value.code == 1133
    t.assert_done()


def test_error_drain_is_bounded():
    k, t = make([(b":SYST:ERR?\n", b'-100,"Command error;1;x"\n')] * Keithley2450.ERROR_DRAIN)
    assert k.errors() == [(-100, "Command error")] * Keithley2450.ERROR_DRAIN
    t.assert_done()


def _data(t0: float, n: int, v: float, i: float) -> bytes:
    rows = [f"{t0 + k:.9e},{v:.9e},{i:.9e}" for k in range(n)]
    return ",".join(rows).encode() + b"\n"


def test_acquire_runs_the_trigger_model_and_fetches_in_chunks(monkeypatch):
    monkeypatch.setattr(Keithley2450, "CHUNK", 4)
    k, t = make(
        [
            *first_acquisition(b"10, 1", ASC),
            (b":TRIG:STAT?\n", b"RUNNING;RUNNING;4\n"),
            (b":TRIG:STAT?\n", b"IDLE;IDLE;9\n"),
            (b':TRAC:ACT? "labctl"\n', b"10\n"),
            (b':TRAC:DATA? 1, 4, "labctl", REL, READ, SOUR\n', _data(0, 4, 0.01, 1e-3)),
            (b':TRAC:DATA? 5, 8, "labctl", REL, READ, SOUR\n', _data(4, 4, 0.01, 1e-3)),
            (b':TRAC:DATA? 9, 10, "labctl", REL, READ, SOUR\n', _data(8, 2, 0.01, 1e-3)),
            (b":SOUR:CURR:VLIM:TRIP?\n", b"0\n"),
            # second call: output already on, the buffer is big enough -> clear; a bigger one -> resize
            (b":SOUR:CURR -0.001\n", b""),
            (b':TRAC:CLE "labctl"\n', b""),
            (b':TRIG:LOAD "DurationLoop", 2.5, 0.5, "labctl"\n', b""),
            (b":INIT\n", b""),
            OK,
            (b":TRIG:STAT?\n", b"IDLE;IDLE;9\n"),
            (b':TRAC:ACT? "labctl"\n', b"5\n"),
            (b':TRAC:DATA? 1, 4, "labctl", REL, READ, SOUR\n', _data(0, 4, -2.0, -1e-3)),
            (b':TRAC:DATA? 5, 5, "labctl", REL, READ, SOUR\n', _data(4, 1, -2.0, -1e-3)),
            (b":SOUR:CURR:VLIM:TRIP?\n", b"1\n"),
            (b":SOUR:CURR 0\n", b""),
            (b':TRAC:POIN 20, "labctl"\n', b""),
            (b':TRIG:LOAD "DurationLoop", 20, 1, "labctl"\n', b""),
            (b":INIT\n", b""),
            OK,
            (b":TRIG:STAT?\n", b"IDLE;IDLE;9\n"),
            (b':TRAC:ACT? "labctl"\n', b"0\n"),
            (b":SOUR:CURR:VLIM:TRIP?\n", b"0\n"),
        ],
        data_format="ASCII",
    )
    t0 = t.clock.monotonic()
    tr = k.acquire(current=1e-3, duration=10, interval=1)
    assert t.clock.monotonic() - t0 == pytest.approx(10 + Keithley2450.POLL)
    np.testing.assert_allclose(tr.t, np.arange(10.0))
    np.testing.assert_allclose(tr.voltage, 0.01)
    np.testing.assert_allclose(tr.current, 1e-3)
    assert tr.tripped is False
    tr = k.acquire(current=-1e-3, duration=2.5, interval=0.5)
    assert len(tr.t) == 5 and tr.tripped is True and tr.voltage[0] == -2.0
    tr = k.acquire(current=0.0, duration=20, interval=1)
    assert len(tr.t) == 0
    t.assert_done()


LF_VALUE = float(np.frombuffer(b"\n#0\n#0\n?", "<f8")[0])  # a float64 whose bytes hold LF and "#0"


def _rows(t0: float, n: int, v: float, i: float) -> list[float]:
    return [x for k in range(n) for x in (t0 + k, v, i)]


def test_acquire_fetches_binary_blocks_in_chunks(monkeypatch):
    monkeypatch.setattr(Keithley2450, "CHUNK", 4)
    k, t = make(
        [
            *first_acquisition(b"6, 1"),
            (b":TRIG:STAT?\n", b"IDLE;IDLE;9\n"),
            (b':TRAC:ACT? "labctl"\n', b"6\n"),
            # values whose bytes include LF and "#0": the block is read by its length, not to a terminator
            (b':TRAC:DATA? 1, 4, "labctl", REL, READ, SOUR\n', block(*_rows(0, 4, LF_VALUE, 1e-3))),
            (b':TRAC:DATA? 5, 6, "labctl", REL, READ, SOUR\n', block(*_rows(4, 2, 2.0**-1070, 1e-3))),
            (b":SOUR:CURR:VLIM:TRIP?\n", b"0\n"),
            # the format is not sent again
            (b":SOUR:CURR -0.001\n", b""),
            (b':TRAC:CLE "labctl"\n', b""),
            (b':TRIG:LOAD "DurationLoop", 1, 1, "labctl"\n', b""),
            (b":INIT\n", b""),
            OK,
            (b":TRIG:STAT?\n", b"IDLE;IDLE;9\n"),
            (b':TRAC:ACT? "labctl"\n', b"1\n"),
            (b':TRAC:DATA? 1, 1, "labctl", REL, READ, SOUR\n', block(0.0, -0.25, -1e-3)),
            (b":SOUR:CURR:VLIM:TRIP?\n", b"1\n"),
        ]
    )
    assert b"\n#0" in block(*_rows(0, 4, LF_VALUE, 1e-3))[2:-1]
    tr = k.acquire(current=1e-3, duration=6, interval=1)
    np.testing.assert_array_equal(tr.t, np.arange(6.0))
    np.testing.assert_array_equal(tr.voltage, [LF_VALUE] * 4 + [2.0**-1070] * 2)
    np.testing.assert_array_equal(tr.current, 1e-3)
    assert tr.tripped is False and tr.t.flags.writeable
    tr = k.acquire(current=-1e-3, duration=1, interval=1)
    assert tr.voltage.tolist() == [-0.25] and tr.tripped is True
    t.assert_done()


def test_a_truncated_buffer_block_is_a_partial_reply_and_the_link_resyncs():
    k, t = make(
        [
            *first_acquisition(b"3, 1"),
            (b":TRIG:STAT?\n", b"IDLE;IDLE;9\n"),
            (b':TRAC:ACT? "labctl"\n', b"3\n"),
            (b':TRAC:DATA? 1, 3, "labctl", REL, READ, SOUR\n', block(*_rows(0, 2, 0.0, 0.0))),  # 2 of 3
            (b":SOUR:CURR:VLIM:TRIP?\n", b"0\n"),
        ]
    )
    with pytest.raises(PartialReply, match=r"expected 75 bytes; got only b'#0"):
        k.acquire(current=1e-3, duration=3, interval=1)
    assert k.limit_tripped() is False  # the next exchange works after the resync
    t.assert_done()


def test_acquire_gives_up_on_a_trigger_model_that_never_ends():
    running = (b":TRIG:STAT?\n", b"RUNNING;RUNNING;4\n")
    polls, waited = 1, 0.0
    while waited < Keithley2450.IDLE_GRACE:  # the driver's loop, on float sums as its clock does
        waited += Keithley2450.POLL
        polls += 1
    k, t = make(
        [
            *first_acquisition(b"1, 0.1"),
            *[running] * polls,
            (b":ABOR\n", b""),
        ]
    )
    with pytest.raises(InstrumentBusy, match="still 'RUNNING"):
        k.acquire(current=1e-3, duration=1, interval=0.1)
    t.assert_done()


def test_acquire_rejects_a_short_chunk():
    k, _t = make(
        [
            *first_acquisition(b"3, 1", ASC),
            (b":TRIG:STAT?\n", b"IDLE;IDLE;9\n"),
            (b':TRAC:ACT? "labctl"\n', b"3\n"),
            (b':TRAC:DATA? 1, 3, "labctl", REL, READ, SOUR\n', _data(0, 2, 0.0, 0.0)),
        ],
        data_format="ASCII",
    )
    with pytest.raises(MalformedReply, match=r"points 1\.\.3.*asked 9 values, got 6"):
        k.acquire(current=1e-3, duration=3, interval=1)


def test_safe_state_confirms_by_read_back():
    k, t = make(
        [
            (b":ABOR\n", b""),
            (b":SOUR:CURR 0\n", b""),
            (b":OUTP 0\n", b""),
            (b":OUTP?\n", b"0\n"),
            (b":SOUR:CURR?\n", b"0.000000e+00\n"),
        ]
    )
    assert k.safe_state() == {"output": False, "current_a": 0.0}
    t.assert_done()
    k, t = make(
        [
            (b":ABOR\n", b""),
            (b":SOUR:CURR 0\n", b""),
            (b":OUTP 0\n", b""),
            (b":OUTP?\n", b"1\n"),
            (b":SOUR:CURR?\n", b"0\n"),
        ]
    )
    with pytest.raises(SafeStateError, match="output on"):
        k.safe_state()
    k, t = make(
        [
            (b":ABOR\n", b""),
            (b":SOUR:CURR 0\n", b""),
            (b":OUTP 0\n", b""),
            (b":OUTP?\n", b""),
            (b":SYST:ERR?\n", b""),
        ]
    )  # silent: the event log is asked why, and is silent too
    with pytest.raises(SafeStateError, match="could not confirm"):
        k.safe_state()
