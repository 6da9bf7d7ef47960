"""The TPG 361 simulator: bytes, the chamber it reads; the driver against it in process. The driver over TCP
and a pty and every fault kind: test_conformance.py."""

from __future__ import annotations

import pytest

from labctl.clock import RealClock, VirtualClock
from labctl.drivers.tpg361 import Tpg361
from labctl.drivers.transport import SerialSettings, SerialTransport
from labctl.errors import (
    InstrumentReportedError,
    MalformedReply,
)
from labctl.simulators import registry
from labctl.simulators.exposures import serve_pty
from labctl.simulators.tpg361 import Tpg361Sim
from labctl.simulators.world import SimpleWorld

A, N = b"\x06\r\n", b"\x15\r\n"


class Raw:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.world = SimpleWorld()
        self.core = Tpg361Sim("gauge", clock=self.clock, world=self.world)

    def __call__(self, data: bytes) -> bytes:
        self.core.write(data)
        return self.core.read()

    def ask(self, mnemonic: str) -> bytes:
        assert self(mnemonic.encode() + b"\r\n") == A
        return self(b"\x05")


def test_two_step_protocol_units_and_the_chamber():
    r = Raw()
    assert r.ask("PR1") == b"0,+1.0000E-06\r\n"         # 1e-4 Pa base pressure, in mbar
    r.world.gas_flow(0.0, "Ar", 20.0)                    # 0.4 Pa
    assert r.ask("PR1") == b"0,+4.0010E-03\r\n"
    assert r(b"\x05") == b"0,+4.0010E-03\r\n"             # ENQ again: a fresh reading of the same mnemonic
    assert r.ask("UNI,2") == b"2\r\n"                     # set + ENQ reads back
    assert r.ask("PR1") == b"0,+4.0010E-01\r\n"
    assert r.ask("UNI,1") == b"1\r\n" and r.ask("PR1") == b"0,+3.0010E-03\r\n"
    assert r.ask("UNI,5") == b"5\r\n" and r.ask("PR1") == b"0,+2.0228E+00\r\n"
    assert r.ask("TID") == b"PKR\r\n" and r.ask("SEN") == b"2\r\n"
    assert r.ask("AYT") == b"TPG361,PTG28290,44990000,010100,010100\r\n"


def test_refusals_set_the_error_word_which_clears_when_read():
    r = Raw()
    assert r(b"XYZ\r\n") == N
    assert r(b"\x05") == N                                # nothing accepted to report
    assert r.ask("ERR") == b"0001\r\n" and r.ask("ERR") == b"0000\r\n"
    assert r(b"UNI,7\r\n") == N and r.ask("ERR") == b"0010\r\n"
    assert r(b"PR2\r\n") == N and r.ask("ERR") == b"0100\r\n"
    assert r(b"PR1,3\r\n") == N and r.ask("ERR") == b"0010\r\n"


def test_framing_lf_optional_etx_clears_and_lower_case():
    r = Raw()
    assert r(b"pr1\r") == A and r(b"\n\x05")[:2] == b"0,"
    assert r(b"UN") == b"" and r(b"\x03") == b""          # ETX drops the half-sent mnemonic
    assert r(b"TID\r\n") == A and r(b"\x05") == b"PKR\r\n"


def test_sensor_states_and_range():
    r = Raw()
    assert r.ask("SEN,1") == b"1\r\n" and r.ask("PR1") == b"4,+0.0000E+00\r\n"
    assert r.ask("SEN,2") == b"2\r\n"
    r.world.base_pressure_pa = 1e-8
    assert r.ask("PR1") == b"1,+5.0000E-09\r\n"
    r.world.base_pressure_pa = 2e5
    assert r.ask("PR1") == b"2,+1.0000E+03\r\n"
    r.core.sensor_fault = True
    assert r.ask("PR1") == b"3,+0.0000E+00\r\n"
    r.core.gauge = "noSEn"
    assert r.ask("PR1") == b"5,+0.0000E+00\r\n" and r.ask("TID") == b"noSEn\r\n"


def test_stored_parameters_checked_kept_and_restored():
    r = Raw()
    assert r.ask("LNG") == b"0\r\n" and r.ask("LNG,1") == b"1\r\n"
    assert r.ask("DCD,3") == b"3\r\n" and r.ask("FSR,3") == b"3\r\n" and r.ask("FIL,2") == b"2\r\n"
    eth = "0,192.168.1.5,255.255.255.0,192.168.1.1"
    assert r.ask("ETH," + eth) == eth.encode() + b"\r\n"
    assert r(b"ETH,0,192.168.1.500,255.255.255.0,0.0.0.0\r\n") == N and r.ask("ERR") == b"0010\r\n"
    assert r(b"DCD,4\r\n") == N and r(b"LNG,x\r\n") == N
    assert r.ask("LOC,1") == b"1\r\n" and r(b"LNG,2\r\n") == N        # locked: parameters refused
    assert r.ask("LOC,0") == b"0\r\n" and r.ask("LNG,2") == b"2\r\n"
    r.core.power_cycle()
    assert r.ask("LNG") == b"2\r\n" and r.ask("DCD") == b"3\r\n"       # non-volatile
    assert r.ask("SAV,1") == b"1\r\n" and r.ask("LNG") == b"0\r\n" and r.ask("UNI") == b"0\r\n"


