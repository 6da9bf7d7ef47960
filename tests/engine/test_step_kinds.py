"""Step kinds described once (issue 15): every field of every step model is consumed by the kind's `run`
or declared plan-only, checked by running each kind on the simulated bench with its model behind a proxy
that records which fields were read; the registry and the third-party entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engine_fakes import run_on_dry_bench

from labctl.compose import step_from_fields
from labctl.engine.instruments import roles_for
from labctl.engine.run import StepSpec
from labctl.station import load_station
from labctl.steps import StepModel, kinds, registry
from step_examples import EXAMPLES

STATION = Path(__file__).resolve().parents[2] / "stations" / "simulated.yaml"

#: one step of every kind, every optional field given (so every branch that reads one runs), in an order the
#: simulated bench can run them


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
    model = load_station(STATION)
    info = model
    seen: dict[str, set[str]] = {k: set() for k in registry.BUILTIN}
    specs = [
        StepSpec(i, Recording(step_from_fields(i, k, f).step, seen[k]))  # type: ignore[arg-type]
        for i, (k, f) in enumerate(EXAMPLES)
    ]
    roles, missing = roles_for([step_from_fields(0, k, f).step for k, f in EXAMPLES], info)
    assert not missing
    res, _ = run_on_dry_bench("fields", specs, info, roles, seed=5)
    assert res.ok, res.reason
    for name, kind in kinds().items():
        if name not in seen:
            continue
        fields = set(kind.MODEL.model_fields) - {"kind"}
        unread = fields - seen[name] - kind.PLAN_ONLY
        assert not unread, f"{name}: run never reads {sorted(unread)} and they are not declared PLAN_ONLY"
        assert fields >= kind.PLAN_ONLY, f"{name}: PLAN_ONLY names no field {kind.PLAN_ONLY - fields}"


def test_a_third_party_kind_joins_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from typing import Literal

    from labctl.protocol.fields import Qty
    from labctl.steps import StepKind

    class Purge(StepModel):
        kind: Literal["purge"] = "purge"
        duration: Qty("duration")

    class PurgeKind(StepKind[Purge]):
        KIND, MODEL = "purge", Purge
        LABCTL_PLUGIN_API = 1

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


# -- the examples, each on the engine's fakes -----------------------------------------------------

SPUTTER = (
    "sputter",
    {
        "power": "60 W",
        "flow": "20 sccm",
        "pressure": "0.5 Pa",
        "thickness": "50 nm",
        "ramp_rate": "1 W/s",
        "presputter": "60 s",
        "max_time": "20000 s",
        "base_pressure": "5e-4 Pa",
    },
)


@pytest.mark.parametrize(("limit", "trips"), [("5 %", True), ("20 %", False)])
def test_sputter_trips_at_the_protocols_max_reflected(h, limit: str, trips: bool) -> None:
    rf = h.inst["rf"]
    rf.reflected_power = lambda: 0.10 * rf.ch.watts  # 10 % reflected: above 5 %, below the old fixed 20 %
    res = h.make([(SPUTTER[0], {**SPUTTER[1], "max_reflected": limit})]).execute()
    if trips:
        assert res.state.value == "failed" and "reflected" in res.reason and "5%" in res.reason
        assert not rf.on
    else:
        assert res.ok, res.reason


def test_cycling_rests_between_half_cycles_sampling_the_voltage(h) -> None:
    step = (
        "cycle_symmetric",
        {
            "current_density": "1 mA/cm^2",
            "half_cycle": "60 s",
            "cycles": 3,
            "sample_every": "10 s",
            "voltage_limit": "1 V",
            "rest": "600 s",
        },
    )
    res = h.make([step]).execute()
    assert res.ok, res.reason
    assert res.steps[0].duration_s == pytest.approx(6 * 60 + 5 * 600)
    ocv = h.store.measurements(res.run_id, "ocv")
    assert len(ocv["t"]) == 5 * 60  # every 10 s through five 600 s rests
    cyc = h.store.measurements(res.run_id, "cycling")
    assert len(cyc["t"]) == 6 * 6 and res.steps[0].achieved["rest_s"] == pytest.approx(3000.0)


def test_time_cap_ends_a_cycling_step_that_overruns_its_nominal_time(h) -> None:
    step = (
        "cycle_symmetric",
        {
            "current_density": "1 mA/cm^2",
            "half_cycle": "600 s",
            "cycles": 3,
            "sample_every": "10 s",
            "voltage_limit": "1 V",
            "time_cap": 1.0,
        },
    )
    h.on("step.progress", lambda d: d.get("fraction", 0) > 0.3, lambda r: r.clock.sleep(900.0))  # a stall
    res = h.make([step]).execute()
    a = res.steps[0].achieved
    assert res.steps[0].status == "deviated" and a["ended_by"] == "time_cap" and a["half_cycles"] < 6


def test_cycling_temperature_is_recorded_as_a_required_condition(h) -> None:
    step = (
        "cycle_symmetric",
        {
            "current_density": "1 mA/cm^2",
            "half_cycle": "60 s",
            "cycles": 1,
            "sample_every": "10 s",
            "voltage_limit": "1 V",
            "temperature": "25 degC",
        },
    )
    res = h.make([step]).execute()
    assert res.steps[0].achieved["required_conditions"] == {"cell_temperature_c": 25.0, "controlled": False}


def test_eis_settles_measures_the_ocv_and_sweeps_around_it(h) -> None:
    h.inst["eis"].ocv_v = 0.0123
    eis = (
        "eis",
        {
            "frequencies": "1 kHz..1 Hz",
            "points_per_decade": 5,
            "amplitude": "10 mV",
            "settle": "120 s",
            "dc": "5 mV",
        },
    )
    fixed = (
        "eis",
        {
            "frequencies": "1 kHz..1 Hz",
            "points_per_decade": 5,
            "amplitude": "10 mV",
            "ocv": False,
            "dc": "0.2 V",
        },
    )
    res = h.make([eis, fixed]).execute()
    assert res.ok, res.reason
    assert h.inst["eis"].dc == [pytest.approx(0.0173), pytest.approx(0.2)]
    a = res.steps[0].achieved
    assert a["settle_s"] == 120.0 and a["ocv_v"] == pytest.approx(0.0123)
    assert res.steps[0].duration_s == pytest.approx(120.0 + 60.0)  # settle + the fake's 60 s sweep
    assert len(h.store.measurements(res.run_id, "ocv")["t"]) == 10


def test_rest_samples_the_voltage_when_asked(h) -> None:
    res = h.make(
        [("rest", {"duration": "120 s", "sample_every": "10 s"}), ("rest", {"duration": "60 s"})]
    ).execute()
    assert res.ok, res.reason
    assert len(h.store.measurements(res.run_id, "ocv")["t"]) == 12
    assert res.steps[0].points == 12 and res.steps[1].points == 0


class PlainWorld:
    """Today's simulated world: it coats with a bath's own solution and knows no polymer by name."""

    def __init__(self) -> None:
        self.baths: dict[str, Any] = {}

    def set_polymer(self, bath: str, solution: Any) -> None:
        self.baths[bath] = solution

    def sample_record(self) -> dict[str, Any]:
        return {"layer": "polymer", "thickness_um": 1.5}


class PolymerWorld(PlainWorld):
    def polymer_solution(self, polymer: str, solvent: str) -> Any:
        return f"{polymer} in {solvent}"


def test_dip_coat_polymer_and_solvent_reach_the_simulated_world(h) -> None:
    world = PolymerWorld()
    dip = (
        "dip_coat",
        {
            "bath": "alloy",
            "polymer": "PVDF",
            "solvent": "DMF",
            "depth": "10 mm",
            "dip_speed": "5 mm/s",
            "withdrawal_speed": "1 mm/s",
            "dwell": "10 s",
            "drying_time": "60 s",
            "override": {"reason": "short contact in a test"},
        },
    )
    res = h.make([dip], world=world).execute()
    assert res.ok, res.reason
    assert world.baths == {"alloy": "PVDF in DMF"}
    a = res.steps[0].achieved
    assert a["solution"] == {"bath": "alloy", "polymer": "PVDF", "solvent": "DMF"}
    assert a["overlayer"]["source"] == "simulated world (dry run)" and a["overlayer"]["thickness_m"] == 1.5e-6


def test_a_world_without_named_polymers_says_so_in_the_record(h) -> None:
    world = PlainWorld()
    dip = (
        "dip_coat",
        {
            "bath": "alloy",
            "polymer": "PEO",
            "solvent": "THF",
            "depth": "10 mm",
            "dip_speed": "5 mm/s",
            "withdrawal_speed": "1 mm/s",
            "dwell": "10 s",
            "drying_time": "10 s",
        },
    )
    res = h.make([dip], world=world).execute()
    assert res.ok and world.baths == {}
    assert "polymer_solution" in res.steps[0].achieved["observed"][0]["why"]


@pytest.mark.parametrize(("limit", "trips"), [("40 degC", True), ("60 degC", False)])
def test_sputter_watches_max_substrate_temperature_on_the_holder_sensor(h, limit: str, trips: bool) -> None:
    """The fake holder reads 22 °C + 0.5 K/W: 52 °C at 60 W."""
    res = h.make([(SPUTTER[0], {**SPUTTER[1], "max_substrate_temperature": limit})]).execute()
    if trips:
        assert (
            res.state.value == "failed"
            and "substrate" in res.reason
            and "max_substrate_temperature" in res.reason
        )
        assert not h.inst["rf"].on
    else:
        assert res.ok, res.reason


def test_the_plan_accepts_max_substrate_temperature_on_a_station_with_a_holder_sensor() -> None:
    """No holder-thermometer driver ships yet; a station model with a `substrate` role passes the plan."""
    import dataclasses

    from labctl.protocol import make_plan, parse_protocol
    from labctl.station import InstrumentSpec

    base = load_station(STATION)
    sensor = InstrumentSpec("substrate", "holder_rtd", port="/dev/ttyUSB9")
    station = dataclasses.replace(base, instruments={**base.instruments, "substrate": sensor})
    protocol = parse_protocol(
        "labctl: 1\nname: t\nsteps:\n  - nitride: {flow: 80 sccm, pressure: 2 Pa, power: 50 W,"
        " ramp_rate: 10 W/min, base_pressure: 5e-4 Pa, time: 60 s, max_substrate_temperature: 60 degC}\n",
        "t.yaml",
    )
    assert not [e for e in make_plan(protocol, station).errors if "substrate" in e]
    assert [e for e in make_plan(protocol, base).errors if "max_substrate_temperature" in e]
