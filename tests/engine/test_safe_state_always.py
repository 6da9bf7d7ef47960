"""Safe state that nothing can skip (issue 14.2).

A dry run that heats and stirs a bath, dispenses with both pumps, dips the sample with the stage and holds an
OCV (potentiostat and EIS instrument touched); an exception is injected at each point of the run's life: the
display (progress callback) on each kind it is told, the store (start_step, finish_step, append_event,
set_run_state, the measurement writer, the transcript seal), an interlock check, the step itself, one
instrument's own safe state, an instrument's close. After each, read back from the simulator cores
themselves: heater and stirrer off, pumps stopped, sample lifted out of the bath, potentiostat output and EIS
cell off; and the run is terminal in the store with its leases released (or, when the store itself is down,
left for recovery with its leases still recorded against it). `Run.execute()` never raises.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labctl.clock import VirtualClock
from labctl.engine import interlocks
from labctl.engine import protocol_adapter as pa
from labctl.engine.instruments import build_instruments, lease_keys, roles_for
from labctl.engine.machine import TERMINAL, RunState
from labctl.engine.run import Run
from labctl.engine.simulate import close_bench, make_bench, make_world
from labctl.store import Store

ROOT = Path(__file__).resolve().parents[2]
STATION = ROOT / "stations" / "simulated.yaml"
PROTOCOL = """labctl: 1
name: safe state always
sample: {id: SAFE-1, substrate: Li foil 450 um, area: 1.13 cm^2}
steps:
  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.1 M, volume: 20 mL,
                   temperature: 40 degC, stir: 300 rpm}
  - immerse: {bath: alloy, depth: 12 mm, speed: 5 mm/s, time: 30 s}
  - ocv: {duration: 20 s, sample_every: 1 s}
"""
ROLES = ["eis", "hotplate", "potentiostat", "pump.solvent", "pump.stock", "stage"]


class Injected(RuntimeError):
    """The injected failure (a RuntimeError: not one of labctl's own, as an unexpected bug would be)."""


@dataclass
class Outcome:
    run: Run
    result: Any
    store: Store
    cores: dict[str, Any]
    fired: list[str]

    def stored(self) -> dict[str, Any]:
        return self.store.run(self.result.run_id)

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The run's audit events of `kind`, their data decoded."""
        return [{**e, "data": json.loads(e["data"])} for e in self.store.events(self.result.run_id)
                if e["kind"] == kind]


def unsafe(cores: dict[str, Any]) -> dict[str, str]:
    """What each simulated instrument says is not safe, read from the device cores (not from the drivers)."""
    bad: dict[str, str] = {}
    hp = cores["hotplate"]
    if hp.heating or hp.stirring:
        bad["hotplate"] = f"heating={hp.heating} stirring={hp.stirring} setpoint={hp.setpoint}"
    pumps = cores["pump.stock"]
    for address, pump in pumps.pumps.items():
        pumps._settle(pump, pumps.now())  # account the volume pumped so far; a pump at its target stops
        if pump.prompt in "IWX":
            bad[f"pump {address}"] = f"prompt {pump.prompt}"
    stage = cores["stage"]
    z = stage._position(stage.now())[2]
    if z < -1e-3 or stage._speed(stage.now()) != 0.0:  # mm; safe_z is 0 mm, the bath surface -40 mm
        bad["stage"] = f"z={z} speed={stage._speed(stage.now())}"
    if cores["potentiostat"].output:
        bad["potentiostat"] = "output on"
    if cores["eis"].cell_on:
        bad["eis"] = "cell on"
    return bad


class FaultyStore:
    """The real store, except that `method` raises `Injected` at its `at`-th call (and, with `down`, at every
    call of any write method from then on: the database has gone away)."""

    WRITES = ("start_step", "finish_step", "append_event", "set_run_state", "seal_io", "release_leases",
              "heartbeat", "acquire_leases", "measurement_writer")

    def __init__(self, store: Store, method: str, at: int = 1, *, down: bool = False) -> None:
        self._store, self._method, self._at, self._down = store, method, at, down
        self.calls = 0
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._store, name)
        if name not in self.WRITES and name != self._method:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == self._method:
                self.calls += 1
                if self.calls == self._at:
                    self.failed = True
                    raise Injected(f"injected: store.{name} failed")
            if self._down and self.failed:
                raise Injected(f"injected: the store is down ({name})")
            return real(*args, **kwargs)

        return call