def test_identity_temperature_and_calibration():
    r = Raw()
    assert r.ask("PNR") == b"010100\r\n" and r.ask("MAC") == b"02:00:00:36:10:01\r\n"
    assert r.ask("TMP") == b"30\r\n"                     # 22 degC room + self-heating
    assert r.ask("CAL,2.5") == b"2.500\r\n" and r.ask("PR1") == b"0,+2.5000E-06\r\n"
    assert r(b"CAL,11\r\n") == N
    assert r.ask("RES,1") == b"0\r\n"
    assert r.core.rejects(N) and not r.core.rejects(A + b"0\r\n")


def test_continuous_mode_streams_until_the_next_message():
    r = Raw()
    assert r(b"COM,0\r\n") == A + b"0,+1.0000E-06\r\n"
    r.world.gas_flow(0.0, "Ar", 20.0)
    r.clock.sleep(0.25)
    assert r(b"") == b"0,+4.0010E-03\r\n" * 2           # at 0.1 s and 0.2 s
    assert r(b"PR1\r\n") == A                            # any message ends it
    r.clock.sleep(1.0)
    assert r(b"") == b""


def test_rs232_test_echoes_until_etx():
    r = Raw()
    assert r(b"RST\r\n") == A
    assert r(b"hello\r\n") == b"hello\r\n"
    assert r(b"\x03") == b"" and r.ask("TID") == b"PKR\r\n"


def test_power_cycle_keeps_the_unit():
    r = Raw()
    r.ask("UNI,2")
    r(b"XYZ\r\n")
    r.core.power_cycle()
    assert r.ask("UNI") == b"2\r\n" and r.ask("ERR") == b"0000\r\n"


def test_wrong_baud_garbles():
    clock = VirtualClock()
    core = Tpg361Sim("gauge-baud", clock=clock)
    registry.register("gauge-baud", core)
    try:
        g = Tpg361(SerialTransport("gauge", "labsim://gauge-baud", SerialSettings(19200), clock=clock))
        g.connect()
        with pytest.raises(MalformedReply):
            g.identify()
    finally:
        registry.unregister("gauge-baud")


# -- the driver against the simulator -------------------------------------------------------------------


@pytest.fixture
def gauge():
    clock = VirtualClock()
    world = SimpleWorld()
    core = Tpg361Sim("gauge-t", clock=clock, world=world)
    registry.register("gauge-t", core)
    g = Tpg361(SerialTransport("gauge", "labsim://gauge-t", Tpg361.SERIAL, clock=clock, timeout=1.0),
               name="gauge")
    g.connect()
    yield g, core, world, clock
    g.close()
    registry.unregister("gauge-t")


def test_driver_in_process(gauge):
    g, core, world, _ = gauge
    assert g.identify().startswith("TPG361,")
    assert g.gauge_type() == "PKR"
    assert g.pressure() == pytest.approx(1e-4)
    world.gas_flow(0.0, "Ar", 10.0)
    assert g.pressure() == pytest.approx(0.2001)
    for unit in ("Torr", "Pa", "Micron", "hPa", "mbar"):
        g.set_unit(unit)
        assert g.unit() == unit and g.pressure() == pytest.approx(0.2001, rel=1e-4)
    with pytest.raises(InstrumentReportedError, match="no hardware"):
        g._exchange("PR2")
    assert g.error_word() == "0000"                        # the read cleared it
    core.sensor_on = False
    with pytest.raises(InstrumentReportedError, match="sensor off"):
        g.pressure()
    assert g.safe_state()["status"] == 4


@pytest.mark.pty
def test_a_manual_only_client_over_the_pty():
    """What a program written from the TPG 36x manual does, with plain pyserial."""
    import serial

    with serve_pty(Tpg361Sim("gauge-raw", clock=RealClock())) as exp:
        port = serial.Serial(exp.path, 9600, timeout=1.0)
        try:
            port.write(b"UNI,2\r\n")
            assert port.read_until(b"\r\n") == b"\x06\r\n"
            port.write(b"\x05")
            assert port.read_until(b"\r\n") == b"2\r\n"
            port.write(b"PR1\r\n")
            assert port.read_until(b"\r\n") == b"\x06\r\n"
            port.write(b"\x05")
            assert port.read_until(b"\r\n") == b"0,+1.0000E-04\r\n"
        finally:
            port.close()
