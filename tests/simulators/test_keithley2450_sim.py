"""The Keithley 2450 simulator: its SCPI parser, event log, trigger model in simulated time and the cell it
asks the world about; the driver against it in process (labsim://) and over ASRL VISA. The driver over TCP
VISA and a pty and every fault kind: test_conformance.py."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from labctl.clock import RealClock, VirtualClock
from labctl.drivers.keithley2450 import Keithley2450
from labctl.drivers.transport import SerialTransport, VisaTransport
from labctl.errors import (
    InstrumentBusy,
    InstrumentReportedError,
    InstrumentTimeout,
)
from labctl.simulators import registry
from labctl.simulators.core import FaultKind
from labctl.simulators.exposures import serve_pty, serve_tcp
from labctl.simulators.keithley2450 import IDN, Keithley2450Sim
from labctl.simulators.scpi import compile_header
from labctl.simulators.world import SimpleWorld


class CountingWorld(SimpleWorld):
    """Records every cell_voltage call, to check the core's promise: in order, never twice for one time."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.calls: list[np.ndarray] = []

    def cell_voltage(self, t, current_a):
        self.calls.append(np.array(t))
        return super().cell_voltage(t, current_a)

    def cell_ocv(self, t: float) -> float:
        return 3.0


class Raw:
    def __init__(self, **kw) -> None:
        self.clock = VirtualClock(start_unix=1_764_057_600.0)  # 2025-11-25 08:00:00 UTC
        self.world = CountingWorld()
        self.core = Keithley2450Sim("k", clock=self.clock, world=self.world, **kw)

    def __call__(self, text: str) -> bytes:
        self.core.write(text.encode() + b"\n")
        return self.core.read()


def test_header_spellings():
    pat = compile_header(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]")
    for ok in (
        ":SOUR:CURR",
        ":SOURCE:CURRENT",
        ":SOUR1:CURR:LEV",
        ":SOUR:CURR:LEV:IMM:AMPL",
        ":SOURCE1:CURR:IMM",
    ):
        assert pat.match(ok), ok
    for bad in (":SOURC:CURR", ":SOUR:CUR", ":SOUR2:CURR", ":SOUR:CURR:VLIM"):
        assert not pat.match(bad), bad


def test_identity_language_and_every_spelling():
    r = Raw()
    assert r("*IDN?") == IDN.encode() + b"\n"
    assert r("*lang?") == b"SCPI\n"
    for cmd in (
        ":SOUR:CURR 1e-3",
        "SOUR:CURR 1E-3",
        "source:current 0.001",
        ":Sour1:Curr:Lev:Imm 1e-3",
        "sour:curr:ampl 1e-3",
        "  :SOUR:CURR   0.001  ",
    ):
        r(":SOUR:CURR 0")
        assert r(cmd) == b""
        assert r(":SOUR:CURR?") == b"1.000000e-03\n", cmd
    assert r(":SYST:ERR:COUN?") == b"0\n"


def test_compound_lines_quoted_strings_and_relative_paths():
    r = Raw()
    assert r(':SOUR:FUNC CURR;:SOUR:CURR:VLIM 2;:SENS:FUNC "VOLT:DC";:SENS:VOLT:RSEN ON') == b""
    assert (
        r(":sour:func?;:sour:curr:vlim?;:sens:func?;:sens:volt:rsen?") == b'CURR;2.000000e+00;"VOLT:DC";1\n'
    )
    assert r(":SOUR:CURR:VLIM 3;VLIM?") == b"3.000000e+00\n"  # VLIM relative to :SOUR:CURR
    assert r(":SENS:VOLT:NPLC MAX;NPLC?") == b"10\n"
    assert r(':TRAC:MAKE "a;b", 100;:TRAC:ACT? "a;b"') == b"0\n"  # ';' inside quotes is data


