"""The SQM-160 simulator on its own bytes, then the driver against it in process (over TCP and a pty, and
every fault kind: test_conformance.py)."""

from __future__ import annotations

import math

import pytest

from labctl.clock import RealClock, VirtualClock
from labctl.drivers.sqm160 import Sqm160, packet, response
from labctl.drivers.transport import SerialTransport
from labctl.errors import (
    ChecksumError,
    InstrumentBusy,
    SafeStateError,
)
from labctl.simulators import registry
from labctl.simulators.core import FaultKind
from labctl.simulators.exposures import serve_pty
from labctl.simulators.sqm160 import C_F, F_Q, Sqm160Sim, zmatch_thickness_m
from labctl.simulators.world import SimpleWorld


class Raw:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.world = SimpleWorld(rate_kg_m2_s_per_w=1e-9)   # ~0.4 A/s of a 1 g/cc film at 100 W
        self.core = Sqm160Sim("qcm", clock=self.clock, world=self.world)

    def __call__(self, message: str | bytes) -> bytes:
        self.core.write(packet(message.encode()) if isinstance(message, str) else message)
        return self.core.read()

    def deposit(self, seconds: float, watts: float = 100.0) -> None:
        self.world.gas_flow(self.clock.monotonic(), "Ar", 20.0)
        self.world.rf_power(self.clock.monotonic(), watts)
        self.clock.sleep(seconds)


def ok(text: str = "") -> bytes:
    return response("A", text.encode())


def value(reply: bytes) -> float:
    return float(reply[3:-2])


def test_identity_and_first_answer_after_power_up():
    r = Raw()
    assert r(b"!#@O7") == ok("MON Ver 4.13")
    assert r("J") == ok("2")
    assert r("Y") == ok("1") and r("Y") == ok("0")
    r.core.power_cycle()
    assert r("J") == response("B", b"2")               # ok, but the instrument was reset (once)
    assert r("J") == ok("2")


def test_fresh_crystal_readings_match_the_manual_format():
    r = Raw()
    assert r("N1") == ok(" 0.000 ") and r("L1") == ok(" 0.00 ")   # pymeasure's SQM-160 transcripts
    assert r("P1") == ok("6000000.000")
    assert r("R1") == ok("100.00")
    assert r("P2") == ok("0.000")                      # no crystal on sensor 2
    assert r("L1?") == ok(" 0.00 ")                    # pymeasure's form is accepted too


def test_pymeasure_transcripts_byte_for_byte():
    """pymeasure's SQM-160 test transcripts (tests/instruments/inficon/test_sqm160.py), raw bytes."""
    r = Raw()
    for sent, answer in ((b"!#@O7", b"!0AMON Ver 4.13Uw"), (b"!%L1?\x85{", b"!*A 0.00 [d"),
                         (b"!#O\x8f9", b"!+A 0.000 Jo")):
        r.core.write(sent)
        assert r.core.read() == answer


def test_sauerbrey_and_zmatch():
    r = Raw()
    r("U1")
    r.deposit(100.0)                                   # 100 W x 1e-9 kg/m^2/s/W x 100 s = 1e-5 kg/m^2
    mass = r.world.qcm_areal_mass(r.clock.monotonic())
    assert mass == pytest.approx(1e-5)
    assert value(r("P1")) == pytest.approx(F_Q - C_F * mass, abs=1e-3)
    assert pytest.approx(2 * F_Q**2 / math.sqrt(2648 * 2.947e10)) == C_F
    thick = value(r("N1")) * 1e-10                     # film density 1 g/cc -> m / rho
    assert thick == pytest.approx(mass / 1000.0, rel=1e-4)
    r("U0")
    assert r("A1LIF      2.64 150 0.774 0.000 0.000 0 1") == ok()   # LiF, 150 % tooling: recomputed
    expected = zmatch_thickness_m(F_Q - C_F * mass, 2640.0, 0.774) * 1.5
    assert value(r("N1")) * 1e-10 == pytest.approx(expected, rel=1e-4)
    assert expected == pytest.approx(mass / 2640.0 * 1.5, rel=1e-3)
    assert value(r("R1")) == pytest.approx(100 * (1 - C_F * mass / 1e6), abs=0.01)


def test_rate_from_successive_readings_and_zero():
    r = Raw()
    r("U1")
    r("L1")
    r.deposit(10.0, watts=50.0)
    rate = value(r("L1"))
    assert rate == pytest.approx(50 * 1e-9 / 1000 * 1e10, rel=1e-2)   # 0.5 A/s
    assert r("S") == ok()
    assert r("N1") == ok(" 0.000 ") and r("L1") == ok(" 0.00 ")
    r("U0")
    r.clock.sleep(5.0)
    r("L1")
    r.clock.sleep(1.0)
    assert value(r("L1")) == 0.0 and value(r("N1")) == pytest.approx(0.0, abs=1e-3)


def test_all_readings_and_zero_time():
    r = Raw()
    r.clock.sleep(75.0)
    assert r("W") == ok("01.15 0.00 0.000 6000000.000 0.00 0.000 0.000")
    assert r("T") == ok()
    r("U1")
    r.deposit(10.0)
    fields = r("W")[3:-2].decode().split()
    assert fields[0] == "00.10" and len(fields) == 7
    assert float(fields[2]) == pytest.approx(value(r("N1")), abs=1e-3)
    assert float(fields[3]) == pytest.approx(value(r("P1")), abs=1e-3)

