"""The IKA RCT digital simulator: bytes, the bath it heats, the watchdog; the driver against it in process.
The driver over TCP and a pty and every fault kind: test_conformance.py."""

from __future__ import annotations

import pytest

from labctl.clock import RealClock, VirtualClock
from labctl.drivers.ika_rct import IkaRct
from labctl.drivers.transport import SerialSettings, SerialTransport
from labctl.errors import (
    InstrumentError,
    MalformedReply,
    SafeStateError,
)
from labctl.simulators import registry
from labctl.simulators.core import FaultKind
from labctl.simulators.exposures import serve_pty
from labctl.simulators.ika_rct import IkaRctSim
from labctl.simulators.world import SimpleWorld


class Raw:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.world = SimpleWorld(ambient_c=22.0, bath_tau_s=60.0)
        self.core = IkaRctSim("hp", clock=self.clock, world=self.world)

    def __call__(self, text: str) -> bytes:
        self.core.write(text.encode() + b"\r\n")
        return self.core.read()


def test_queries_sets_and_the_bath():
    r = Raw()
    assert r("IN_NAME") == b"RCT digital\r\n"
    assert r("IN_PV_1") == b"22.0 1\r\n"
    assert r("OUT_SP_1 50") == b"" and r("START_1") == b""
    assert r("IN_SP_1") == b"50.0 1\r\n" and r("STATUS_1") == b"11 1\r\n"
    r.clock.sleep(60)
    assert r("IN_PV_1") == b"39.7 1\r\n"  # 50 - 28 / e after one time constant
    assert r("IN_PV_2") == b"55.0 2\r\n"
    assert r("OUT_SP_4 300") == b"" and r("START_4") == b""
    assert r("IN_SP_4") == b"300 4\r\n" and r("IN_PV_4") == b"300 4\r\n" and r("STATUS_4") == b"11 4\r\n"
    assert r("OUT_SP_1 400") == b"" and r("IN_SP_1") == b"50.0 1\r\n"  # out of range: ignored
    assert r("BOGUS") == b"" and r("in_pv_1") == b""  # unknown: silence
    assert r("STOP_1") == b"" and r("STATUS_1") == b"12 1\r\n"


def test_identity_safety_circuit_and_every_query_names_its_channel():
    r = Raw()
    assert r("IN_TYPE") == b"RCT digital\r\n" and r("IN_VERSION") == b"1.20\r\n"
    assert r("IN_SOFTWARE_ID") == b"6002;1.20\r\n"
    r("OUT_SP_1 40")
    r("START_1")
    r.clock.sleep(120)
    plate, bath = r("IN_PV_2").split()[0], r("IN_PV_1").split()[0]
    assert r("IN_PV_3") == plate + b" 3\r\n"          # the safety circuit's own sensor sits in the plate
    assert r("IN_PV_7") == bath + b" 7\r\n"           # second element of the double PT1000
    assert r("IN_SP_3") == b"360 3\r\n"               # 50 K above the 310 degC setpoint range
    assert r("IN_SP_2") == b"40.0 2\r\n"
    assert r("IN_PV_5") == b"0.0 5\r\n"               # constant viscosity: no trend
    for query in (b"IN_PV_1", b"IN_PV_4", b"IN_SP_4", b"STATUS_1", b"STATUS_4", b"IN_SP_12", b"IN_SP_42"):
        assert r(query.decode()).rstrip(b"\r\n")[-1:] == query[-1:]   # numat checks the last character
    assert not r.core.rejects(b"")
    assert r("SET_MODE_B") == b"" and r.core.mode == "B" and not r.core.rejects(b"")
    assert r("SET_MODE_C") == b"" and r.core.rejects(b"")


