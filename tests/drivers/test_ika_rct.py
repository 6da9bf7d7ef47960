"""Byte-exact transcripts of every public operation of the IKA RCT digital driver (CR LF included)."""

from __future__ import annotations

import pytest

from labctl.drivers.ika_rct import IkaRct
from labctl.errors import InstrumentError, LimitViolation, MalformedReply, SafeStateError
from labctl.roles import Hotplate
from labctl.testing import ScriptedTransport


def make(script, **kw) -> tuple[IkaRct, ScriptedTransport]:
    t = ScriptedTransport(script)
    return IkaRct(t, name="hotplate", **kw), t


def test_is_a_hotplate_with_7e1_line():
    assert isinstance(make([])[0], Hotplate)
    assert (IkaRct.SERIAL.baudrate, IkaRct.SERIAL.bytesize, IkaRct.SERIAL.parity) == (9600, 7, "E")


def test_identify_and_temperatures():
    h, t = make(
        [
            (b"IN_NAME\r\n", b"RCT digital\r\n"),
            (b"IN_PV_1\r\n", b"25.3 1\r\n"),
            (b"IN_PV_2\r\n", b"40.0 2\r\n"),
            (b"IN_PV_1\r\n", b"25.3 2\r\n"),
            (b"IN_PV_2\r\n", b"hot 2\r\n"),
        ]
    )
    assert h.identify() == "RCT digital"
    assert h.bath_temperature() == 25.3
    assert h.plate_temperature() == 40.0
    with pytest.raises(MalformedReply, match=r"answered '25\.3 2'"):
        h.bath_temperature()
    with pytest.raises(MalformedReply):
        h.plate_temperature()
    t.assert_done()


def test_set_temperature_is_confirmed_by_read_back():
    h, t = make(
        [
            (b"OUT_SP_1 45.0\r\n", b""),
            (b"IN_SP_1\r\n", b"45.0 1\r\n"),
            (b"OUT_SP_1 45.3\r\n", b""),
            (b"IN_SP_1\r\n", b"45.0 1\r\n"),
        ]
    )
    h.set_temperature(45.0)
    with pytest.raises(InstrumentError, match=r"read back 45 degC, sent 45\.3"):
        h.set_temperature(45.26)
    t.assert_done()


def test_heater_and_stirrer():
    h, t = make(
        [
            (b"START_1\r\n", b""),
            (b"STATUS_1\r\n", b"11\r\n"),
            (b"STOP_1\r\n", b""),
            (b"STATUS_1\r\n", b"12\r\n"),
            (b"OUT_SP_4 300\r\n", b""),
            (b"IN_SP_4\r\n", b"300 4\r\n"),
            (b"START_4\r\n", b""),
            (b"STATUS_4\r\n", b"11\r\n"),
            (b"STOP_4\r\n", b""),
            (b"STATUS_4\r\n", b"12\r\n"),
            (b"START_1\r\n", b""),
            (b"STATUS_1\r\n", b"12\r\n"),
        ]
    )
    h.heater(True)
    h.heater(False)
    h.stirrer(300)
    h.stirrer(0)
    with pytest.raises(InstrumentError, match="heater did not switch on"):
        h.heater(True)
    t.assert_done()


def test_watchdog_echo():
    h, t = make([(b"OUT_WD1@30\r\n", b"30\r\n"), (b"OUT_WD1@60\r\n", b"6\r\n")])
    h.watchdog(30)
    with pytest.raises(MalformedReply, match="echoed"):
        h.watchdog(60)
    t.assert_done()


def test_limits_before_any_byte():
    h, t = make([], limits={"temperature": (None, 60.0), "stir": (None, 1000.0)})
    for call in (
        lambda: h.set_temperature(61),
        lambda: h.set_temperature(-1),
        lambda: h.stirrer(1200),
        lambda: h.stirrer(-5),
        lambda: h.watchdog(10),
        lambda: h.watchdog(30.5),
        lambda: h.set_temperature(float("inf")),
    ):
        with pytest.raises(LimitViolation):
            call()
    assert t.sent == []


def test_safe_state():
    h, t = make(
        [
            (b"STOP_1\r\n", b""),
            (b"STOP_4\r\n", b""),
            (b"STATUS_1\r\n", b"12\r\n"),
            (b"STATUS_4\r\n", b"12\r\n"),
            (b"IN_PV_1\r\n", b"31.5 1\r\n"),
        ]
    )
    assert h.safe_state() == {"heating": False, "stirring": False, "bath_c": 31.5}
    t.assert_done()
    h, t = make(
        [
            (b"STOP_1\r\n", b""),
            (b"STOP_4\r\n", b""),
            (b"STATUS_1\r\n", b"11\r\n"),
            (b"STATUS_4\r\n", b"12\r\n"),
            (b"IN_PV_1\r\n", b"31.5 1\r\n"),
        ]
    )
    with pytest.raises(SafeStateError, match="heater on"):
        h.safe_state()
    h, t = make([(b"STOP_1\r\n", b""), (b"STOP_4\r\n", b""), (b"STATUS_1\r\n", b"")])
    with pytest.raises(SafeStateError, match="could not confirm"):
        h.safe_state()
