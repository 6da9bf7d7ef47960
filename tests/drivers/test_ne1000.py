"""Byte-exact transcripts of every public operation of the NE-1000 driver (terminators included)."""

from __future__ import annotations

import pytest

from labctl.drivers.ne1000 import NE1000, VOLUME_UNITS, encode_quantity, fmt4, rate_units
from labctl.errors import (
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    LimitViolation,
    MalformedReply,
    SafeStateError,
)
from labctl.roles import SyringePump
from labctl.testing import ScriptedTransport

ML, UL = 1e-6, 1e-9
PER_MIN = 1 / 60


def f(address: int, body: str) -> bytes:
    return b"\x02" + f"{address:02d}{body}".encode() + b"\x03"


def make(script, address: int = 1) -> tuple[NE1000, ScriptedTransport]:
    t = ScriptedTransport(script)
    return NE1000(t, address=address, name="pump.stock"), t


def test_is_a_syringe_pump():
    assert isinstance(make([])[0], SyringePump)


def test_connect_acknowledges_a_reset_alarm_and_close():
    p, t = make([(b"01\r", f(1, "A?R"))])
    p.connect()
    assert p.alarms == ["R"] and t.is_open
    p.close()
    assert not t.is_open
    t.assert_done()


def test_connect_raises_on_other_alarms():
    p, _ = make([(b"01\r", f(1, "A?S"))])
    with pytest.raises(InstrumentReportedError, match="stalled"):
        p.connect()


def test_identify_status_is_running():
    p, t = make([(b"01VER\r", f(1, "SNE1000V3.928")), (b"01\r", f(1, "S")), (b"01\r", f(1, "I")),
                 (b"01\r", f(1, "P"))])
    assert p.identify() == "NE1000V3.928"
    assert p.status() == "S"
    assert p.is_running() is True
    assert p.is_running() is False
    t.assert_done()


def test_configure_sets_and_reads_back_the_diameter():
    p, t = make([(b"01DIA 14.43\r", f(1, "S")), (b"01DIA\r", f(1, "S14.43"))])
    p.configure(diameter=14.43e-3)
    t.assert_done()
    p, t = make([(b"01DIA 4.699\r", f(1, "S")), (b"01DIA\r", f(1, "S4.700"))])
    with pytest.raises(InstrumentError, match="read back"):
        p.configure(diameter=4.699e-3)


def test_dispense_picks_units_and_runs():
    p, t = make([
        (b"01DIA 14.43\r", f(1, "S")), (b"01DIA\r", f(1, "S14.43")),
        (b"01\r", f(1, "S")), (b"01DIR INF\r", f(1, "S")), (b"01RAT 1.000 MM\r", f(1, "S")),
        (b"01VOL ML\r", f(1, "S")), (b"01VOL 5.000\r", f(1, "S")), (b"01RUN\r", f(1, "I")),
    ])
    p.configure(diameter=14.43e-3)
    p.dispense(5 * ML, 1 * ML * PER_MIN)
    t.assert_done()


def test_dispense_small_volume_in_ul_and_stops_a_paused_pump_first():
    p, t = make([
        (b"01DIA\r", f(1, "S4.699")),
        (b"01\r", f(1, "P")), (b"01STP\r", f(1, "S")),
        (b"01DIR INF\r", f(1, "S")), (b"01RAT 12.50 UH\r", f(1, "S")),
        (b"01VOL UL\r", f(1, "S")), (b"01VOL 250.0\r", f(1, "S")), (b"01RUN\r", f(1, "I")),
    ])
    p.dispense(250 * UL, 12.5 * UL / 3600)
    t.assert_done()


def test_dispense_refuses_a_running_pump():
    p, t = make([(b"01DIA\r", f(1, "S14.43")), (b"01\r", f(1, "I"))])
    with pytest.raises(InstrumentBusy):
        p.dispense(1 * ML, 1 * ML * PER_MIN)
    t.assert_done()


def test_lost_run_reply_is_never_resent():
    base = [(b"01DIA\r", f(1, "S14.43")), (b"01\r", f(1, "S")), (b"01DIR INF\r", f(1, "S")),
            (b"01RAT 1.000 MM\r", f(1, "S")), (b"01VOL ML\r", f(1, "S")), (b"01VOL 1.000\r", f(1, "S"))]
    p, t = make([*base, (b"01RUN\r", b""), (b"01\r", f(1, "I"))])       # RUN taken, reply lost
    p.dispense(1 * ML, 1 * ML * PER_MIN)
    t.assert_done()
    assert t.sent.count(b"01RUN\r") == 1
    p, t = make([*base, (b"01RUN\r", b""), (b"01\r", f(1, "S"))])       # RUN lost: report, don't resend
    with pytest.raises(InstrumentError, match="not re-sent"):
        p.dispense(1 * ML, 1 * ML * PER_MIN)
    assert t.sent.count(b"01RUN\r") == 1


