"""Step kinds described once (issue 15): every field of every step model is consumed by the kind's `run` or
declared plan-only, checked by running each kind on the simulated bench with its model behind a proxy that
records which fields were read; the registry, the plan walking the same kinds, and the third-party entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engine_fakes import FakeStore

from labctl.clock import VirtualClock
from labctl.compose import step_from_fields
from labctl.engine.control import Control
from labctl.engine.instruments import build_instruments, roles_for
from labctl.engine.run import Run, RunSpec, StepSpec
from labctl.engine.station_info import station_info
from labctl.simulators.dryrun import DryRunBench
from labctl.station import load_station
from labctl.steps import StepModel, kinds, registry

STATION = Path(__file__).resolve().parents[2] / "stations" / "simulated.yaml"

#: one step of every kind, every optional field given (so every branch that reads one runs), in an order the
#: simulated bench can run them
EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("prepare_bath", {"bath": "alloy", "salt": "InCl3", "solvent": "THF", "concentration": "0.1 M",
                      "volume": "20 mL", "temperature": "25 degC", "stir": "200 rpm", "rate": "5 mL/min",
                      "settle": "30 s", "water": "10 ppm", "override": {"reason": "a test of every field"},
                      "label": "bath"}),
    ("prepare_bath", {"bath": "solvent", "solvent": "THF", "volume": "20 mL"}),
    ("immerse", {"bath": "alloy", "depth": "12 mm", "speed": "5 mm/s", "time": "30 s",
                 "rinse": {"bath": "solvent", "time": "5 s"}, "dry": "20 s"}),
    ("dip_coat", {"bath": "polymer", "polymer": "PEO-UPy", "solvent": "THF", "depth": "10 mm",
                  "dip_speed": "2 mm/s", "dwell": "5 s", "withdrawal_speed": "1 mm/s", "drying_time": "10 s",
                  "cycles": 2, "drying_temperature": "40 degC", "override": {"reason": "a test of every field"}}),
    ("sputter", {"target": "LiF", "gas": "Ar", "flow": "20 sccm", "pressure": "0.5 Pa", "power": "50 W",
                 "ramp_rate": "10 W/min", "base_pressure": "5e-4 Pa", "presputter": "60 s", "thickness": "10 nm",
                 "max_time": "60 min", "tooling": "100 %", "density": "2.64 g/cm^3", "z_ratio": 0.778,
                 "max_reflected": "5 %", "on_pressure_fault": "fail"}),
    ("nitride", {"gas": "N2", "impurity": "0.5 ppm", "flow": "80 sccm", "pressure": "2 Pa", "power": "50 W",
                 "ramp_rate": "10 W/min", "base_pressure": "5e-4 Pa", "time": "60 s", "on_pressure_fault": "fail"}),
    ("operator", {"message": "Assemble the Li|Li coin cell", "timeout": "10 min",
                  "cell": {"kind": "symmetric", "electrolyte": "carbonate", "separator": "celgard",
                           "coated": "both"}}),
    ("ocv", {"duration": "60 s", "sample_every": "10 s"}),
    ("eis", {"frequencies": "100 kHz..1 Hz", "points_per_decade": 5, "amplitude": "10 mV", "dc": "0 V",
             "ocv": True, "settle": "30 s"}),
    ("cycle_symmetric", {"current_density": "1 mA/cm^2", "capacity": "0.01 mAh/cm^2", "cycles": 2,
                         "sample_every": "1 s", "voltage_limit": "0.5 V", "rest": "20 s", "temperature": "25 degC",
                         "time_cap": 1.2, "short_detection": {"threshold": "2 mV", "window": "10 min"}}),
    ("rate_test", {"stages": [{"current_density": "1 mA/cm^2", "cycles": 1},
                              {"current_density": "2 mA/cm^2", "cycles": 1}],
                   "capacity": "0.01 mAh/cm^2", "sample_every": "1 s", "voltage_limit": "1 V", "rest": "10 s",
                   "temperature": "25 degC", "time_cap": 1.2}),
    ("rest", {"duration": "60 s", "sample_every": "5 s"}),
    ("wait", {"duration": "10 s"}),
    ("operator", {"message": "Assemble the Li|Cu coin cell", "cell": {"kind": "li_cu", "coated": "none"}}),
    ("coulombic_efficiency", {"method": "aurbach", "current_density": "1 mA/cm^2", "capacity": "0.01 mAh/cm^2",
                              "cutoff_voltage": "1 V", "cycles": 2, "plating_voltage_limit": "-1 V",
                              "formation_capacity": "0.02 mAh/cm^2", "reservoir_capacity": "0.02 mAh/cm^2",
                              "sample_every": "1 s", "rest": "5 s", "temperature": "25 degC", "time_cap": 1.2}),
]


class Recording:
    """A step model whose field reads are recorded (properties run against the proxy, so the fields they read
    count too); everything else is the model's."""

    def __init__(self, model: StepModel, seen: set[str]) -> None:
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_seen", seen)

    def __getattr__(self, name: str) -> Any:
        model = object.__getattribute__(self, "_model")
        if name in type(model).model_fields:
            object.__getattribute__(self, "_seen").add(name)
        prop = getattr(type(model), name, None)
        if isinstance(prop, property):
            return prop.fget(self)  # type: ignore[misc]
        return getattr(model, name)


