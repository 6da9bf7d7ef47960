"""Issue 14.3/14.4: quantities that break their declared constraint are refused before a plan; limits that
only show when the steps are added up (bath capacity, syringe strokes, cumulative exposure, reach into a
bath) and absurd durations are refused by the plan, naming the steps and fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.protocol import ProtocolFileError, make_plan, parse_protocol
from labctl.protocol.accounting import MAX_STEP_S
from labctl.protocol.schema import protocol_schema
from labctl.station import Station, load_station

ROOT = Path(__file__).resolve().parents[2]
SIMULATED = ROOT / "stations" / "simulated.yaml"
STATION = load_station(SIMULATED)


def protocol(*steps: str, sample: str = "") -> str:
    body = "".join(f"  - {s}\n" for s in steps)
    return f"labctl: 1\nname: t\n{sample}steps:\n{body}"


def plan_of(*steps: str, station: Station | None = STATION, sample: str = "") -> object:
    return make_plan(parse_protocol(protocol(*steps, sample=sample), "t.yaml"), station)


def problems_of(*steps: str, sample: str = "") -> list[str]:
    with pytest.raises(ProtocolFileError) as info:
        parse_protocol(protocol(*steps, sample=sample), "t.yaml")
    return [f"{p.line}:{p.field}: {p.message}" for p in info.value.problems]


def station_with(tmp_path: Path, *replacements: tuple[str, str]) -> Station:
    text = SIMULATED.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "station.yaml"
    path.write_text(text, encoding="utf-8")
    return load_station(path)


THF = "  thf:   {pump: pump.solvent, solvent: THF, syringe_diameter: 19.13 mm"
ALLOY = "  alloy:   {x: 50 mm,  surface_z: -40 mm, capacity: 50 mL"
FILL = "prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.1 M, volume: 20 mL}"
RINSE = "prepare_bath: {bath: solvent, solvent: THF, volume: 20 mL}"


# -- 14.3: declared constraints, reported by validate with line and field --------------------------------


def test_negative_immersion_depth_is_refused_naming_line_and_field() -> None:
    (problem,) = problems_of("immerse: {bath: alloy, depth: -12 mm, speed: 5 mm/s, time: 60 s}")
    assert problem == "4:steps[0].immerse.depth: `depth` must be greater than 0 mm, got `-12 mm`"


@pytest.mark.parametrize("area", ["-1 cm^2", "0 cm^2", "0 m^2"])
def test_a_sample_area_not_above_zero_is_refused_not_replaced_by_the_station(area: str) -> None:
    (problem,) = problems_of("wait: {duration: 1 s}", sample=f"sample: {{id: S1, area: {area}}}\n")
    assert problem.startswith("3:sample.area: `area` must be greater than 0 cm^2")


@pytest.mark.parametrize(
    "step",
    [
        "prepare_bath: {bath: solvent, solvent: THF, volume: 20 mL, rate: 0 mL/min}",
        "immerse: {bath: alloy, depth: 12 mm, speed: 0 mm/s, time: 60 s}",
        "dip_coat: {bath: polymer, depth: 10 mm, dip_speed: 5 mm/s, dwell: 30 s, "
        "withdrawal_speed: 0 mm/s, drying_time: 60 s}",
        "sputter: {flow: 20 sccm, pressure: 0.5 Pa, power: 50 W, ramp_rate: 0 W/min, base_pressure: 5e-4 Pa, "
        "thickness: 10 nm, max_time: 60 min}",
        "cycle_symmetric: {current_density: 0 mA/cm^2, capacity: 1 mAh/cm^2, cycles: 1, "
        "voltage_limit: 0.5 V}",
        "rate_test: {stages: [{current_density: -1 mA/cm^2, cycles: 1}], capacity: 1 mAh/cm^2, "
        "voltage_limit: 0.5 V}",
        "ocv: {duration: 60 s, sample_every: 0 s}",
        "wait: {duration: -5 s}",
        "eis: {frequencies: 1 MHz..0.1 Hz, amplitude: -10 mV}",
        "prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.1 M, volume: 20 mL, "
        "temperature: -300 degC}",
        "nitride: {impurity: -1 ppm, flow: 20 sccm, pressure: 30 Pa, power: 50 W, ramp_rate: 10 W/min, "
        "base_pressure: 5e-4 Pa, time: 60 s}",
    ],
)
def test_zero_or_negative_where_it_makes_no_sense_is_refused_by_validate(step: str) -> None:
    (problem,) = problems_of(step)
    assert problem.startswith("4:steps[0].") and " must be " in problem, problem


def test_signed_voltages_stay_signed() -> None:
    parse_protocol(
        protocol(
            "eis: {frequencies: 1 MHz..0.1 Hz, amplitude: 10 mV, dc: -50 mV, ocv: false}",
            "coulombic_efficiency: {current_density: 1 mA/cm^2, capacity: 1 mAh/cm^2, cutoff_voltage: 0.5 V, "
            "cycles: 1, plating_voltage_limit: -0.5 V}",
        ),
        "t.yaml",
    )


def test_station_quantities_are_declared_too(tmp_path: Path) -> None:
    from labctl.station import StationFileError

    with pytest.raises(StationFileError, match="`capacity` must be greater than 0 mL"):
        station_with(tmp_path, (ALLOY, "  alloy:   {x: 50 mm,  surface_z: -40 mm, capacity: -50 mL"))


def test_the_schema_carries_the_bounds() -> None:
    defs = protocol_schema()["$defs"]
    depth = defs["Immerse"]["properties"]["depth"]
    assert depth["exclusiveMinimum"] == 0 and depth["x-unit"] == "m" and "> 0 mm" in depth["description"]
    dry = defs["Immerse"]["properties"]["dry"]
    assert dry["minimum"] == 0 and "exclusiveMinimum" not in dry
    water = json.dumps(defs["PrepareBath"]["properties"]["water"])
    assert '"minimum": 0.0' in water and '"maximum": 1.0' in water
    temperature = json.dumps(defs["PrepareBath"]["properties"]["temperature"])
    assert '"minimum": -273.15' in temperature


# -- 14.3: the plan's sanity bound on durations -----------------------------------------------------------


def test_a_vanishing_current_density_is_refused_by_the_plan_naming_the_field() -> None:
    plan = plan_of(
        "cycle_symmetric: {current_density: 1e-12 mA/cm^2, capacity: 1 mAh/cm^2, cycles: 1, "
        "voltage_limit: 0.5 V}"
    )
    (error,) = [e for e in plan.errors if "sanity bound" in e]
    assert "line 4" in error and "`current_density` = 1e-12 mA/cm^2" in error
    assert plan.duration <= MAX_STEP_S  # the absurd step is not summed into the plan


def test_a_crawling_stage_is_refused_by_the_plan_naming_the_speed() -> None:
    plan = plan_of(f"{FILL}", "immerse: {bath: alloy, depth: 12 mm, speed: 1e-12 mm/s, time: 60 s}")
    (error,) = [e for e in plan.errors if "sanity bound" in e]
    assert "step 2" in error and "`speed`" in error and "`time`" not in error


def test_a_ten_year_wait_is_still_a_plan() -> None:
    assert plan_of("wait: {duration: 3650 d}").ok
    assert not plan_of("wait: {duration: 3660 d}").ok


# -- 14.4: cumulative accounting -------------------------------------------------------------------------


def test_three_20_ml_fills_of_a_50_ml_bath_are_refused_naming_the_steps() -> None:
    plan = plan_of(FILL, FILL, FILL)
    (error,) = [e for e in plan.errors if "capacity" in e]
    assert error.startswith("step 3 (prepare_bath, line 6)")
    assert "60 mL" in error and "50 mL" in error
    assert "step 1 (line 4, 20 mL), step 2 (line 5, 20 mL) and step 3 (line 6, 20 mL)" in error
    assert plan_of(FILL, FILL).ok


def test_a_stroke_larger_than_the_syringe_is_refused(tmp_path: Path) -> None:
    station = station_with(tmp_path, (THF, THF + ", syringe_volume: 10 mL"))
    plan = plan_of("prepare_bath: {bath: solvent, solvent: THF, volume: 16 mL}", station=station)
    (error,) = [e for e in plan.errors if "stroke" in e]
    assert "16 mL of THF drawn from pump.solvent" in error and "10 mL" in error


def test_a_syringe_emptied_over_several_steps_needs_a_refill_step(tmp_path: Path) -> None:
    station = station_with(tmp_path, (THF, THF + ", syringe_volume: 20 mL"))
    plan = plan_of(FILL, RINSE, station=station)  # 16 mL of THF to dilute, then 20 mL neat
    (error,) = [e for e in plan.errors if "refill" in e]
    assert error.startswith("step 2 (prepare_bath, line 5)") and "36 mL" in error
    assert "add `- refill: {pump: pump.solvent}` before it" in error
    plan = plan_of(FILL, "refill: {pump: pump.solvent}", RINSE, station=station)
    assert plan.ok, plan.errors


def test_a_refill_names_a_pump_with_a_stock() -> None:
    assert any("no stock on pump.spare" in e for e in plan_of("refill: {pump: pump.spare}").errors)
    assert any("pump role" in e for e in plan_of("refill: {pump: stage}").errors)


def _immerse(time: str, rinse: str = "") -> str:
    return f"immerse: {{bath: alloy, depth: 12 mm, speed: 5 mm/s, time: {time}{rinse}}}"


def test_hours_of_cumulative_exposure_in_an_alloying_bath_are_refused() -> None:
    plan = plan_of(FILL, *[_immerse("25 min")] * 6)  # each within the 30 min soft limit
    warnings = [w for w in plan.warnings if "cumulative time" in w]
    errors = [e for e in plan.errors if "cumulative time" in e]
    assert len(warnings) == 1 and warnings[0].startswith("step 3 ")  # 50 min: beyond the usual 30 min
    assert len(errors) == 1 and errors[0].startswith("step 6 ")  # 2 h 5 min: beyond 2 h
    assert "InCl3 bath `alloy`" in errors[0] and "2 h 5 min" in errors[0] and "`time`" in errors[0]


def test_one_long_immersion_is_reported_once_by_its_own_limit() -> None:
    plan = plan_of(FILL, _immerse("3 h"))
    assert [e for e in plan.errors if "time" in e] == [
        e for e in plan.errors if "beyond the hard limit" in e
    ] and len(plan.errors) == 1, plan.errors


def test_rinses_in_neat_solvent_are_not_alloying_exposure() -> None:
    plan = plan_of(FILL, RINSE, *[_immerse("10 min", ", rinse: {bath: solvent, time: 50 min}")] * 3)
    assert not [m for m in plan.errors + plan.warnings if "cumulative time" in m]


def test_a_bath_the_protocol_never_fills_counts_by_the_salt_stocks_that_fill_it() -> None:
    plan = plan_of(*[_immerse("25 min")] * 5)  # `alloy` is filled by pump.stock, which holds MCl_x stocks
    (error,) = [e for e in plan.errors if "cumulative time" in e]
    assert error.startswith("step 5 ") and "InCl3/ZnCl2/AlCl3/BiCl3 bath `alloy`" in error


def test_a_bath_may_declare_a_tighter_exposure_limit(tmp_path: Path) -> None:
    station = station_with(tmp_path, (ALLOY, ALLOY + ", max_exposure: 5 min"))
    plan = plan_of(FILL, _immerse("3 min"), _immerse("3 min"), station=station)
    (error,) = [e for e in plan.errors if "cumulative time" in e]
    assert error.startswith("step 3 ") and "max_exposure" in error


def test_dip_coating_dwell_adds_up_across_cycles_and_steps() -> None:
    dip = (
        "dip_coat: {bath: polymer, depth: 10 mm, dip_speed: 5 mm/s, dwell: 10 min, withdrawal_speed: 1 mm/s, "
        "drying_time: 60 s, cycles: 4}"
    )
    plan = plan_of(dip, dip)  # 2 x 4 x 10 min = 80 min of Li-solvent contact, beyond 1 h
    (error,) = [e for e in plan.errors if "cumulative time" in e]
    assert error.startswith("step 2 ") and "`dwell`" in error


def test_depth_beyond_the_liquid_is_refused(tmp_path: Path) -> None:
    station = station_with(tmp_path, (ALLOY, ALLOY + ", depth: 10 mm"))
    plan = plan_of(FILL, _immerse("60 s"), station=station)
    (error,) = [e for e in plan.errors if "floor" in e]
    assert error.startswith("step 2 ") and "12 mm" in error and "10 mm" in error


def test_depth_beyond_the_stage_travel_is_refused() -> None:
    plan = plan_of(FILL, "immerse: {bath: alloy, depth: 30 mm, speed: 5 mm/s, time: 60 s}")
    assert any("stage z" in e for e in plan.errors), plan.errors


def test_every_shipped_protocol_still_plans_on_the_simulated_bench() -> None:
    for path in sorted((ROOT / "protocols").glob("*.yaml")):
        from labctl.protocol import load_protocol

        plan = make_plan(load_protocol(path), STATION)
        assert plan.ok, (path.name, plan.errors)