class FaultyWriter:
    """A measurement writer whose `at`-th append raises."""

    def __init__(self, writer: Any, counter: list[int], at: int) -> None:
        self._writer, self._counter, self._at = writer, counter, at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)

    def append(self, **columns: Any) -> None:
        self._counter[0] += 1
        if self._counter[0] == self._at:
            raise Injected("injected: measurement writer failed")
        self._writer.append(**columns)


@pytest.fixture
def dry_run(tmp_path: Path) -> Iterator[Callable[..., Outcome]]:
    """`dry_run(progress=..., store_wrap=..., before=...)`: one run of PROTOCOL on the simulated bench."""
    benches: list[Any] = []
    stores: list[Store] = []

    def go(*, progress: Callable[[str, dict[str, Any]], None] | None = None,
           store_wrap: Callable[[Store], Any] | None = None,
           before: Callable[[Run], None] | None = None) -> Outcome:
        path = tmp_path / "safe.yaml"
        path.write_text(PROTOCOL, encoding="utf-8")
        loaded = pa.load_protocol(path, {})
        model, info = pa.station_from(STATION)
        spec = pa.run_spec(loaded)
        roles, missing = roles_for([s.kind for s in spec.steps], info)
        assert not missing and roles == ROLES
        clock = VirtualClock()
        world = make_world(info, clock=clock, seed=1)
        bench = make_bench(info, clock=clock, world=world, seed=1, roles=roles)
        benches.append(bench)
        cores = {role: bench.core(role) for role in roles}
        real = Store.open(f"sqlite:///{tmp_path / f'run{len(stores)}.db'}")
        stores.append(real)
        store = store_wrap(real) if store_wrap else real
        fired: list[str] = []

        def observe(kind: str, data: dict[str, Any]) -> None:
            fired.append(kind)
            if progress is not None:
                progress(kind, data)

        run = Run(spec, store=store, instruments={}, station=info, clock=clock, seed=1, operator="safety",
                  world=world, progress=observe, plan_check=lambda: pa.plan_check(loaded, model),
                  lease_keys=lease_keys(info, roles), station_text=info.text, handle_signals=False)
        run.notes["cell_area"] = pa.sample_area(spec)
        run_id = run.create()
        run.instruments = build_instruments(info, roles, clock=clock, recorder=real.io_recorder(run_id))
        if before is not None:
            before(run)
        result = run.execute()  # must return, whatever was injected
        real.flush()
        return Outcome(run, result, real, cores, fired)

    yield go
    for bench in benches:
        close_bench(bench)
    for store in stores:
        store.close()


def assert_safe_and_ended(out: Outcome, *, state: str | None = None) -> None:
    """Every instrument safe (read from its core), every one the run touched recorded safe, the run terminal
    in the store, its leases released."""
    assert unsafe(out.cores) == {}
    assert out.run.touched, "preflight reached no instrument"
    assert {e["data"]["role"] for e in out.events("instrument.safe")} == set(out.run.touched)
    stored = out.stored()
    assert stored["state"] in {s.value for s in TERMINAL}, stored["state"]
    if state is not None:
        assert stored["state"] == state, (stored["state"], out.result.reason)
    assert out.result.state.value == stored["state"]
    assert not stored["leases"], stored["leases"]


def test_the_protocol_is_hazardous_and_completes_safe(dry_run):
    """The baseline: the bath really heats and stirs, the stage really dips; a clean run ends all safe."""
    hazards: list[dict[str, str]] = []
    out = dry_run(progress=lambda kind, data: hazards.append(unsafe_now(kind)) if kind == "step.finished"
                  else None)
    assert out.result.state is RunState.COMPLETED, out.result.reason
    assert any("hotplate" in h for h in hazards), hazards  # heated and stirred while the run went on
    assert_safe_and_ended(out, state="completed")
    assert set(out.fired) == set(PROGRESS_KINDS), set(out.fired) ^ set(PROGRESS_KINDS)