def test_error_log_format_and_rules():
    r = Raw()
    assert r("BOGUS 1") == b""
    assert r(":SOUR:CURR 2") == b""  # beyond 1.05 A
    assert r(":SOUR:CURR") == b""  # missing parameter
    assert r(":OUTP MAYBE") == b""
    assert r(":SENS:FUNC VOLT") == b""  # not a string
    assert r(":SYST:ERR:COUN?") == b"5\n"
    assert r(":SYST:ERR?") == b'-113,"Undefined header;1;2025/11/25 08:00:00.000"\n'
    assert r(":SYST:ERR:NEXT?") == b'-222,"Parameter data out of range;1;2025/11/25 08:00:00.000"\n'
    assert r(":SYST:ERR:CODE?") == b"-109\n"
    assert r("*CLS;:SYST:ERR?") == b'0,"No error;0;0,0"\n'
    assert r(":SOUR:CURR 1e-3;BOGUS;:SOUR:CURR 5e-3") == b""  # a command error ends the line
    assert r(":SOUR:CURR?") == b"1.000000e-03\n"
    assert r(":SYST:ERR:CODE?") == b"-113\n"
    r.core.write(b"\xff\xfe\n")
    assert r(":SYST:ERR:CODE?") == b"-102\n"


def test_rst_and_language_change_needs_a_power_cycle():
    r = Raw()
    r(":SOUR:FUNC CURR;:SOUR:CURR 0.01;:OUTP 1;BOGUS")
    r("*RST")
    assert r(":SOUR:FUNC?;:SOUR:CURR?;:OUTP?") == b"VOLT;0.000000e+00;0\n"
    assert r(":SYST:ERR:COUN?") == b"1\n"  # *RST keeps the event log
    r("*LANG SCPI2400")
    assert r("*LANG?") == b"SCPI\n"
    r.core.power_cycle()
    assert r("*LANG?") == b"SCPI2400\n"
    assert r("*IDN?") == b""  # 2400 emulation: not modelled


def test_trigger_model_in_simulated_time_calls_the_world_once_per_point():
    r = Raw()
    r(':SOUR:FUNC CURR;:SOUR:CURR 0.002;:SOUR:CURR:VLIM 1;:SENS:FUNC "VOLT";:OUTP 1')
    r(':TRAC:MAKE "buf", 1000;:TRIG:LOAD "DurationLoop", 10, 0.5, "buf";:INIT')
    r.clock.sleep(3.2)
    assert r(":TRIG:STAT?") == b"RUNNING;RUNNING;4\n"
    assert r(':TRAC:ACT? "buf"') == b"7\n"
    r.clock.sleep(10)
    assert r(':TRAC:ACT? "buf";:TRIG:STAT?') == b"20;IDLE;IDLE;9\n"
    data = np.array(r(':TRAC:DATA? 1, 20, "buf", REL, READ, SOUR').split(b","), dtype=float).reshape(-1, 3)
    np.testing.assert_allclose(data[:, 0], np.arange(20) * 0.5)
    np.testing.assert_allclose(data[:, 1], 0.02)  # 10 ohm * 2 mA
    np.testing.assert_allclose(data[:, 2], 0.002)
    calls = np.concatenate(r.world.calls)
    assert len(calls) == 20 and np.all(np.diff(calls) > 0)  # in order, each time once
    assert [len(c) for c in r.world.calls] == [1, 6, 13]  # one call per fill (:INIT, 2 queries)
    assert r(':READ? "defbuffer1", READ, SOUR') == b"2.000000000e-02,2.000000000e-03\n"
    assert r(':READ? "defbuffer1", READ, SOUR') == b"2.000000000e-02,2.000000000e-03\n"  # same instant
    calls = np.concatenate(r.world.calls)
    assert len(calls) == 22 and np.all(np.diff(calls) > 0) and calls[-1] - calls[-2] == pytest.approx(1e-9)
    assert r(":SOUR:CURR:VLIM:TRIP?") == b"0\n"


