"""Byte-exact transcripts of every public operation of the TPG 361 driver (terminators included)."""

from __future__ import annotations

import pytest

from labctl.drivers.tpg361 import Tpg361, error_text
from labctl.errors import (
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
    SafeStateError,
)
from labctl.roles import PressureGauge
from labctl.testing import ScriptedTransport

A, N, E = b"\x06\r\n", b"\x15\r\n", b"\x05"


def q(mnemonic: str, data: str) -> list[tuple[bytes, bytes]]:
    """The two steps of one operation: mnemonic -> ACK, ENQ -> data."""
    return [(mnemonic.encode() + b"\r\n", A), (E, data.encode() + b"\r\n")]


def make(*steps: list[tuple[bytes, bytes]]) -> tuple[Tpg361, ScriptedTransport]:
    t = ScriptedTransport([s for step in steps for s in step])
    return Tpg361(t, name="gauge"), t


def test_is_a_pressure_gauge():
    assert isinstance(make()[0], PressureGauge)


def test_instrumentkit_transcript():
    """The byte-exact transcript in instruments.md: 0.02 mbar = 2 Pa."""
    g, t = make(q("UNI", "0"), q("PR1", "0,2.0000E-2"))
    assert g.pressure() == pytest.approx(2.0)
    t.assert_done()


@pytest.mark.parametrize(("code", "value", "pa"), [
    ("0", "+1.0000E-03", 0.1), ("1", "+7.5006E-03", 1.0), ("2", "+4.0000E-01", 0.4),
    ("3", "+4.0000E+02", 0.4 * 133.322368), ("4", "+1.0000E-03", 0.1),
])
def test_pressure_converts_from_the_gauge_unit(code, value, pa):
    g, t = make(q("UNI", code), q("PR1", f"0,{value}"))
    assert g.pressure() == pytest.approx(pa, rel=1e-4)
    t.assert_done()


def test_volts_display_is_not_a_pressure():
    g, t = make(q("UNI", "5"), q("PR1", "0,+3.0000E+00"))
    with pytest.raises(InstrumentError, match="volts"):
        g.pressure()
    t.assert_done()


@pytest.mark.parametrize(("status", "text"), [(1, "underrange"), (2, "overrange"), (3, "sensor error"),
                                               (4, "sensor off"), (5, "no sensor"),
                                               (6, "identification error")])
def test_measurement_status_codes(status, text):
    g, t = make(q("UNI", "2"), q("PR1", f"{status},+0.0000E+00"))
    with pytest.raises(InstrumentReportedError, match=text) as exc:
        g.pressure()
    assert exc.value.code == status
    g, t = make(q("UNI", "2"), q("PR1", f"{status},+5.0000E-07"))
    r = g.reading()
    assert (r.status, r.status_text, r.value, r.unit, r.pressure_pa) == (status, text, 5e-7, "Pa", None)
    t.assert_done()


def test_identify_gauge_type_error_word_unit():
    g, t = make(q("AYT", "TPG361,PTG28290,44990000,010100,010100"), q("TID", "PKR"), q("ERR", "0000"),
                q("UNI", "1"))
    assert g.identify() == "TPG361,PTG28290,44990000,010100,010100"
    assert g.gauge_type() == "PKR"
    assert g.error_word() == "0000"
    assert g.unit() == "Torr"
    t.assert_done()


def test_set_unit_reads_back():
    g, t = make(q("UNI,2", "2"))
    g.set_unit("pa")
    t.assert_done()
    g, t = make(q("UNI,1", "0"))
    with pytest.raises(InstrumentError, match="read back"):
        g.set_unit("Torr")
    g, t = make()
    with pytest.raises(InstrumentError, match="unknown unit"):
        g.set_unit("psi")
    assert t.sent == []


def test_nak_is_explained_by_the_error_word():
    g, t = make([(b"UNI,9\r\n", N)], q("ERR", "0010"))
    with pytest.raises(InstrumentReportedError, match="inadmissible parameter") as exc:
        g._exchange("UNI,9")
    assert exc.value.code == "0010"
    t.assert_done()
    assert error_text("1001") == "controller error (see the front panel); syntax error"


def test_nak_to_everything_is_busy():
    g, t = make([(b"PR1\r\n", N), (b"ERR\r\n", N)])
    with pytest.raises(InstrumentBusy):
        g._exchange("PR1")
    t.assert_done()


def test_bad_replies_are_malformed_and_the_next_exchange_resyncs():
    g, t = make([(b"PR1\r\n", b"?\r\n")], [(b"\x03", b"")], q("TID", "PKR"))
    with pytest.raises(MalformedReply):
        g._exchange("PR1")
    assert g.gauge_type() == "PKR"           # ETX first, then a clean exchange
    t.assert_done()
    g, _ = make(q("UNI", "0"), q("PR1", "0;1.0E-3"))
    with pytest.raises(MalformedReply):
        g.pressure()
    g, _ = make(q("ERR", "00x1"))
    with pytest.raises(MalformedReply):
        g.error_word()
    g, _ = make([(b"UNI\r\n", A), (E, A)])
    with pytest.raises(MalformedReply):
        g.unit()


def test_timeout_within_one_deadline():
    g, t = make([(b"PR1\r\n", A), (E, b"")])
    with pytest.raises(InstrumentTimeout):
        g._exchange("PR1")
    assert t.clock.monotonic() == pytest.approx(g.transport.timeout)


def test_safe_state_confirms_the_gauge_answers():
    g, t = make(q("ERR", "0000"), q("UNI", "0"), q("PR1", "0,+4.0000E-03"))
    assert g.safe_state() == {"state": "read-only instrument, nothing to switch off", "error_word": "0000",
                              "error": "no error", "status": 0, "status_text": "measurement data okay",
                              "pressure_pa": pytest.approx(0.4), "unit": "mbar"}
    t.assert_done()
    g, t = make(q("ERR", "0000"), q("UNI", "0"), q("PR1", "4,+0.0000E+00"))
    assert g.safe_state()["status_text"] == "sensor off"   # reported, not an error: nothing to make safe
    g, t = make([(b"ERR\r\n", b"")])
    with pytest.raises(SafeStateError):
        g.safe_state()


def test_connect_and_close():
    g, t = make()
    g.connect()
    assert t.is_open
    g.close()
    assert not t.is_open


def test_registry_finds_driver_and_simulator():
    from labctl.drivers.registry import driver_class, entry, simulator_class

    assert driver_class("tpg361") is Tpg361 and entry("tpg361").role == Tpg361.ROLE
    sim = simulator_class("tpg361")("reg-tpg361")
    assert sim.SERIAL == Tpg361.SERIAL and entry("tpg361").simulator == Tpg361.SIMULATOR
