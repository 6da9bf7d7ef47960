"""Every shipped protocol validates, plans against the simulated bench, and is accepted by the schema."""
# ruff: noqa: E501

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.protocol import load_protocol, make_plan, parse_protocol, protocol_schema
from labctl.protocol.models import Protocol
from labctl.station import load_station

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = sorted((ROOT / "protocols").glob("*.yaml"))
STATION = load_station(ROOT / "stations" / "simulated.yaml")
REQUIRED = [
    "li-in-immersion",
    "li-zn-immersion",
    "li-al-immersion",
    "li-bi-immersion",
    "pvdf-dip-coat",
    "peo-dip-coat",
    "lif-sputter",
    "li3n-nitride",
    "li-li-cycling",
    "rate-test",
    "li-cu-ce",
    "eis",
    "li-in-alloy-cycle",
    "bare-li-cycle",
]


def test_one_protocol_per_method() -> None:
    assert set(REQUIRED) <= {p.stem for p in PROTOCOLS}


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_protocol_validates_and_plans(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), "each protocol starts with a comment header"
    loaded = load_protocol(path)
    plan = make_plan(loaded, STATION)
    assert plan.ok, (plan.errors, [(s.index, s.errors) for s in plan.steps])
    assert plan.duration > 0
    json.dumps(plan.as_dict(), default=str)


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_schema_accepts_protocol(path: Path) -> None:
    from labctl.protocol.safeyaml import load

    data = load(path.read_text(encoding="utf-8"), str(path)).data
    schema = protocol_schema()
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        jsonschema.validate(data, schema)
    else:  # structural check by hand: every step is a one-key mapping naming a kind in the schema
        kinds = {next(iter(v["properties"])) for v in schema["properties"]["steps"]["items"]["oneOf"]}
        assert all(len(s) == 1 and next(iter(s)) in kinds for s in data["steps"])
        assert set(data) <= set(schema["properties"])


def test_schema_is_json_and_lists_every_kind() -> None:
    from labctl.protocol.models import STEP_KINDS

    schema = json.loads(json.dumps(protocol_schema()))
    kinds = {next(iter(v["properties"])) for v in schema["properties"]["steps"]["items"]["oneOf"]}
    assert kinds == set(STEP_KINDS)
    assert Protocol.model_json_schema()  # the model schema builds too


def test_full_protocol_plan_figures() -> None:
    loaded = load_protocol(ROOT / "protocols" / "li-in-alloy-cycle.yaml")
    plan = make_plan(loaded, STATION)
    cycling = next(s for s in plan.steps if s.kind == "cycle_symmetric")
    assert cycling.duration == pytest.approx(500 * 2 * 3600)  # 1 mAh/cm2 at 1 mA/cm2 = 1 h per half
    # 20 mL of 0.1 M from the 0.5 M stock: 4 mL stock, 16 mL THF (+20 mL rinse bath)
    stock = next(v for k, v in plan.consumables.items() if k.startswith("InCl3"))
    assert stock == pytest.approx(4e-6)
    assert plan.consumables["THF"] == pytest.approx(36e-6)  # 16 mL to dilute the stock + a 20 mL rinse bath
    assert plan.instruments["potentiostat"] is True
    assert loaded.model.steps[0].concentration == pytest.approx(100.0)


def test_overrides_and_parameters() -> None:
    loaded = load_protocol(
        ROOT / "protocols" / "li-in-alloy-cycle.yaml", {"immersion_time": "90 s", "cycles": "10"}
    )
    immerse = next(s for s in loaded.model.steps if s.kind == "immerse")
    assert immerse.time == 90.0
    assert next(s for s in loaded.model.steps if s.kind == "cycle_symmetric").cycles == 10
    assert loaded.parameters["immersion_time"] == "90 s"
    from labctl.protocol import ProtocolFileError

    with pytest.raises(ProtocolFileError, match="unknown parameter `nope`"):
        load_protocol(ROOT / "protocols" / "li-in-alloy-cycle.yaml", {"nope": "1"})
    with pytest.raises(ProtocolFileError, match="must be a duration, got `5 mm`"):
        load_protocol(ROOT / "protocols" / "li-in-alloy-cycle.yaml", {"immersion_time": "5 mm"})


BASE = "labctl: 1\nname: t\nsteps:\n"


def _plan(steps: str, station=STATION):  # type: ignore[no-untyped-def]
    return make_plan(parse_protocol(BASE + steps, "t.yaml"), station)