def test_compliance_clamps_and_trips_and_output_off_reads_the_ocv():
    r = Raw()
    r(':SOUR:FUNC CURR;:SOUR:CURR 0.5;:SOUR:CURR:VLIM 2;:SENS:FUNC "VOLT";:OUTP 1')
    # 0.5 A into 10 ohm asks 5 V; held at the 2 V limit, the source readback reports what flowed: 0.2 A
    assert r(':READ? "defbuffer1", READ, SOUR') == b"2.000000000e+00,2.000000000e-01\n"
    r(":SOUR:CURR:READ:BACK OFF")  # read-back off: SOURce is the programmed level, compliance or not
    assert r(':READ? "defbuffer1", READ, SOUR') == b"2.000000000e+00,5.000000000e-01\n"
    r(':SENS:FUNC "CURR"')  # the measured current is what flowed
    assert r(':READ? "defbuffer1", READ') == b"2.000000000e-01\n"
    r(':SENS:FUNC "VOLT";:SOUR:CURR:READ:BACK ON')
    assert r(":SOUR:CURR:VLIM:TRIP?") == b"1\n"
    r(":SOUR:CURR -0.5")
    assert r(":SOUR:CURR:VLIM:TRIP?") == b"0\n"
    r.clock.sleep(1)
    assert r(':READ? "defbuffer1", READ').startswith(b"-2.0")
    r(":OUTP 0")
    r.clock.sleep(1)
    assert r(':READ? "defbuffer1", READ, SOUR') == b"3.000000000e+00,0.000000000e+00\n"


def test_abort_buffers_and_bad_trigger_use():
    r = Raw()
    r(':TRIG:LOAD "DurationLoop", 100, 1;:INIT')
    r.clock.sleep(4.5)
    r(":ABOR")
    assert r(":TRIG:STAT?") == b"ABORTED;ABORTED;4\n"
    assert r(":TRAC:ACT?") == b"5\n"
    r(':TRIG:LOAD "Nonsense", 1;:TRAC:DATA? 1, 99, "defbuffer1";:TRAC:DEL "defbuffer1";:TRAC:CLE "nope"')
    assert r(":SYST:ERR:CODE?") == b"-224\n"
    r(":TRAC:DATA? 1, 99")
    r(':TRAC:POIN 5, "defbuffer1"')
    assert [r(":SYST:ERR:CODE?") for _ in range(3)] == [b"-222\n", b"-222\n", b"0\n"]


def test_big_buffer_formatting():
    r = Raw()
    r(':SOUR:FUNC CURR;:SOUR:CURR 1e-3;:OUTP 1;:TRAC:MAKE "big", 100000')
    r(':TRIG:LOAD "DurationLoop", 36000, 1, "big";:INIT')
    r.clock.sleep(36000)
    reply = r(':TRAC:DATA? 1, 20000, "big", REL, READ, SOUR')
    data = np.array(reply.split(b","), dtype=float).reshape(-1, 3)
    assert data.shape == (20000, 3) and data[-1, 0] == 19999.0


def _filled(r: Raw) -> None:
    """3 points, 1 s apart, of 2 mA into the 10 ohm SimpleWorld cell, in buffer "b"."""
    r(':SOUR:FUNC CURR;:SOUR:CURR 2e-3;:SENS:FUNC "VOLT";:OUTP 1;:TRAC:MAKE "b", 10')
    r(':TRIG:LOAD "DurationLoop", 3, 1, "b";:INIT')
    r.clock.sleep(3)


def test_data_format_and_byte_order_commands():
    r = Raw()
    assert r(":FORM?;:FORM:DATA?;:FORM:BORD?") == b"ASC;ASC;SWAP\n"  # power-on defaults
    for spelling, short in (("REAL", b"REAL"), ("sreal", b"SRE"), ("SRE", b"SRE"), ("ascii", b"ASC")):
        assert r(f":FORMat:DATA {spelling};:FORM?") == short + b"\n"
    assert r(":FORM:BORD NORMAL;BORD?") == b"NORM\n"
    assert r(":FORMAT:BORDER swap;:FORM:BORD?") == b"SWAP\n"
    assert r(":FORM:DATA REAL, 64") == b""  # the 2450 takes no <length> (the 6517B does)
    assert r(":FORM DREAL") == b""
    assert r(":FORM:BORD BIG") == b""
    assert [r(":SYST:ERR:CODE?") for _ in range(4)] == [b"-108\n", b"-224\n", b"-224\n", b"0\n"]
    assert r(":FORM?") == b"ASC\n"
    r(":FORM REAL;:FORM:BORD NORM;*RST")
    assert r(":FORM?;:FORM:BORD?") == b"ASC;SWAP\n"  # *RST restores both
    r(":FORM REAL;:FORM:BORD NORM")
    r.core.power_cycle()
    assert r(":FORM?;:FORM:BORD?") == b"ASC;SWAP\n"


