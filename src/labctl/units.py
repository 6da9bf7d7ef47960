"""Quantities with units: one pint registry for the whole process, and parsing of the strings people type.

`parse(text, kind)` turns `"2 mA/cm^2"`, `"2 mA cm-2"`, `"25 °C"`, `"0.1 M"`, `"10 sccm"`, `"5 mTorr"` into a
float in labctl's internal unit for that kind (SI, except degC, sccm and rpm), and raises `UnitError` with a
plain sentence ("must be a duration, got `5 mm`") otherwise. Building a `UnitRegistry` is slow, so there is
exactly one, `ureg`, built at import from a cache of pint's parsed definitions (`_cached_registry`).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass


def _import_pint():  # type: ignore[no-untyped-def]
    """pint, without its optional integrations labctl never uses: at import pint probes dask, uncertainties
    and babel, and where they are installed (a notebook environment) importing them costs ~0.4 s of every
    command's start-up. They stay importable for anything else once pint is in."""
    optional = [name for name in ("dask", "uncertainties", "babel") if name not in sys.modules]
    for name in optional:
        sys.modules[name] = None  # type: ignore[assignment]  # import -> ImportError, find_spec -> None
    try:
        import pint
    finally:
        for name in optional:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
    return pint


pint = _import_pint()


def _cached_registry() -> pint.UnitRegistry:
    """The registry, with pint's parsed definitions cached under the user cache dir (building it parses ~1000
    definitions: ~0.3 s of every command's start-up; loading the cache ~0.05 s).

    pint writes its cache files in place, so a process killed mid-write, or two starting at once, could leave
    a half-written pickle that every later start trips on. So the cache is filled in a private directory and
    renamed into place whole (`pint-<version>`: a new pint never writes into an old folder); a cache that
    fails to load is set aside and the registry built without it. LABCTL_UNIT_CACHE=0 disables the cache."""
    import os
    import shutil
    import tempfile

    kw = {"autoconvert_offset_to_baseunit": True}
    if os.environ.get("LABCTL_UNIT_CACHE", "1") == "0":
        return pint.UnitRegistry(**kw)
    try:
        import platformdirs

        base = platformdirs.user_cache_path("labctl", appauthor=False)
        final = base / f"pint-{pint.__version__}"
        if final.is_dir():
            try:
                return pint.UnitRegistry(cache_folder=final, **kw)
            except Exception:  # a damaged cache: set it aside, fill a new one below
                shutil.rmtree(final, ignore_errors=True)
        base.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".pint-", dir=base)
        registry = pint.UnitRegistry(cache_folder=tmp, **kw)
        try:
            os.rename(tmp, final)  # atomic; fails if another process got there first (theirs is as good)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        return registry
    except OSError:  # no writable cache dir: build it every time
        return pint.UnitRegistry(**kw)


ureg = _cached_registry()
ureg.define("Torr = torr")
ureg.define("mAh = milliampere * hour")
ureg.define("Ah = ampere * hour")
# gas flow in standard cubic centimetres per minute: a molar flow (ideal gas at 0 °C, 1 atm: 22414 cm^3/mol)
ureg.define("sccm = 1 / 22413.97 * mol / minute")
ureg.define("slm = 1000 * sccm")
Q_ = ureg.Quantity


class UnitError(ValueError):
    """A quantity string that does not parse or has the wrong dimension (message is a plain sentence)."""


@dataclass(frozen=True)
class Kind:
    """One kind of quantity: its name in messages, the unit values are held in, and an example."""

    name: str
    noun: str  # "a duration"
    unit: str  # internal unit (pint spelling)
    example: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind("duration", "a duration", "s", "60 s"),
        Kind("length", "a length", "m", "12 mm"),
        Kind("speed", "a speed", "m/s", "5 mm/s"),
        Kind("volume", "a volume", "m^3", "20 mL"),
        Kind("volume_flow", "a volume flow rate", "m^3/s", "5 mL/min"),
        Kind("concentration", "a concentration", "mol/m^3", "0.1 M"),
        Kind("temperature", "a temperature", "degC", "25 degC"),
        Kind("current_density", "a current density", "A/m^2", "1 mA/cm^2"),
        Kind("areal_capacity", "an areal capacity", "C/m^2", "1 mAh/cm^2"),
        Kind("current", "a current", "A", "1 mA"),
        Kind("voltage", "a voltage", "V", "10 mV"),
        Kind("power", "a power", "W", "60 W"),
        Kind("power_rate", "a power ramp rate", "W/s", "5 W/min"),
        Kind("pressure", "a pressure", "Pa", "5 mTorr"),
        Kind("gas_flow", "a gas flow", "sccm", "20 sccm"),
        Kind("rotation", "a rotation speed", "rpm", "300 rpm"),
        Kind("frequency", "a frequency", "Hz", "1 kHz"),
        Kind("area", "an area", "m^2", "1.13 cm^2"),
        Kind("density", "a density", "kg/m^3", "2.64 g/cm^3"),
        Kind("fraction", "a dimensionless fraction", "", "5 %"),
    ]
}

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")
_EXPONENT = re.compile(r"(?<=[A-Za-zµ])(-?\d+)(?![\d.])")  # cm-2 -> cm^-2, cm2 -> cm^2
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _normalise_unit(text: str) -> str:
    text = text.replace("°C", "degC").replace("℃", "degC").replace("°F", "degF").replace("°", "deg")
    text = text.replace("µ", "u").replace("μ", "u").replace("·", "*").replace("²", "2").replace("³", "3")
    text = text.replace("⁻", "-").replace("−", "-")
    text = text.replace("**", "^").replace("^-", "\x00").replace("^", "")  # re-added uniformly below
    text = text.replace("\x00", "-")
    # exponents written without a caret, only after a unit name (not inside "^-2")
    return _EXPONENT.sub(lambda m: "^" + m.group(1), text)


