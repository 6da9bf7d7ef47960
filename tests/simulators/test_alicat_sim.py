"""The Alicat simulator: bytes, the flow it puts into the chamber; the driver against it in process. The
driver over TCP and a pty and every fault kind: test_conformance.py."""

from __future__ import annotations

import pytest

from labctl.clock import RealClock, VirtualClock
from labctl.drivers.alicat import Alicat
from labctl.drivers.transport import SerialTransport
from labctl.errors import (
    InstrumentBusy,
    InstrumentReportedError,
    SafeStateError,
)
from labctl.simulators import registry
from labctl.simulators.alicat import AlicatSim
from labctl.simulators.core import FaultKind
from labctl.simulators.exposures import serve_pty
from labctl.simulators.world import SimpleWorld


class Raw:
    def __init__(self, **kw) -> None:
        self.clock = VirtualClock()
        self.world = SimpleWorld()
        self.core = AlicatSim("mfc", clock=self.clock, world=self.world, **kw)

    def __call__(self, text: str) -> bytes:
        self.core.write(text.encode() + b"\r")
        return self.core.read()


def test_frame_setpoint_gas_and_the_chamber():
    r = Raw()
    assert r("A") == b"A +014.70 +025.00 +000.00 +000.00 +000.00 N2\r"
    assert r("AS 10.0") == b"A +014.70 +025.00 +010.00 +010.00 +010.00 N2\r"
    assert r.world.chamber_pressure(0.0) == pytest.approx(1e-4 + 0.2)
    assert r("as12.345") == b"A +014.70 +025.00 +012.35 +012.35 +012.35 N2\r"   # any case, no space
    assert r("AG1") == b"A +014.70 +025.00 +012.35 +012.35 +012.35 Ar\r"
    assert r("A G 8") == b"A +014.70 +025.00 +012.35 +012.35 +012.35 N2\r"
    assert r("AVE") == b"A 10v05.0-R22\r"
    assert r("B") == b"" and r("BS 5") == b""                                  # another unit's
    assert r("AS 100.5") == b"?\r" and r("AS -1") == b"?\r" and r("AG99") == b"?\r" and r("AXYZ") == b"?\r"


def test_volumetric_flow_follows_inlet_conditions():
    r = Raw(inlet_psia=30.0, temperature_c=35.0)
    assert r("AS 50") == b"A +030.00 +035.00 +025.31 +050.00 +050.00 N2\r"


def test_holds_and_a_valve_stuck_open_flags_over_range():
    r = Raw()
    r("AS 20")
    assert r("AHP").endswith(b"N2 HLD\r")
    assert r("AS 5") == b"A +014.70 +025.00 +019.99 +020.00 +005.00 N2 HLD\r"   # held: flow stays
    assert r("AC") == b"A +014.70 +025.00 +005.00 +005.00 +005.00 N2\r"
    assert r("AHC").startswith(b"A +014.70 +025.00 +000.00 +000.00 +005.00")
    assert r.world.gas_flow_actual(0.0) == 0.0
    r("AC")
    r.core.valve_stuck_sccm = 140.0
    assert r("A") == b"A +014.70 +025.00 +139.96 +140.00 +005.00 N2 MOV VOV\r"
    assert r.world.chamber_pressure(0.0) == pytest.approx(1e-4 + 2.8)


def test_power_cycle_zeroes_the_setpoint_and_keeps_the_gas():
    r = Raw()
    r("AG1")
    r("AS 30")
    r.core.power_cycle()
    assert r("A") == b"A +014.70 +025.00 +000.00 +000.00 +000.00 Ar\r"
    assert r.world.gas_flow_actual(0.0) == 0.0


# -- the driver against the simulator -------------------------------------------------------------------


@pytest.fixture
def mfc():
    clock = VirtualClock()
    world = SimpleWorld()
    core = AlicatSim("mfc-t", clock=clock, world=world)
    registry.register("mfc-t", core)
    m = Alicat(SerialTransport("mfc", "labsim://mfc-t", Alicat.SERIAL, clock=clock, timeout=1.0), name="mfc")
    m.connect()
    yield m, core, world, clock
    m.close()
    registry.unregister("mfc-t")


def test_driver_in_process(mfc):
    m, core, world, _ = mfc
    assert m.identify() == "10v05.0-R22"
    m.select_gas("Ar")
    m.set_flow(25.0)
    assert m.flow() == pytest.approx(25.0)
    assert world.chamber_pressure(0.0) == pytest.approx(1e-4 + 0.5)
    assert m.poll().gas == "Ar"
    assert m.safe_state() == {"setpoint_sccm": 0.0, "flow_sccm": 0.0, "gas": "Ar", "flags": []}
    assert world.gas_flow_actual(0.0) == 0.0
    core.valve_stuck_sccm = 150.0
    with pytest.raises(InstrumentReportedError, match="MOV"):
        m.flow()
    with pytest.raises(SafeStateError, match="gas still flows"):
        m.safe_state()


# -- faults beyond the generic matrix (test_conformance.py) --------------------------------------------------


def test_fault_stuck_busy(mfc):
    m, core, world, _ = mfc
    m.set_flow(10.0)
    core.inject(FaultKind.STUCK_BUSY, rb"^AS")
    with pytest.raises(InstrumentBusy, match="HLD"):
        m.set_flow(20.0)
    assert world.gas_flow_actual(0.0) == 10.0          # the valve did not follow
    with pytest.raises(SafeStateError, match="gas still flows"):
        m.safe_state()                                # a cancel of the hold does not free it
    assert m.flow() == pytest.approx(10.0)            # exchanges stay clean
    core.power_cycle()
    assert m.safe_state()["flow_sccm"] == 0.0


@pytest.mark.pty
def test_a_manual_only_client_over_the_pty():
    """What a program written from Alicat's serial primer does, with plain pyserial."""
    import serial

    with serve_pty(AlicatSim("mfc-raw", clock=RealClock())) as exp:
        port = serial.Serial(exp.path, 19200, timeout=1.0)
        try:
            port.write(b"AG1\r")
            assert port.read_until(b"\r").split()[-1] == b"Ar"
            port.write(b"AS 12.5\r")
            assert port.read_until(b"\r") == b"A +014.70 +025.00 +012.50 +012.50 +012.50 Ar\r"
            port.write(b"AXX\r")
            assert port.read_until(b"\r") == b"?\r"
        finally:
            port.close()