def test_shutter_goes_to_the_world():
    r = Raw()
    assert r("U?") == ok("0")
    assert r("U1") == ok() and r("U?") == ok("1") and r.world._shutter is True
    assert r("U0") == ok() and r.world._shutter is False


def test_status_letters():
    r = Raw()
    assert r("X") == response("C")
    assert r(packet(b"J")[:-1] + b"#") == response("C")         # bad CRC
    assert r(b"!#J\x00\x00") == ok("2")                          # two NULs skip the CRC check
    assert r("N7") == response("D") and r("D0") == response("D") and r("U5") == response("D")
    assert r("A1LIF      abc 150 0.774 0.000 0.000 0 1") == response("D")
    assert r("A1LIF      2.64 999 0.774 0.000 0.000 0 1") == response("D")
    r("U1")
    assert r("A1LIF      2.64 100 0.774 0.000 0.000 0 1") == response("E")   # active film while open
    assert r("A2LIF      2.64 100 0.774 0.000 0.000 0 1") == ok()
    assert r("A2?") == ok("LIF      2.64 100 0.774 0.000 0.000 0 1")


def test_framing_noise_and_half_packets():
    r = Raw()
    assert r(b"\x00\xfe" + packet(b"J")) == ok("2")             # noise before the sync is dropped
    assert r(packet(b"J")[:3]) == b""
    r.clock.sleep(0.1)                                          # the rest never came: dropped
    assert r("J") == ok("2")


# -- the driver against the simulator -------------------------------------------------------------------


@pytest.fixture
def qcm():
    clock = VirtualClock()
    world = SimpleWorld(rate_kg_m2_s_per_w=1e-9)
    core = Sqm160Sim("qcm-t", clock=clock, world=world)
    registry.register("qcm-t", core)
    q = Sqm160(SerialTransport("qcm", "labsim://qcm-t", Sqm160.SERIAL, clock=clock, timeout=1.0), name="qcm")
    q.connect()
    yield q, core, world, clock
    q.close()
    registry.unregister("qcm-t")


def test_driver_in_process(qcm):
    q, _, world, clock = qcm
    assert q.identify() == "MON Ver 4.13" and q.channels() == 2
    q.set_film(density=2640.0, z_ratio=0.774, tooling=1.0)
    assert q.film()["density"] == 2640.0
    q.zero()
    q.shutter(True)
    world.gas_flow(clock.monotonic(), "Ar", 20.0)
    world.rf_power(clock.monotonic(), 200.0)
    q.rate()
    clock.sleep(60.0)
    mass = world.qcm_areal_mass(clock.monotonic())
    assert q.thickness() == pytest.approx(mass / 2640.0, rel=1e-3)
    assert q.rate() == pytest.approx(200 * 1e-9 / 2640.0, rel=1e-2)
    assert q.frequency() < 6e6 and 0 < q.crystal_life() < 100
    state = q.safe_state()
    assert state["shutter_open"] is False and world._shutter is False
    clock.sleep(10.0)
    assert q.thickness() == pytest.approx(state["thickness_m"], rel=1e-3)   # closed: no more growth


def test_driver_sees_a_power_cycle(qcm):
    q, core, _, _ = qcm
    q.shutter(True)
    core.power_cycle()
    assert q.shutter_is_open() is False and q.resets_seen == 1
    assert q.power_up_reset() is True


@pytest.mark.pty
def test_a_manual_only_client_over_the_pty():
    """Plain pyserial and the manual's framing: firmware query, shutter open and read back."""
    import serial

    with serve_pty(Sqm160Sim("qcm-raw", clock=RealClock())) as exp:
        port = serial.Serial(exp.path, 19200, timeout=1.0)
        try:
            port.write(b"!#@O7")
            assert port.read(len(ok("MON Ver 4.13"))) == ok("MON Ver 4.13")
            port.write(packet(b"U1"))
            assert port.read(5) == ok()
            port.write(packet(b"U?"))
            assert port.read(6) == ok("1")
        finally:
            port.close()


# -- faults beyond the generic matrix (test_conformance.py) --------------------------------------------------


def test_garbage_that_keeps_its_frame_fails_the_crc(qcm):
    q, core, _, _ = qcm
    core.write(packet(b"J"))                           # prime: nothing pending
    core.read()
    real = core.handle

    def corrupt(message: bytes) -> bytes | None:
        reply = real(message)
        return reply[:-1] + bytes([reply[-1] ^ 1]) if reply else reply
    core.handle = corrupt
    with pytest.raises(ChecksumError):
        q.thickness()
    core.handle = real
    assert q.thickness() == 0.0


def test_fault_stuck_busy(qcm):
    q, core, world, _ = qcm
    q.shutter(True)
    core.inject(FaultKind.STUCK_BUSY, rb"^!.U0")
    with pytest.raises(InstrumentBusy, match="still open"):
        q.shutter(False)
    with pytest.raises(SafeStateError):
        q.safe_state()
    assert q.shutter_is_open() and world._shutter is True     # exchanges stay clean and tell the truth
