"""Small in-memory fakes for engine tests: a store with the contract's API and instruments that satisfy the
roles in `labctl.roles` with just enough behaviour (time on the shared clock) to be checked."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from labctl.clock import VirtualClock
from labctl.errors import InstrumentError
from labctl.roles import Spectrum, Trace
from labctl.station import Bath, InstrumentSpec, Station, Stock, Travel


class FakeWriter:
    def __init__(self, sink: list[dict[str, np.ndarray]]) -> None:
        self.sink = sink
        self.closed = False

    def append(self, **columns: Any) -> None:
        self.sink.append({k: np.atleast_1d(np.asarray(v)) for k, v in columns.items()})

    def flush(self) -> None: ...

    def close(self) -> None:
        self.closed = True


class FakeStore:
    def __init__(self) -> None:
        self.runs: dict[int, dict[str, Any]] = {}
        self.events: list[tuple[int | None, str, dict[str, Any], str]] = []
        self.steps: dict[int, dict[str, Any]] = {}
        self.data: dict[tuple[int, str], list[dict[str, np.ndarray]]] = {}
        self.control: list[dict[str, Any]] = []
        self.leases: dict[str, int] = {}
        self.io: list[Any] = []
        self._ids = itertools.count(1)

    def create_run(self, **kw: Any) -> int:
        rid = next(self._ids)
        self.runs[rid] = {
            **kw,
            "state": "created",
            "steps": {s["index"]: {**s, "status": "pending"} for s in kw["steps"]},
        }
        self.events.append((rid, "run.created", {}, "labctl"))
        return rid

    def set_run_state(self, run_id: int, state: str, *, reason: str = "", actor: str = "labctl") -> None:
        old = self.runs[run_id]["state"]
        self.runs[run_id]["state"] = state
        self.events.append((run_id, "run.state", {"from": old, "to": state, "reason": reason}, actor))

    def append_event(
        self, run_id: int | None, kind: str, data: dict[str, Any], *, actor: str = "labctl"
    ) -> int:
        self.events.append((run_id, kind, data, actor))
        return len(self.events)

    def start_step(self, run_id: int, index: int) -> int:
        sid = next(self._ids)
        self.steps[sid] = {"run_id": run_id, "index": index, "status": "running"}
        self.runs[run_id]["steps"][index]["status"] = "running"
        self.events.append((run_id, "step.started", {"index": index}, "labctl"))
        return sid

    def finish_step(
        self, step_id: int, status: str, *, achieved: dict, summary: dict | None = None, reason: str = ""
    ) -> None:
        st = self.steps[step_id]
        st.update(status=status, achieved=achieved, summary=summary, reason=reason)
        self.runs[st["run_id"]]["steps"][st["index"]].update(status=status, achieved=achieved, reason=reason)

    def measurement_writer(self, run_id: int, step_id: int | None, stream: str) -> FakeWriter:
        return FakeWriter(self.data.setdefault((run_id, stream), []))

    def measurements(self, run_id: int, stream: str, step_id: int | None = None) -> dict[str, np.ndarray]:
        chunks = self.data.get((run_id, stream), [])
        if not chunks:
            return {}
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def io_recorder(self, run_id: int) -> Any:
        return self.io.append

    def acquire_leases(self, run_id: int, instruments: list[str]) -> None:
        for i in instruments:
            self.leases[i] = run_id

    def heartbeat(self, run_id: int) -> None: ...

    def release_leases(self, run_id: int) -> None:
        self.leases = {k: v for k, v in self.leases.items() if v != run_id}

    def seal_io(self, run_id: int, *, actor: str = "labctl") -> dict[str, Any]:
        seal = {"rows": len(self.io), "last_id": len(self.io), "sha256": ""}
        self.events.append((run_id, "io.sealed", seal, actor))
        return seal

    def post_control(self, run_id: int, command: str, *, actor: str, args: dict | None = None) -> int:
        self.control.append(
            {"run_id": run_id, "command": command, "actor": actor, "args": args or {}, "consumed": False}
        )
        return len(self.control)

    def take_control(self, run_id: int) -> list[dict[str, Any]]:
        out = [c for c in self.control if c["run_id"] == run_id and not c["consumed"]]
        for c in out:
            c["consumed"] = True
        return out

    def kinds(self, run_id: int | None = None) -> list[str]:
        return [k for r, k, _, _ in self.events if run_id is None or r == run_id]

    def states(self, run_id: int) -> list[str]:
        return [d["to"] for r, k, d, _ in self.events if r == run_id and k == "run.state"]


class FakeInstrument:
    def __init__(self, name: str, clock: VirtualClock) -> None:
        self.name, self.clock = name, clock
        self.connected = False
        self.safe_calls = 0
        self.fail_on: str | None = None  # method name that raises InstrumentError
        self.calls: list[str] = []

    def _hit(self, method: str) -> None:
        self.calls.append(method)
        if self.fail_on == method:
            raise InstrumentError(f"injected failure in {method}", instrument=self.name)

    def connect(self) -> None:
        self._hit("connect")
        self.connected = True

    def close(self) -> None:
        self.connected = False

    def identify(self) -> str:
        self._hit("identify")
        return f"fake {self.name}"

    def safe_state(self) -> dict[str, Any]:
        self.safe_calls += 1
        self._hit("safe_state")
        return self._safe()

    def _safe(self) -> dict[str, Any]:
        return {}


class FakeStage(FakeInstrument):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__("stage", clock)
        self.x = self.z = 0.0
        self.log: list[tuple[float, float, float]] = []

    def home(self) -> None:
        self.x = self.z = 0.0

    def move_to(
        self,
        *,
        x: float | None = None,
        z: float | None = None,
        speed: float,
        wait: bool = True,
        timeout: float | None = None,
    ) -> tuple[float, float]:
        self._hit("move_to")
        nx, nz = (self.x if x is None else x), (self.z if z is None else z)
        self.clock.sleep(((nx - self.x) ** 2 + (nz - self.z) ** 2) ** 0.5 / speed)
        self.x, self.z = nx, nz
        self.log.append((self.clock.monotonic(), nx, nz))
        return self.x, self.z

    def position(self) -> tuple[float, float]:
        return self.x, self.z

    def is_idle(self) -> bool:
        return True

    def wait_idle(self, timeout: float) -> tuple[float, float]:
        return self.x, self.z

    def hold(self) -> None: ...

    def resume(self) -> None: ...

    def _safe(self) -> dict[str, Any]:
        self.z = 0.0
        return {"z": self.z}


class FakePump(FakeInstrument):
    def __init__(self, name: str, clock: VirtualClock) -> None:
        super().__init__(name, clock)
        self.volume = self.rate = 0.0
        self.t0 = 0.0
        self.total = 0.0

    def configure(self, *, diameter: float) -> None: ...

    def dispense(self, volume: float, rate: float) -> None:
        self._hit("dispense")
        self.volume, self.rate, self.t0 = volume, rate, self.clock.monotonic()

    def dispensed(self) -> float:
        if self.rate == 0:
            return self.total
        return self.total + min(self.volume, self.rate * (self.clock.monotonic() - self.t0))

    def is_running(self) -> bool:
        return self.rate > 0 and self.dispensed() - self.total < self.volume

    def clear_dispensed(self) -> None:
        self.total, self.volume, self.rate = 0.0, 0.0, 0.0

    def stop(self) -> None:
        self.total, self.rate = self.dispensed(), 0.0

    def _safe(self) -> dict[str, Any]:
        self.stop()
        return {"status": "S"}


class FakeHotplate(FakeInstrument):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__("hotplate", clock)
        self.setpoint, self.on, self.temp = 25.0, False, 22.0

    def set_temperature(self, celsius: float) -> None:
        self.setpoint = celsius

    def heater(self, on: bool) -> None:
        self.on = on

    def stirrer(self, rpm: float) -> None: ...

    def bath_temperature(self) -> float:
        return self.setpoint if self.on else self.temp

    def plate_temperature(self) -> float:
        return self.bath_temperature()

    def watchdog(self, seconds: float) -> None: ...

    def _safe(self) -> dict[str, Any]:
        self.on = False
        return {"heater": False}


class FakeChamber:
    """Shared state of gauge, MFC, RF and QCM fakes."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.sccm = self.watts = 0.0
        self.open = False
        self.mass_t = 0.0
        self.thick = 0.0
        self.extra_pressure = 0.0

    def advance(self) -> None:
        t = self.clock.monotonic()
        if self.open and self.watts > 0:
            self.thick += 1e-11 * self.watts * (t - self.mass_t)
        self.mass_t = t


