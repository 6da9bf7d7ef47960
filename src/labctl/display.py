"""Values for people: a stored step value shown in the unit its protocol used, or a sensible display unit.

The store keeps commanded values in labctl's internal units (SI; degC, sccm, rpm: `labctl.units.KINDS`),
which reads as `concentration=100, volume=2e-05`. A run keeps its protocol text and resolved parameters,
so the unit a person wrote (`0.1 M`, `20 mL`, `${concentration}` -> `0.1 M`) is read back from there; a
field left at its default gets a display unit by kind and magnitude (mL, M, mA/cm², nm, °C, h/min/s).
Achieved values are named with their unit as a suffix (`volume_m3`, `temperature_c`, `immersion_time_s`):
the suffix gives the kind, the field of the same name its protocol unit. Machines get SI values with the
unit's name (`{"value": 2e-05, "unit": "m^3"}`). The CLI, the report and (later) the web app share this.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

# key suffix -> (kind, unit the value is in); longest first. `_c` is a temperature only in a temperature key
# (`q_cycle_c` is a charge in coulombs).
SUFFIXES: tuple[tuple[str, str | None, str], ...] = (
    ("_ohm_cm2", None, "ohm*cm^2"),
    ("_m3_s", "volume_flow", "m^3/s"),
    ("_m_s", "speed", "m/s"),
    ("_sccm", "gas_flow", "sccm"),
    ("_ohm", None, "ohm"),
    ("_m3", "volume", "m^3"),
    ("_um", "length", "um"),
    ("_nm", "length", "nm"),
    ("_mv", "voltage", "mV"),
    ("_ma", "current", "mA"),
    ("_hz", "frequency", "Hz"),
    ("_pa", "pressure", "Pa"),
    ("_m", "length", "m"),
    ("_s", "duration", "s"),
    ("_h", "duration", "h"),
    ("_v", "voltage", "V"),
    ("_a", "current", "A"),
    ("_w", "power", "W"),
    ("_c", "temperature", "degC"),
)
# key (without commanded_ and suffix) -> kind, for achieved values named without a unit
NAMED_KINDS = {
    "concentration": "concentration", "stock_concentration": "concentration", "f_start": "frequency",
    "f_end": "frequency", "t_in": "duration", "t_out": "duration", "z_in": "length",
}
PRETTY = {"degC": "°C", "um": "µm", "^2": "²", "^3": "³", "ohm": "Ω", "*": "·"}
_PARAM = re.compile(r"^\s*\$\{([A-Za-z_][A-Za-z0-9_]*)\}\s*$")
_NUMBER = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*(.*?)\s*$")


def pretty(unit: str) -> str:
    """`mA/cm^2` -> `mA/cm²`, `degC` -> `°C` (for display only; pint spellings stay in JSON)."""
    for a, b in PRETTY.items():
        unit = unit.replace(a, b)
    return unit


def number(value: float) -> str:
    """Four significant digits; whole numbers (counts stored as floats) in full."""
    if not math.isfinite(value):
        return f"{value:g}"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _convert(value: float, unit_from: str, unit_to: str) -> float:
    from labctl.units import Q_

    return float(Q_(value, unit_from).to(unit_to).magnitude)


def display_unit(kind: str, value: float) -> str:
    """A unit people read for `value` (internal unit of `kind`): by magnitude for lengths, volumes, currents
    and durations, else `labctl.units.DISPLAY`."""
    from labctl.units import DISPLAY, KINDS

    v = abs(value)
    if kind == "duration":
        return "h" if v >= 7200 else "min" if v >= 120 else "s"
    if kind == "length":
        return "mm" if v >= 1e-3 else "um" if v >= 1e-6 else "nm"
    if kind == "volume":
        return "mL" if v >= 1e-6 or v == 0 else "uL"
    if kind == "current":
        return "mA" if v >= 1e-4 or v == 0 else "uA"
    if kind == "voltage":
        return "V" if v >= 0.1 or v == 0 else "mV"
    if kind == "frequency":
        return "MHz" if v >= 1e6 else "kHz" if v >= 1e3 else "Hz"
    return DISPLAY.get(kind, KINDS[kind].unit)


def show(value: Any, kind: str | None, unit: str | None = None, *, value_unit: str | None = None) -> str:
    """`value` (in `value_unit`, default the kind's internal unit) as text with a unit: in `unit` (as the
    protocol wrote it) if given and convertible, else a display unit. Non-numbers as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    from labctl.units import KINDS

    if kind is None:
        return f"{number(value)} {pretty(value_unit)}" if value_unit else number(value)
    if kind == "fraction":
        return f"{number(value * 100)} %"
    base = KINDS[kind].unit
    si = _convert(float(value), value_unit, base) if value_unit and value_unit != base else float(value)
    if kind == "duration" and not unit and abs(si) < 7200:  # `6 min 22 s`; longer: `215.8 h` (4 digits)
        from labctl.units import human_duration

        return human_duration(si)
    for target in (unit, display_unit(kind, si)):
        if not target:
            continue
        try:
            return f"{number(_convert(si, base, _pint_spelling(target)))} {pretty(target)}"
        except Exception:  # a unit written in a way pint reads only after labctl's normalisation
            continue
    return f"{number(si)} {pretty(base)}"


