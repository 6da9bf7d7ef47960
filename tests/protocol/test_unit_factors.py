"""The unit factors kept between processes (labctl.units `_Factors`, issue 18): a quantity parsed with a
stored factor is bit for bit what pint gives, only conversions pint accepted and that are plain products are
kept, a damaged file is ignored, and a warm cache lets a process parse without importing pint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl import units
from labctl.units import DISPLAY, KINDS, UnitError, fmt, parse

# unit spellings as written in protocol and station files, per kind (the shipped files use most of these)
WRITTEN = {
    "duration": ["s", "min", "h", "ms", "d", "hour", "second"],
    "length": ["mm", "um", "µm", "nm", "cm", "m", "in"],
    "speed": ["mm/s", "um/s", "mm/min", "m/s"],
    "volume": ["mL", "uL", "L", "cm^3", "cm3"],
    "volume_flow": ["mL/min", "uL/s", "mL/h"],
    "concentration": ["M", "mM", "mol/L", "mol/m^3"],
    "temperature": ["degC", "°C", "℃"],
    "current_density": ["mA/cm^2", "mA/cm2", "mA cm-2", "uA/cm^2", "A/m^2", "mA·cm⁻²"],
    "areal_capacity": ["mAh/cm^2", "mAh/cm2", "C/m^2"],
    "current": ["mA", "uA", "A", "nA"],
    "voltage": ["V", "mV", "uV", "kV"],
    "power": ["W", "mW", "kW"],
    "power_rate": ["W/min", "W/s"],
    "pressure": ["Pa", "mTorr", "Torr", "mbar", "kPa", "hPa", "atm", "psi"],
    "gas_flow": ["sccm", "slm"],
    "rotation": ["rpm"],
    "frequency": ["Hz", "kHz", "MHz", "mHz"],
    "area": ["cm^2", "mm^2", "m^2", "cm2"],
    "density": ["g/cm^3", "kg/m^3", "g/mL"],
    "fraction": ["%", "ppm", ""],
}
PAIRS = [(kind, u) for kind, us in WRITTEN.items() for u in us]


@pytest.fixture
def factors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> units._Factors:
    """A fresh factor table in a private cache folder (this process' table is left alone)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    table = units._Factors()
    monkeypatch.setattr(units, "_FACTORS", table)
    return table


def _text(number: float, unit: str) -> str:
    return f"{number!r} {unit}" if unit else repr(number)


def test_every_written_unit_is_learnt_and_gives_pint_value(factors: units._Factors) -> None:
    for kind, unit in PAIRS:
        text = _text(2.5, unit)
        by_pint = units._parse(text, kind)
        assert parse(text, kind) == by_pint  # learnt here
        _, src, _ = units._split(text)
        assert factors.get(src, "" if kind == "fraction" else KINDS[kind].unit) is not None, (kind, unit)
        assert parse(text, kind) == by_pint  # from the factor


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=st.sampled_from(PAIRS),
       number=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
       | st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 0.1, 1 / 3, 1e300, 1.7976931348623157e308]))
def test_a_stored_factor_gives_pint_value_bit_for_bit(factors: units._Factors, pair: tuple[str, str],
                                                       number: float) -> None:
    kind, unit = pair
    parse(_text(1.0, unit), kind)  # learn
    text = _text(number, unit)
    try:
        expected: float | str = units._parse(text, kind)
    except UnitError as exc:
        expected = str(exc)
    try:
        got: float | str = parse(text, kind)
    except UnitError as exc:
        got = str(exc)
    assert repr(got) == repr(expected)  # repr: -0.0 and 0.0 differ


def test_fmt_from_a_factor_is_pint_fmt(factors: units._Factors) -> None:
    values = [0.0, 1e-9, 2.5e-5, 0.123456789, 1.0, 42, 3.6e6, -7.5e-3]
    for kind in DISPLAY:
        for unit in (None, *WRITTEN[kind][:3]):
            display = unit or DISPLAY[kind]
            reg = units._reg()
            try:
                expected = [f"{reg.Quantity(v, KINDS[kind].unit).to(display).magnitude:.4g} {display}"
                            for v in values]
            except Exception:  # fmt takes pint spellings (`cm^2`, not `cm2`); pint refuses the others
                continue
            fmt(1.0, kind, unit)  # learn
            assert factors.get(KINDS[kind].unit, display) is not None
            assert [fmt(v, kind, unit) for v in values] == expected


def test_refusals_and_offset_conversions_are_never_stored(factors: units._Factors) -> None:
    for text, kind in [("5 mm", "duration"), ("5 %", "duration"), ("5", "duration"), ("5 mA", "speed"),
                       ("5 s", "fraction"), ("1e999 s", "duration"), ("5 parsecs/s^3", "speed")]:
        with pytest.raises(UnitError):
            parse(text, kind)
    assert factors.new == {}
    assert parse("77 degF", "temperature") == 25.0
    assert parse("300 K", "temperature") == pytest.approx(26.85)
    assert factors.get("degF", "degC") is None and factors.get("K", "degC") is None
    assert parse("77 degF", "temperature") == 25.0


def test_the_table_is_saved_whole_and_read_back(factors: units._Factors, tmp_path: Path) -> None:
    parse("2 mA/cm^2", "current_density")
    factors.save()
    files = list(tmp_path.rglob("unit-factors-*.json"))
    assert len(files) == 1 and files[0].parent == tmp_path / "labctl"
    assert json.loads(files[0].read_text()) == {"mA/cm^2\tA/m^2": 10.0}
    again = units._Factors()
    assert again.get("mA/cm^2", "A/m^2") == 10.0
    assert [p.name for p in files[0].parent.iterdir() if p.name.startswith(".factors-")] == []


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"mA/cm^2\\tA/m^2": "10"}',
                                     '{"mA/cm^2\\tA/m^2": 0.0}', '{"mA/cm^2\\tA/m^2": 10}'])
def test_a_damaged_table_is_ignored(factors: units._Factors, content: str) -> None:
    path = factors._file()
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    assert factors.get("mA/cm^2", "A/m^2") is None
    assert parse("2 mA/cm^2", "current_density") == 20.0


def test_a_warm_table_parses_without_pint(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    code = ("import sys; from labctl.units import parse, fmt\n"
            "print(parse('2 mA/cm^2', 'current_density'), parse('25 °C', 'temperature'),"
            " fmt(2e-5, 'volume'))\n"
            "print('pint' in sys.modules)\n")
    first, second = (subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    timeout=120) for _ in range(2))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.split("\n")[0] == second.stdout.split("\n")[0] == "20.0 25.0 20 mL"
    assert first.stdout.split("\n")[1] == "True" and second.stdout.split("\n")[1] == "False"
    off = subprocess.run([sys.executable, "-c", code], env={**env, "LABCTL_UNIT_CACHE": "0"},
                         capture_output=True, text=True, timeout=120)
    assert off.stdout.split("\n")[1] == "True"  # caching off: pint every time