def quantity(text: object) -> pint.Quantity:
    """Parse a quantity string (number then unit). Bare numbers are dimensionless."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise UnitError(f"expected a quantity with a unit such as `60 s`, got {_show(text)}")
    if isinstance(text, (int, float)):
        if not math.isfinite(text):
            raise UnitError(f"must be a finite number, got `{text}`")
        return Q_(float(text), "")
    if _CONTROL.search(text):
        raise UnitError("a quantity must not contain control characters")
    if len(text) > 100:
        raise UnitError("a quantity must be at most 100 characters long")
    match = _NUMBER.match(text)
    if not match:
        raise UnitError(f"expected a number followed by a unit such as `60 s`, got `{text}`")
    number = float(match.group(1))
    if not math.isfinite(number):
        raise UnitError(f"must be a finite number, got `{text}`")
    unit_text = _normalise_unit(match.group(2))
    try:
        unit = ureg.Unit(unit_text) if unit_text else ureg.dimensionless
    except (
        pint.errors.UndefinedUnitError,
        pint.errors.DefinitionSyntaxError,
        AttributeError,
        TypeError,
        ValueError,
        KeyError,
        AssertionError,
    ) as exc:
        raise UnitError(f"unknown unit `{match.group(2)}` in `{text}`") from exc
    except Exception as exc:  # pint's parser raises assorted errors on odd input; never let one escape
        raise UnitError(f"cannot read the unit `{match.group(2)}` in `{text}`") from exc
    return Q_(number, unit)


def parse(text: object, kind: str) -> float:
    """Value of `text` in the internal unit of `kind` (see `KINDS`); `UnitError` if it is not that kind."""
    spec = KINDS[kind]
    q = quantity(text)
    if kind == "fraction":
        if not q.dimensionless:
            raise UnitError(f"must be {spec.noun}, got `{text}` (e.g. `{spec.example}`)")
        return _tidy(float(q.to("").magnitude))
    if q.dimensionless and not q.unitless and not isinstance(text, (int, float)):
        raise UnitError(f"must be {spec.noun}, got `{text}` (e.g. `{spec.example}`)")
    if q.unitless:
        raise UnitError(f"must be {spec.noun} with a unit, got `{text}` (e.g. `{spec.example}`)")
    try:
        value = float(q.to(spec.unit).magnitude)
    except pint.errors.DimensionalityError as exc:
        raise UnitError(f"must be {spec.noun}, got `{text}` (e.g. `{spec.example}`)") from exc
    if not math.isfinite(value):
        raise UnitError(f"must be a finite number, got `{text}`")
    return _tidy(value)


def _tidy(value: float) -> float:
    """Drop conversion noise (1.0000000000000003e-05 -> 1e-05): 12 significant digits are plenty."""
    return float(f"{value:.12g}")


def to_si(text: object) -> float:
    """Value in SI base units (temperatures in degC), whatever the dimension; for station limit tables."""
    q = quantity(text)
    if q.units in (ureg.degC, ureg.kelvin, ureg.degF):
        return float(q.to("degC").magnitude)
    if q.check("[substance]/[time]"):
        return float(q.to("sccm").magnitude)
    if q.check("1/[time]") and str(q.units) in ("revolutions_per_minute",):
        return float(q.magnitude)
    return _tidy(float(q.to_base_units().magnitude))


def fmt(value: float, kind: str, unit: str | None = None) -> str:
    """Human form of an internal value, in `unit` (pint spelling) or a sensible default for the kind."""
    display = unit or DISPLAY.get(kind, KINDS[kind].unit)
    if kind == "fraction":
        return f"{value * 100:.3g} %"
    q = Q_(value, KINDS[kind].unit).to(display)
    return f"{q.magnitude:.4g} {display}"


DISPLAY: dict[str, str] = {
    "duration": "s",
    "length": "mm",
    "speed": "mm/s",
    "volume": "mL",
    "volume_flow": "mL/min",
    "concentration": "M",
    "temperature": "degC",
    "current_density": "mA/cm^2",
    "areal_capacity": "mAh/cm^2",
    "current": "mA",
    "voltage": "V",
    "power": "W",
    "power_rate": "W/min",
    "pressure": "Pa",
    "gas_flow": "sccm",
    "rotation": "rpm",
    "frequency": "Hz",
    "area": "cm^2",
    "density": "g/cm^3",
}


def _show(value: object) -> str:
    text = repr(value)
    return f"`{text[:40]}`"


def human_duration(seconds: float) -> str:
    """`3 h 20 min`, `45 s`, `41 d 16 h`."""
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{s} s"
    minutes, sec = divmod(s, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {sec} s" if sec else f"{minutes} min"