_CORES: dict[str, Any] = {}


def unsafe_now(kind: str) -> dict[str, str]:
    return unsafe(_CORES) if _CORES else {}


@pytest.fixture(autouse=True)
def _track_cores(monkeypatch):
    """Give `unsafe_now` the cores of the bench being built (for the baseline's mid-run hazard check)."""
    from labctl.engine import simulate

    real_make_bench = simulate.make_bench

    def make(*args: Any, **kwargs: Any) -> Any:
        bench = real_make_bench(*args, **kwargs)
        _CORES.clear()
        _CORES.update({role: bench.core(role) for role in ROLES})
        return bench

    monkeypatch.setattr(f"{__name__}.make_bench", make)
    yield
    _CORES.clear()


#: every progress kind a run of PROTOCOL reports (the baseline test checks the list is complete)
PROGRESS_KINDS = ["run.created", "run.state", "preflight.instrument", "step.started", "step.progress",
                  "step.finished", "run.safe_state"]


#: (kind, which occurrence) of the display failure; run.created and run.safe_state come once per run
DISPLAY_FAULTS = [(kind, nth) for kind in PROGRESS_KINDS for nth in (1, 2)
                  if nth == 1 or kind not in ("run.created", "run.safe_state")]


@pytest.mark.parametrize(("kind", "nth"), DISPLAY_FAULTS, ids=[f"{k}#{n}" for k, n in DISPLAY_FAULTS])
def test_a_failing_display_never_reaches_the_engine(dry_run, kind, nth):
    """The display raises (an infinite estimate it cannot render, a closed terminal): the failure is recorded,
    the display is switched off, and the run goes on to complete, everything safe."""
    seen = {"n": 0}

    def display(k: str, data: dict[str, Any]) -> None:
        if k == kind:
            seen["n"] += 1
            if seen["n"] == nth:
                raise OverflowError("cannot convert float infinity to integer")

    out = dry_run(progress=display)
    assert seen["n"] >= nth, f"{kind} was reported only {seen['n']} time(s)"
    assert_safe_and_ended(out, state="completed")
    (failed,) = out.events("progress.failed")
    assert failed["data"]["kind"] == kind and "OverflowError" in failed["data"]["error"]
    assert out.run.progress.failed is not None  # the CLI says the display stopped


STORE_FAULTS = [
    ("start_step", 1), ("start_step", 2), ("start_step", 3),
    ("finish_step", 1), ("finish_step", 3),
    ("append_event", 1), ("append_event", 5), ("append_event", 12),
    ("set_run_state", 1), ("set_run_state", 2), ("set_run_state", 3),
    ("seal_io", 1), ("acquire_leases", 1), ("measurement_writer", 1),
]


@pytest.mark.parametrize(("method", "at"), STORE_FAULTS, ids=[f"{m}#{n}" for m, n in STORE_FAULTS])
def test_a_store_call_that_fails_once(dry_run, method, at):
    """One store call fails (locked, full, a bug): the run fails (or, for the seal, completes) but is made
    safe and ended in the store, leases released."""
    faulty: list[FaultyStore] = []

    def wrap(store: Store) -> FaultyStore:
        faulty.append(FaultyStore(store, method, at))
        return faulty[0]

    out = dry_run(store_wrap=wrap)
    assert faulty[0].failed, f"store.{method} was called only {faulty[0].calls} time(s)"
    assert unsafe(out.cores) == {}
    stored = out.stored()
    assert stored["state"] in {s.value for s in TERMINAL} and stored["state"] == out.result.state.value
    assert not stored["leases"], stored["leases"]
    if out.result.state is RunState.COMPLETED:  # only a write the run can do without: said, not hidden
        assert out.events("progress.failed") == [] and "run.error" in out.fired
    else:
        assert "injected" in out.result.reason


def test_the_measurement_writer_fails(dry_run, monkeypatch):
    counter = [0]
    real_writer = Store.measurement_writer

    def writer(self: Store, *args: Any, **kwargs: Any) -> Any:
        return FaultyWriter(real_writer(self, *args, **kwargs), counter, at=1)

    monkeypatch.setattr(Store, "measurement_writer", writer)
    out = dry_run()
    assert counter[0] >= 1
    assert_safe_and_ended(out, state="failed")
    assert "measurement writer" in out.result.reason


