"""Byte-exact transcripts of every public operation of the AE Bus RF driver, with retries and checksums."""

from __future__ import annotations

import pytest

from labctl.drivers.aebus_rf import AeBusRf, checksum, packet
from labctl.errors import (
    ChecksumError,
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    LimitViolation,
    MalformedReply,
    SafeStateError,
)
from labctl.roles import RfGenerator
from labctl.testing import ScriptedTransport

ACK, NAK = b"\x06", b"\x15"
H = bytes.fromhex


def csr(command: int, code: int = 0) -> bytes:
    """ACK, then the generator's one-byte CSR reply packet."""
    return ACK + packet(1, command, bytes([code]))


def rep(command: int, data: bytes) -> bytes:
    return ACK + packet(1, command, data)


def status(on: bool) -> list[tuple[bytes, bytes]]:
    return [(packet(1, 162), rep(162, bytes([0x20 if on else 0, 0, 0, 0]))), (ACK, b"")]


def make(script) -> tuple[AeBusRf, ScriptedTransport]:
    t = ScriptedTransport(script)
    return AeBusRf(t, name="rf"), t


def test_is_an_rf_generator():
    assert isinstance(make([])[0], RfGenerator)


def test_verified_examples_byte_exact():
    """instruments.md [verified]: RF on at address 1 -> 08 02 0a; 100 W setpoint -> 0a 08 64 00 66."""
    assert packet(1, 2) == H("08 02 0a")
    assert packet(1, 8, (100).to_bytes(2, "little")) == H("0a 08 64 00 66")
    assert checksum(H("0a 08 64 00 66")) == 0
    rf, t = make([(H("0a 08 64 00 66"), ACK + H("09 08 00 01")), (ACK, b""),
                  (H("08 02 0a"), ACK + H("09 02 00 0b")), (ACK, b""), *status(True)])
    rf.set_power(100.0)
    rf.rf_on()
    t.assert_done()


def test_long_packets_carry_a_length_byte():
    assert packet(1, 200, bytes(range(8))) == H("0f c8 08 00 01 02 03 04 05 06 07") + bytes(
        [checksum(H("0f c8 08 00 01 02 03 04 05 06 07"))])
    with pytest.raises(ValueError):
        packet(32, 1)


def test_connect_takes_host_control_and_identify():
    rf, t = make([(H("09 0e 02 05"), csr(14)), (ACK, b""),
                  (packet(1, 128), rep(128, b"CESAR")), (ACK, b""),
                  (packet(1, 129), rep(129, b"1312")), (ACK, b"")])
    rf.connect()
    assert rf.identify() == "CESAR 1312"
    t.assert_done()


def test_modes():
    rf, t = make([(packet(1, 14, b"\x06"), csr(14)), (ACK, b""),
                  (packet(1, 155), rep(155, b"\x06")), (ACK, b""),
                  (packet(1, 3, b"\x07"), csr(3)), (ACK, b""),
                  (packet(1, 154), rep(154, b"\x07")), (ACK, b"")])
    rf.set_control_mode("front_panel")
    assert rf.control_mode() == "front_panel"
    rf.set_regulation("load")
    assert rf.regulation() == "load"
    t.assert_done()
    with pytest.raises(LimitViolation):
        rf.set_control_mode("remote")
    with pytest.raises(LimitViolation):
        rf.set_regulation("voltage")


def test_readings():
    rf, t = make([(packet(1, 164), rep(164, H("2c 01 06"))), (ACK, b""),
                  (packet(1, 165), rep(165, H("2c 01"))), (ACK, b""),
                  (packet(1, 166), rep(166, H("07 00"))), (ACK, b""), *status(False),
                  (packet(1, 162), rep(162, H("20 00 00 00"))), (ACK, b"")])
    assert rf.setpoint() == (300.0, "forward")
    assert rf.forward_power() == 300.0
    assert rf.reflected_power() == 7.0
    assert rf.is_on() is False
    assert rf.status() == H("20 00 00 00")
    t.assert_done()


def test_power_limits_before_any_byte():
    rf, t = make([])
    for bad in (-1.0, 300.5, float("inf")):
        with pytest.raises(LimitViolation):
            rf.set_power(bad)
    rf = AeBusRf(t, limits={"power": (0, 80)})
    with pytest.raises(LimitViolation):
        rf.set_power(100.0)
    assert t.sent == []
    with pytest.raises(LimitViolation):
        rf.check("ramp_rate", 50.0)
    with pytest.raises(LimitViolation):
        AeBusRf(t, address=0)


def test_csr_codes_become_errors():
    rf, _ = make([(packet(1, 2), csr(2, 1)), (ACK, b"")])
    with pytest.raises(InstrumentReportedError, match="wrong control mode") as exc:
        rf.rf_on()
    assert exc.value.code == 1
    rf, _ = make([(packet(1, 3, b"\x06"), csr(3, 2)), (ACK, b"")])
    with pytest.raises(InstrumentReportedError, match="RF output is on"):
        rf.set_regulation("forward")
    rf, _ = make([(packet(1, 165), csr(165, 99)), (ACK, b"")])
    with pytest.raises(InstrumentReportedError, match="not implemented"):
        rf.forward_power()


def test_device_nak_resends_the_packet_a_bounded_number_of_times():
    rf, t = make([(packet(1, 1), NAK), (packet(1, 1), csr(1)), (ACK, b""), *status(False)])
    rf.rf_off()
    t.assert_done()
    rf, t = make([(packet(1, 1), NAK)] * 3)
    with pytest.raises(InstrumentReportedError, match="NAK") as exc:
        rf.rf_off()
    assert exc.value.code == "NAK"
    t.assert_done()