class FakeGauge(FakeInstrument):
    def __init__(self, clock: VirtualClock, chamber: FakeChamber) -> None:
        super().__init__("gauge", clock)
        self.ch = chamber

    def pressure(self) -> float:
        self._hit("pressure")
        return 1e-4 + 0.02 * self.ch.sccm + self.ch.extra_pressure


class FakeMfc(FakeInstrument):
    def __init__(self, clock: VirtualClock, chamber: FakeChamber) -> None:
        super().__init__("mfc", clock)
        self.ch = chamber

    def set_flow(self, sccm: float) -> None:
        self.ch.advance()
        self.ch.sccm = sccm

    def flow(self) -> float:
        return self.ch.sccm

    def select_gas(self, gas: str) -> None: ...

    def _safe(self) -> dict[str, Any]:
        self.ch.sccm = 0.0
        return {"flow": 0.0}


class FakeRf(FakeInstrument):
    def __init__(self, clock: VirtualClock, chamber: FakeChamber) -> None:
        super().__init__("rf", clock)
        self.ch = chamber
        self.setpoint = 0.0
        self.on = False
        self.powers: list[tuple[float, float]] = []

    def set_power(self, watts: float) -> None:
        self._hit("set_power")
        self.setpoint = watts
        self.ch.advance()
        self.ch.watts = watts if self.on else 0.0
        self.powers.append((self.clock.monotonic(), watts))

    def rf_on(self) -> None:
        self.on = True
        self.ch.advance()
        self.ch.watts = self.setpoint

    def rf_off(self) -> None:
        self.on = False
        self.ch.advance()
        self.ch.watts = 0.0

    def forward_power(self) -> float:
        return self.ch.watts

    def reflected_power(self) -> float:
        return 0.01 * self.ch.watts

    def is_on(self) -> bool:
        return self.on

    def _safe(self) -> dict[str, Any]:
        self.rf_off()
        return {"on": False}


