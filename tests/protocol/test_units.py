"""Unit parsing: the spellings people type, dimensions, and safe strings."""

from __future__ import annotations

import pytest

from labctl.units import UnitError, parse


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("1 mA/cm^2", "current_density", 10.0),
        ("1 mA cm-2", "current_density", 10.0),
        ("1 mA cm^-2", "current_density", 10.0),
        ("1 mA·cm⁻²", "current_density", 10.0),
        ("1 mAh/cm^2", "areal_capacity", 36000.0),
        ("1 mAh cm-2", "areal_capacity", 36000.0),
        ("25 °C", "temperature", 25.0),
        ("25 degC", "temperature", 25.0),
        ("298.15 K", "temperature", 25.0),
        ("0.1 M", "concentration", 100.0),
        ("100 mM", "concentration", 100.0),
        ("0.1 mol/L", "concentration", 100.0),
        ("20 sccm", "gas_flow", 20.0),
        ("0.02 slm", "gas_flow", 20.0),
        ("7.5 mTorr", "pressure", 0.999918),
        ("1 Torr", "pressure", 133.322),
        ("300 rpm", "rotation", 300.0),
        ("60 s", "duration", 60.0),
        ("5 min", "duration", 300.0),
        ("2 h", "duration", 7200.0),
        ("150 nm", "length", 1.5e-7),
        ("10 µm", "length", 1e-5),
        ("20 mL", "volume", 2e-5),
        ("1 MHz", "frequency", 1e6),
        ("10 mV", "voltage", 0.01),
        ("5 %", "fraction", 0.05),
        ("10 ppm", "fraction", 1e-5),
        ("1.13 cm^2", "area", 1.13e-4),
        ("1.13 cm2", "area", 1.13e-4),
        ("4 W/min", "power_rate", 4 / 60),
        ("2.64 g/cm^3", "density", 2640.0),
        ("5 mm/s", "speed", 0.005),
    ],
)
def test_spellings(text: str, kind: str, value: float) -> None:
    assert parse(text, kind) == pytest.approx(value, rel=1e-5)


@pytest.mark.parametrize(
    ("text", "kind", "fragment"),
    [
        ("5 mm", "duration", "must be a duration, got `5 mm`"),
        ("60", "duration", "with a unit"),
        ("1 mA", "current_density", "must be a current density"),
        ("1 mAh", "areal_capacity", "must be an areal capacity"),
        ("20 mL/min", "gas_flow", "must be a gas flow"),
        ("5 %", "length", "must be a length"),
        ("1 m", "fraction", "dimensionless"),
        ("nan s", "duration", "number followed by a unit"),
        ("inf s", "duration", "number followed by a unit"),
        ("1e999 s", "duration", "finite"),
        ("3 furlongz", "duration", "unknown unit"),
        ("5 s\n*RST", "duration", "control characters"),
        ("s 5", "duration", "number followed by a unit"),
        ("1 s" + " " * 200, "duration", "at most 100"),
        ("1 (((s", "duration", "unit"),
    ],
)
def test_rejections(text: str, kind: str, fragment: str) -> None:
    with pytest.raises(UnitError, match=None) as info:
        parse(text, kind)
    assert fragment in str(info.value)


def test_true_is_not_a_quantity() -> None:
    with pytest.raises(UnitError):
        parse(True, "duration")
