"""Every limit in every stations/*.yaml lies within the instrument's physical range, as its driver declares
it: a station may tighten what the instrument can do, never promise more (issue 17.4: 20 mL/min was allowed
on a pump whose 14.43 mm syringe tops out near 8.3 mL/min).

The driver's declared limits are read through `declared_limits` only, so the check follows the limits
wherever a driver keeps them (today: its `LIMITS`). A pump's `rate` also has to fit the pump's own range for
every syringe the station loads on it (the driver's `rate_range(diameter)`, which `labctl plan` uses too)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from labctl.drivers.limits import Limit
from labctl.drivers.registry import driver_class
from labctl.station import InstrumentSpec, Station, load_station

STATION_DIR = Path(__file__).resolve().parents[1] / "stations"
#: every station file, the channels of a cycler rack included (a rack file lists stations; it is not one)
STATIONS = sorted(p for p in STATION_DIR.rglob("*.yaml") if "labctl_rack:" not in p.read_text())


def declared_limits(driver: str) -> dict[str, Limit]:
    """The physical range of every limited quantity of `driver`, as the driver declares it."""
    return dict(driver_class(driver).LIMITS)


def physical_range(station: Station, spec: InstrumentSpec, name: str) -> tuple[float, float, str]:
    """(low, high, why) of limit `name` of `spec` on `station`: the driver's, narrowed by what is loaded."""
    limit = declared_limits(spec.driver)[name]
    low, high, why = limit.low, limit.high, limit.note or f"{spec.driver} {name}"
    rate_range = getattr(driver_class(spec.driver), "rate_range", None)
    if name == "rate" and rate_range is not None:
        for stock_name, stock in station.stocks.items():
            if stock.pump == spec.role:
                s_low, s_high = rate_range(stock.syringe_diameter)
                if s_high < high:
                    mm = stock.syringe_diameter * 1e3
                    high, why = s_high, f"{spec.driver} with the {mm:g} mm syringe of stock `{stock_name}`"
                low = max(low, s_low)
    return low, high, why


def test_every_station_file_is_checked():
    assert {p.name for p in STATIONS} >= {"reference.yaml", "simulated.yaml", "ch1.yaml", "ch8.yaml"}


@pytest.mark.parametrize("path", STATIONS, ids=lambda p: p.name)
def test_station_limits_lie_within_the_instruments_physical_range(path):
    station = load_station(path)
    problems = []
    for role, spec in station.instruments.items():
        known = declared_limits(spec.driver)
        for name, (low, high) in spec.limits.items():
            if name not in known:
                problems.append(f"{path.name}: {role}.limits.{name}: {spec.driver} declares no such limit "
                                f"(it has {', '.join(sorted(known))})")
                continue
            p_low, p_high, why = physical_range(station, spec, name)
            unit = known[name].unit
            for side, value in (("low", low), ("high", high)):
                if value is None:
                    continue
                if not (p_low - 1e-12 * abs(p_low) <= value <= p_high + 1e-12 * abs(p_high)):
                    problems.append(f"{path.name}: {role}.limits.{name} {side} = {value:g} {unit} is outside "
                                    f"[{p_low:g}, {p_high:g}] {unit} ({why})")
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_pump_rate_beyond_its_syringe(tmp_path):
    text = (STATION_DIR / "simulated.yaml").read_text()
    assert "limits: {rate: [null, 8 mL/min]" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("limits: {rate: [null, 8 mL/min]", "limits: {rate: [null, 20 mL/min]", 1))
    with pytest.raises(AssertionError, match=r"pump.stock.limits.rate high = .* 14.43 mm syringe"):
        test_station_limits_lie_within_the_instruments_physical_range(bad)
    assert math.isclose(physical_range(load_station(bad), load_station(bad).instruments["pump.stock"],
                                       "rate")[1] * 6e7, 8.3405, rel_tol=1e-4)