def test_watchdog_mode_2_falls_back_to_the_safety_setpoints():
    r = Raw()
    assert r("OUT_SP_12@30") == b"30.0\r\n" and r("OUT_SP_42@100") == b"100\r\n"
    assert r("IN_SP_12") == b"30.0 12\r\n" and r("IN_SP_42") == b"100 42\r\n"
    r("OUT_SP_1 60")
    r("OUT_SP_4 500")
    r("START_1")
    r("START_4")
    assert r("OUT_WD2@20") == b"20\r\n"
    r.clock.sleep(25)
    assert r("IN_SP_1") == b"30.0 1\r\n" and r("IN_SP_4") == b"100 4\r\n"   # still heating and stirring
    assert r("STATUS_1") == b"11 1\r\n" and r("STATUS_4") == b"11 4\r\n"
    assert r("OUT_WD2@0") == b"0\r\n" and r.core.watchdog is None
    assert r("OUT_WD2@5") == b"" and r.core.rejects(b"")    # below 20 s: refused in silence


def test_watchdog_switches_heat_and_stir_off():
    r = Raw()
    assert r("OUT_WD1@30") == b"30\r\n"
    assert r("OUT_WD1@5") == b""
    r("OUT_SP_1 60")
    r("START_1")
    r("OUT_SP_4 200")
    r("START_4")
    r.clock.sleep(20)
    assert r("STATUS_1") == b"11 1\r\n"  # a command within 30 s feeds the watchdog
    r.clock.sleep(31)
    assert r("STATUS_1") == b"12 1\r\n" and r("STATUS_4") == b"12 4\r\n"
    assert r.core.watchdog_tripped
    r.clock.sleep(600)
    assert float(r("IN_PV_1").split()[0]) < 25.0  # cooled back towards ambient


def test_power_cycle_switches_everything_off():
    r = Raw()
    r("OUT_SP_1 60")
    r("START_1")
    r.core.power_cycle()
    assert r("STATUS_1") == b"12 1\r\n" and r("IN_SP_1") == b"0.0 1\r\n"


@pytest.fixture
def hotplate():
    clock = VirtualClock()
    world = SimpleWorld()
    core = IkaRctSim("hp-t", clock=clock, world=world)
    registry.register("hp-t", core)
    h = IkaRct(SerialTransport("hotplate", "labsim://hp-t", IkaRct.SERIAL, clock=clock), name="hotplate")
    h.connect()
    yield h, core, world, clock
    h.close()
    registry.unregister("hp-t")


def test_driver_in_process(hotplate):
    h, core, _world, clock = hotplate
    assert h.identify() == "RCT digital"
    h.watchdog(60)
    h.set_temperature(45.0)
    h.heater(True)
    h.stirrer(400)
    clock.sleep(30)
    assert 22.0 < h.bath_temperature() < 45.0
    assert h.plate_temperature() == 50.0
    assert h.safe_state()["heating"] is False
    assert core.heating is False and core.stirring is False


def test_wrong_line_settings_garble_replies():
    clock = VirtualClock()
    registry.register("hp-8n1", IkaRctSim("hp-8n1", clock=clock))
    try:
        h = IkaRct(SerialTransport("hotplate", "labsim://hp-8n1", SerialSettings(9600), clock=clock))
        h.connect()
        with pytest.raises(MalformedReply):
            h.identify()
    finally:
        registry.unregister("hp-8n1")


def test_fault_stuck_busy(hotplate):
    h, core, _world, _clock = hotplate
    h.heater(True)
    core.inject(FaultKind.STUCK_BUSY, rb"^OUT_SP_1")
    with pytest.raises(InstrumentError, match="read back"):
        h.set_temperature(50.0)
    with pytest.raises(SafeStateError, match="heater on"):
        h.safe_state()
    core.power_cycle()
    assert h.safe_state()["heating"] is False


@pytest.mark.pty
def test_a_manual_only_client_over_the_pty():
    import serial

    with serve_pty(IkaRctSim("hp-raw", clock=RealClock())) as exp:
        port = serial.Serial(exp.path, 9600, timeout=1.0)  # 8N1: see PTY_LINE
        try:
            port.write(b"IN_NAME\r\n")
            assert port.read_until(b"\r\n") == b"RCT digital\r\n"
            port.write(b"OUT_SP_1 42\r\nIN_SP_1\r\n")
            assert port.read_until(b"\r\n") == b"42.0 1\r\n"
        finally:
            port.close()
