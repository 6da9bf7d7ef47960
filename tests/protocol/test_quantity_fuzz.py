"""Issue 14.3: no value of any quantity field of any step kind makes `validate` or `plan` raise anything but a
reported problem. Hypothesis writes each quantity field of a full example of every kind (read from the
models' own `QtySpec` declarations, nested fields included) with any number in any unit, and the plan of
what validates must be finite and within its sanity bound."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.protocol import ProtocolFileError, make_plan, parse_protocol
from labctl.protocol.accounting import MAX_STEP_S
from labctl.protocol.fields import QtySpec, quantity_fields
from labctl.protocol.models import Sample
from labctl.station import load_station
from labctl.steps import registry
from labctl.units import human_duration
from step_examples import EXAMPLES as STEP_EXAMPLES
from step_examples import VARIANTS, named

ROOT = Path(__file__).resolve().parents[2]
STATION = load_station(ROOT / "stations" / "simulated.yaml")

#: a valid step of every built-in kind (`kind/N` for a further one), every quantity field given
EXAMPLES: dict[str, dict[str, Any]] = named([*STEP_EXAMPLES, *VARIANTS])

UNITS: dict[str, list[str]] = {
    "duration": ["s", "ms", "ns", "h", "d", "year"],
    "length": ["mm", "m", "nm", "km", "um"],
    "speed": ["mm/s", "m/s", "nm/h", "km/s"],
    "volume": ["mL", "uL", "L", "m^3"],
    "volume_flow": ["mL/min", "uL/h", "L/s"],
    "concentration": ["M", "mM", "mol/L"],
    "temperature": ["degC", "K", "degF"],
    "current_density": ["mA/cm^2", "A/m^2", "nA/cm^2"],
    "areal_capacity": ["mAh/cm^2", "C/m^2", "Ah/m^2"],
    "voltage": ["V", "mV", "kV"],
    "power": ["W", "kW", "mW"],
    "power_rate": ["W/min", "W/s", "mW/h"],
    "pressure": ["Pa", "mTorr", "bar"],
    "gas_flow": ["sccm", "slm"],
    "rotation": ["rpm"],
    "area": ["cm^2", "m^2"],
    "density": ["g/cm^3", "kg/m^3"],
    "fraction": ["%", "ppm", ""],
}
SPECIAL = [0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 5e-324, 1e300, -1e300, 1.7e308, 1e-12, 1e12]


def _fields(kind: str) -> list[tuple[str, QtySpec]]:
    return list(quantity_fields(registry.kinds()[kind].MODEL))


def _kind(name: str) -> str:
    return name.split("/")[0]


def _given(example: dict[str, Any], path: str) -> bool:
    node: Any = example
    for part in path.split("."):
        node = node[0] if isinstance(node, list) else node
        if part not in node:
            return False
        node = node[part]
    return True


def test_every_builtin_kind_has_examples_giving_every_quantity_field() -> None:
    assert {_kind(k) for k in EXAMPLES} == set(registry.BUILTIN)
    for kind in registry.BUILTIN:
        for path, _ in _fields(kind):
            assert any(_given(e, path) for k, e in EXAMPLES.items() if _kind(k) == kind), (kind, path)


def _set(step: dict[str, Any], path: str, value: str) -> None:
    node: Any = step
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[part]
        node = node[0] if isinstance(node, list) else node
    node[parts[-1]] = value


#: the examples that give at least one quantity field
FUZZABLE = sorted(n for n, e in EXAMPLES.items() if any(_given(e, path) for path, _ in _fields(_kind(n))))


@st.composite
def mutation(draw: st.DrawFn) -> tuple[str, dict[str, Any], list[str]]:
    name = draw(st.sampled_from(FUZZABLE))
    kind, step = _kind(name), copy.deepcopy(EXAMPLES[name])
    fields = [(path, spec) for path, spec in _fields(kind) if _given(step, path)]
    chosen = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique_by=lambda f: f[0]))
    changed = []
    for path, spec in chosen:
        number = draw(st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=False, allow_infinity=False)))
        unit = draw(st.sampled_from(UNITS.get(spec.kind, [""])))
        _set(step, path, f"{number!r} {unit}".strip())
        changed.append(path)
    return kind, step, changed


def _check(kind: str, step: dict[str, Any], sample_area: str | None = None) -> None:
    doc = {"labctl": 1, "name": "fuzz", "steps": [{kind: step}]}
    if sample_area is not None:
        doc["sample"] = {"id": "S1", "area": sample_area}
    try:
        loaded = parse_protocol(json.dumps(doc), "fuzz.yaml")
    except ProtocolFileError as exc:
        assert exc.problems and all(p.line >= 1 and p.message for p in exc.problems)
        return
    for station in (STATION, None):
        plan = make_plan(loaded, station)
        for s in plan.steps:
            assert math.isfinite(s.duration) and 0 <= s.duration <= MAX_STEP_S, (s.duration, plan.errors)
            human_duration(s.duration)
        json.dumps(plan.as_dict(), default=str)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation())
def test_no_quantity_value_makes_validate_or_plan_raise(case: tuple[str, dict[str, Any], list[str]]) -> None:
    kind, step, _ = case
    _check(kind, step)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=False)), st.sampled_from(UNITS["area"]))
def test_no_sample_area_makes_plan_raise(number: float, unit: str) -> None:
    _check("cycle_symmetric", EXAMPLES["cycle_symmetric"], f"{number!r} {unit}")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_plans_cleanly(name: str) -> None:
    doc = {"labctl": 1, "name": "x", "steps": [{_kind(name): EXAMPLES[name]}]}
    plan = make_plan(parse_protocol(json.dumps(doc), "x.yaml"), STATION)
    assert not [e for e in plan.errors if "substrate" not in e]  # the simulated bench has no such sensor
    assert all(0 <= s.duration < MAX_STEP_S for s in plan.steps)


def test_sample_quantities_are_declared() -> None:
    assert {p for p, _ in quantity_fields(Sample)} == {"area", "li_thickness"}
    assert all(spec.gt == 0 for _, spec in quantity_fields(Sample))


# -- the station's quantities, under the shipped protocols -------------------------------------------------

STATION_TEXT = (ROOT / "stations" / "simulated.yaml").read_text(encoding="utf-8")
#: (text in the simulated station, kind of the value written in its place)
STATION_VALUES = [
    ("speed: 10 mm/s", "speed"),
    ("safe_z: 0 mm", "length"),
    ("x: 50 mm", "length"),
    ("surface_z: -40 mm, capacity: 50 mL, pumps: [pump.stock", "length"),
    ("capacity: 50 mL, pumps: [pump.stock", "volume"),
    ("concentration: 0.5 M, solvent: THF, syringe_diameter: 14.43 mm}\n  zncl2", "concentration"),
    ("syringe_diameter: 19.13 mm", "length"),
    ("area: 1.13 cm^2", "area"),
    ("target_area: 20.3 cm^2", "area"),
    ("distance: 8 cm", "length"),
    ("idle_pressure: 5e-5 Pa", "pressure"),
]
SHIPPED = [
    parse_protocol((ROOT / "protocols" / name).read_text(encoding="utf-8"), name)
    for name in ("li-in-immersion.yaml", "lif-sputter.yaml", "li3n-nitride.yaml", "li-li-cycling.yaml")
]


def test_every_station_value_template_is_in_the_station() -> None:
    for old, _ in STATION_VALUES:
        assert STATION_TEXT.count(old) == 1, old


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_station_quantity_makes_the_station_loader_or_plan_raise(data: st.DataObject) -> None:
    from labctl.station import StationFileError, parse_station

    old, kind = data.draw(st.sampled_from(STATION_VALUES))
    number = data.draw(st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=False, allow_infinity=False)))
    unit = data.draw(st.sampled_from(UNITS[kind]))
    key, _, rest = old.partition(": ")
    tail = rest.partition(",")[2] if "," in rest else rest.partition("}")[2] if "}" in rest else ""
    sep = "," if "," in rest else "}" if "}" in rest else ""
    text = STATION_TEXT.replace(old, f"{key}: {number!r} {unit}".rstrip() + sep + tail)
    try:
        station = parse_station(text, "fuzz-station.yaml")
    except StationFileError as exc:
        assert exc.problems and all(p.line >= 1 and p.message for p in exc.problems)
        return
    for loaded in SHIPPED:
        plan = make_plan(loaded, station)
        for s in plan.steps:
            assert math.isfinite(s.duration) and 0 <= s.duration <= MAX_STEP_S, (s.duration, plan.errors)
        json.dumps(plan.as_dict(), default=str)


#: quantities that are signed by nature: potentials and stage coordinates (down is negative)
SIGNED = {
    "eis.dc",
    "coulombic_efficiency.cutoff_voltage",
    "coulombic_efficiency.plating_voltage_limit",
    "Bath.x",
    "Bath.surface_z",
    "Travel.safe_z",
}


def test_every_quantity_declares_a_lower_bound_unless_signed_by_nature() -> None:
    from labctl.station import Bath, Cell, Chamber, Stock, Travel

    models = [(k, kind.MODEL) for k, kind in registry.kinds().items() if k in registry.BUILTIN]
    models += [(m.__name__, m) for m in (Sample, Bath, Stock, Cell, Travel, Chamber)]
    unbounded = [
        f"{owner}.{path}"
        for owner, model in models
        for path, spec in quantity_fields(model)
        if spec.gt is None and spec.ge is None and f"{owner}.{path}" not in SIGNED
    ]
    assert not unbounded, f"quantities without a declared lower bound: {unbounded}"
