"""Quantities with units: one pint registry for the whole process, and parsing of the strings people type.

`parse(text, kind)` turns `"2 mA/cm^2"`, `"2 mA cm-2"`, `"25 °C"`, `"0.1 M"`, `"10 sccm"`, `"5 mTorr"` into a
float in labctl's internal unit for that kind (SI, except degC, sccm and rpm), and raises `UnitError` with a
plain sentence ("must be a duration, got `5 mm`") otherwise.

Start-up (issue 18): importing pint and building its `UnitRegistry` costs ~0.2 s, more than the rest of
`labctl validate`. So the registry (`ureg`, `Q_`, and `pint` itself, attributes of this module) is built on
first use, from a cache of pint's parsed definitions (`_cached_registry`); and the conversion factors pint
worked out are kept beside that cache (`_Factors`), so that a later process parsing `2 mA/cm^2` multiplies by
the factor pint gave, with the same float result, without importing pint. Only what pint accepted is kept
(a refusal always goes through pint, with its message), only multiplicative conversions (an offset unit such
as degF goes through pint each time), and the file is keyed by pint's version and labctl's own definitions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pint

#: labctl's units beyond pint's defaults (part of the factor cache's key)
DEFINITIONS = (
    "Torr = torr",
    "mAh = milliampere * hour",
    "Ah = ampere * hour",
    # gas flow in standard cubic centimetres per minute: a molar flow (ideal gas at 0 °C, 1 atm:
    # 22414 cm^3/mol)
    "sccm = 1 / 22413.97 * mol / minute",
    "slm = 1000 * sccm",
)
_REGISTRY_OPTIONS = {"autoconvert_offset_to_baseunit": True}


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


def _cache_base() -> Path | None:
    """The user cache folder of labctl, None when caching is off (LABCTL_UNIT_CACHE=0)."""
    if os.environ.get("LABCTL_UNIT_CACHE", "1") == "0":
        return None
    import platformdirs

    return platformdirs.user_cache_path("labctl", appauthor=False)


def _cached_registry(pint: Any) -> pint.UnitRegistry:
    """The registry, with pint's parsed definitions cached under the user cache dir (building it parses ~1000
    definitions: ~0.3 s of every command's start-up; loading the cache ~0.05 s).

    pint writes its cache files in place, so a process killed mid-write, or two starting at once, could leave
    a half-written pickle that every later start trips on. So the cache is filled in a private directory and
    renamed into place whole (`pint-<version>`: a new pint never writes into an old folder); a cache that
    fails to load is set aside and the registry built without it. LABCTL_UNIT_CACHE=0 disables the cache."""
    import shutil
    import tempfile

    kw = _REGISTRY_OPTIONS
    base = _cache_base()
    if base is None:
        return pint.UnitRegistry(**kw)
    try:
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


_LOCK = threading.Lock()


def _load() -> None:
    """Import pint and build the registry once per process (any thread may be first)."""
    with _LOCK:
        if "ureg" in globals():
            return
        mod = _import_pint()
        registry = _cached_registry(mod)
        for definition in DEFINITIONS:
            registry.define(definition)
        globals().update(pint=mod, Q_=registry.Quantity, ureg=registry)


def __getattr__(name: str) -> Any:
    """`ureg`, `Q_` and `pint`, loaded on first use."""
    if name in ("ureg", "Q_", "pint"):
        _load()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _reg() -> Any:
    if "ureg" not in globals():
        _load()
    return globals()["ureg"]


def _pint() -> Any:
    if "pint" not in globals():
        _load()
    return globals()["pint"]


class _Factors:
    """Conversion factors pint computed, `(from, to) -> factor`, kept in the user cache folder (beside pint's
    `pint-<version>`) for later processes. pint converts between multiplicative units as
    `magnitude * factor`, so multiplying by the stored factor gives bit for bit what pint would
    (`tests/protocol/test_unit_factors.py`). A file that does not load is ignored; new factors are merged
    into it at exit and renamed into place whole."""

    MAX = 4096  # entries: keys come from what people type; a file past this starts over

    def __init__(self) -> None:
        self.known: dict[str, float] | None = None
        self.new: dict[str, float] = {}
        self.path: Path | None = None

    def _file(self) -> Path | None:
        from importlib.metadata import PackageNotFoundError, version

        base = _cache_base()
        if base is None:
            return None
        try:
            pint_version = version("pint")
        except PackageNotFoundError:
            return None
        digest = hashlib.sha256(repr((DEFINITIONS, sorted(_REGISTRY_OPTIONS.items()))).encode()).hexdigest()
        return base / f"unit-factors-{pint_version}-{digest[:16]}.json"

    def _read(self) -> dict[str, float]:
        if self.known is None:
            try:
                self.path = self._file()
            except Exception:  # no cache folder to be had (platformdirs, HOME): run without the factors
                self.path = None
            self.known = _read_factors(self.path)
        return self.known

    @staticmethod
    def key(src: str, dst: str) -> str:
        return f"{src}\t{dst}"  # a tab never reaches a unit (quantity() refuses control characters)

    def get(self, src: str, dst: str) -> float | None:
        return self._read().get(self.key(src, dst))

    def learn(self, src: str, dst: str) -> None:
        """Keep pint's factor from `src` to `dst` (a conversion pint just made) when it is a plain product."""
        try:
            reg = _reg()
            a, b = (reg.Unit(u) if u else reg.dimensionless for u in (src, dst))
            same = a == b
            if not same and (reg._validate_and_extract(a._units) or reg._validate_and_extract(b._units)):
                return  # an offset unit (degF -> degC): pint does more than multiply
            factor = float(reg.Quantity(1.0, a).to(b).magnitude)  # 1.0 * factor: exactly pint's factor
        except Exception:  # anything unexpected from pint: simply not cached
            return
        if math.isfinite(factor) and factor != 0.0:
            known = self._read()
            if not self.new and self.path is not None:
                import atexit

                atexit.register(self.save)
            self.new[self.key(src, dst)] = known[self.key(src, dst)] = factor

    def save(self) -> None:
        """Merge what this process learnt into the file (whole: written aside, renamed into place)."""
        if not self.new or self.path is None:
            return
        import tempfile

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            merged = _read_factors(self.path)  # another process may have added some since we read it
            if len(merged) + len(self.new) > self.MAX:
                merged = {}
            merged.update(self.new)
            fd, tmp = tempfile.mkstemp(prefix=".factors-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(merged, fh)
            os.replace(tmp, self.path)
            self.new = {}
        except OSError:
            pass


def _read_factors(path: Path | None) -> dict[str, float]:
    """The factors in `path`; nothing from a missing, unreadable or malformed file, and no entry that is
    not a finite non-zero float under a text key."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if type(v) is float and math.isfinite(v) and v != 0.0}


_FACTORS = _Factors()


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
        return _reg().Quantity(float(text), "")
    number, unit_text, written = _split(text)
    ureg, pint = _reg(), _pint()
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
        raise UnitError(f"unknown unit `{written}` in `{text}`") from exc
    except Exception as exc:  # pint's parser raises assorted errors on odd input; never let one escape
        raise UnitError(f"cannot read the unit `{written}` in `{text}`") from exc
    return ureg.Quantity(number, unit)


def _split(text: str) -> tuple[float, str, str]:
    """The number, the normalised unit and the unit as written in a quantity string, with every refusal that
    needs no pint."""
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
    return number, _normalise_unit(match.group(2)), match.group(2)


def parse(text: object, kind: str) -> float:
    """Value of `text` in the internal unit of `kind` (see `KINDS`); `UnitError` if it is not that kind."""
    spec = KINDS[kind]
    dst = "" if kind == "fraction" else spec.unit
    if isinstance(text, str):  # a unit pint converted before: its factor, without pint (module docstring)
        number, unit_text, _ = _split(text)
        factor = _FACTORS.get(unit_text, dst)
        if factor is not None:
            value = number * factor
            if kind != "fraction" and not math.isfinite(value):
                raise UnitError(f"must be a finite number, got `{text}`")
            return _tidy(value)
    value = _parse(text, kind)
    if isinstance(text, str):
        _FACTORS.learn(unit_text, dst)
    return value


def _parse(text: object, kind: str) -> float:
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
    except _pint().errors.DimensionalityError as exc:
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
    ureg = _reg()
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
    factor = _FACTORS.get(KINDS[kind].unit, display)
    if factor is not None:
        return f"{value * factor:.4g} {display}"
    q = _reg().Quantity(value, KINDS[kind].unit).to(display)
    _FACTORS.learn(KINDS[kind].unit, display)
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
