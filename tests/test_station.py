"""Station files: the shipped benches load; every kind of mistake is reported with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import ConfigError
from labctl.station import StationFileError, load_station, parse_station

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
labctl_station: 1
name: test bench
instruments:
  stage: {driver: grbl, port: labsim://stage, limits: {speed: [0 mm/s, 20 mm/s]}}
  pump.stock: {driver: ne1000, port: labsim://pumps, address: 1}
  pump.solvent: {driver: ne1000, port: labsim://pumps, address: 2}
  potentiostat: {driver: keithley2450, visa: "ASRLlabsim://potentiostat::INSTR"}
baths:
  alloy: {x: 50 mm, surface_z: -40 mm, capacity: 50 mL, pumps: [pump.stock, pump.solvent]}
stocks:
  incl3: {pump: pump.stock, salt: InCl3, concentration: 0.5 M, solvent: THF, syringe_diameter: 14.43 mm}
  thf: {pump: pump.solvent, solvent: THF, syringe_diameter: 19.13 mm}
cell: {area: 1.13 cm^2}
"""


@pytest.mark.parametrize("name", ["simulated.yaml", "reference.yaml"])
def test_shipped_stations_load(name: str) -> None:
    station = load_station(ROOT / "stations" / name)
    assert set(station.instruments) == {
        "stage",
        "pump.stock",
        "pump.solvent",
        "hotplate",
        "gauge",
        "mfc",
        "rf",
        "qcm",
        "potentiostat",
        "eis",
    }
    pumps = [station.instruments["pump.stock"], station.instruments["pump.solvent"]]
    assert pumps[0].port == pumps[1].port and {p.address for p in pumps} == {1, 2}
    assert station.cell_area == pytest.approx(1.13e-4)
    assert {"alloy", "solvent", "polymer"} <= set(station.baths)
    assert station.stock_for(salt="incl3").concentration == pytest.approx(500.0)
    assert station.stock_for(salt=None, solvent="THF").pump == "pump.solvent"
    assert station.instruments["stage"].limits["speed"] == (None, pytest.approx(0.02))
    assert station.instruments["hotplate"].limits["temperature"] == (None, 60.0)
    assert station.source_text.startswith("#")


def test_simulated_station_uses_simulator_urls() -> None:
    station = load_station(ROOT / "stations" / "simulated.yaml")
    for spec in station.instruments.values():
        assert (spec.port or "").startswith("labsim://") or (spec.visa or "").startswith("ASRLlabsim://")


def test_good_minimal_station() -> None:
    station = parse_station(GOOD, "s.yaml")
    assert station.instruments["pump.stock"].address == 1
    assert station.baths["alloy"].surface_z == pytest.approx(-0.04)


@pytest.mark.parametrize(
    ("old", "new", "line", "fragment"),
    [
        ("driver: grbl", "driver: grbl9000", 4, "unknown driver `grbl9000`"),
        ("driver: grbl", "driver: ne1000", 4, "serves the `pump` role, not `stage`"),
        (
            "pump.solvent: {driver: ne1000, port: labsim://pumps, address: 2}",
            "pump.solvent: {driver: ne1000, port: labsim://pumps, address: 1}",
            5,
            "each needs its own `address`",
        ),
        ("speed: [0 mm/s, 20 mm/s]", "speed: [0 mm/s, 20 mm]", 4, "limit `speed` must be a speed"),
        ("speed: [0 mm/s, 20 mm/s]", "speed: [30 mm/s, 20 mm/s]", 4, "is above high"),
        (
            'visa: "ASRLlabsim://potentiostat::INSTR"',
            'visa: "ASRL1::INSTR", port: /dev/ttyS0',
            7,
            "exactly one of `port`",
        ),
        ("  stage:", "  stage2:", 4, "unknown role `stage2`"),
        ("incl3: {pump: pump.stock", "incl3: {pump: pump.nope", 11, "no instrument `pump.nope`"),
        ("capacity: 50 mL", "capacity: 50 mm", 9, "`capacity` must be a volume"),
        ("labctl_station: 1", "labctl_station: 2", 1, "labctl_station"),
        ("area: 1.13 cm^2}", "area: 1.13 cm^2, colour: red}", 13, "unknown field `colour`"),
        ("port: labsim://stage", 'port: "labsim://stage\\n*RST"', 4, "control characters"),
        ("port: labsim://stage", 'port: "labsim://stage;OUTP ON"', 4, "without spaces or `;`"),
    ],
)
def test_bad_station(old: str, new: str, line: int, fragment: str) -> None:
    assert old in GOOD
    with pytest.raises(StationFileError) as info:
        parse_station(GOOD.replace(old, new, 1), "s.yaml")
    assert isinstance(info.value, ConfigError)
    hits = [p for p in info.value.problems if fragment in p.message or fragment in p.field]
    assert hits, [str(p) for p in info.value.problems]
    assert hits[0].line == line and hits[0].file == "s.yaml"
    assert f"s.yaml:{line}:" in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(StationFileError, match="cannot read"):
        load_station(tmp_path / "nope.yaml")


def test_duplicate_keys_and_aliases_rejected() -> None:
    text = GOOD + "cell: {area: 2 cm^2}\n"
    with pytest.raises(StationFileError, match="duplicate key `cell`"):
        parse_station(text, "s.yaml")
