"""The NE-1000 network simulator: bytes, pumping in simulated time; the driver against it in process; two
pumps on one network. The driver over TCP and a pty and every fault kind: test_conformance.py."""

from __future__ import annotations

import threading

import pytest

from labctl.clock import VirtualClock
from labctl.drivers.ne1000 import NE1000
from labctl.drivers.transport import SerialTransport
from labctl.errors import (
    InstrumentBusy,
    InstrumentReportedError,
    InstrumentTimeout,
    SafeStateError,
)
from labctl.simulators import registry
from labctl.simulators.core import FaultKind
from labctl.simulators.ne1000 import NE1000Sim, safe_packet
from labctl.simulators.world import SimpleWorld

ML, UL = 1e-6, 1e-9
NAMES = {1: "pump.stock", 2: "pump.solvent"}


def f(address: int, body: str) -> bytes:
    return b"\x02" + f"{address:02d}{body}".encode() + b"\x03"


class Raw:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.world = SimpleWorld()
        self.core = NE1000Sim("pumps", clock=self.clock, world=self.world, addresses=(1, 2), pump_names=NAMES)

    def __call__(self, text: str) -> bytes:
        self.core.write(text.encode() + b"\r")
        return self.core.read()

    def ack(self) -> None:
        assert self("1") == f(1, "A?R") and self("2") == f(2, "A?R")


def test_reset_alarm_is_reported_once_and_the_command_not_executed():
    r = Raw()
    assert r("1DIA 14.43") == f(1, "A?R")            # acknowledged, not executed
    assert r("1DIA") == f(1, "S0.000")
    assert r("01DIA 14.43") == f(1, "S")
    assert r("01DIA") == f(1, "S14.43")
    assert r("2XYZ") == f(2, "S?")                   # invalid commands do not acknowledge the alarm
    assert r("2") == f(2, "A?R")


def test_grammar_addresses_and_errors():
    r = Raw()
    r.ack()
    assert r("3") == b""                            # nobody at address 3
    assert r("VER") == b""                          # no address = address 0: not on this network
    assert r(" 0 1 v e r ") == f(1, "SNE1000V3.928")  # spaces ignored, any case
    assert r("01DIA 60") == f(1, "S?OOR")
    assert r("01DIA 14.435") == f(1, "S?OOR")       # 5 digits
    assert r("01DIA 14.43") == f(1, "S")
    assert r("01RAT 1 XX") == f(1, "S?")
    assert r("01RAT 9999 MM") == f(1, "S?OOR")      # 9999 mL/min needs 61 m/h of plunger travel
    assert r("01RAT 1.0 MM") == f(1, "S")
    assert r("01RAT") == f(1, "S1.000MM")
    assert r("01VOL") == f(1, "S0.000ML")           # > 14 mm syringe: mL by default
    assert r("01VOL UL") == f(1, "S")
    assert r("01VOL 500") == f(1, "S")
    assert r("01VOL") == f(1, "S500.0UL")
    assert r("01DIR WDR") == f(1, "S") and r("01DIR") == f(1, "SWDR")
    assert r("01DIR REV") == f(1, "S") and r("01DIR") == f(1, "SINF")
    assert r("01CLD XYZ") == f(1, "S?")
    assert r("01SAF 10") == safe_packet(b"01S")     # safe mode: replies in safe framing from now on
    r.core.write(safe_packet(b"01SAF0"))
    assert r.core.read() == f(1, "S")               # back to basic mode
    assert r("02RUN") == f(2, "S?NA")               # no syringe diameter yet


def test_infuse_auto_stops_at_the_target_and_tells_the_world():
    r = Raw()
    r.ack()
    for cmd in ("1DIA 14.43", "1DIR INF", "1RAT 1.0 MM", "1VOL ML", "1VOL 2.0"):
        assert r(cmd) == f(1, "S")
    assert r("1RUN") == f(1, "I")
    assert r("1VOL 3") == f(1, "I?NA")              # data is locked while pumping
    r.clock.advance_to(60.0)
    assert r("1DIS") == f(1, "II1.000W0.000ML")
    r.clock.advance_to(119.9)
    assert r("1") == f(1, "I")
    r.clock.advance_to(125.0)
    assert r("1") == f(1, "S")
    assert r("1DIS") == f(1, "SI2.000W0.000ML")
    assert r.world._flows["pump.stock"] == (0.0, pytest.approx(ML / 60), pytest.approx(120.0))
    assert r("1CLD INF") == f(1, "S") and r("1DIS") == f(1, "SI0.000W0.000ML")


def test_pause_resume_stop_and_withdraw():
    r = Raw()
    r.ack()
    for cmd in ("2DIA 26.59", "2RAT 60 MH", "2VOL 1", "2RUN"):
        r(cmd)
    r.clock.advance_to(30.0)
    assert r("2STP") == f(2, "P")
    assert r.world.pumped_m3["pump.solvent"] == pytest.approx(0.5 * ML)
    r.clock.advance_to(100.0)
    assert r("2DIS") == f(2, "PI0.500W0.000ML")     # nothing pumped while paused
    assert r("2RUN") == f(2, "I")                   # resumes the phase: 0.5 mL left, 30 s
    r.clock.advance_to(131.0)
    assert r("2") == f(2, "S") and r("2DIS") == f(2, "SI1.000W0.000ML")
    assert r("2DIR WDR") == f(2, "S") and r("2VOL 0") == f(2, "S") and r("2RUN") == f(2, "W")
    assert r.world.pumped_m3["pump.solvent"] == pytest.approx(1.0 * ML)   # settled when the flow changed
    assert r.world._flows["pump.solvent"] == (131.0, pytest.approx(-ML / 60), None)
    r.clock.advance_to(191.0)
    assert r("2STP") == f(2, "P") and r("2STP") == f(2, "S")
    assert r("2DIS") == f(2, "SI1.000W1.000ML")