@pytest.mark.parametrize("method", ["start_step", "set_run_state", "append_event"])
def test_the_store_goes_down_mid_run(dry_run, method):
    """From one call on, every write fails: the instruments are still made safe and execute() returns; the
    run cannot be ended in the store, so it is left for `labctl recover` with its leases recorded."""
    out = dry_run(store_wrap=lambda store: FaultyStore(store, method, 2, down=True))
    assert unsafe(out.cores) == {}
    stored = out.stored()
    assert stored["state"] not in {s.value for s in TERMINAL}
    assert {lease["instrument"] for lease in stored["leases"]} == set(out.run.lease_keys)


@pytest.mark.parametrize("at", [1, 3, 6])
def test_an_interlock_check_raises(dry_run, monkeypatch, at):
    calls = [0]
    real_check = interlocks.Watch.check

    def check(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == at:
            raise Injected("injected: interlock check failed")
        return real_check(self, *args, **kwargs)

    monkeypatch.setattr(interlocks.Watch, "check", check)
    out = dry_run()
    assert calls[0] >= at
    assert_safe_and_ended(out, state="failed")


@pytest.mark.parametrize("where", ["temperature wait", "immersion", "ocv"])
def test_the_step_itself_raises(dry_run, where):
    """An unexpected error inside a step while the hazard is live: bath heating, stage moving into the bath,
    an OCV acquisition."""

    def before(run: Run) -> None:
        role, method = {"temperature wait": ("hotplate", "bath_temperature"),
                        "immersion": ("stage", "wait_idle"),  # the stage on its way down into the bath
                        "ocv": ("potentiostat", "acquire")}[where]
        inst = run.instruments[role]
        real = getattr(inst, method)

        fired = [False]

        def boom(*args: Any, **kwargs: Any) -> Any:
            if run.machine.state is RunState.RUNNING and not fired[0]:
                fired[0] = True
                raise Injected(f"injected: {role}.{method} failed")
            return real(*args, **kwargs)

        setattr(inst, method, boom)

    out = dry_run(before=before)
    assert_safe_and_ended(out, state="failed")
    assert "injected" in out.result.reason


def test_one_instruments_own_safe_state_raises(dry_run):
    """The hotplate's safe state raises before it sends anything: it is reported not confirmed (and stays as
    it was, honestly), every other instrument is still made safe, the run ends failed."""

    def before(run: Run) -> None:
        def boom() -> Any:
            raise Injected("injected: safe state failed")

        run.instruments["hotplate"].safe_state = boom

    out = dry_run(before=before)
    bad = unsafe(out.cores)
    assert set(bad) <= {"hotplate"}
    (failed,) = out.events("instrument.safe_failed")
    assert failed["data"]["role"] == "hotplate"
    assert "safe state not confirmed for hotplate" in out.result.reason
    stored = out.stored()
    assert stored["state"] == "failed" and not stored["leases"]


def test_an_instruments_close_raises(dry_run):
    def before(run: Run) -> None:
        def boom() -> None:
            raise Injected("injected: close failed")

        run.instruments["stage"].close = boom

    out = dry_run(before=before)
    assert_safe_and_ended(out, state="completed")
    (failed,) = out.events("instrument.close_failed")
    assert failed["data"]["role"] == "stage"


def test_systemexit_in_a_step_still_ends_safe(dry_run):
    """Even a BaseException that is not an abort (SystemExit from a library) leaves everything safe and the
    run ended in the store before it propagates."""

    runs: list[Run] = []

    def before(run: Run) -> None:
        runs.append(run)
        inst = run.instruments["stage"]
        real = inst.wait_idle

        def boom(*args: Any, **kwargs: Any) -> Any:
            if run.machine.state is RunState.RUNNING:
                raise SystemExit(3)
            return real(*args, **kwargs)

        inst.wait_idle = boom

    with pytest.raises(SystemExit):
        dry_run(before=before)
    assert unsafe(_CORES) == {}
    stored = runs[0].store.run(runs[0].run_id)
    assert stored["state"] == "aborted" and not stored["leases"], stored["state"]