def test_binary_buffer_replies_byte_for_byte():
    r = Raw()
    _filled(r)
    ascii_reply = r(':TRAC:DATA? 1, 3, "b", REL, READ, SOUR')
    assert ascii_reply == (
        b"0.000000000e+00,2.000000000e-02,2.000000000e-03,1.000000000e+00,2.000000000e-02,2.000000000e-03,"
        b"2.000000000e+00,2.000000000e-02,2.000000000e-03\n"
    )
    values = [0.0, 0.02, 0.002, 1.0, 0.02, 0.002, 2.0, 0.02, 0.002]
    r(":FORM REAL")
    assert r(':TRAC:DATA? 1, 3, "b", REL, READ, SOUR') == b"#0" + struct.pack("<9d", *values) + b"\n"
    # spelled out, for the first point (0.0, 0.02, 0.002) little-endian float64
    assert r(':TRAC:DATA? 1, 1, "b", REL, READ, SOUR') == (
        b"#0" + bytes(8) + bytes.fromhex("7b14ae47e17a943f fca9f1d24d62603f") + b"\n"
    )
    r(":FORM:BORD NORM")
    assert r(':TRAC:DATA? 2, 3, "b", READ, REL') == b"#0" + struct.pack(">4d", 0.02, 1.0, 0.02, 2.0) + b"\n"
    r(":FORM SREAL;:FORM:BORD SWAP")
    assert r(':TRAC:DATA? 1, 3, "b", SOUR') == b"#0" + struct.pack("<3f", 0.002, 0.002, 0.002) + b"\n"
    assert r(':TRAC:DATA? 1, 3, "b"') == b"#0" + struct.pack("<3f", 0.02, 0.02, 0.02) + b"\n"  # READ
    r(":FORM REAL")
    assert r(':READ? "b", READ, SOUR') == b"#0" + struct.pack("<2d", 0.02, 0.002) + b"\n"
    assert r(':FETC? "b", SOUR') == b"#0" + struct.pack("<d", 0.002) + b"\n"
    # other queries stay ASCII; a compound line keeps its ';' between the units
    assert r(':TRAC:ACT? "b";:TRAC:DATA? 1, 1, "b", REL') == b"4;#0" + bytes(8) + b"\n"  # 3 + the :READ?
    r(":FORM ASC")
    assert r(':TRAC:DATA? 1, 3, "b", REL, READ, SOUR') == ascii_reply


def test_binary_formats_refuse_the_text_elements():
    r = Raw()
    _filled(r)
    r(":FORM REAL")
    assert r(':TRAC:DATA? 1, 3, "b", REL, SEC') == b""  # no reply, the event log says why
    assert r(':READ? "b", SECONDS') == b""
    assert r(":SYST:ERR?") == (
        b'1133,"Parameter 5, Syntax error, expected valid name parameters.;1;2025/11/25 08:00:03.000"\n'
    )
    assert r(":SYST:ERR?").startswith(b'1133,"Parameter 2, Syntax error')
    r(":FORM ASC")
    assert r(':TRAC:DATA? 1, 1, "b", REL, SEC') == b"0.000000000e+00,0.000000000e+00\n"


def test_big_binary_buffer_is_the_ascii_one_exactly():
    r = Raw()
    r(':SOUR:FUNC CURR;:SOUR:CURR 1e-3;:OUTP 1;:TRAC:MAKE "big", 100000')
    r(':TRIG:LOAD "DurationLoop", 36000, 1, "big";:INIT')
    r.clock.sleep(36000)
    text = r(':TRAC:DATA? 1, 20000, "big", REL, READ, SOUR')
    r(":FORM REAL")
    raw = r(':TRAC:DATA? 1, 20000, "big", REL, READ, SOUR')
    assert len(raw) == 2 + 20000 * 3 * 8 + 1 and raw[:2] == b"#0" and raw[-1:] == b"\n"
    binary = np.frombuffer(raw[2:-1], "<f8")
    # the ASCII reply has 10 significant digits; the binary one is the buffer itself
    np.testing.assert_allclose(binary, np.array(text.split(b","), dtype=float), rtol=1e-9, atol=0)


