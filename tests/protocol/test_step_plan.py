"""The plan sees what the run would hit (issue 15): limits declared next to driver commands, fields a
station cannot honour refused at plan time naming the field, the kinds' analysis of rests and settles."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.protocol import make_plan, parse_protocol
from labctl.station import load_station

ROOT = Path(__file__).resolve().parents[2]
STATION = load_station(ROOT / "stations" / "simulated.yaml")


def plan_of(step: str, sample: str = "") -> object:
    text = f"labctl: 1\nname: t\n{sample}steps:\n  - {step}\n"
    return make_plan(parse_protocol(text, "t.yaml"), STATION)


def test_sample_every_below_the_keithley_minimum_is_refused_by_the_plan_naming_the_field() -> None:
    plan = plan_of(
        "cycle_symmetric: {current_density: 1 mA/cm^2, capacity: 1 mAh/cm^2, cycles: 1, "
        "sample_every: 0.5 ms, voltage_limit: 0.5 V}"
    )
    assert not plan.ok
    (error,) = [e for e in plan.errors if "sample_every" in e]
    assert "potentiostat" in error and "`interval`" in error and "line 4" in error


def test_a_half_cycle_too_long_for_the_keithley_buffer_is_refused() -> None:
    plan = plan_of(
        "cycle_symmetric: {current_density: 0.01 mA/cm^2, capacity: 10 mAh/cm^2, cycles: 1, "
        "sample_every: 1 ms, voltage_limit: 0.5 V}"
    )
    assert any("points" in e and "`points`" in e for e in plan.errors), plan.errors


def test_nplc_interval_points_are_driver_limits_the_plan_reads() -> None:
    from labctl.drivers.keithley2450 import Keithley2450

    assert {"nplc", "interval", "points"} <= set(Keithley2450.LIMITS)
    assert Keithley2450.LIMITS["interval"].low == pytest.approx(1e-3)


def test_rest_between_half_cycles_is_in_the_plan() -> None:
    plan = plan_of(
        "cycle_symmetric: {current_density: 1 mA/cm^2, half_cycle: 60 s, cycles: 3, "
        "voltage_limit: 0.5 V, rest: 600 s}"
    )
    assert plan.ok, plan.errors
    assert plan.duration == pytest.approx(6 * 60 + 5 * 600)  # rests between the six half-cycles


@pytest.mark.parametrize("kind", ["sputter", "nitride"])
def test_max_substrate_temperature_is_refused_on_a_station_without_a_substrate_sensor(kind: str) -> None:
    body = "flow: 20 sccm, pressure: 0.5 Pa, power: 50 W, ramp_rate: 10 W/min, base_pressure: 5e-4 Pa, " + (
        "thickness: 10 nm, max_time: 60 min" if kind == "sputter" else "time: 60 s"
    )
    plan = plan_of(f"{kind}: {{{body}, max_substrate_temperature: 60 degC}}")
    assert any("max_substrate_temperature" in e and "substrate" in e for e in plan.errors), plan.errors
    unwatched = plan_of(f"{kind}: {{{body}}}")
    assert unwatched.ok and any("substrate temperature not watched" in w for w in unwatched.warnings)


def test_cycling_temperature_is_a_required_condition_the_plan_states() -> None:
    plan = plan_of(
        "cycle_symmetric: {current_density: 1 mA/cm^2, half_cycle: 60 s, cycles: 1, "
        "voltage_limit: 0.5 V, temperature: 25 degC}"
    )
    assert plan.ok and any("required condition" in w for w in plan.warnings)


def test_eis_settle_and_ocv_measurement_are_in_the_plan() -> None:
    from labctl.steps.eis import OCV_MEASURE_S

    at_ocv = plan_of("eis: {frequencies: 10 kHz..1 Hz, points_per_decade: 5, amplitude: 10 mV}")
    settled = plan_of(
        "eis: {frequencies: 10 kHz..1 Hz, points_per_decade: 5, amplitude: 10 mV, settle: 5 min}"
    )
    fixed = plan_of("eis: {frequencies: 10 kHz..1 Hz, points_per_decade: 5, amplitude: 10 mV, ocv: false}")
    assert settled.duration - fixed.duration == pytest.approx(300.0)
    assert at_ocv.duration - fixed.duration == pytest.approx(OCV_MEASURE_S)


def test_the_plan_walks_the_step_kinds_and_no_kind_chain_is_left() -> None:
    import labctl.protocol.plan as plan_module

    source = Path(plan_module.__file__).read_text(encoding="utf-8")
    assert "kind ==" not in source and "STEP_ROLES" not in source
