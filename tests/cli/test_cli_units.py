"""Units for people (issue 15 item 7): `runs show`, reports and export metadata print each commanded and
achieved value in the unit its protocol used (or a display unit), always with the unit; `--json` carries SI
values with the unit's name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import record_run

from labctl.display import StepValues, protocol_units, run_steps, show, split_key
from labctl.store import Store

PROTOCOL = """labctl: 1
name: Li-In bath and cycling
parameters: {concentration: 0.1 M}
steps:
  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: "${concentration}", volume: 20 mL,
                   temperature: 25 degC}
  - cycle_symmetric: {current_density: 1 mA/cm^2, capacity: 1 mAh/cm^2, cycles: 10, voltage_limit: 500 mV}
"""
STEPS = [
    {"index": 0, "kind": "prepare_bath",
     "params": {"bath": "alloy", "concentration": 100.0, "volume": 2e-05, "temperature": 25.0,
                "rate": 8.3333e-08}},
    {"index": 1, "kind": "cycle_symmetric",
     "params": {"current_density": 10.0, "capacity": 36000.0, "cycles": 10, "voltage_limit": 0.5}},
]


@pytest.mark.parametrize(
    ("value", "kind", "unit", "text"),
    [
        (2e-05, "volume", None, "20 mL"),
        (100.0, "concentration", "M", "0.1 M"),
        (100.0, "concentration", None, "0.1 M"),
        (10.0, "current_density", None, "1 mA/cm²"),
        (10.0, "current_density", "mA cm-2", "1 mA cm-2"),
        (25.0, "temperature", None, "25 °C"),
        (9.0e-8, "length", None, "90 nm"),
        (0.012, "length", "mm", "12 mm"),
        (382.0, "duration", None, "6 min 22 s"),
        (776810.0, "duration", None, "215.8 h"),
        (60.0, "duration", "min", "1 min"),
        (0.05, "fraction", None, "5 %"),
        (2e5, "frequency", None, "200 kHz"),
    ],
)
def test_show(value: float, kind: str, unit: str | None, text: str) -> None:
    assert show(value, kind, unit) == text


def test_suffixes_name_the_kind() -> None:
    assert split_key("commanded_volume_m3") == ("commanded_volume", "volume", "m^3")
    assert split_key("temperature_c") == ("temperature", "temperature", "degC")
    assert split_key("q_cycle_c") == ("q_cycle_c", None, None)  # a charge, not a temperature
    assert split_key("points") == ("points", None, None)


def test_units_come_from_the_protocol_text_and_parameters() -> None:
    units = protocol_units(PROTOCOL, {"concentration": "100 mM"})
    assert units[0] == {"concentration": "mM", "volume": "mL", "temperature": "degC"}
    assert units[1]["current_density"] == "mA/cm^2" and units[1]["voltage_limit"] == "mV"
    v = StepValues("prepare_bath", units[0])
    assert v.text({"concentration": 100.0, "commanded_volume_m3": 2e-05, "temperature_c": 24.6}) == (
        "concentration=100 mM, commanded_volume=20 mL, temperature=24.6 °C"
    )
    assert v.json({"volume": 2e-05, "volume_m3": 2e-05, "bath": "alloy"}) == {
        "volume": {"value": 2e-05, "unit": "m^3"}, "volume_m3": {"value": 2e-05, "unit": "m^3"},
        "bath": "alloy",
    }


@pytest.fixture
def units_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'labctl.db'}"
    store = Store.open(url)
    try:
        rid = record_run(store, protocol_text=PROTOCOL, parameters={"concentration": "0.1 M"}, steps=STEPS,
                         state="running")
        sid = store.start_step(rid, 0)
        store.finish_step(sid, "done", achieved={"volume_m3": 2.01e-05, "temperature_c": 24.6,
                                                  "concentration": 99.5}, summary={"duration_s": 382.0})
        sid = store.start_step(rid, 1)
        t = np.arange(0.0, 5.0)
        with store.measurement_writer(rid, sid, "cycling") as w:
            w.append(t=t, voltage=0.01 * t, current=1e-3, cycle=np.floor(t / 4), half_cycle=np.floor(t / 2))
        store.finish_step(sid, "done", achieved={"current_a": 0.00113, "voltage_limit_v": 0.5})
        store.set_run_state(rid, "completed", reason="all steps done")
        store.flush()
    finally:
        store.close()
    return url


def test_runs_show_prints_values_in_the_protocols_units(labctl, units_db: str) -> None:
    r = labctl("runs", "show", "1", "--db", units_db, columns=200)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "commanded: bath=alloy, concentration=0.1 M, volume=20 mL, temperature=25 °C, rate=5 mL/min" in out
    assert "achieved:  volume=20.1 mL, temperature=24.6 °C, concentration=0.0995 M" in out
    assert "summary:   duration=6 min 22 s" in out
    assert "current_density=1 mA/cm², capacity=1 mAh/cm², cycles=10, voltage_limit=500 mV" in out
    assert "achieved:  current=1.13 mA, voltage_limit=500 mV" in out
    assert "=100," not in out and "2e-05" not in out


def test_runs_show_json_carries_si_values_with_units(labctl, units_db: str) -> None:
    r = labctl("runs", "show", "1", "--db", units_db, "--json")
    steps = json.loads(r.stdout)["steps"]
    assert steps[0]["params"]["volume"] == {"value": 2e-05, "unit": "m^3"}
    assert steps[0]["params"]["concentration"] == {"value": 100.0, "unit": "mol/m^3"}
    assert steps[0]["achieved"]["temperature_c"] == {"value": 24.6, "unit": "degC"}
    assert steps[1]["params"]["cycles"] == 10


def test_export_metadata_and_report_tables_have_units(labctl, units_db: str, tmp_path: Path) -> None:
    out = tmp_path / "c.csv"
    r = labctl("runs", "export", "1", "--db", units_db, "-o", str(out))
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "c.csv.meta.json").read_text())
    assert meta["steps"][0]["commanded"]["volume"] == "20 mL"
    assert meta["steps"][0]["commanded_si"]["volume"] == {"value": 2e-05, "unit": "m^3"}
    assert meta["steps"][1]["achieved"]["current_a"] == "1.13 mA"
    assert meta["run"]["protocol_name"] == "Li-In alloy" and meta["run"]["state"] == "completed"

    from labctl.analysis import report

    store = Store.open(units_db)
    try:
        data = report.load_run(store, 1)
    finally:
        store.close()
    md = report.summary_markdown(data, report.metrics(data))
    assert "concentration=0.1 M, volume=20 mL, temperature=25 °C" in md
    assert [v.kind for v in run_steps(data.run)] == ["prepare_bath", "cycle_symmetric"]


def test_lists_of_values_keep_their_units() -> None:
    units = protocol_units(
        "labctl: 1\nname: r\nsteps:\n  - rate_test: {stages: [{current_density: 0.5 mA/cm^2, cycles: 5}],"
        " capacity: 1 mAh/cm^2}\n"
    )
    v = StepValues("rate_test", units[0])
    stages = [{"current_density": 5.0, "cycles": 5}, {"current_density": 10.0, "cycles": 5}]
    assert v.text({"stages": stages}) == (
        "stages=[{current_density=0.5 mA/cm², cycles=5}; {current_density=1 mA/cm², cycles=5}]"
    )
    assert v.json({"stages": stages})["stages"][1]["current_density"] == {"value": 10.0, "unit": "A/m^2"}
    layers = StepValues("immerse").text({"overlayer": {"layers": [{"kind": "li_in", "thickness_um": 0.9}]}})
    assert layers == "overlayer={layers=[{kind=li_in, thickness=900 nm}]}"


def test_report_json_carries_si_values_with_units(labctl, units_db: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    r = labctl("runs", "report", "1", "--db", units_db, "-o", str(tmp_path / "rep"), "--json")
    assert r.returncode == 0, r.stderr
    steps = json.loads(r.stdout)["steps"]
    assert steps[0]["commanded"]["volume"] == {"value": 2e-05, "unit": "m^3"}
    assert steps[1]["achieved"]["current_a"] == {"value": 0.00113, "unit": "A"}
    assert "volume=20 mL" in (tmp_path / "rep" / "summary.html").read_text()
