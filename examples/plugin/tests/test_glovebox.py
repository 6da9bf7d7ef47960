"""labctl-glovebox: each driver byte for byte (labctl.testing.ScriptedTransport), each driver against its
simulator core over `labsim://` on a virtual clock and over TCP on the wall clock, and the physics the
simulators compute. Run with the plug-in installed (its entry points must be visible to labctl)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from labctl_glovebox.dmt143 import DMT143
from labctl_glovebox.dmt143_sim import DMT143Sim, frost_point_c
from labctl_glovebox.teledyne import Teledyne3000TA, parse_status
from labctl_glovebox.teledyne_sim import Teledyne3000TASim, status_line

from labctl.clock import RealClock, VirtualClock
from labctl.drivers import registry as drivers
from labctl.drivers.transport import SerialTransport
from labctl.errors import InstrumentTimeout, MalformedReply, SafeStateError
from labctl.plugins import scan
from labctl.simulators import registry
from labctl.simulators.exposures import serve_tcp
from labctl.testing import ScriptedTransport

# -- the plug-in as labctl sees it --------------------------------------------------------------------------


def test_labctl_loads_the_plugin() -> None:
    mine = {e.name: e for e in scan() if e.distribution == "labctl-glovebox"}
    assert set(mine) == {"teledyne3000ta", "vaisala_dmt143", "glovebox_check"}
    assert all(e.loaded for e in mine.values()), [e.problem for e in mine.values()]
    assert drivers.driver_class("vaisala_dmt143") is DMT143
    assert drivers.simulator_class("teledyne3000ta") is Teledyne3000TASim


# -- byte for byte ------------------------------------------------------------------------------------------


def test_dmt143_bytes() -> None:
    t = ScriptedTransport([
        (b"VERS\r", b"DMT143 / 1.4.2\r\n"),
        (b"SEND\r", b"Tdf= -75.9 'C H2O=    1.1 ppmV\r\n"),
        (b"ERRS\r", b"No errors\r\n"),
        (b"SEND\r", b"Tdf= -75.9 'C H2O=    1.1 ppmV\r\n"),
    ])
    d = DMT143(t, name="glovebox.h2o")
    assert d.identify() == "DMT143 / 1.4.2"
    r = d.reading()
    assert r.h2o == pytest.approx(1.1e-6) and r.frost_point_c == -75.9
    assert d.safe_state()["h2o_ppm"] == pytest.approx(1.1)
    t.assert_done()


def test_dmt143_refuses_a_format_without_water() -> None:
    d = DMT143(ScriptedTransport([(b"SEND\r", b"Tdf= -75.9 'C\r\n")]), name="glovebox.h2o")
    with pytest.raises(MalformedReply, match="add H2O to the transmitter's FORM"):
        d.reading()


def test_dmt143_active_error_fails_the_safe_state_check() -> None:
    t = ScriptedTransport([(b"ERRS\r", b"T MEAS error\r\n"),
                           (b"SEND\r", b"Tdf= -70.0 'C H2O=    2.6 ppmV\r\n")])
    with pytest.raises(Exception, match="active errors: T MEAS error"):
        DMT143(t, name="glovebox.h2o").safe_state()


def test_teledyne_never_sends_and_never_takes_a_buffered_line() -> None:
    """A line already waiting is old news (discarded); the analyzer is never sent a byte."""
    t = ScriptedTransport([(None, b"ST, 0.42 PPM, RA-LO 0-10 PPM, AL-1 DISABLED, \r\n")], timeout=5.0)
    with pytest.raises(InstrumentTimeout, match="no status line within 5 s"):
        Teledyne3000TA(t, name="glovebox.o2").status()
    assert t.sent == []


def test_teledyne_status_lines_from_the_manual() -> None:
    s = parse_status(b"ST, 0.00 PPM, RA-LO 0-100 PPM, AL-1 DISABLED, AL-2 ON, \r\n")
    assert s.fraction == 0.0 and s.span == "0-100 PPM" and s.alarms == ("AL-1 DISABLED", "AL-2 ON")
    assert parse_status(b"ST, 20.9 %, RF-HI 0-25 %, \r\n").fraction == pytest.approx(0.209)
    with pytest.raises(MalformedReply):
        parse_status(b"Teledyne Model 3000T Oxygen Analyzer\r\n")


# -- against the simulators ---------------------------------------------------------------------------------


@pytest.fixture
def box() -> Iterator[tuple[Teledyne3000TA, DMT143, Teledyne3000TASim, DMT143Sim, VirtualClock]]:
    clock = VirtualClock()
    o2, h2o = Teledyne3000TASim("o2-t", clock=clock, ppm=0.6), DMT143Sim("h2o-t", clock=clock, ppm=2.5)
    registry.register("o2-t", o2)
    registry.register("h2o-t", h2o)
    a = Teledyne3000TA(SerialTransport("o2", "labsim://o2-t", Teledyne3000TA.SERIAL, clock=clock,
                                       timeout=Teledyne3000TA.TIMEOUT), name="glovebox.o2")
    b = DMT143(SerialTransport("h2o", "labsim://h2o-t", DMT143.SERIAL, clock=clock, timeout=1.0),
               name="glovebox.h2o")
    a.connect()
    b.connect()
    yield a, b, o2, h2o, clock
    a.close()
    b.close()
    registry.unregister("o2-t")
    registry.unregister("h2o-t")


def test_drivers_read_the_simulated_box(box) -> None:
    a, b, o2, _, clock = box
    assert a.identify() == "Teledyne 3000TA (auto range LO 0-10 PPM)"
    assert a.oxygen() == pytest.approx(0.6e-6, rel=0.05)
    r = b.reading()
    assert r.h2o == pytest.approx(2.5e-6, abs=0.1e-6)
    assert r.frost_point_c == pytest.approx(frost_point_c(2.5), abs=0.3)
    o2.ppm = 40.0
    clock.sleep(3600)  # an hour of buffered lines: the reading is of now, not of an hour ago
    assert a.oxygen() == pytest.approx(40e-6, rel=0.05) and a.status().range == "MED"


def test_a_line_joined_midway_is_skipped(box) -> None:
    """The host starts listening mid-line: the fragment is skipped and the next whole line read."""
    a, _, o2, _, clock = box
    o2.emit(b"0 PPM, RA-LO 0-10 PPM, \r\n", at=clock.monotonic() + 0.1)
    s = a.status()
    assert s.fraction == pytest.approx(0.6e-6, rel=0.05) and s.auto_range and s.range == "LO"
    assert o2.received == []  # listening only


def test_a_silent_analyzer_is_a_timeout_that_says_why(box) -> None:
    a, _, o2, _, clock = box
    o2.write(b"st\r")  # the front-panel user toggled the stream off
    start = clock.monotonic()
    with pytest.raises(InstrumentTimeout, match="stream toggled off"):
        a.oxygen()
    assert clock.monotonic() - start == pytest.approx(Teledyne3000TA.TIMEOUT * (1 + a.RETRIES), abs=0.5)
    with pytest.raises(SafeStateError, match="analyzer silent"):
        a.safe_state()


def test_dmt143_over_tcp_on_the_wall_clock() -> None:
    core = DMT143Sim("h2o-tcp", clock=RealClock(), ppm=0.3)
    exposure = serve_tcp(core)
    try:
        link = SerialTransport("h2o", exposure.serial_url, DMT143.SERIAL, timeout=2.0)
        d = DMT143(link, name="glovebox.h2o")
        d.connect()
        try:
            assert d.identify() == "DMT143 / 1.4.2"
            assert d.water() == pytest.approx(0.3e-6, abs=0.1e-6)
        finally:
            d.close()
    finally:
        exposure.close()


@pytest.mark.parametrize(("ppm", "frost_c"), [(1.0, -76.2), (10.0, -60.7), (100.0, -41.6)])
def test_frost_point_of_trace_water(ppm: float, frost_c: float) -> None:
    """Magnus over ice at 1 atm against tabulated ppmV / frost-point pairs (to 0.5 degC)."""
    assert frost_point_c(ppm) == pytest.approx(frost_c, abs=0.5)
    assert math.isfinite(frost_point_c(0.0))


def test_status_line_auto_ranges() -> None:
    assert status_line(0.5) == b"ST, 0.50 PPM, RA-LO 0-10 PPM, \r\n"
    assert status_line(250.0) == b"ST, 250.00 PPM, RA-HI 0-1000 PPM, \r\n"
