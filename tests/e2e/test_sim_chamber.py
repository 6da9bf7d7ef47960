"""The N2-plasma nitride step with the real TPG 361, Alicat and AE Bus drivers over their simulators, and the
chamber-pressure interlock switching the RF off."""

from __future__ import annotations

import pytest
from engine_fakes import FakeStore

from labctl.clock import VirtualClock
from labctl.compose import step_from_fields
from labctl.engine.control import Control
from labctl.engine.instruments import build_instruments, roles_for
from labctl.engine.run import Run, RunSpec
from labctl.simulators.bench import SimulatedBench
from labctl.simulators.world import SimpleWorld
from labctl.station import parse_station

pytest.importorskip("labctl.drivers.aebus_rf")

STATION = parse_station("""
labctl_station: 1
name: sim-chamber
instruments:
  gauge: {driver: tpg361, port: "labsim://ch-gauge"}
  mfc: {driver: alicat, port: "labsim://ch-mfc"}
  rf: {driver: aebus_rf, port: "labsim://ch-rf"}
""")
NITRIDE = ("nitride", {"power": "60 W", "gas": "N2", "flow": "50 sccm", "pressure": "1.5 Pa", "time": "600 s",
                       "ramp_rate": "2 W/s", "base_pressure": "5e-4 Pa"})


@pytest.fixture
def sim():
    clock, store, world = VirtualClock(), FakeStore(), SimpleWorld()
    info = STATION
    roles, missing = roles_for([step_from_fields(0, *NITRIDE).step], info)
    assert not missing
    bench = SimulatedBench(STATION, clock=clock, world=world, seed=3).start("labsim", roles)

    def make(steps, hooks=()):
        spec = RunSpec("chamber", [step_from_fields(i, k, p) for i, (k, p) in enumerate(steps)])
        pending = list(hooks)

        def progress(kind, data):
            for h in list(pending):
                if h[0] == kind and h[1](data):
                    pending.remove(h)
                    h[2](run)

        run = Run(spec, store=store, instruments={}, station=info, clock=clock, handle_signals=False,
                  progress=progress, control=Control(poll_interval=0.0))
        rid = run.create()
        run.instruments = build_instruments(info, roles, clock=clock, recorder=store.io_recorder(rid))
        return run

    yield make, store, world
    bench.close()


def test_nitride_on_the_simulated_chamber(sim) -> None:
    make, _store, world = sim
    res = make([NITRIDE]).execute()
    assert res.ok, res.reason
    a = res.steps[0].achieved
    assert a["deposition_s"] == pytest.approx(600.0, abs=5.0)
    assert 0.5 <= a["pressure_pa"] <= 5.0 and a["flow_sccm"] == pytest.approx(50.0, rel=0.05)
    assert world._watts == 0.0 and world._sccm == 0.0          # RF off and gas off at the end
    assert all(r.ok for r in res.safe)


def test_pressure_excursion_trips_the_interlock_and_switches_rf_off(sim) -> None:
    make, _store, world = sim

    def leak(run):
        world.base_pressure_pa = 50.0                           # a leak: pressure far above the window

    res = make([NITRIDE], hooks=[("step.progress", lambda d: d.get("fraction", 0) > 0.3, leak)]).execute()
    assert res.state.value == "failed"
    assert "chamber_pressure" in res.reason and "RF switched off" in res.reason
    assert world._watts == 0.0
    assert all(r.ok for r in res.safe)