@pytest.mark.parametrize(
    ("step", "fragment", "severity"),
    [
        ("  - immerse: {bath: alloy, depth: 12 mm, speed: 5 mm/s, time: 3 h}", "time", "error"),
        ("  - immerse: {bath: alloy, depth: 12 mm, speed: 5 mm/s, time: 45 min}", "time", "warning"),
        (
            "  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.2 M, volume: 20 mL}",
            "",
            "ok",
        ),
        (
            "  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.005 M, volume: 20 mL}",
            "concentration",
            "warning",
        ),
        (
            "  - prepare_bath: {bath: alloy, salt: AsCl3, solvent: THF, concentration: 0.1 M, volume: 20 mL}",
            "AsCl3",
            "error",
        ),
        ("  - prepare_bath: {bath: alloy, solvent: acetonitrile, volume: 20 mL}", "acetonitrile", "error"),
        (
            "  - prepare_bath: {bath: alloy, solvent: THF, volume: 20 mL, temperature: 120 degC}",
            "temperature",
            "error",
        ),
        ("  - prepare_bath: {bath: nowhere, solvent: THF, volume: 20 mL}", "no bath", "error"),
        (
            "  - cycle_symmetric: {current_density: 70 mA/cm^2, capacity: 1 mAh/cm^2, cycles: 1, voltage_limit: 1 V}",
            "current_density",
            "error",
        ),
        (
            "  - cycle_symmetric: {current_density: 30 mA/cm^2, capacity: 1 mAh/cm^2, cycles: 1, voltage_limit: 1 V}",
            "current_density",
            "warning",
        ),
        (
            "  - cycle_symmetric: {current_density: 1 mA/cm^2, capacity: 1 mAh/cm^2, cycles: 1, voltage_limit: 2 V}",
            "voltage_limit",
            "error",
        ),
        ("  - eis: {frequencies: 1 MHz..0.1 Hz, amplitude: 30 mV}", "amplitude", "error"),
    ("  - immerse: {bath: alloy, depth: 30 mm, speed: 5 mm/s, time: 60 s}", "stage z", "error"),
    ("  - immerse: {bath: alloy, depth: 12 mm, speed: 30 mm/s, time: 60 s}", "speed", "error"),
    ("  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.4 M, volume: 20 mL, rate: 50 mL/min}",
     "rate", "error"),
    ("  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.4 M, volume: 45 mL}",
     "volume", "error"),
    ("  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.4 M, volume: 2 mL, rate: 12 mL/min}",
     "14.43 mm syringe", "error"),
        (
            "  - sputter: {flow: 20 sccm, pressure: 0.5 Pa, power: 150 W, ramp_rate: 4 W/min, base_pressure: 5e-4 Pa,"
            " thickness: 150 nm, max_time: 5 h}",
            "power",
            "error",
        ),
        (
            "  - sputter: {flow: 20 sccm, pressure: 0.5 Pa, power: 50 W, ramp_rate: 4 W/min, base_pressure: 5e-3 Pa,"
            " thickness: 150 nm, max_time: 5 h}",
            "base_pressure",
            "error",
        ),
        (
            "  - sputter: {flow: 20 sccm, pressure: 0.5 Pa, power: 50 W, ramp_rate: 4 W/min, base_pressure: 5e-4 Pa,"
            " thickness: 150 nm, max_time: 30 min}",
            "max_time",
            "error",
        ),
        (
            "  - nitride: {flow: 50 sccm, pressure: 30 Pa, power: 50 W, ramp_rate: 10 W/min, base_pressure: 5e-4 Pa,"
            " time: 90 min}",
            "time",
            "error",
        ),
        (
            "  - dip_coat: {bath: polymer, depth: 5 mm, dip_speed: 1 mm/s, dwell: 10 s, withdrawal_speed: 25 mm/s,"
            " drying_time: 1 min}",
            "withdrawal_speed",
            "error",
        ),
    ],
)
def test_plan_limits(step: str, fragment: str, severity: str) -> None:
    plan = _plan(step + "\n")
    s = plan.steps[0]
    if severity == "ok":
        assert plan.ok and not s.warnings
    elif severity == "error":
        assert not plan.ok and any(fragment in e for e in s.errors), s.errors
    else:
        assert plan.ok and any(fragment in w for w in s.warnings), (s.warnings, s.errors)


def test_hazard_override_is_recorded() -> None:
    plan = _plan(
        "  - prepare_bath: {bath: alloy, salt: AsCl3, solvent: THF, concentration: 0.1 M, volume: 20 mL,"
        " override: {reason: approved toxic-material SOP 12 in the fume hood}}\n",
        station=None,
    )
    assert plan.ok
    assert plan.overrides[0]["reason"].startswith("approved") and "AsCl3" in plan.overrides[0]["hazard"]


def test_plan_without_station() -> None:
    plan = _plan("  - wait: {duration: 10 min}\n", station=None)
    assert plan.ok and plan.duration == 600.0
    assert any("no station" in w for w in plan.warnings)


def test_sputter_rate_matches_physics() -> None:
    from labctl.steps.chamber import sputter_rate

    # physics.md 1.5: ~1.6 nm/min at 60 W on a 2-inch (20.3 cm^2) target at the optimum pressure
    assert sputter_rate(60.0, 20.3e-4, 0.08, 0.5) * 60e9 == pytest.approx(1.63, rel=0.02)
