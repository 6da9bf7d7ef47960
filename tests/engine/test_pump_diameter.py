"""Issue 14.9: every pump's syringe diameter is set and read back before its first dispense in a run. A
protocol whose first bath is a neat-solvent rinse failed on the simulated bench (the solvent pump had never
been told its syringe; a real NE-1000 would have dispensed with a stale diameter from its memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine_fakes import FakeStore, run_on_dry_bench

from labctl.compose import step_from_fields
from labctl.engine.instruments import roles_for
from labctl.engine.run import StepSpec
from labctl.protocol import make_plan, parse_protocol
from labctl.station import load_station

STATION = Path(__file__).resolve().parents[2] / "stations" / "simulated.yaml"
RINSE_BATH = ("prepare_bath", {"bath": "solvent", "solvent": "THF", "volume": "10 mL"})
ALLOY_BATH = (
    "prepare_bath",
    {"bath": "alloy", "salt": "InCl3", "solvent": "THF", "concentration": "0.1 M", "volume": "10 mL"},
)


def run_steps(steps: list[tuple[str, dict[str, Any]]], station: Any = None) -> tuple[Any, FakeStore]:
    model = station or load_station(STATION)
    info = model
    specs = [step_from_fields(i, k, f) for i, (k, f) in enumerate(steps)]
    roles, missing = roles_for([s.step for s in specs], info)
    assert not missing
    return run_on_dry_bench("diameter", [StepSpec(s.index, s.step) for s in specs], info, roles, seed=3)


def sent(store: FakeStore) -> list[bytes]:
    return [r.data for r in store.io if r.direction == "tx"]


def test_a_neat_solvent_rinse_as_the_first_bath_sets_the_solvent_syringe_before_dispensing() -> None:
    result, store = run_steps([RINSE_BATH])
    assert result.ok, result.reason
    tx = sent(store)
    run = tx.index(b"02RUN\r")
    assert b"02DIA 19.13\r" in tx[:run] and b"02DIA\r" in tx[:run]  # set, then read back, before the run
    assert tx.index(b"02DIA 19.13\r") < tx.index(b"02DIA\r") < run


def test_both_pumps_are_set_before_either_dispenses() -> None:
    result, store = run_steps([ALLOY_BATH, RINSE_BATH])
    assert result.ok, result.reason
    tx = sent(store)
    first_run = min(i for i, b in enumerate(tx) if b.endswith(b"RUN\r"))
    assert {b"01DIA 14.43\r", b"02DIA 19.13\r", b"01DIA\r", b"02DIA\r"} <= set(tx[:first_run])


def test_the_diameter_is_recorded_with_what_was_achieved() -> None:
    result, store = run_steps([RINSE_BATH])
    assert result.ok, result.reason
    (step,) = [s for run in store.runs.values() for s in run["steps"].values()]
    assert step["achieved"]["syringe_diameter_m"] == {"pump.solvent": 0.01913}


def test_a_solvent_without_a_known_syringe_is_refused_by_the_plan_and_the_run(tmp_path: Path) -> None:
    text = STATION.read_text(encoding="utf-8")
    thf = "  thf:   {pump: pump.solvent, solvent: THF, syringe_diameter: 19.13 mm}"
    assert thf in text
    path = tmp_path / "station.yaml"
    path.write_text(text.replace(thf, ""), encoding="utf-8")
    station = load_station(path)
    plan = make_plan(
        parse_protocol(
            "labctl: 1\nname: t\nsteps:\n  - prepare_bath: {bath: solvent, solvent: THF, volume: 10 mL}\n",
            "t.yaml",
        ),
        station,
    )
    assert any("neat THF" in e and "syringe" in e for e in plan.errors), plan.errors
    result, store = run_steps([RINSE_BATH], station)
    assert not result.ok and "no pump holds the solvent THF" in result.reason
    assert not any(b.endswith(b"RUN\r") for b in sent(store))  # nothing was pumped


def test_a_refill_asks_the_operator_and_sets_the_syringe_again() -> None:
    result, store = run_steps([RINSE_BATH, ("refill", {"pump": "pump.solvent"}), RINSE_BATH])
    assert result.ok, result.reason
    steps = [s for run in store.runs.values() for s in run["steps"].values()]
    refill = steps[1]["achieved"]
    assert refill["pump"] == "pump.solvent" and refill["syringe_diameter_m"] == 0.01913
    assert refill["refilled_with"] == "THF" and refill["auto"] is True
    acks = [e for e in store.events if e[1] == "operator.ack"]
    assert len(acks) == 1 and "Refill the syringe on pump.solvent with THF" in acks[0][2]["message"]
    tx = sent(store)
    runs = [i for i, b in enumerate(tx) if b == b"02RUN\r"]
    assert len(runs) == 2 and b"02DIA 19.13\r" in tx[runs[0] + 1 : runs[1]]  # set again after the refill
