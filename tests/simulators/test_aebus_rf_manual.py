"""The AE Bus core against the Apex manual's host-port command table beyond RF on/off and setpoint:
broadcast, limits and read-backs, load regulation and reflected-power fold-back, out-of-setpoint timer,
targets, counters, host port time out, pulsing, refused recipe commands, `rejects`. Byte-exact."""

from __future__ import annotations

import pytest

from labctl.clock import VirtualClock
from labctl.drivers.aebus_rf import packet
from labctl.simulators.aebus_rf import AeBusRfSim
from labctl.simulators.world import SimpleWorld

ACK, NAK = b"\x06", b"\x15"


def u16(x: int) -> bytes:
    return x.to_bytes(2, "little")


@pytest.fixture
def gen():
    return AeBusRfSim("rf", clock=VirtualClock(), world=SimpleWorld())


def cmd(gen: AeBusRfSim, command: int, data: bytes = b"", address: int = 1) -> bytes:
    gen.write(packet(address, command, data))
    out = gen.read()
    if len(out) > 1:
        gen.write(ACK)
    return out


def value(reply: bytes) -> int:
    return int.from_bytes(reply[3:-1], "little")


def csr(command: int, code: int = 0) -> bytes:
    return ACK + packet(1, command, bytes([code]))


def host(gen: AeBusRfSim, watts: int = 100) -> None:
    assert cmd(gen, 14, b"\x02") == csr(14) and cmd(gen, 8, u16(watts)) == csr(8)


def test_broadcast_is_executed_without_any_answer(gen):
    assert cmd(gen, 14, b"\x02", address=0) == b""
    assert cmd(gen, 8, u16(150), address=0) == b"" and cmd(gen, 2, address=0) == b""
    assert gen.rf and gen.world._watts == 150.0
    assert cmd(gen, 165) == ACK + packet(1, 165, u16(150))
    assert cmd(gen, 1, address=0) == b"" and not gen.rf


def test_rf_off_is_honoured_from_any_control_mode(gen):
    host(gen)
    assert cmd(gen, 2) == csr(2)
    gen.control = 4                                        # the user port took over
    assert cmd(gen, 8, u16(50)) == csr(8, 1) and cmd(gen, 1) == csr(1)
    assert not gen.rf and gen.world._watts == 0.0


def test_limits_and_their_read_backs(gen):
    host(gen, 300)
    assert cmd(gen, 4, u16(200)) == csr(4) and cmd(gen, 169) == ACK + packet(1, 169, u16(200))
    assert cmd(gen, 4, u16(1300)) == csr(4, 4)              # above the rating
    assert cmd(gen, 5, u16(100)) == csr(5) and cmd(gen, 170) == ACK + packet(1, 170, u16(100))
    assert cmd(gen, 6, u16(700)) == csr(6) and value(cmd(gen, 171)) == 700
    assert cmd(gen, 15, u16(600)) == csr(15, 4) and cmd(gen, 16, b"\x00") == csr(16, 4)
    assert cmd(gen, 9, u16(400) + b"\x01") == csr(9, 4) and cmd(gen, 9, u16(1000) + b"\x01") == csr(9)
    assert cmd(gen, 2) == csr(2)
    # no plasma (60 % reflected): forward clamped to 200 W by its limit, then folded back so that
    # reflected stays at 100 W
    assert value(cmd(gen, 165)) == 167 and value(cmd(gen, 166)) == 100 and value(cmd(gen, 167)) == 67
    assert cmd(gen, 162) == ACK + packet(1, 162, bytes([0xE0, 0, 0, 0]))   # on, requested, out of setpoint
    assert value(cmd(gen, 168)) == 0                        # nothing wired to the external feedback input


def test_load_regulation_holds_delivered_power(gen):
    host(gen, 100)
    assert cmd(gen, 3, b"\x07") == csr(3) and cmd(gen, 2) == csr(2)
    gen.world.gas_flow(0.0, "Ar", 20.0)                    # plasma: 2 % reflected
    cmd(gen, 162)                                          # the loop follows at the next packet
    assert value(cmd(gen, 165)) == 102 and value(cmd(gen, 167)) == 100
    assert cmd(gen, 164) == ACK + packet(1, 164, u16(100) + b"\x07")


def test_out_of_setpoint_timer_switches_rf_off(gen):
    host(gen, 100)
    assert cmd(gen, 15, u16(5)) == csr(15) and cmd(gen, 5, u16(30)) == csr(5)
    assert cmd(gen, 2) == csr(2)                           # no plasma: folded back to 50 W, out of setpoint
    gen.clock.advance_to(4.0)
    assert cmd(gen, 162)[3] & 0x20
    gen.clock.advance_to(6.0)
    assert cmd(gen, 162) == ACK + packet(1, 162, bytes([0, 0, 0x20, 0]))   # off, out-of-setpoint fault
    assert cmd(gen, 210) == ACK + packet(1, 210, b"\x20") and gen.world._watts == 0.0
    assert value(cmd(gen, 184)) == 5 and value(cmd(gen, 185)) == 10


def test_targets_run_time_energy_and_counters(gen):
    host(gen, 1000)
    assert cmd(gen, 11, b"\x02") == csr(11) and cmd(gen, 156) == ACK + packet(1, 156, b"\x02")
    assert cmd(gen, 12, b"\x02" + (500).to_bytes(4, "little")) == csr(12)     # 5 kWh on target 2
    assert cmd(gen, 11, b"\x05") == csr(11, 4)
    gen.world.gas_flow(0.0, "Ar", 20.0)
    assert cmd(gen, 2) == csr(2)
    gen.clock.advance_to(3600.0)                           # 1 h at 1000 W, 980 W delivered
    assert value(cmd(gen, 157, b"\x02")) == 402 and value(cmd(gen, 205)) == 3600
    assert value(cmd(gen, 206)) == 0                       # 0.98 kWh: whole kWh only
    assert cmd(gen, 157) == csr(157, 9)
    assert value(cmd(gen, 201)) == 1 and value(cmd(gen, 202)) == 1 and value(cmd(gen, 203)) == 0


def test_host_port_time_out_drops_half_packets(gen):
    host(gen)
    assert cmd(gen, 40, u16(50)) == csr(40) and cmd(gen, 140) == ACK + packet(1, 140, u16(50))
    gen.write(packet(1, 155)[:2])
    gen.clock.advance_to(0.3)                              # 0.3 s of silence < 0.5 s: the packet goes on
    gen.write(packet(1, 155)[2:])
    assert gen.read() == ACK + packet(1, 155, b"\x02")
    assert cmd(gen, 40, u16(1)) == csr(40, 4)


def test_pulsing_and_refused_recipes(gen):
    host(gen)
    assert cmd(gen, 93, (100).to_bytes(4, "little")) == csr(93, 50)
    assert cmd(gen, 93, (2000).to_bytes(4, "little")) == csr(93) and value(cmd(gen, 193)) == 2000
    assert cmd(gen, 96, u16(95)) == csr(96, 51) and cmd(gen, 96, u16(30)) == csr(96)
    assert value(cmd(gen, 196)) == 30
    assert cmd(gen, 19, b"\x02") == csr(19, 99) and cmd(gen, 189) == csr(189, 99)
    assert cmd(gen, 130) == ACK + packet(1, 130, b"01200") and cmd(gen, 198) == ACK + packet(1, 198, b"A05")


def test_rejects(gen):
    assert gen.rejects(csr(77, 99)) and gen.rejects(NAK) and gen.rejects(b"")
    assert not gen.rejects(csr(8, 1)) and not gen.rejects(csr(8)) and not gen.rejects(cmd(gen, 162))
