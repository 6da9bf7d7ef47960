"""Byte-exact transcripts of every public operation of the Alicat MFC driver (terminators included)."""

from __future__ import annotations

import pytest

from labctl.drivers.alicat import PSI_PA, Alicat, AlicatFrame, gas_number
from labctl.errors import (
    ConfigError,
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    LimitViolation,
    MalformedReply,
    SafeStateError,
)
from labctl.roles import MassFlowController
from labctl.testing import ScriptedTransport


def fr(mass: float, sp: float, gas: str = "N2", *flags: str, vol: float | None = None) -> bytes:
    vol = mass if vol is None else vol
    words = ["A", "+014.70", "+025.00", f"{vol:+07.2f}", f"{mass:+07.2f}", f"{sp:+07.2f}", gas, *flags]
    return " ".join(words).encode() + b"\r"


def make(script, **kw) -> tuple[Alicat, ScriptedTransport]:
    t = ScriptedTransport(script)
    return Alicat(t, name="mfc", **kw), t


def test_is_a_mass_flow_controller():
    assert isinstance(make([])[0], MassFlowController)


def test_poll_parses_every_field():
    m, t = make([(b"A\r", b"A +014.70 +025.00 +010.01 +010.00 +010.00 Ar HLD VOV\r")])
    assert m.poll() == AlicatFrame("A", pytest.approx(14.70 * PSI_PA), 25.0, 10.01, 10.0, 10.0, "Ar",
                                   ("HLD", "VOV"))
    t.assert_done()


def test_flow_and_over_range():
    m, t = make([(b"A\r", fr(12.34, 12.34)), (b"A\r", fr(140.0, 100.0, "N2", "MOV", "VOV"))])
    assert m.flow() == pytest.approx(12.34)
    with pytest.raises(InstrumentReportedError, match="over range") as exc:
        m.flow()
    assert exc.value.code == "MOV"
    t.assert_done()


def test_set_flow_sends_the_frame_resolution_and_checks_the_answer():
    m, t = make([(b"AS 10.00\r", fr(10.0, 10.0)), (b"AS 12.35\r", fr(3.0, 12.35))])
    m.set_flow(10.0)
    m.set_flow(12.345)
    t.assert_done()
    m, t = make([(b"AS 5.00\r", fr(0.0, 0.0))])
    with pytest.raises(InstrumentError, match="read back"):
        m.set_flow(5.0)
    m, t = make([(b"AS 5.00\r", fr(2.0, 5.0, "N2", "HLD"))])
    with pytest.raises(InstrumentBusy, match="HLD"):
        m.set_flow(5.0)


def test_limits_before_any_byte():
    m, t = make([], limits={"flow": (0.0, 50.0)})
    for bad in (-1.0, 50.5, float("nan")):
        with pytest.raises(LimitViolation):
            m.set_flow(bad)
    assert t.sent == []
    with pytest.raises(LimitViolation):
        make([], limits={"flow": (0.0, 200.0)})
    with pytest.raises(LimitViolation):
        make([], unit_id="a")


def test_select_gas_by_name():
    m, t = make([(b"AG1\r", fr(0.0, 0.0, "Ar")), (b"AG8\r", fr(0.0, 0.0, "N2"))])
    m.select_gas("Ar")
    m.select_gas("n2")
    t.assert_done()
    m, t = make([(b"AG1\r", fr(0.0, 0.0, "N2"))])
    with pytest.raises(InstrumentError, match="read back"):
        m.select_gas("Ar")
    with pytest.raises(ConfigError, match="unknown gas"):
        gas_number("argon")
    assert gas_number("SF6") == 19


def test_question_mark_is_a_refusal():
    m, t = make([(b"AG1\r", b"?\r"), (b"AVE\r", b"A 10v05.0-R22\r")])
    with pytest.raises(InstrumentReportedError, match="refused") as exc:
        m.select_gas("Ar")
    assert exc.value.code == "?"
    assert m.identify() == "10v05.0-R22"
    t.assert_done()


def test_cancel_hold():
    m, t = make([(b"AC\r", fr(0.0, 0.0))])
    assert m.cancel_hold().flags == ()
    t.assert_done()


def test_malformed_frames_and_resync():
    m, t = make([(b"A\r", b"B +014.70\r")])
    with pytest.raises(MalformedReply):
        m.poll()
    m, t = make([(b"A\r", b"A +014.70 +025.00 x +0 +0 N2\r")])
    with pytest.raises(MalformedReply):
        m.poll()
    m, t = make([(b"A\r", b"A +014.70 +025.00\r")])
    with pytest.raises(MalformedReply):
        m.poll()
    m, t = make([(b"A\r", b"")])
    with pytest.raises(InstrumentTimeout):
        m.poll()
    assert t.clock.monotonic() == pytest.approx(m.transport.timeout)


def test_safe_state_waits_for_zero_flow_on_the_clock():
    m, t = make([(b"AS 0.00\r", fr(20.0, 0.0)), (b"A\r", fr(5.0, 0.0)), (b"A\r", fr(0.3, 0.0))])
    assert m.safe_state() == {"setpoint_sccm": 0.0, "flow_sccm": 0.3, "gas": "N2", "flags": []}
    assert t.clock.monotonic() == pytest.approx(2 * m.POLL)
    t.assert_done()


def test_safe_state_cancels_a_hold():
    m, t = make([(b"AS 0.00\r", fr(20.0, 0.0, "N2", "HLD")), (b"AC\r", fr(0.0, 0.0))])
    assert m.safe_state()["flow_sccm"] == 0.0
    t.assert_done()


def test_safe_state_fails_when_gas_keeps_flowing():
    polls = int(Alicat.SAFE_TIMEOUT / Alicat.POLL) + 1
    m, t = make([(b"AS 0.00\r", fr(20.0, 0.0))] + [(b"A\r", fr(20.0, 0.0))] * polls)
    with pytest.raises(SafeStateError, match="gas still flows"):
        m.safe_state()
    assert t.clock.monotonic() <= Alicat.SAFE_TIMEOUT + Alicat.POLL + 1e-9
    m, t = make([(b"AS 0.00\r", b"?\r")])
    with pytest.raises(SafeStateError, match="could not confirm"):
        m.safe_state()


def test_registry_finds_driver_and_simulator():
    from labctl.drivers.registry import driver_class, entry, simulator_class

    assert driver_class("alicat") is Alicat and entry("alicat").role == Alicat.ROLE
    sim = simulator_class("alicat")("reg-alicat")
    assert sim.SERIAL == Alicat.SERIAL and entry("alicat").simulator == Alicat.SIMULATOR
