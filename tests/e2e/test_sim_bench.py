"""The engine with the real drivers over the simulators (labsim://, virtual clock): immersion runs, an abort
during an immersion proven from the instrument transcript."""

from __future__ import annotations

import re

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

STATION = parse_station("""
labctl_station: 1
name: sim-e2e
instruments:
  stage: {driver: grbl, port: "labsim://e2e-stage"}
  pump.stock: {driver: ne1000, port: "labsim://e2e-pumps", address: 1}
  pump.solvent: {driver: ne1000, port: "labsim://e2e-pumps", address: 2}
baths:
  alloy: {x: 50 mm, surface_z: -20 mm, capacity: 50 mL, pumps: [pump.stock, pump.solvent]}
  solvent: {x: 100 mm, surface_z: -20 mm, capacity: 50 mL, pumps: [pump.solvent]}
stocks:
  incl3: {pump: pump.stock, salt: InCl3, concentration: 0.5 M, solvent: THF, syringe_diameter: 14.5 mm}
  thf: {pump: pump.solvent, solvent: THF, syringe_diameter: 14.5 mm}
cell: {area: 1.13 cm^2}
""")
BATH = ("prepare_bath", {"bath": "alloy", "salt": "InCl3", "solvent": "THF", "concentration": "0.1 M",
                         "volume": "20 mL"})
IMMERSE = ("immerse", {"bath": "alloy", "depth": "12 mm", "speed": "5 mm/s", "time": "60 s",
                       "rinse": {"bath": "solvent", "time": "10 s"}, "dry": "120 s"})


class Sim:
    def __init__(self, steps, hooks=()) -> None:
        self.clock = VirtualClock()
        self.store = FakeStore()
        self.station = STATION
        self.spec = RunSpec("e2e", [step_from_fields(i, k, p) for i, (k, p) in enumerate(steps)])
        roles, missing = roles_for([s.step for s in self.spec.steps], self.station)
        assert not missing
        self.bench = SimulatedBench(STATION, clock=self.clock, world=SimpleWorld(), seed=1)
        self.bench.start("labsim", roles)
        self.hooks = list(hooks)
        self.run = Run(
            self.spec,
            store=self.store,
            instruments={},
            station=self.station,
            clock=self.clock,
            handle_signals=False,
            progress=self.progress,
            control=Control(poll_interval=0.0),
        )
        rid = self.run.create()
        self.run.instruments = build_instruments(
            self.station, roles, clock=self.clock, recorder=self.store.io_recorder(rid)
        )

    def progress(self, kind, data) -> None:
        for hook in list(self.hooks):
            if hook[0] == kind and hook[1](data):
                self.hooks.remove(hook)
                hook[2](self)

    def close(self) -> None:
        self.bench.close()

    def io(self, instrument: str) -> list[tuple[float, str, bytes]]:
        return [
            (r.t - self.clock.time() + self.clock.monotonic(), r.direction, r.data)
            for r in self.store.io
            if r.instrument == instrument
        ]


@pytest.fixture
def sim_factory():
    made = []

    def make(steps, hooks=()):
        s = Sim(steps, hooks)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_bath_and_immersion_on_the_simulators(sim_factory) -> None:
    s = sim_factory([BATH, IMMERSE])
    res = s.run.execute()
    assert res.ok, res.reason
    bath, imm = res.steps[0].achieved, res.steps[1].achieved
    assert bath["concentration"] == pytest.approx(100.0, rel=0.01)
    assert bath["stock_m3"] == pytest.approx(4e-6, rel=0.01)
    assert imm["immersion_time_s"] == pytest.approx(60.0, abs=0.5)  # stage confirmations, 5 Hz polling
    assert imm["z_in"] == pytest.approx(-0.032, abs=1e-5)
    core = s.bench.cores["e2e-stage"]
    assert any(b"G1" in m and b"Z-32" in m for m in core.received)
    assert {r.role for r in res.safe if r.ok} == {"stage", "pump.stock", "pump.solvent"}


def test_abort_during_immersion_leaves_the_sample_out_of_the_bath(sim_factory) -> None:
    post = lambda sim: sim.store.post_control(sim.run.run_id, "abort", actor="tester")  # noqa: E731
    s = sim_factory(
        [IMMERSE],
        hooks=[("step.progress", lambda d: d.get("label") == "immersed" and d["fraction"] > 0.4, post)],
    )
    res = s.run.execute()
    assert res.state.value == "aborted"
    step = res.steps[0]
    assert step.status == "deviated" and "withdrawn" in step.reason
    rec = step.achieved["immersions"][0]
    assert 20.0 < rec["achieved_s"] < 60.0 and rec["commanded_s"] == 60.0
    assert rec["z_out"] > -0.02  # above the bath surface
    assert all(r.ok for r in res.safe)
    safe = next(d for _, k, d, _ in s.store.events if k == "instrument.safe" and d["role"] == "stage")
    assert safe["confirmed"]["z"] == pytest.approx(0.0, abs=1e-5) and safe["confirmed"]["state"] == "Idle"
    # the transcript: down to Z-32, the abort, straight up to Z0, status reports confirming it
    tx = [d for _, direction, d in s.io("stage") if direction == "tx"]
    down = next(i for i, d in enumerate(tx) if re.search(rb"G1 Z-32\.000", d))
    up = next(i for i, d in enumerate(tx) if i > down and re.search(rb"G1 Z0\.000", d))
    assert up > down
    rx_after = [d for t, direction, d in s.io("stage") if direction == "rx" and t >= rec["t_out"]]
    assert any(re.search(rb"<Idle\|MPos:[-\d.]+,[-\d.]+,0\.000", d) for d in rx_after)