# -- the driver against the simulator -------------------------------------------------------------------


@pytest.fixture
def smu():
    clock = VirtualClock()
    world = SimpleWorld()
    core = Keithley2450Sim("k-t", clock=clock, world=world)
    registry.register("k-t", core)
    k = Keithley2450(
        SerialTransport("potentiostat", "labsim://k-t", clock=clock, timeout=2.0), name="potentiostat"
    )
    k.connect()
    yield k, core, world, clock
    k.close()
    registry.unregister("k-t")


def test_driver_in_process(smu):
    k, core, _world, _clock = smu
    assert k.identify() == IDN
    k.configure_galvanostatic(voltage_limit=1.0)
    k.set_current(2e-3)
    k.output(True)
    assert k.read() == (pytest.approx(0.02), pytest.approx(2e-3))
    tr = k.acquire(current=-5e-3, duration=3600.0, interval=0.1)
    assert len(tr.t) == 36000 and not tr.tripped
    np.testing.assert_allclose(tr.t, np.arange(36000) * 0.1, atol=1e-6)
    np.testing.assert_allclose(tr.voltage, -0.05)
    tr = k.acquire(current=0.2, duration=10.0, interval=1.0)  # 2 V > 1 V limit
    assert tr.tripped and np.all(tr.voltage == 1.0) and k.limit_tripped()
    assert k.safe_state() == {"output": False, "current_a": 0.0}
    assert core.output is False


def test_a_fresh_driver_holds_zero_current_not_zero_volts(smu):
    """The 2450 powers on sourcing voltage and sensing current: an OCV (`acquire(current=0)`) before any
    `configure_galvanostatic` must still source 0 A and read volts, not hold the cell at 0 V."""
    k, core, _world, _clock = smu
    assert core.function == "VOLT"
    tr = k.acquire(current=0.0, duration=5.0, interval=1.0)
    assert core.function == "CURR" and core.sense.startswith("VOLT")
    assert len(tr.t) == 5 and np.all(tr.current == 0.0) and np.all(tr.voltage == 0.0)
    tr = k.acquire(current=2e-3, duration=2.0, interval=1.0)  # 10 ohm: volts, not the current
    np.testing.assert_allclose(tr.voltage, 0.02)
    np.testing.assert_allclose(tr.current, 2e-3)


def test_driver_refuses_2400_emulation():
    clock = VirtualClock()
    registry.register("k-2400", Keithley2450Sim("k-2400", clock=clock, language="SCPI2400"))
    try:
        core = registry.get("k-2400")
        core.write(b"*LANG?\n")
        assert core.read() == b"SCPI2400\n"
        k = Keithley2450(SerialTransport("p", "labsim://k-2400", clock=clock, timeout=0.5))
        k.connect()
        with pytest.raises(InstrumentTimeout):
            k.identify()  # a 2400-mode 2450 does not answer the native *IDN? here
    finally:
        registry.unregister("k-2400")


def _session(k: Keithley2450) -> None:
    k.connect()
    assert k.identify() == IDN
    k.configure_galvanostatic(voltage_limit=2.0)
    tr = k.acquire(current=1e-3, duration=0.3, interval=0.05)
    assert len(tr.t) == 6
    np.testing.assert_allclose(tr.voltage, 0.01)
    assert k.safe_state()["output"] is False
    k.close()


def test_driver_over_asrl_labsim_visa():
    clock = VirtualClock()
    registry.register("k-asrl", Keithley2450Sim("k-asrl", clock=clock))
    try:
        _session(Keithley2450(VisaTransport("potentiostat", "ASRLlabsim://k-asrl::INSTR", clock=clock)))
    finally:
        registry.unregister("k-asrl")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("link", ["visa", "socket", pytest.param("pty", marks=pytest.mark.pty)])