class FakeSubstrate(FakeInstrument):
    """A holder thermometer: room temperature plus 0.5 K per W of RF on."""

    def __init__(self, clock: VirtualClock, chamber: FakeChamber) -> None:
        super().__init__("substrate", clock)
        self.ch = chamber

    def substrate_temperature(self) -> float:
        return 22.0 + 0.5 * self.ch.watts


class FakeQcm(FakeInstrument):
    def __init__(self, clock: VirtualClock, chamber: FakeChamber) -> None:
        super().__init__("qcm", clock)
        self.ch = chamber
        self.zero_at = 0.0

    def set_film(self, *, density: float, z_ratio: float, tooling: float) -> None: ...

    def zero(self) -> None:
        self.ch.advance()
        self.zero_at = self.ch.thick

    def thickness(self) -> float:
        self.ch.advance()
        return self.ch.thick - self.zero_at

    def rate(self) -> float:
        return 1e-11 * self.ch.watts if self.ch.open else 0.0

    def shutter(self, is_open: bool) -> None:
        self.ch.advance()
        self.ch.open = is_open

    def shutter_is_open(self) -> bool:
        return self.ch.open

    def _safe(self) -> dict[str, Any]:
        self.shutter(False)
        return {"shutter": "closed"}


class FakePotentiostat(FakeInstrument):
    """A resistor cell of `ohm` that shorts (to 1 % of it) at `short_at` s on the clock."""

    def __init__(self, clock: VirtualClock, ohm: float = 20.0, short_at: float | None = None) -> None:
        super().__init__("potentiostat", clock)
        self.ohm, self.short_at = ohm, short_at
        self.vlim = 1.0
        self.out = False
        self.acquisitions = 0

    def configure_galvanostatic(
        self, *, voltage_limit: float, four_wire: bool = True, nplc: float = 1.0
    ) -> None:
        self.vlim = voltage_limit

    def set_current(self, amperes: float) -> None: ...

    def output(self, on: bool) -> None:
        self.out = on

    def read(self) -> tuple[float, float]:
        return 0.0, 0.0

    def acquire(self, *, current: float, duration: float, interval: float) -> Trace:
        self._hit("acquire")
        self.acquisitions += 1
        start = self.clock.monotonic()
        t = np.arange(0.0, duration, interval) + interval
        r = np.full(len(t), self.ohm)
        if self.short_at is not None:
            r[start + t >= self.short_at] = self.ohm * 0.01
        v = current * r
        tripped = bool(np.any(np.abs(v) >= self.vlim))
        v = np.clip(v, -self.vlim, self.vlim)
        self.clock.sleep(duration)
        return Trace(t, v, np.full(len(t), current), tripped)

    def limit_tripped(self) -> bool:
        return False

    def _safe(self) -> dict[str, Any]:
        self.out = False
        return {"output": False}