def _pint_spelling(unit: str) -> str:
    from labctl.units import _normalise_unit

    return _normalise_unit(unit)


def to_json(value: Any, kind: str | None, value_unit: str | None = None) -> Any:
    """`{"value": SI value, "unit": unit name}` for a quantity; anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if kind is None and value_unit is None:
        return value
    if kind is None:
        return {"value": value, "unit": value_unit}
    from labctl.units import KINDS

    base = KINDS[kind].unit
    si = _convert(float(value), value_unit, base) if value_unit and value_unit != base else value
    return {"value": si, "unit": base or "1"}


def split_key(key: str) -> tuple[str, str | None, str | None]:
    """`commanded_volume_m3` -> (`commanded_volume`, kind, unit of the value); else (key, None, None)."""
    low = key.lower()
    for suffix, kind, unit in SUFFIXES:
        if low.endswith(suffix) and len(key) > len(suffix):
            if suffix == "_c" and "temperature" not in low and "band" not in low:
                return key, None, None
            return key[: -len(suffix)], kind, unit
    return key, None, None


# -- where the kinds and the protocol's own units come from -------------------------------------------------


def _kinds_of(annotation: Any, prefix: str, out: dict[str, str]) -> str | None:
    """Walk a field annotation: a `Qty` gives its kind; a nested model adds its fields as `prefix.field`."""
    from pydantic import BaseModel

    from labctl.protocol.fields import quantity_kind

    origin = get_origin(annotation)
    if hasattr(annotation, "__metadata__"):
        kind = quantity_kind(list(annotation.__metadata__))
        if kind:
            return kind
    if origin is Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        for arg in get_args(annotation):
            kind = _kinds_of(arg, prefix, out)
            if kind:
                return kind
        return None
    if origin in (list, tuple):
        for arg in get_args(annotation):
            _kinds_of(arg, prefix + "[]", out)
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        out.update(model_kinds(annotation, prefix + "."))
    return None


def model_kinds(model: Any, prefix: str = "") -> dict[str, str]:
    """Dotted field path -> quantity kind for a pydantic model (nested models and lists of them included)."""
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        kind = None
        if info.metadata:
            from labctl.protocol.fields import quantity_kind

            kind = quantity_kind(info.metadata)
        kind = kind or _kinds_of(info.annotation, prefix + name, out)
        if kind:
            out[prefix + name] = kind
    return out


_STEP_KINDS: dict[str, dict[str, str]] | None = None


def step_field_kinds(step_kind: str) -> dict[str, str]:
    """Field path -> quantity kind for a step kind (empty for an unknown kind)."""
    global _STEP_KINDS
    if _STEP_KINDS is None:
        from labctl.steps.registry import models

        found: dict[str, dict[str, str]] = {}
        for model in models():
            ann = model.model_fields["kind"].annotation
            if get_origin(ann) is Literal:
                found[str(get_args(ann)[0])] = model_kinds(model)
        _STEP_KINDS = found
    return _STEP_KINDS.get(step_kind, {})


def protocol_units(text: str, parameters: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Per step of a protocol text: field path -> the unit its quantity was written in (`${param}` read from
    the run's resolved `parameters`, then the file's own). Unreadable text gives no units (display units)."""
    from labctl.protocol.safeyaml import load

    try:
        data = load(text or "", "protocol").data
    except Exception:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        return []
    own = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    params = {**own, **(parameters or {})}
    out: list[dict[str, str]] = []
    for item in data["steps"]:
        body: Any = {}
        if isinstance(item, dict) and len(item) == 1:
            body = next(iter(item.values()))
        elif isinstance(item, dict):
            body = item
        units: dict[str, str] = {}
        _collect(body if isinstance(body, dict) else {}, "", params, units)
        out.append(units)
    return out


