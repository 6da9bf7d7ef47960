"""Byte-exact transcripts of every public operation of the SQM-160 driver (framing, CRC, status letters)."""

from __future__ import annotations

import pytest

from labctl.drivers.sqm160 import Sqm160, crc14, film_message, packet, response
from labctl.errors import (
    ChecksumError,
    InstrumentBusy,
    InstrumentReportedError,
    InstrumentTimeout,
    LimitViolation,
    MalformedReply,
    SafeStateError,
)
from labctl.roles import ThicknessMonitor
from labctl.testing import ScriptedTransport


def ok(message: str = "") -> bytes:
    return response("A", message.encode())


def cmd(message: str) -> bytes:
    return packet(message.encode())


def make(script) -> tuple[Sqm160, ScriptedTransport]:
    t = ScriptedTransport(script)
    return Sqm160(t, name="qcm"), t


def test_is_a_thickness_monitor():
    assert isinstance(make([])[0], ThicknessMonitor)


def test_verified_examples_byte_exact():
    """instruments.md [verified]: pymeasure's `!#@O7`, the SQC-310 manual's packets and answers."""
    assert packet(b"@") == b"!#@O7"
    assert packet(b"M1") == b"!$M1" + bytes([92, 113])
    assert packet(b"N1") == b"!$N1" + bytes([93, 81])
    assert packet(b"O1") == b"!$O1" + bytes([103, 146])
    assert response("A", b" 0.00") == b"!)A 0.00" + bytes([87, 100])
    assert response("A", b" 0.000") == b"!*A 0.000" + bytes([90, 92])
    assert crc14(b"#@") == b"O7"
    with pytest.raises(ValueError):
        packet(b"")


def test_identify_channels_reset_flag():
    q, t = make([(b"!#@O7", ok("MON Ver 4.13")), (cmd("J"), ok("2")), (cmd("Y"), ok("1")),
                  (cmd("Y"), ok("0"))])
    assert q.identify() == "MON Ver 4.13"
    assert q.channels() == 2
    assert q.power_up_reset() is True and q.power_up_reset() is False
    t.assert_done()


def test_readings_in_si():
    q, t = make([(cmd("N1"), ok(" 1234.500")), (cmd("L1"), ok(" 2.50")), (cmd("P1"), ok("5987654.321")),
                  (cmd("R1"), ok("98.77"))])
    assert q.thickness() == pytest.approx(1234.5e-10)
    assert q.rate() == pytest.approx(2.5e-10)
    assert q.frequency() == pytest.approx(5987654.321)
    assert q.crystal_life() == pytest.approx(98.77)
    t.assert_done()



def test_all_readings():
    q, t = make([(b"!#W" + crc14(b"#W"), ok("02.05 1.25 12.500 5999123.456 0.00 0.000 0.000")),
                  (cmd("W"), ok("00.00 1.25 12.5")), (cmd("W"), ok("00.00 x 1 2"))])
    assert q.readings() == {"time": 125.0, "sensors": {
        1: {"rate": pytest.approx(1.25e-10), "thickness": pytest.approx(12.5e-10), "frequency": 5999123.456},
        2: {"rate": 0.0, "thickness": 0.0, "frequency": 0.0}}}
    for _ in range(2):
        with pytest.raises(MalformedReply):
            q.readings()
    t.assert_done()

def test_zero_and_zero_time():
    q, t = make([(cmd("S"), ok()), (cmd("T"), ok())])
    q.zero()
    q.zero_time()
    t.assert_done()


def test_set_film_writes_reads_back_and_activates():
    sent = "A1LABCTL   2.64 150 0.774 0.000 0.000 0 1"
    assert film_message(1, "labctl", 2640.0, 1.5, 0.774) == sent
    back = "LABCTL   2.64 150 0.774 0.000 0.000 0 1"
    q, t = make([(cmd(sent), ok()), (cmd("A1?"), ok(back)), (cmd("D1"), ok())])
    q.set_film(density=2640.0, z_ratio=0.774, tooling=1.5)
    t.assert_done()
    q, _ = make([(cmd(sent), ok()), (cmd("A1?"), ok("LABCTL   1.00 150 0.774 0.000 0.000 0 1"))])
    with pytest.raises(Exception, match="read back"):
        q.set_film(density=2640.0, z_ratio=0.774, tooling=1.5)


def test_film_limits_before_any_byte():
    q, t = make([])
    for kw in ({"density": 100.0, "z_ratio": 1.0, "tooling": 1.0}, {"density": 2640.0, "z_ratio": 0.0,
               "tooling": 1.0}, {"density": 2640.0, "z_ratio": 1.0, "tooling": 5.0},
               {"density": float("nan"), "z_ratio": 1.0, "tooling": 1.0}):
        with pytest.raises(LimitViolation):
            q.set_film(**kw)
    assert t.sent == []
    with pytest.raises(LimitViolation):
        q.check("thickness", 2e-4)


def test_shutter_open_close_confirmed():
    q, t = make([(cmd("U1"), ok()), (cmd("U?"), ok("1")), (cmd("U0"), ok()), (cmd("U?"), ok("0")),
                  (cmd("U?"), ok("0"))])
    q.shutter(True)
    q.shutter(False)
    assert q.shutter_is_open() is False
    t.assert_done()


def test_shutter_that_does_not_follow_is_busy():
    q, _ = make([(cmd("U1"), ok())] + [(cmd("U?"), ok("0"))] * 22)
    with pytest.raises(InstrumentBusy, match="still closed"):
        q.shutter(True)
    q, _ = make([(cmd("U?"), ok("x"))])
    with pytest.raises(MalformedReply):
        q.shutter_is_open()


def test_safe_state_closes_and_confirms():
    q, t = make([(cmd("U0"), ok()), (cmd("U?"), ok("0")), (cmd("U?"), ok("0")), (cmd("N1"), ok(" 512.000")),
                  (cmd("L1"), ok(" 0.00"))])
    assert q.safe_state() == {"shutter_open": False, "thickness_m": pytest.approx(512e-10), "rate_m_s": 0.0}
    t.assert_done()
    q, _ = make([(cmd("U0"), response("E"))])
    with pytest.raises(SafeStateError):
        q.safe_state()


@pytest.mark.parametrize("status", ["C", "D", "E"])
def test_status_letters_become_errors(status):
    q, _ = make([(cmd("N1"), response(status))])
    with pytest.raises(InstrumentReportedError) as exc:
        q.thickness()
    assert exc.value.code == status


def test_status_b_is_ok_and_counted():
    q, _ = make([(cmd("N1"), response("B", b" 1.000"))])
    assert q.thickness() == pytest.approx(1e-10) and q.resets_seen == 1


def test_bad_answers():
    good = ok(" 1.000")
    q, _ = make([(cmd("N1"), good[:-1] + bytes([good[-1] ^ 1]))])
    with pytest.raises(ChecksumError):
        q.thickness()
    q, _ = make([(cmd("N1"), b"?" + good[1:])])
    with pytest.raises(MalformedReply, match="header"):
        q.thickness()
    q, _ = make([(cmd("N1"), response("Q", b"1"))])
    with pytest.raises(MalformedReply, match="status"):
        q.thickness()
    q, _ = make([(cmd("N1"), ok("abc"))])
    with pytest.raises(MalformedReply, match="not a number"):
        q.thickness()
    q, _ = make([(cmd("A1?"), ok("short"))])
    with pytest.raises(MalformedReply):
        q.film()
    q, _ = make([(cmd("N1"), b"")])
    with pytest.raises(InstrumentTimeout):
        q.thickness()