class FakeEis(FakeInstrument):
    def __init__(self, clock: VirtualClock, ocv_v: float = 0.0) -> None:
        super().__init__("eis", clock)
        self.ocv_v = ocv_v  # what an OCP measurement reads
        self.dc: list[float] = []  # the dc potential of each sweep

    def eis(
        self,
        *,
        f_start: float,
        f_end: float,
        points_per_decade: int,
        amplitude: float,
        dc_potential: float = 0.0,
        galvanostatic: bool = False,
    ) -> Spectrum:
        self._hit("eis")
        self.dc.append(dc_potential)
        f = np.logspace(np.log10(f_start), np.log10(f_end), 31)
        z = 2.0 + 18.0 / (1 + 1j * 2 * np.pi * f * 18.0 * 1e-6)
        self.clock.sleep(60.0)
        return Spectrum(f, z.real, z.imag)

    def ocp(self, duration: float, interval: float) -> Trace:
        t = np.arange(0.0, duration, interval) + interval
        self.clock.sleep(duration)
        return Trace(t, np.full(len(t), self.ocv_v), np.zeros(len(t)))

    def abort(self) -> None: ...


def bench(clock: VirtualClock, **pot: Any) -> dict[str, Any]:
    ch = FakeChamber(clock)
    return {
        "stage": FakeStage(clock),
        "pump.stock": FakePump("pump.stock", clock),
        "pump.solvent": FakePump("pump.solvent", clock),
        "hotplate": FakeHotplate(clock),
        "gauge": FakeGauge(clock, ch),
        "mfc": FakeMfc(clock, ch),
        "rf": FakeRf(clock, ch),
        "qcm": FakeQcm(clock, ch),
        "potentiostat": FakePotentiostat(clock, **pot),
        "eis": FakeEis(clock),
        "substrate": FakeSubstrate(clock, ch),
    }


def _station() -> Station:
    """The fakes' station, built as the station model directly (its `fake` drivers are in no registry)."""
    roles = {r: InstrumentSpec(r, "fake", port=f"fake://{r}")
             for r in ("stage", "hotplate", "gauge", "mfc", "rf", "qcm", "potentiostat", "eis", "substrate")}
    roles["pump.stock"] = InstrumentSpec("pump.stock", "fake", port="fake://pumps", address=1)
    roles["pump.solvent"] = InstrumentSpec("pump.solvent", "fake", port="fake://pumps", address=2)
    baths = {name: Bath(x=x, surface_z="-20 mm", capacity="50 mL") for name, x in (("alloy", "50 mm"),
                                                                                     ("solvent", "100 mm"))}
    stocks = {"incl3": Stock(pump="pump.stock", salt="InCl3", concentration="0.5 M", solvent="THF",
                             syringe_diameter="14.5 mm"),
              "thf": Stock(pump="pump.solvent", solvent="THF", syringe_diameter="14.5 mm")}
    return Station(name="fake-bench", instruments=roles, baths=baths, stocks=stocks, cell_area=1.13e-4,
                   travel=Travel(), chamber=None, source_text="# fake bench\n", path="<fake>")


STATION = _station()


def run_on_dry_bench(name: str, specs: list[Any], station: Station, roles: dict[str, Any], *,
                     seed: int) -> tuple[Any, FakeStore]:
    """Run the step specs on the simulated bench (`DryRunBench`, virtual clock, operator steps answered),
    the instruments' I/O recorded into a `FakeStore`; returns the run's result and that store."""
    from labctl.engine.control import Control
    from labctl.engine.instruments import build_instruments
    from labctl.engine.run import Run, RunSpec
    from labctl.simulators.dryrun import DryRunBench

    clock, store = VirtualClock(), FakeStore()
    with DryRunBench(station, clock=clock, seed=seed, roles=roles) as dry:
        run = Run(RunSpec(name, specs), store=store, instruments={}, station=station, clock=clock,
                  auto_operator=True, observers=[dry.observer], handle_signals=False,
                  control=Control(poll_interval=0.0))
        rid = run.create()
        run.instruments = build_instruments(station, roles, clock=clock, recorder=store.io_recorder(rid))
        return run.execute(), store
