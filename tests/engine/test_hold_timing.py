"""Timed holds and abort latency on the virtual clock: the withdraw goes out at a deadline taken from the
in-position confirmation, the GRBL driver confirms a move's end within its fast-poll period, waits end at
their deadline, and a queued command ends a wait at once (no full chunk)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from engine_fakes import STATION, FakeStage, FakeStore

from labctl.clock import RealClock, VirtualClock
from labctl.compose import step_from_fields
from labctl.drivers.grbl import Grbl
from labctl.drivers.transport import SerialTransport
from labctl.engine.control import Control
from labctl.engine.run import Run, RunSpec
from labctl.simulators import registry
from labctl.simulators.grbl import GrblSim
from labctl.steps import StepContext
from labctl.steps.motion import dunk

ACCEL = 0.1  # m/s^2 of the fake stage


class TrapezoidStage(FakeStage):
    """A fake stage whose moves take GRBL's trapezoid time, with the command times logged."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.commands: list[tuple[float, float | None, float | None]] = []

    def move_time(self, *, dx: float = 0.0, dz: float = 0.0, speed: float) -> float:
        length = math.hypot(dx, dz)
        return 0.0 if length == 0 else length / speed + speed / ACCEL

    def move_to(self, *, x: float | None = None, z: float | None = None, speed: float, wait: bool = True,
                timeout: float | None = None) -> tuple[float, float]:
        self.commands.append((self.clock.monotonic(), x, z))
        nx, nz = (self.x if x is None else x), (self.z if z is None else z)
        self.clock.sleep(self.move_time(dx=nx - self.x, dz=nz - self.z, speed=speed))
        self.x, self.z = nx, nz
        return self.x, self.z


class SlowStore(FakeStore):
    """Every event write takes 50 ms of the run's clock (a slow database)."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock

    def append_event(self, run_id: Any, kind: str, data: dict[str, Any], *, actor: str = "labctl") -> int:
        self.clock.sleep(0.05)
        return super().append_event(run_id, kind, data, actor=actor)


def context(
    clock: VirtualClock, stage: Any, checkpoint: Any = lambda pausable: None, **kw: Any
) -> StepContext:
    return StepContext(index=0, kind="immerse", instruments={"stage": stage}, clock=clock, t0=0.0,
                       station=STATION, checkpoint=checkpoint, run_id=1, **kw)


def test_withdraw_is_sent_at_the_deadline_from_the_in_position_confirmation() -> None:
    clock = VirtualClock()
    stage = TrapezoidStage(clock)
    ctx = context(clock, stage, store=SlowStore(clock))
    rec = dunk(ctx, "alloy", depth=0.012, speed_in=0.005, speed_out=0.005, hold=60.0, label="immersed")
    t_in = rec["t_in"]
    withdraw_t, _, withdraw_z = stage.commands[-1]
    travel_out = stage.move_time(dz=0.012 + 1e-3, speed=0.005)
    assert withdraw_z == pytest.approx(-0.019)
    # the slow event write after t_in does not delay the withdraw: the deadline is absolute
    assert withdraw_t == pytest.approx(t_in + 60.0 - travel_out, abs=1e-9)
    assert rec["achieved_s"] == pytest.approx(60.0, abs=1e-9)


def test_a_hold_ends_at_its_deadline_without_a_safe_point_after_it() -> None:
    clock = VirtualClock()
    polls: list[float] = []

    def slow_checkpoint(pausable: bool) -> None:  # each safe point costs 10 ms (an interlock reading)
        polls.append(clock.monotonic())
        clock.sleep(0.01)

    ctx = context(clock, FakeStage(clock), slow_checkpoint, sleep_chunk=1.0)
    ctx.sleep(0.0, until=2.0)
    assert clock.monotonic() == pytest.approx(2.0)
    assert polls == pytest.approx([0.0, 1.01])


def test_the_driver_confirms_a_moves_end_within_its_fast_poll_period() -> None:
    clock = VirtualClock()
    core = GrblSim("hold-timing-stage", clock=clock)
    registry.register("hold-timing-stage", core)
    try:
        link = SerialTransport("stage", "labsim://hold-timing-stage", Grbl.SERIAL, clock=clock)
        g = Grbl(link, name="stage")
        g.connect()
        g.home()
        for z, speed in ((-0.012, 0.005), (-0.0121, 0.01), (-0.002, 0.01)):
            g.move_to(z=z, speed=speed, wait=False)
            end = core.segments[-1].t1  # when the simulated controller's move really ends
            g.wait_idle(30.0)
            assert 0.0 <= clock.monotonic() - end <= Grbl.FAST_POLL_S + 1e-9
    finally:
        registry.unregister("hold-timing-stage")


class AbortMidChunk(VirtualClock):
    """A virtual clock on which an abort is requested `at` s, in the middle of whatever wait spans it."""

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at: float | None = at
        self.control = Control(poll_interval=0.0)

    def wait(self, event: Any, timeout: float) -> bool:
        if self.at is not None and self.monotonic() + timeout > self.at:
            self.advance_to(self.at)
            self.at = None
            self.control.request("abort", actor="tester")
            return event.is_set()
        return super().wait(event, timeout)


def test_an_abort_during_a_hold_is_acted_on_without_waiting_for_the_chunk() -> None:
    clock = AbortMidChunk(at=3.3)
    spec = RunSpec("t", [step_from_fields(0, "wait", {"duration": "60 s"})])
    run = Run(spec, store=FakeStore(), instruments={"stage": FakeStage(clock)}, station=STATION,
              clock=clock, handle_signals=False, control=clock.control, sleep_chunk=10.0)
    res = run.execute()
    assert res.state.value == "aborted"
    assert res.steps[0].achieved["time_s"] == pytest.approx(3.3)  # not 10 s, the chunk


def test_wall_clock_waits_are_cut_at_the_store_poll_interval() -> None:
    spec = RunSpec("t", [])
    kw: dict[str, Any] = {"store": FakeStore(), "instruments": {}, "station": STATION,
                          "handle_signals": False, "sleep_chunk": 1.0}
    real = Run(spec, clock=RealClock(), control=Control(poll_interval=0.1), **kw)
    assert real._sleep_chunk() == pytest.approx(0.1)
    assert Run(spec, clock=RealClock(), control=Control(poll_interval=0.0), **kw)._sleep_chunk() >= 0.05
    assert Run(spec, clock=VirtualClock(), control=Control(poll_interval=0.1), **kw)._sleep_chunk() == 1.0
