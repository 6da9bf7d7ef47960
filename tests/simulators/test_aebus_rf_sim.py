"""The AE Bus RF simulator: packets, CSR codes, ACK/NAK, the plasma it drives; the driver against it in
process; checksum recovery. The driver over TCP and a pty and every fault kind: test_conformance.py."""

from __future__ import annotations

import socket

import pytest

from labctl.clock import RealClock, VirtualClock
from labctl.drivers.aebus_rf import AeBusRf, packet
from labctl.drivers.transport import SerialSettings, SerialTransport
from labctl.errors import (
    ChecksumError,
    InstrumentBusy,
    InstrumentReportedError,
    MalformedReply,
    SafeStateError,
)
from labctl.simulators import registry
from labctl.simulators.aebus_rf import AeBusRfSim
from labctl.simulators.core import FaultKind
from labctl.simulators.exposures import serve_pty, serve_tcp
from labctl.simulators.world import SimpleWorld

ACK, NAK = b"\x06", b"\x15"
H = bytes.fromhex


def csr(command: int, code: int = 0) -> bytes:
    return ACK + packet(1, command, bytes([code]))


class Raw:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.world = SimpleWorld()
        self.core = AeBusRfSim("rf", clock=self.clock, world=self.world)

    def __call__(self, data: bytes, ack: bool = True) -> bytes:
        self.core.write(data)
        out = self.core.read()
        if ack and len(out) > 1:
            self.core.write(ACK)
        return out

    def cmd(self, command: int, data: bytes = b"") -> bytes:
        return self(packet(1, command, data))


def test_verified_packets_and_host_control():
    r = Raw()
    assert r(H("08 02 0a")) == csr(2, 1)                 # RF on refused: front panel has control
    assert r(H("0a 08 64 00 66")) == csr(8, 1)
    assert r.cmd(14, b"\x02") == csr(14)
    assert r(H("0a 08 64 00 66")) == csr(8)              # 100 W
    assert r(H("08 02 0a")) == csr(2)                    # RF on
    assert r.world._watts == 100.0
    assert r.cmd(162) == ACK + packet(1, 162, H("60 00 00 00"))   # bit 5 output on, bit 6 RF on requested
    assert r.cmd(164) == ACK + packet(1, 164, H("64 00 06"))
    assert r.cmd(165) == ACK + packet(1, 165, H("64 00"))
    assert r.cmd(166) == ACK + packet(1, 166, H("3c 00"))   # 1e-4 Pa: no plasma, 60 % reflected
    assert r(H("08 02 0a")) == csr(2)                    # RF on while on: accepted, nothing changes
    assert r.cmd(1) == csr(1) and r.world._watts == 0.0
    assert r.cmd(165) == ACK + packet(1, 165, H("00 00")) and r.cmd(166) == ACK + packet(1, 166, H("00 00"))
    assert r.cmd(128) == ACK + packet(1, 128, b"CESAR") and r.cmd(129) == ACK + packet(1, 129, b"1312")


def test_csr_codes():
    r = Raw()
    r.cmd(14, b"\x02")
    assert r.cmd(8, H("b1 04")) == csr(8, 4)              # 1201 W > rating
    assert r.cmd(8, b"\x64") == csr(8, 9)                 # one byte where two belong
    assert r.cmd(3, b"\x05") == csr(3, 4)
    assert r.cmd(3, b"\x07") == csr(3) and r.cmd(154) == ACK + packet(1, 154, b"\x07")
    r.cmd(2)
    assert r.cmd(3, b"\x06") == csr(3, 2)                 # regulation only with RF off
    assert r.cmd(77) == csr(77, 99)
    assert r.cmd(165, b"\x00") == csr(165, 9)
    assert r.cmd(14, b"\x06") == csr(14) and r.cmd(162) == ACK + packet(1, 162, bytes(4))  # RF went off
    assert r.cmd(155) == ACK + packet(1, 155, b"\x06")


def test_ack_nak_checksum_address_and_framing():
    r = Raw()
    assert r(H("08 a5 ad") + b"", ack=False) == ACK + packet(1, 165, H("00 00"))
    assert r(NAK, ack=False) == packet(1, 165, H("00 00"))   # host NAK: the reply again, no ACK first
    assert r(ACK) == b""
    assert r(H("08 a5 ac")) == NAK                       # bad checksum: rejected
    assert r(packet(2, 165)) == b""                      # not our address
    assert r(H("0a 08"), ack=False) == b""               # half a packet ...
    r.clock.sleep(0.1)                                   # ... then silence: dropped
    assert r.cmd(155) == ACK + packet(1, 155, b"\x06")
    r.core.corrupt_replies = 1
    bad = r.cmd(165)
    assert bad[:-1] == (ACK + packet(1, 165, H("00 00")))[:-1] and bad[-1] != packet(1, 165, H("00 00"))[-1]


def test_plasma_window_sets_reflected_power():
    r = Raw()
    r.cmd(14, b"\x02")
    r.cmd(8, (200).to_bytes(2, "little"))
    r.cmd(2)
    assert int.from_bytes(r.cmd(166)[3:5], "little") == 120
    r.world.gas_flow(0.0, "Ar", 20.0)                    # 0.4 Pa: inside the window
    assert int.from_bytes(r.cmd(166)[3:5], "little") == 4
    r.cmd(8, (150).to_bytes(2, "little"))
    assert r.world._watts == 150.0


