"""The composition root of a run: protocol + station (+ the dry-run bench) -> a `Run` ready to execute.

`prepare_run` is what `labctl run` calls (and the API will): it loads and validates the files, finds the roles
the steps need, picks the clock, and for a dry run builds the simulated bench (world and simulator cores,
`labctl.simulators.dryrun`), drawing and recording a seed when none is given. `PreparedRun.make_run` then
makes the `Run` against a store: the engine is handed drivers, a clock and observers, and never learns which
bench it is on. Dependencies point down: cli/api -> compose -> engine, steps, simulators.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.clock import Clock, RealClock, VirtualClock
from labctl.drivers import transport
from labctl.engine.errors import PreflightError
from labctl.engine.instruments import build_instruments, lease_keys, roles_for
from labctl.engine.run import Progress, Run, RunSpec, StepSpec
from labctl.errors import ConfigError
from labctl.protocol.loader import LoadedProtocol, load_protocol
from labctl.protocol.plan import Plan, make_plan
from labctl.station import Station, load_station
from labctl.steps import parse_step


def step_from_fields(index: int, kind: str, fields: dict[str, Any]) -> StepSpec:
    """A step written in code as it would be in a protocol file (quantities as strings with units)."""
    return StepSpec(index, parse_step(kind, fields))


def run_spec(loaded: LoadedProtocol, *, sample_id: str | None = None) -> RunSpec:
    model = loaded.model
    sample = model.sample.model_dump() if model.sample is not None else {}
    return RunSpec(
        name=model.name,
        steps=[StepSpec(i, s) for i, s in enumerate(model.steps)],
        path=loaded.path,
        text=loaded.text,
        parameters=dict(loaded.parameters),
        sample_id=sample_id or sample.get("id"),
        sample=sample,
    )


def plan_check(loaded: LoadedProtocol, station: Station | None) -> Plan:
    """The plan of `loaded` on `station`; `PreflightError` listing every error if it has any."""
    plan = make_plan(loaded, station)
    if plan.errors:
        raise PreflightError("the plan has errors:\n  " + "\n  ".join(plan.errors))
    return plan


def station_from(path: str | Path) -> tuple[Station, Station]:
    """The station of `path` (twice: callers that kept a second model get the same one)."""
    station = load_station(path)
    return station, station


@dataclass
class PreparedRun:
    """Everything a run needs but the store: call `make_run(store, ...)`, execute it, then `close()`."""

    protocol: LoadedProtocol
    spec: RunSpec
    station: Station
    roles: list[str]
    clock: Clock
    simulate: bool
    seed: int | None
    bench: Any = None  # simulators.dryrun.DryRunBench of a dry run
    estimates: list[float | None] = field(default_factory=list)
    seal: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # a dry run's seal from hardware

    @property
    def lease_keys(self) -> list[str]:
        return lease_keys(self.station, self.roles)

    def check(self) -> None:
        """The run's preflight plan check; fills `estimates` (the live display reads them)."""
        plan = plan_check(self.protocol, self.station)
        self.estimates[:] = [s.duration for s in plan.steps]
        for step, estimate in zip(self.spec.steps, self.estimates, strict=True):
            step.estimate_s = estimate

    def make_run(
        self,
        store: Any,
        *,
        operator: str,
        interactive: bool = False,
        progress: Progress | None = None,
        prompt: Callable[[str], bool] | None = None,
        **options: Any,
    ) -> Run:
        """The `Run`, recorded in `store` (state `created`), with its drivers on transports that record into
        the run's instrument transcript; `options` go to `Run` (`control`, `handle_signals`, ...)."""
        from labctl.store.resilient import resilient

        run = Run(
            self.spec,
            store=resilient(store),  # PostgreSQL: rides out a short outage (labctl.store.resilient)
            instruments={},
            station=self.station,
            clock=self.clock,
            mode="dry-run" if self.simulate else "bench",
            seed=self.seed,
            operator=operator,
            auto_operator=self.simulate and not interactive,
            observers=[self.bench.observer] if self.bench is not None else [],
            progress=progress,
            prompt=prompt,
            plan_check=self.check,
            lease_keys=self.lease_keys,
            station_text=self.station.source_text,
            **options,
        )
        area = self.spec.sample.get("area")
        if area:
            run.notes["cell_area"] = float(area)
        run_id = run.create()
        if self.bench is not None and self.spec.sample_id:  # a sample made by an earlier dry run: its world's
            carried = self.bench.carry_sample(store.sample(self.spec.sample_id))  # overlayer, not bare Li
            if carried is not None:
                store.append_event(run_id, "sample.carried", carried)
        try:
            run.instruments = build_instruments(
                self.station, self.roles, clock=self.clock, recorder=store.io_recorder(run_id)
            )
        except Exception as exc:  # recorded as failed, not left an orphan in `created`; then reported
            run.refuse(str(exc))
            raise
        return run

    def close(self) -> None:
        if self.bench is not None:
            self.bench.close()
            self.bench = None
        self.seal.close()


def prepare_run(
    protocol: str | Path,
    *,
    station: str | Path,
    simulate: bool = False,
    seed: int | None = None,
    realtime: bool = False,
    overrides: dict[str, str] | None = None,
    sample_id: str | None = None,
) -> PreparedRun:
    """Load, check the station covers the steps, choose the clock and (dry run) build the simulated bench."""
    loaded = load_protocol(protocol, overrides or {})
    station_model = load_station(station)
    spec = run_spec(loaded, sample_id=sample_id)
    roles, missing = roles_for([s.step for s in spec.steps], station_model)
    if missing:
        raise ConfigError(
            f"station {station_model.name!r} lacks the instruments {', '.join(missing)} this protocol needs"
        )
    clock: Clock = VirtualClock() if simulate and not realtime else RealClock()
    bench = None
    seal = contextlib.ExitStack()
    if simulate:  # every link an in-process simulator, or refused here, before the store or any port opens
        from labctl.simulators.dryrun import DryRunBench, draw_seed

        transport.require_simulators(
            {role: station_model.instruments[role].link for role in station_model.instruments},
            station=str(station),
        )
        seal.enter_context(transport.sealed("a dry run (--simulate)"))  # the transport refuses the rest too
        seed = draw_seed() if seed is None else seed
        try:
            bench = DryRunBench(station_model, clock=clock, seed=seed, roles=roles)
        except BaseException:
            seal.close()
            raise
    elif seed is not None:
        raise ConfigError("--seed seeds the simulated world: it needs --simulate")
    return PreparedRun(
        loaded, spec, station_model, roles, clock, simulate, seed, bench, [None] * len(spec.steps), seal
    )
