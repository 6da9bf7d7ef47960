"""Field types shared by protocol and station models: quantities with units, safe names and text.

A quantity field is written as a string with a unit (`"60 s"`) and held as a float in labctl's internal unit
(`labctl.units.KINDS`). Strings that can reach an instrument (names, ids, gases, salts) are restricted to
printable characters without `;`, quotes or line breaks, so they can never smuggle a command or terminator.

A quantity's constraint is declared once, in its type (`Positive("speed")`, `NonNegative("duration")`,
`Qty("fraction", gt=0, le=10)`): the validator refuses a value outside it naming the field, the JSON Schema
carries it, and `quantity_fields` lets tests reach every quantity of every model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema

from labctl.units import KINDS, UnitError, fmt, parse

PARAM_REF = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, str_strip_whitespace=True)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


ABSOLUTE_ZERO_C = -273.15  # the lowest temperature there is (degC, labctl's temperature unit)


@dataclass(frozen=True)
class QtySpec:
    """The declared constraint of a quantity field: its kind and the bounds its value must keep, in the
    kind's internal unit. Kept in the field's metadata, so the schema, the messages and the tests (every
    quantity field, see `quantity_fields`) read the one declaration."""

    kind: str
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def violation(self, value: float) -> str | None:
        """Why `value` breaks the constraint (a phrase: "must be greater than 0 mm"), or None."""
        for bound, broken, words in (
            (self.gt, lambda b: value <= b, "greater than"),
            (self.ge, lambda b: value < b, "at least"),
            (self.lt, lambda b: value >= b, "less than"),
            (self.le, lambda b: value > b, "at most"),
        ):
            if bound is not None and broken(bound):
                return f"must be {words} {self.show(bound)}"
        return None

    def show(self, bound: float) -> str:
        if self.kind == "temperature" and bound == ABSOLUTE_ZERO_C:
            return "absolute zero (-273.15 degC)"
        if self.kind == "fraction":
            return f"{bound:g} ({bound * 100:g} %)"
        return fmt(bound, self.kind)

    def schema(self) -> dict[str, Any]:
        """JSON Schema keywords of the bounds (in the internal unit, `x-unit`) and a sentence for people."""
        out: dict[str, Any] = {}
        words = []
        for key, bound, word in (
            ("exclusiveMinimum", self.gt, "> "),
            ("minimum", self.ge, ">= "),
            ("exclusiveMaximum", self.lt, "< "),
            ("maximum", self.le, "<= "),
        ):
            if bound is not None:
                out[key] = bound
                words.append(word + self.show(bound))
        if out:
            out["x-unit"] = KINDS[self.kind].unit or "1"
            out["x-constraint"] = ", ".join(words)
        return out


def _quantity_validator(spec: QtySpec) -> Any:
    def check(value: Any, info: ValidationInfo) -> float:
        name = info.field_name or "value"
        if isinstance(value, bool):
            raise ValueError(f"`{name}` must be {KINDS[spec.kind].noun}, got `{value}`")
        try:
            number = parse(value, spec.kind)
        except UnitError as exc:
            raise ValueError(f"`{name}` {exc}") from None
        why = spec.violation(number)
        if why is not None:
            raise ValueError(f"`{name}` {why}, got `{str(value)[:50]}`")
        return number

    return check


def Qty(
    kind: str,
    description: str = "",
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> Any:
    """A quantity of `kind` (see `labctl.units.KINDS`), parsed from a string, held as a float, and kept
    within the declared bounds (internal unit). Temperatures can never go below absolute zero, whatever the
    call says; fractions lie in [0, 1] unless the call declares other bounds (a tooling factor may be > 1)."""
    if kind == "temperature":
        ge = ABSOLUTE_ZERO_C if ge is None else max(ge, ABSOLUTE_ZERO_C)
    if kind == "fraction":
        ge = 0.0 if ge is None and gt is None else ge  # a fraction is never negative ...
        le = 1.0 if le is None and lt is None else le  # ... nor above 1 unless declared (a tooling factor)
    spec = QtySpec(kind, gt, ge, lt, le)
    unit = KINDS[kind]
    bounds = spec.schema()
    schema = {
        "type": "string",
        "description": (description + " " if description else "")
        + f"{unit.noun} with a unit, e.g. `{unit.example}`"
        + (f" ({bounds['x-constraint']})" if bounds else ""),
        "examples": [unit.example],
        **bounds,
    }
    return Annotated[float, spec, BeforeValidator(_quantity_validator(spec)), WithJsonSchema(schema)]


def Positive(kind: str, description: str = "") -> Any:
    """A quantity that must be greater than zero (a speed, a rate, a volume, an area, a sampling period)."""
    return Qty(kind, description, gt=0.0)


def NonNegative(kind: str, description: str = "") -> Any:
    """A quantity that may be zero but not negative (a rest, a settle time, a dwell)."""
    return Qty(kind, description, ge=0.0)


def qty_spec(field: Any) -> QtySpec | None:
    """The `QtySpec` of a pydantic `FieldInfo` (through `| None`), or None if it is not a quantity."""
    for meta in getattr(field, "metadata", ()):
        if isinstance(meta, QtySpec):
            return meta
    for arg in get_args(getattr(field, "annotation", None)):
        for meta in getattr(arg, "__metadata__", ()):
            if isinstance(meta, QtySpec):
                return meta
    return None


def quantity_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, QtySpec]]:
    """(dotted path, spec) of every quantity field of `model` and of the models nested in it."""
    for name, info in model.model_fields.items():
        spec = qty_spec(info)
        if spec is not None:
            yield prefix + name, spec
            continue
        for sub in _models_in(info.annotation):
            yield from quantity_fields(sub, f"{prefix}{name}.")


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from _models_in(arg)


def _text_validator(pattern: re.Pattern[str] | None, what: str, max_len: int) -> Any:
    def check(value: Any, info: ValidationInfo) -> str:
        name = info.field_name or "value"
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"`{name}` must be {what}")
        text = str(value)
        if _CONTROL.search(text):
            raise ValueError(f"`{name}` must not contain control characters or line breaks")
        if len(text) > max_len:
            raise ValueError(f"`{name}` must be at most {max_len} characters long")
        if pattern is not None and not pattern.fullmatch(text.strip()):
            raise ValueError(f"`{name}` must be {what}, got `{text[:60]}`")
        return text.strip()

    return check


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_LABEL = re.compile(r"[A-Za-z0-9µ][A-Za-z0-9 ()\[\]._,+/%µ|:=-]{0,99}")
_CHEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ()._,+/-]{0,39}")

#: identifier for ids and names that may reach an instrument: letters, digits, `._+-`, no spaces.
Name = Annotated[
    str,
    BeforeValidator(
        _text_validator(_NAME, "a name of letters, digits and `._+-` (no spaces, at most 64)", 64)
    ),
    WithJsonSchema({"type": "string", "pattern": f"^{_NAME.pattern}$"}),
]
#: short human label (protocol name, substrate): printable, no `;`, quotes or line breaks.
Label = Annotated[
    str,
    BeforeValidator(_text_validator(_LABEL, "printable text without `;`, quotes or line breaks", 100)),
    WithJsonSchema({"type": "string", "maxLength": 100}),
]
#: chemical / gas / material name (InCl3, THF, Ar, LiF, 2-MeTHF): no `;`, quotes or line breaks.
Chem = Annotated[
    str,
    BeforeValidator(_text_validator(_CHEM, "a chemical name such as `InCl3` or `THF`", 40)),
    WithJsonSchema({"type": "string", "pattern": f"^{_CHEM.pattern}$"}),
]
#: free text shown to people only (operator messages, override reasons): no control characters.
Text = Annotated[
    str,
    BeforeValidator(_text_validator(None, "text", 2000)),
    WithJsonSchema({"type": "string", "maxLength": 2000}),
]
#: resource string (serial URL, device path, VISA resource): printable, no spaces or `;`.
Resource = Annotated[
    str,
    BeforeValidator(
        _text_validator(
            re.compile(r"[A-Za-z0-9_./:@?&=,+\-\[\]]{1,200}"),
            "a port or resource name without spaces or `;`",
            200,
        )
    ),
    WithJsonSchema({"type": "string"}),
]

_INT_SCHEMA = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": f"^{PARAM_REF}$"}]}
_BOOL_SCHEMA = {"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": f"^{PARAM_REF}$"}]}


def Count(ge: int = 0, le: int | None = None) -> Any:
    """A whole number (cycles, points per decade); `${param}` allowed in the file."""
    schema = dict(_INT_SCHEMA)
    return Annotated[int, Field(ge=ge, le=le), WithJsonSchema(schema)]


Flag = Annotated[bool, WithJsonSchema(_BOOL_SCHEMA)]