def test_bad_checksum_is_nakked_and_the_reply_read_again():
    good = packet(1, 165, H("64 00"))
    bad = good[:-1] + bytes([good[-1] ^ 0x01])
    rf, t = make([(packet(1, 165), ACK + bad), (NAK, bad), (NAK, good), (ACK, b"")])
    assert rf.forward_power() == 100.0
    t.assert_done()
    rf, t = make([(packet(1, 165), ACK + bad), (NAK, bad), (NAK, bad)])
    with pytest.raises(ChecksumError):
        rf.forward_power()
    t.assert_done()


def test_wrong_replies_are_malformed():
    rf, t = make([(packet(1, 165), b"\x00")])
    with pytest.raises(MalformedReply, match="ACK/NAK"):
        rf.forward_power()
    rf, t = make([(packet(1, 165), ACK + packet(2, 165, H("64 00")))])
    with pytest.raises(MalformedReply, match="not from address"):
        rf.forward_power()
    rf, t = make([(packet(1, 165), rep(165, H("64 00 00"))), (ACK, b"")])
    with pytest.raises(MalformedReply, match="expected 2"):
        rf.forward_power()
    rf, t = make([(packet(1, 1), rep(1, H("00 00"))), (ACK, b"")])
    with pytest.raises(MalformedReply, match="CSR"):
        rf._set(1)
    rf, t = make([(packet(1, 165), ACK + H("0a a5 64"))])
    with pytest.raises(MalformedReply):        # cut short: PartialReply
        rf.forward_power()
    assert t.clock.monotonic() == pytest.approx(rf.transport.timeout)


def test_rf_on_with_a_lost_reply_reads_the_status_and_never_resends():
    rf, t = make([(packet(1, 2), ACK), *status(True)])
    rf.rf_on()                                   # the reply was lost but RF is on: fine
    t.assert_done()
    rf, t = make([(packet(1, 2), b""), *status(False)])
    with pytest.raises(InstrumentTimeout) as exc:
        rf.rf_on()
    assert "not re-sent" in str(exc.value.__notes__)
    t.assert_done()
    rf, t = make([(packet(1, 2), csr(2)), (ACK, b"")] + status(False) * 22)
    with pytest.raises(InstrumentError, match="status shows RF off"):
        rf.rf_on()


def test_rf_off_confirms_by_status_within_a_deadline():
    rf, t = make([(packet(1, 1), csr(1)), (ACK, b""), *status(True), *status(False)])
    rf.rf_off()
    assert t.clock.monotonic() == pytest.approx(rf.POLL)
    t.assert_done()
    rf, t = make([(packet(1, 1), csr(1)), (ACK, b"")] + status(True) * 22)
    with pytest.raises(InstrumentBusy):
        rf.rf_off()
    assert t.clock.monotonic() <= rf.CONFIRM_TIMEOUT + rf.POLL + 1e-9


def readback(on: bool = False, watts: int = 0) -> list[tuple[bytes, bytes]]:
    return [*status(on), (packet(1, 164), rep(164, watts.to_bytes(2, "little") + b"\x06")), (ACK, b""),
            (packet(1, 165), rep(165, H("00 00"))), (ACK, b""), (packet(1, 166), rep(166, H("00 00"))),
            (ACK, b"")]


def test_safe_state_rf_off_setpoint_zero_confirmed():
    rf, t = make([(packet(1, 1), csr(1)), (ACK, b""), *status(False),
                  (packet(1, 8, H("00 00")), csr(8)), (ACK, b""), *readback()])
    assert rf.safe_state() == {"rf_on": False, "setpoint_w": 0.0, "regulation": "forward", "forward_w": 0.0,
                               "reflected_w": 0.0}
    t.assert_done()


def test_safe_state_takes_host_control_when_it_must():
    rf, t = make([(packet(1, 1), csr(1, 1)), (ACK, b""), (packet(1, 14, b"\x02"), csr(14)), (ACK, b""),
                  (packet(1, 1), csr(1)), (ACK, b""), *status(False),
                  (packet(1, 8, H("00 00")), csr(8)), (ACK, b""), *readback()])
    assert rf.safe_state()["rf_on"] is False
    t.assert_done()


def test_safe_state_refuses_to_confirm_what_it_did_not_read():
    rf, _ = make([(packet(1, 1), csr(1)), (ACK, b""), *status(False),
                  (packet(1, 8, H("00 00")), csr(8)), (ACK, b""), *readback(watts=50)])
    with pytest.raises(SafeStateError, match="setpoint 50 W"):
        rf.safe_state()
    rf, _ = make([(packet(1, 1), csr(1, 7)), (ACK, b"")])
    with pytest.raises(SafeStateError, match="active fault"):
        rf.safe_state()


def test_a_nak_followed_by_bytes_is_noise_not_a_rejection():
    rf, t = make([(packet(1, 8, H("3c 00")), NAK + b"#%\x00")])
    with pytest.raises(MalformedReply, match="ACK/NAK"):
        rf.set_power(60)
    assert t.sent == [packet(1, 8, H("3c 00"))]           # not re-sent


def test_registry_finds_driver_and_simulator():
    from labctl.drivers.registry import driver_class, entry, simulator_class

    assert driver_class("aebus_rf") is AeBusRf and entry("aebus_rf").role == AeBusRf.ROLE
    sim = simulator_class("aebus_rf")("reg-aebus_rf")
    assert sim.SERIAL == AeBusRf.SERIAL and entry("aebus_rf").simulator == AeBusRf.SIMULATOR