def _collect(d: Any, prefix: str, params: dict[str, Any], out: dict[str, str]) -> None:
    if isinstance(d, dict):
        for k, v in d.items():
            if isinstance(v, dict):
                _collect(v, f"{prefix}{k}.", params, out)
            elif isinstance(v, list):
                for x in v:
                    _collect(x, f"{prefix}{k}[].", params, out)
            else:
                _collect(v, f"{prefix}{k}", params, out)
        return
    if isinstance(d, str):
        m = _PARAM.match(d)
        raw = params.get(m.group(1)) if m else d
        if isinstance(raw, str):
            n = _NUMBER.match(raw)
            if n and n.group(1):
                out.setdefault(prefix, n.group(1))


@dataclass
class StepValues:
    """Shows one step's commanded and achieved values: kinds from the step model, units from the protocol."""

    kind: str
    units: dict[str, str] = field(default_factory=dict)

    def kinds(self) -> dict[str, str]:
        return step_field_kinds(self.kind)

    def _resolve(self, key: str, path: str) -> tuple[str, str | None, str | None, str | None]:
        """(label, kind, unit of the stored value, protocol unit) of `key` at dotted `path`."""
        kinds = self.kinds()
        if path in kinds:
            return key, kinds[path], None, self.units.get(path)
        base, kind, vunit = split_key(key)
        field_name = base.removeprefix("commanded_")
        parent = path[: len(path) - len(key)]
        if kind is None and vunit is None:
            kind = NAMED_KINDS.get(field_name) or kinds.get(parent + field_name)
            return key, kind, None, self.units.get(parent + field_name) if kind else None
        if kinds.get(parent + field_name) != kind:  # `immersion_time_s` is the step's `time`
            field_name = next((f[len(parent):] for f, k in kinds.items() if k == kind and f.startswith(parent)
                               and field_name.endswith("_" + f[len(parent):])), field_name)
        same = kinds.get(parent + field_name) == kind
        return base, kind, vunit, self.units.get(parent + field_name) if same else None

    def text(self, values: dict[str, Any], prefix: str = "") -> str:
        """`key=value unit, ...` with nulls left out; nested mappings in braces."""
        parts = []
        for key, v in values.items():
            if v is None:
                continue
            if isinstance(v, dict):
                parts.append(f"{key}={{{self.text(v, prefix + key + '.')}}}")
                continue
            if isinstance(v, list):  # rate stages, overlayer layers: each item in its own braces
                inner = prefix + key + "[]."
                items = [f"{{{self.text(x, inner)}}}" if isinstance(x, dict) else str(x) for x in v]
                parts.append(f"{key}=[{'; '.join(items)}]")
                continue
            label, kind, vunit, unit = self._resolve(key, prefix + key)
            if isinstance(v, float) and kind is None and vunit is None:
                parts.append(f"{label}={number(v)}")
            else:
                parts.append(f"{label}={show(v, kind, unit, value_unit=vunit)}")
        return ", ".join(parts)

    def texts(self, values: dict[str, Any]) -> dict[str, str]:
        """Flat `key -> "value unit"` for the top-level quantities and scalars (nested values left out)."""
        out = {}
        for key, v in values.items():
            if v is None or isinstance(v, (dict, list)):
                continue
            _, kind, vunit, unit = self._resolve(key, key)
            out[key] = show(v, kind, unit, value_unit=vunit) if kind or vunit else str(v)
        return out

    def json(self, values: Any, prefix: str = "") -> Any:
        """`values` with each quantity as `{"value": SI, "unit": name}` (keys unchanged)."""
        if not isinstance(values, dict):
            return values
        out: dict[str, Any] = {}
        for key, v in values.items():
            if isinstance(v, dict):
                out[key] = self.json(v, prefix + key + ".")
                continue
            if isinstance(v, list):
                out[key] = [self.json(x, prefix + key + "[].") for x in v]
                continue
            _, kind, vunit, _ = self._resolve(key, prefix + key)
            out[key] = to_json(v, kind, vunit)
        return out


def run_steps(run: dict[str, Any]) -> list[StepValues]:
    """A `StepValues` per step of a stored run (its `protocol_text`, `parameters` and `steps`)."""
    units = protocol_units(run.get("protocol_text") or "", run.get("parameters") or {})
    steps = run.get("steps") or []
    return [StepValues(s["kind"], units[s["index"]] if s["index"] < len(units) else {}) for s in steps]


def report_with_units(metrics: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """A run report's metrics with each step's commanded and achieved values as SI values with their unit's
    name (`{"value": 2e-05, "unit": "m^3"}`), as `runs show --json` gives them; `run` is the stored run."""
    indexes = [s["index"] for s in run.get("steps") or []]
    values = dict(zip(indexes, run_steps(run), strict=True))
    for entry in metrics.get("steps", []):
        v = values.get(entry.get("index"))
        if v is not None:
            entry["commanded"], entry["achieved"] = v.json(entry["commanded"]), v.json(entry["achieved"])
    return metrics
