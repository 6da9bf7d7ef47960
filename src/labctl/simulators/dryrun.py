"""The dry-run bench: the physical world of a station, its simulator cores on one clock, and the observer that
keeps the world in step with what the run says it did (a stock loaded, the bath a pump fills, a dip solution,
a cell assembled, a sample changed). The engine never knows it is dry-running: it publishes run events to its
observers and talks to drivers over `labsim://`; this module is the only place that ties those events to the
world.

A world that cannot be built is an error naming the station and the reason; there is no silent fallback.
"""

from __future__ import annotations

import secrets
from typing import Any

from labctl.clock import Clock
from labctl.errors import ConfigError
from labctl.simulators.bench import SimulatedBench


def draw_seed() -> int:
    """A fresh seed for a dry run given none (recorded with the run, so `--seed N` reproduces it)."""
    return secrets.randbits(31)


def make_world(station: Any, *, clock: Clock, seed: int) -> Any:
    """The `PhysicalWorld` of `station` (a `labctl.station.Station`); `ConfigError` naming the station if the
    world cannot be built from it."""
    from labctl.simulators.physics import world_for_station

    try:
        return world_for_station(station, seed=seed, clock=clock)
    except Exception as exc:
        where = getattr(station, "path", "") or getattr(station, "name", "station")
        raise ConfigError(
            f"{where}: the simulated world cannot be built from this station: {type(exc).__name__}: {exc}"
        ) from exc


class WorldObserver:
    """Turns run events into world calls. Each handler returns what it wants recorded (labelled simulated)."""

    def __init__(self, world: Any) -> None:
        self.world = world

    def __call__(self, kind: str, data: dict[str, Any]) -> dict[str, Any] | None:
        handler = getattr(self, "on_" + kind.replace(".", "_"), None)
        return handler(data) if handler is not None else None

    def on_pump_loaded(self, data: dict[str, Any]) -> dict[str, Any] | None:
        self.world.set_stock(
            data["pump"],
            salt=data["salt"],
            concentration=data["concentration"],
            solvent=data.get("solvent") or "THF",
        )
        return None

    def on_bath_filling(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """Each pump's selector valve opens to the bath it fills, so what it pumps lands there (a rinse
        made after an alloy bath on the same pump no longer dilutes the alloy bath)."""
        for pump in data["pumps"]:
            self.world.select_bath(pump, data["bath"])
        return None

    def on_dip_solution(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The protocol's polymer/solvent into the world's bath. The world needs a solution by name: its
        `polymer_solution(polymer, solvent)`, given the step's drying temperature too when it has one (plain
        PVDF dried hot is alpha-PVDF); guarded: a world without it keeps the bath's own solution, and the
        record says so."""
        make = getattr(self.world, "polymer_solution", None)
        if make is None:
            return {
                "source": "simulated world (dry run)",
                "solution": "bath default",
                "why": "the simulated world has no polymer_solution(polymer, solvent)",
            }
        dry = data.get("drying_temperature")
        extra = {} if dry is None else {"drying_temperature_c": float(dry)}
        solution = make(data.get("polymer"), data.get("solvent"), **extra)
        self.world.set_polymer(data["bath"], solution)
        return {"source": "simulated world (dry run)", "solution": getattr(solution, "name", str(solution))}

    def on_cell_assembled(self, data: dict[str, Any]) -> dict[str, Any] | None:
        kwargs = {k: data[k] for k in ("kind", "electrolyte", "separator", "coated") if k in data}
        result = self.world.assemble_cell(area_m2=data.get("area_m2"), **kwargs)
        return {
            "called": "assemble_cell",
            "kwargs": {**kwargs, "area_m2": data.get("area_m2")},
            "result": str(result) if result is not None else None,
        }

    def on_sample_changed(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The overlayer the world made, labelled as simulated (on the bench a thickness comes from the QCM or
        a measurement, never from a model)."""
        sample = self.world.sample_record()
        return {
            "overlayer": {
                "source": "simulated world (dry run)",
                "layer": sample.get("layer"),
                "thickness_m": float(sample.get("thickness_um", 0.0)) * 1e-6,
                "layers": sample.get("layers", []),
                "li_consumed_m": float(sample.get("li_consumed_um", 0.0)) * 1e-6,
            }
        }


class DryRunBench:
    """World + simulator cores of `roles` on `clock`, started at construction; `close()` takes them down."""

    def __init__(
        self,
        station: Any,
        *,
        clock: Clock,
        seed: int,
        roles: list[str] | None = None,
        exposure: str = "labsim",
    ) -> None:
        self.seed = seed
        self.world = make_world(station, clock=clock, seed=seed)
        self.bench = SimulatedBench(station, clock=clock, world=self.world, seed=seed).start(exposure, roles)
        self.observer = WorldObserver(self.world)

    def carry_sample(self, sample: dict[str, Any] | None) -> dict[str, Any] | None:
        """Put a sample made by an earlier dry run (the store's `samples` row, whose overlayer that run's
        world reported) into this world before the first step: its fabrication was another run. Only an
        overlayer labelled as simulated is carried (a bench sample's record is never a model's input). Returns
        what to record, None when there is nothing to carry."""
        layer = (sample or {}).get("overlayer") or {}
        if not str(layer.get("source", "")).startswith("simulated world") or "layers" not in layer:
            return None
        made = self.world.load_sample({
            "layers": layer["layers"],
            "li_consumed_um": float(layer.get("li_consumed_m", 0.0)) * 1e6,
        })
        best = made.best()
        return {"source": "simulated world (dry run)", "sample_id": sample.get("id") if sample else None,
                "from_run": sample.get("run_id") if sample else None, "layer": best.kind if best else "bare",
                "thickness_m": (best.thickness_um if best else 0.0) * 1e-6}

    def close(self) -> None:
        self.bench.close()

    def __enter__(self) -> DryRunBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