def test_binary_fetch_over_a_real_link(link):
    """1000 buffered points as one #0 block over TCP (VISA and socket://) or a pty: the driver's values are
    the simulator's buffer bit for bit, although the block holds LF bytes; the transcript keeps it whole."""
    core = Keithley2450Sim("k-bin", clock=RealClock())
    records = []
    with serve_pty(core) if link == "pty" else serve_tcp(core) as exp:
        kw = {"timeout": 2.0, "recorder": records.append}
        if link == "visa":
            transport = VisaTransport("potentiostat", exp.visa_resource, **kw)
        else:
            transport = SerialTransport("potentiostat", exp.path if link == "pty" else exp.serial_url, **kw)
        k = Keithley2450(transport)
        k.connect()
        k.configure_galvanostatic(voltage_limit=2.0)
        tr = k.acquire(current=1.7e-3, duration=1.0, interval=1e-3)
        assert k.safe_state()["output"] is False
        k.close()
    buf = core.buffers["labctl"]
    assert len(tr.t) == 1000 and core.data_format == "REAL"
    np.testing.assert_array_equal(tr.t, buf.t - buf.t_first)
    np.testing.assert_array_equal(tr.voltage, buf.v)
    np.testing.assert_array_equal(tr.current, buf.i)
    blocks = [r.data for r in records if r.direction == "rx" and r.data[:2] == b"#0"]
    assert [len(b) for b in blocks] == [2 + 1000 * 24 + 1]
    assert b"\n" in blocks[0][2:-1]  # LF inside the data: read by length, not to the terminator
    sent = [r.data for r in records if r.direction == "tx"]
    assert b":FORM:DATA REAL\n" in sent and b":FORM:BORD SWAP\n" in sent
    assert sent.index(b":FORM:BORD SWAP\n") < sent.index(b':TRAC:DATA? 1, 1000, "labctl", REL, READ, SOUR\n')


# -- faults beyond the generic matrix (test_conformance.py) --------------------------------------------------


def test_fault_on_a_command_is_reported_from_the_event_log(smu):
    k, core, _world, _clock = smu
    core.inject(FaultKind.INSTRUMENT_ERROR, rb"^:SOUR:CURR 0\.002")
    with pytest.raises(InstrumentReportedError, match="-200 Execution error"):
        k.set_current(2e-3)
    k.set_current(3e-3)
    assert core.level == 3e-3


def test_fault_stuck_busy_ends_the_acquisition(smu):
    k, core, _world, clock = smu
    core.inject(FaultKind.STUCK_BUSY, rb"^:INIT")
    t0 = clock.monotonic()
    with pytest.raises(InstrumentBusy, match="aborted"):
        k.acquire(current=1e-3, duration=60.0, interval=1.0)
    assert clock.monotonic() - t0 <= 60.0 + k.IDLE_GRACE + 1.0
    assert k.safe_state()["output"] is False


@pytest.mark.pty
def test_a_manual_only_client_over_the_pty():
    """What a program written from the 2450 manual does, with plain pyserial."""
    import serial

    with serve_pty(Keithley2450Sim("k-raw", clock=RealClock())) as exp:
        port = serial.Serial(exp.path, timeout=1.0)
        try:
            port.write(b"*IDN?\n")
            assert port.read_until(b"\n") == IDN.encode() + b"\n"
            port.write(b'SOUR:FUNC CURR;:SOUR:CURR 1e-3;:SENS:FUNC "VOLT";:OUTP ON;:READ? "defbuffer1"\n')
            assert float(port.read_until(b"\n")) == pytest.approx(0.01)
        finally:
            port.close()


def test_a_silent_simulator_over_tcp_visa_does_not_hang_a_virtual_clock():
    clock = VirtualClock()
    with serve_tcp(Keithley2450Sim("k-silent", clock=clock)) as exp:
        k = Keithley2450(VisaTransport("potentiostat", exp.visa_resource, clock=clock, timeout=2.0))
        k.connect()
        exp.core.inject(FaultKind.NO_REPLY, rb"TRIP\?")
        with pytest.raises(InstrumentTimeout):
            k.limit_tripped()
        assert k.limit_tripped() is False
        k.close()