def test_every_builtin_kind_has_an_example_with_every_field() -> None:
    assert {k for k, _ in EXAMPLES} == set(registry.BUILTIN)
    for kind, fields in EXAMPLES:
        model = kinds()[kind].MODEL
        given = set(fields) | {"kind"}
        if kind in ("prepare_bath", "operator"):
            continue  # two examples each: the first gives every field, checked below
        # half_cycle excludes capacity; no station has a substrate sensor (the plan refuses the field, below)
        unset = {"label", "short_detection", "half_cycle", "override", "max_substrate_temperature"}
        loose = set(model.model_fields) - given - unset
        assert not loose, f"{kind} example leaves {loose} at their defaults"


def test_every_field_is_consumed_by_run_or_declared_plan_only() -> None:
    clock = VirtualClock()
    model = load_station(STATION)
    info = station_info(model, text=model.source_text)
    seen: dict[str, set[str]] = {k: set() for k in registry.BUILTIN}
    specs = [StepSpec(i, Recording(step_from_fields(i, k, f).step, seen[k]))  # type: ignore[arg-type]
             for i, (k, f) in enumerate(EXAMPLES)]
    roles, missing = roles_for([step_from_fields(0, k, f).step for k, f in EXAMPLES], info)
    assert not missing
    store = FakeStore()
    with DryRunBench(model, clock=clock, seed=5, roles=roles) as dry:
        run = Run(RunSpec("fields", specs), store=store, instruments={}, station=info, clock=clock,
                  auto_operator=True, observers=[dry.observer], handle_signals=False,
                  control=Control(poll_interval=0.0))
        rid = run.create()
        run.instruments = build_instruments(info, roles, clock=clock, recorder=store.io_recorder(rid))
        res = run.execute()
    assert res.ok, res.reason
    for name, kind in kinds().items():
        if name not in seen:
            continue
        fields = set(kind.MODEL.model_fields) - {"kind"}
        unread = fields - seen[name] - kind.PLAN_ONLY
        assert not unread, f"{name}: run never reads {sorted(unread)} and they are not declared PLAN_ONLY"
        assert kind.PLAN_ONLY <= fields, f"{name}: PLAN_ONLY names no field {kind.PLAN_ONLY - fields}"


def test_a_third_party_kind_joins_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from typing import Literal

    from labctl.protocol.fields import Qty
    from labctl.steps import StepKind

    class Purge(StepModel):
        kind: Literal["purge"] = "purge"
        duration: Qty("duration")

    class PurgeKind(StepKind[Purge]):
        KIND, MODEL = "purge", Purge

    class EntryPoint:
        name, value = "purge", "plugin:PurgeKind"

        def load(self) -> Any:
            return PurgeKind

    class Broken(EntryPoint):
        name = "broken"

        def load(self) -> Any:
            raise ImportError("no module named plugin_b")

    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint(), Broken()])
    registry.kinds.cache_clear()
    try:
        assert registry.step_kind("purge").MODEL is Purge
        assert list(registry.kinds())[: len(registry.BUILTIN)] == list(registry.BUILTIN)
        assert any("broken" in p and "plugin_b" in p for p in registry.plugin_problems())
    finally:
        registry.kinds.cache_clear()  # the next look-up scans the real entry points again