def test_limits_before_any_byte():
    p, t = make([])
    with pytest.raises(LimitViolation):
        p.configure(diameter=60e-3)
    with pytest.raises(LimitViolation):
        p.dispense(100 * ML, 1 * ML * PER_MIN)
    with pytest.raises(LimitViolation):
        p.dispense(1 * ML, 1.0)
    p._diameter = 4.699e-3                      # a 1 mL syringe cannot do 100 mL/min
    with pytest.raises(LimitViolation, match=r"4\.699 mm syringe"):
        p.dispense(1 * ML, 100 * ML * PER_MIN)
    assert t.sent == []
    with pytest.raises(LimitViolation):
        NE1000(ScriptedTransport([]), address=100)


def test_dispensed_and_clear():
    p, t = make([(b"01DIS\r", f(1, "SI1.250W0.000ML")), (b"01DIS\r", f(1, "II250.0W0.000UL")),
                 (b"01CLD INF\r", f(1, "S")), (b"01CLD WDR\r", f(1, "S"))])
    assert p.dispensed() == pytest.approx(1.25 * ML)
    assert p.dispensed() == pytest.approx(250 * UL)
    p.clear_dispensed()
    t.assert_done()


def test_stop_and_errors():
    p, _t = make([(b"01STP\r", f(1, "P")), (b"01STP\r", f(1, "I")), (b"01RAT 9999 MM\r", f(1, "S?OOR"))])
    p.stop()
    with pytest.raises(InstrumentBusy):
        p.stop()
    with pytest.raises(InstrumentReportedError, match="out of range") as info:
        p._exchange("RAT 9999 MM")
    assert info.value.code == "?OOR"


def test_safe_state():
    p, t = make([(b"01STP\r", f(1, "P")), (b"01\r", f(1, "P")), (b"01DIS\r", f(1, "PI2.000W0.000ML"))])
    assert p.safe_state() == {"status": "P", "state": "paused", "dispensed_m3": pytest.approx(2 * ML)}
    t.assert_done()


def test_safe_state_after_an_alarm_resends_stp():
    p, t = make([(b"01STP\r", f(1, "A?R")), (b"01STP\r", f(1, "S")), (b"01\r", f(1, "S")),
                 (b"01DIS\r", f(1, "SI0.000W0.000ML"))])
    assert p.safe_state()["status"] == "S"
    t.assert_done()


def test_safe_state_unconfirmed():
    p, _ = make([(b"01STP\r", f(1, "P")), (b"01\r", f(1, "I"))])
    with pytest.raises(SafeStateError):
        p.safe_state()


def test_other_pumps_frames_are_skipped():
    p, t = make([(b"02\r", f(1, "I") + f(2, "S"))], address=2)
    assert p.status() == "S"
    t.assert_done()


def test_bad_frames():
    p, _ = make([(b"01\r", b"junk\x03")])
    with pytest.raises(MalformedReply):
        p.status()
    p, _ = make([(b"01\r", b"\x0201")])
    with pytest.raises((MalformedReply, InstrumentTimeout)):
        p.status()


def test_number_format_and_unit_choice():
    assert [fmt4(v) for v in (0.5, 9.9994, 14.43, 99.99, 250, 1500, 9999)] == [
        "0.500", "9.999", "14.43", "99.99", "250.0", "1500", "9999"]
    assert encode_quantity(1 * ML * PER_MIN, rate_units()) == ("1.000", "MM")
    assert encode_quantity(0.5 * ML * PER_MIN, rate_units()) == ("500.0", "UM")
    assert encode_quantity(100 * ML / 3600, rate_units()) == ("100.0", "MH")
    assert encode_quantity(0.7 * UL / 3600, rate_units()) == ("0.700", "UH")
    assert encode_quantity(20 * ML, VOLUME_UNITS) == ("20.00", "ML")
    assert encode_quantity(0.1234 * ML, VOLUME_UNITS) == ("123.4", "UL")   # "0.123" mL would lose a digit
    with pytest.raises(LimitViolation):
        encode_quantity(1e-14, VOLUME_UNITS)
