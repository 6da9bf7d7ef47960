"""The sputter chamber as the simulators share it: the MFC's gas sets the pressure the gauge reads and the
plasma window the RF generator sees, all through the drivers over labsim:// on one virtual clock.

(Shared file: the gauge/MFC/RF part is here; the QCM + shutter part joins the same `chamber` fixture.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from labctl.clock import VirtualClock
from labctl.drivers.aebus_rf import AeBusRf
from labctl.drivers.alicat import Alicat
from labctl.drivers.sqm160 import Sqm160
from labctl.drivers.tpg361 import Tpg361
from labctl.drivers.transport import SerialTransport
from labctl.simulators import registry
from labctl.simulators.aebus_rf import AeBusRfSim
from labctl.simulators.alicat import AlicatSim
from labctl.simulators.sqm160 import Sqm160Sim
from labctl.simulators.tpg361 import Tpg361Sim
from labctl.simulators.world import SimpleWorld


@dataclass
class Chamber:
    clock: VirtualClock
    world: SimpleWorld
    gauge: Tpg361
    mfc: Alicat
    rf: AeBusRf
    qcm: Sqm160


@pytest.fixture
def chamber(request):
    """Gauge, MFC, RF and QCM simulators on one world and clock, driven through their drivers."""
    clock = VirtualClock()
    world = SimpleWorld(**getattr(request, "param", {}))
    parts = {"gauge": (Tpg361Sim, Tpg361), "mfc": (AlicatSim, Alicat), "rf": (AeBusRfSim, AeBusRf),
             "qcm": (Sqm160Sim, Sqm160)}
    drivers = {}
    for role, (sim, drv) in parts.items():
        url = f"chamber-{role}"
        registry.register(url, sim(url, clock=clock, world=world))
        drivers[role] = drv(SerialTransport(role, f"labsim://{url}", drv.SERIAL, clock=clock), name=role)
        drivers[role].connect()
    yield Chamber(clock, world, **drivers)
    for role, d in drivers.items():
        d.close()
        registry.unregister(f"chamber-{role}")


def test_more_flow_raises_the_pressure_the_gauge_reads(chamber):
    c = chamber
    c.gauge.set_unit("Pa")
    c.mfc.select_gas("Ar")
    readings = []
    for sccm in (0.0, 5.0, 20.0, 50.0):
        c.mfc.set_flow(sccm)
        c.clock.sleep(1.0)
        readings.append(c.gauge.pressure())
    assert readings == sorted(readings) and len(set(readings)) == 4
    assert readings[3] == pytest.approx(c.world.chamber_pressure(c.clock.monotonic()))
    c.gauge.set_unit("mbar")
    assert c.gauge.pressure() == pytest.approx(readings[3])   # same chamber, converted from mbar


def test_rf_at_bad_pressure_reflects_and_gas_brings_the_plasma(chamber):
    c = chamber
    c.mfc.select_gas("Ar")
    c.rf.set_power(100)
    c.rf.rf_on()                                             # no gas: ~1e-4 Pa, outside the window
    assert c.rf.forward_power() == 100.0
    bad = c.rf.reflected_power()
    c.mfc.set_flow(20.0)                                     # 0.4 Pa: inside
    c.clock.sleep(2.0)
    assert 0.1 <= c.gauge.pressure() <= 5.0
    good = c.rf.reflected_power()
    assert bad == 60.0 and good == 2.0
    assert c.rf.safe_state()["rf_on"] is False and c.world._watts == 0.0


@pytest.mark.parametrize("chamber", [{"pa_per_sccm": 0.1}], indirect=True)
def test_too_much_gas_also_leaves_the_window(chamber):
    c = chamber
    c.mfc.set_flow(80.0)                                     # 8 Pa: above the window
    c.rf.set_power(50)
    c.rf.rf_on()
    assert c.gauge.pressure() == pytest.approx(8.0001)
    assert c.rf.reflected_power() == 30.0
    c.mfc.set_flow(10.0)
    assert c.rf.reflected_power() == 1.0


def test_a_ramp_and_the_chamber_safe_state(chamber):
    c = chamber
    c.mfc.set_flow(20.0)
    c.rf.check("ramp_rate", 10.0)
    c.rf.set_power(0)
    c.rf.rf_on()
    for step in range(1, 11):                                # what the engine does: 10 W/s for 10 s
        c.clock.sleep(1.0)
        c.rf.set_power(10 * step)
        assert c.rf.forward_power() == 10.0 * step
    assert c.world._watts == 100.0
    states = {role: getattr(c, role).safe_state() for role in ("rf", "mfc", "gauge")}  # the engine's order
    assert states["rf"]["rf_on"] is False and states["rf"]["setpoint_w"] == 0.0
    assert states["mfc"]["flow_sccm"] == 0.0
    assert states["gauge"]["pressure_pa"] == pytest.approx(1e-4)   # back at base pressure once gas is off


@pytest.mark.parametrize("chamber", [{"rate_kg_m2_s_per_w": 3e-9}], indirect=True)
def test_qcm_grows_only_with_shutter_open_plasma_and_gas(chamber):
    """What the sputter executor does: film set, zero, shutter open, deposit, shutter closed."""
    c = chamber
    c.qcm.set_film(density=2640.0, z_ratio=0.774, tooling=1.0)     # LiF
    c.qcm.zero()
    c.rf.set_power(100)
    c.rf.rf_on()                                             # no gas: no plasma, nothing deposits
    c.qcm.shutter(True)
    c.clock.sleep(30.0)
    assert c.qcm.thickness() == 0.0
    c.mfc.set_flow(20.0)                                     # plasma: the film grows, shutter open
    c.qcm.rate()
    thick = []
    for _ in range(3):
        c.clock.sleep(20.0)
        thick.append(c.qcm.thickness())
    assert thick == sorted(thick) and thick[0] > 0
    assert c.qcm.rate() == pytest.approx(100 * 3e-9 / 2640.0, rel=0.02)    # ~1.1 A/s
    assert thick[-1] == pytest.approx(c.world.qcm_areal_mass(c.clock.monotonic()) / 2640.0, rel=1e-3)
    c.qcm.shutter(False)                                     # closed: no more growth though RF and gas are on
    closed = c.qcm.thickness()
    c.clock.sleep(30.0)
    assert c.qcm.thickness() == pytest.approx(closed, abs=1e-13) and c.rf.is_on()
    c.qcm.shutter(True)
    c.rf.rf_off()                                            # open but RF off: nothing either
    c.clock.sleep(30.0)
    assert c.qcm.thickness() == pytest.approx(closed, abs=1e-13)
    states = {role: getattr(c, role).safe_state() for role in ("rf", "qcm", "mfc", "gauge")}
    assert states["qcm"]["shutter_open"] is False and c.world._shutter is False