def test_power_cycle_rf_off_front_panel():
    r = Raw()
    r.cmd(14, b"\x02")
    r.cmd(3, b"\x07")
    r.cmd(8, H("64 00"))
    r.cmd(2)
    r.core.power_cycle()
    assert r.world._watts == 0.0
    assert r.cmd(162) == ACK + packet(1, 162, bytes(4))
    assert r.cmd(164) == ACK + packet(1, 164, H("00 00 07"))
    assert r.cmd(155) == ACK + packet(1, 155, b"\x06")


# -- the driver against the simulator -------------------------------------------------------------------


@pytest.fixture
def rf():
    clock = VirtualClock()
    world = SimpleWorld()
    core = AeBusRfSim("rf-t", clock=clock, world=world)
    registry.register("rf-t", core)
    g = AeBusRf(SerialTransport("rf", "labsim://rf-t", AeBusRf.SERIAL, clock=clock, timeout=1.0), name="rf")
    g.connect()
    yield g, core, world, clock
    g.close()
    registry.unregister("rf-t")


def test_driver_in_process(rf):
    g, _, world, _ = rf
    assert g.identify() == "CESAR 1312"
    assert g.control_mode() == "host"
    g.set_regulation("forward")
    assert g.regulation() == "forward"
    world.gas_flow(0.0, "Ar", 20.0)
    for watts in (10, 50, 100):                           # what the engine's ramp does
        g.set_power(watts)
    g.rf_on()
    assert g.is_on() and g.forward_power() == 100.0 and g.reflected_power() == 2.0
    assert g.setpoint() == (100.0, "forward")
    with pytest.raises(InstrumentReportedError, match="RF output is on"):
        g.set_regulation("load")
    assert g.safe_state() == {"rf_on": False, "setpoint_w": 0.0, "regulation": "forward", "forward_w": 0.0,
                              "reflected_w": 0.0}
    assert world._watts == 0.0


def test_driver_checksum_recovery_and_limit(rf):
    g, core, _, _ = rf
    g.set_power(80)
    core.corrupt_replies = 2                              # two bad replies: NAKed twice, third one good
    assert g.setpoint() == (80.0, "forward")
    core.corrupt_replies = 3
    with pytest.raises(ChecksumError):
        g.setpoint()
    assert g.setpoint() == (80.0, "forward")              # the next exchange is clean


def test_driver_safe_state_takes_control_back(rf):
    g, core, world, _ = rf
    g.set_power(50)
    g.rf_on()
    core.control = 4                                      # someone switched to the user port meanwhile
    assert g.safe_state()["rf_on"] is False and world._watts == 0.0


def test_wrong_parity_garbles():
    clock = VirtualClock()
    core = AeBusRfSim("rf-parity", clock=clock)
    registry.register("rf-parity", core)
    try:
        g = AeBusRf(SerialTransport("rf", "labsim://rf-parity", SerialSettings(19200), clock=clock))
        g.transport.open()
        with pytest.raises(MalformedReply):
            g.identify()
    finally:
        registry.unregister("rf-parity")


def test_tcp_exposure_sends_without_delay():
    """(The driver over TCP and a pty is in test_conformance.)"""
    with serve_tcp(AeBusRfSim("rf-tcp", clock=RealClock())) as exp:
        t = SerialTransport("rf", exp.serial_url, AeBusRf.SERIAL, clock=RealClock())
        t.open()
        # the host ACK then the next packet are two short writes: without TCP_NODELAY each exchange
        # waited for the peer's delayed ACK (measured 44 ms per exchange before, 0.2 ms after)
        assert t._port._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        t.close()


# -- faults beyond the generic matrix (test_conformance.py) --------------------------------------------------


def test_fault_stuck_busy(rf):
    g, core, world, _ = rf
    g.set_power(50)
    g.rf_on()
    core.inject(FaultKind.STUCK_BUSY, rb"^\x08\x01")
    with pytest.raises(InstrumentBusy, match="still on"):
        g.rf_off()
    with pytest.raises(SafeStateError):
        g.safe_state()
    assert g.is_on() and world._watts == 50.0             # exchanges stay clean and tell the truth


@pytest.mark.pty
def test_a_manual_only_client_over_the_pty():
    """What a program written from the AE Bus manual does, with plain pyserial (ptys carry no parity)."""
    import serial

    def exchange(port: serial.Serial, pkt: bytes, reply_len: int) -> bytes:
        port.write(pkt)
        reply = port.read(1 + reply_len)
        port.write(ACK)
        return reply

    with serve_pty(AeBusRfSim("rf-raw", clock=RealClock())) as exp:
        port = serial.Serial(exp.path, 19200, timeout=1.0)
        try:
            assert exchange(port, H("09 0e 02 05"), 4) == H("06 09 0e 00 07")     # host control, CSR 0
            assert exchange(port, H("0a 08 64 00 66"), 4) == H("06 09 08 00 01")  # 100 W
            assert exchange(port, H("08 02 0a"), 4) == H("06 09 02 00 0b")        # RF on
            assert exchange(port, packet(1, 162), 7) == ACK + packet(1, 162, H("60 00 00 00"))
            assert exchange(port, H("08 01 09"), 4) == H("06 09 01 00 08")        # RF off
        finally:
            port.close()


def test_a_station_address_moves_the_generator():
    core = AeBusRfSim("rf-addr", clock=VirtualClock(), addresses=(3,))
    core.write(packet(1, 155))
    assert core.read() == b""                             # address 1: nobody
    core.write(packet(3, 155))
    assert core.read() == ACK + packet(3, 155, b"\x06")