def test_rate_change_while_pumping_and_purge():
    r = Raw()
    r.ack()
    for cmd in ("1DIA 4.699", "1RAT 10 UM", "1VOL 0", "1RUN"):
        r(cmd)
    r.clock.advance_to(60.0)
    assert r("1RAT 20 UM") == f(1, "I")
    assert r("1RAT 1 MM") == f(1, "I?OOR")          # 1 mL/min is too fast for a 1 mL syringe
    assert r("1RAT 0.02 MM") == f(1, "I?NA")        # units cannot change while pumping
    r.clock.advance_to(120.0)
    assert r("1DIS") == f(1, "II30.00W0.000UL")     # <= 14 mm syringe: uL
    assert r("1STP") == f(1, "P") and r("1PUR") == f(1, "X")
    assert r("1STP") == f(1, "S")


def test_power_cycle_keeps_settings_stops_pumping_and_raises_the_reset_alarm():
    r = Raw()
    r.ack()
    for cmd in ("1DIA 14.43", "1RAT 1 MM", "1VOL 0", "1RUN"):
        r(cmd)
    r.clock.advance_to(10.0)
    r.core.power_cycle()
    r.clock.advance_to(20.0)
    assert r("1DIA") == f(1, "A?R")
    assert r("1") == f(1, "S") and r("1DIA") == f(1, "S14.43")
    assert r("1DIS") == f(1, "SI0.167W0.000ML")


# -- the driver against the simulator -------------------------------------------------------------------


@pytest.fixture
def net():
    clock = VirtualClock()
    core = NE1000Sim("pumps-t", clock=clock, world=SimpleWorld(), addresses=(1, 2), pump_names=NAMES)
    registry.register("pumps-t", core)
    t = SerialTransport("pumps", "labsim://pumps-t", NE1000.SERIAL, clock=clock, timeout=1.0)
    a, b = NE1000(t, address=1, name="pump.stock"), NE1000(t, address=2, name="pump.solvent")
    a.connect()
    b.connect()
    yield a, b, core, clock
    a.close()
    b.close()
    registry.unregister("pumps-t")


def test_driver_dispense_in_process(net):
    a, b, core, clock = net
    assert a.alarms == ["R"] and b.alarms == ["R"]
    a.configure(diameter=14.43e-3)
    b.configure(diameter=26.59e-3)
    a.clear_dispensed()
    a.dispense(5 * ML, 1 * ML / 60)
    b.dispense(0.25 * ML, 0.5 * ML / 60)
    clock.sleep(60)
    assert a.is_running() and a.dispensed() == pytest.approx(1 * ML)
    assert not b.is_running() and b.dispensed() == pytest.approx(0.25 * ML)
    with pytest.raises(InstrumentBusy):
        a.dispense(1 * ML, 1 * ML / 60)
    assert a.safe_state() == {"status": "P", "state": "paused", "dispensed_m3": pytest.approx(1 * ML)}
    a.dispense(1 * ML, 1 * ML / 60)           # from P: stopped first, then a new phase of 1 mL
    clock.sleep(61)
    assert a.dispensed() == pytest.approx(2 * ML) and not a.is_running()
    assert core.world.pumped_m3["pump.stock"] == pytest.approx(1 * ML)
    assert b.safe_state()["status"] == "S"
    b.stop()
    assert b.status() == "S"
    with pytest.raises(InstrumentReportedError, match="out of range"):
        a._exchange("RAT 9999 MM")


def test_one_network_closes_with_its_last_pump(net):
    a, b, _, _ = net
    a.close()
    assert b.transport.is_open and b.status() == "S"
    b.close()
    assert not b.transport.is_open
    a.connect()
    b.connect()


def test_two_pumps_from_two_threads_never_mix_replies(net):
    a, b, _, _ = net
    a.configure(diameter=14.43e-3)
    b.configure(diameter=26.59e-3)
    errors: list[BaseException] = []

    def hammer(p: NE1000, mm: float) -> None:
        try:
            for _ in range(60):
                assert p._exchange("DIA")[1] == f"{mm:.2f}"
                assert p.identify() == "NE1000V3.928"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(p, mm)) for p, mm in ((a, 14.43), (b, 26.59))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_a_late_reply_of_one_pump_is_not_taken_by_the_other(net):
    a, b, core, _clock = net
    a.configure(diameter=14.43e-3)
    b.configure(diameter=26.59e-3)
    core.inject(FaultKind.LATE, rb"^01DIA\r", delay=1.2)
    with pytest.raises(InstrumentTimeout):
        a._exchange("DIA")
    assert b._exchange("DIA")[1] == "26.59"         # pump 1's late "14.43" is discarded
    assert a._exchange("DIA")[1] == "14.43"


# -- faults beyond the generic matrix (test_conformance.py) --------------------------------------------------


def test_fault_stuck_busy(net):
    a, _, core, _clock = net
    core.inject(FaultKind.STUCK_BUSY, rb"^01STP")
    with pytest.raises(InstrumentBusy):
        a.stop()
    with pytest.raises(SafeStateError):
        a.safe_state()
    assert a.identify() == "NE1000V3.928"         # the exchange itself stays clean
