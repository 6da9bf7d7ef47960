"""Field types shared by protocol and station models: quantities with units, safe names and text.

A quantity field is written as a string with a unit (`"60 s"`) and held as a float in labctl's internal
unit (`labctl.units.KINDS`); the kind stays on the validator (`quantity_kind`) so output can show units.
Text for people (names, labels, messages) is any printable Unicode on one line; control characters, line
breaks and bidi overrides are refused naming the character's code point, name and column. Ids stay ASCII.

A quantity's constraint is declared once, in its type (`Positive("speed")`, `NonNegative("duration")`,
`Qty("fraction", gt=0, le=10)`): the validator refuses a value outside it naming the field, the JSON Schema
carries it, and `quantity_fields` lets tests reach every quantity of every model.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema

from labctl.units import KINDS, UnitError, fmt, parse

PARAM_REF = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, str_strip_whitespace=True)

_RESOURCE = re.compile(r"[A-Za-z0-9_./:@?&=,+\-\[\]]{1,200}")


def _resource_validator(value: Any, info: ValidationInfo) -> str:
    """A port or resource: printable ASCII without spaces or `;`, checked whole."""
    name, what = info.field_name or "value", "a port or resource name without spaces or `;`"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"`{name}` must be {what}")
    text = str(value)
    why = refused_char(text)
    if why:
        raise ValueError(f"`{name}` {why}")
    if len(text) > 200:
        raise ValueError(f"`{name}` must be at most 200 characters long")
    if not _RESOURCE.fullmatch(text.strip()):
        raise ValueError(f"`{name}` must be {what}, got `{text[:60]}`")
    return text.strip()


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

    check.quantity_kind = spec.kind  # type: ignore[attr-defined]
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



def quantity_kind(metadata: list[Any]) -> str | None:
    """The `labctl.units.KINDS` name of a `Qty` field, from its pydantic metadata (None if not a quantity)."""
    for m in metadata:
        if isinstance(m, QtySpec):
            return m.kind
        kind = getattr(getattr(m, "func", None), "quantity_kind", None)
        if kind:
            return str(kind)
    return None

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


_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))  # embeddings, overrides, isolates
_CONTROL_NAMES = {0x00: "NULL", 0x09: "CHARACTER TABULATION", 0x0A: "LINE FEED", 0x0B: "LINE TABULATION",
                  0x0C: "FORM FEED", 0x0D: "CARRIAGE RETURN", 0x1B: "ESCAPE", 0x7F: "DELETE",
                  0x85: "NEXT LINE"}


def describe_char(ch: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`: how an error names a character (control characters have no name)."""
    name = unicodedata.name(ch, "") or _CONTROL_NAMES.get(ord(ch), "control character")
    return f"U+{ord(ch):04X} {name}"


def refused_char(text: str) -> str | None:
    """Why `text` cannot be shown to people as it is, naming the first bad character and its column (1-based,
    in the value), or None. Refused: control characters and line breaks (they cut a line or a terminator),
    bidi embeddings/overrides/isolates (they reorder what a reader sees), other invisible format characters,
    unassigned and private-use code points. Any other Unicode is fine: "Li–In", "β-PVDF", "Li₃N", "25 °C"."""
    for col, ch in enumerate(text, 1):
        cat = unicodedata.category(ch)
        where = f"{describe_char(ch)} at column {col} of the value"
        if cat == "Cc" or cat in ("Zl", "Zp"):
            return f"must not contain control characters or line breaks: {where}"
        if ord(ch) in _BIDI:
            return f"must not contain bidi overrides: {where}"
        if cat == "Cf":
            return f"must not contain invisible format characters: {where}"
        if cat in ("Cn", "Co", "Cs"):
            return f"must not contain unassigned or private-use characters: {where}"
    return None


def _chem_char(ch: str) -> bool:
    return ch.isalnum() or ch in " ()[]._,+/-–−·%:"


def _name_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in "._+-")


def _check(
    value: Any, field: str, what: str, max_len: int, allowed: Any = None, first: Any = None
) -> str:
    """The value as text, stripped, or ValueError naming `field`, the problem and the character."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"`{field}` must be {what}")
    text = str(value)
    why = refused_char(text)
    if why:
        raise ValueError(f"`{field}` {why}")
    stripped = text.strip()
    if len(stripped) > max_len:
        raise ValueError(f"`{field}` must be at most {max_len} characters long")
    if not stripped:
        raise ValueError(f"`{field}` must be {what}, got an empty value")
    offset = len(text) - len(text.lstrip())
    if first is not None and not first(stripped[0]):
        raise ValueError(f"`{field}` must be {what}: {describe_char(stripped[0])} cannot start it")
    if allowed is not None:
        for col, ch in enumerate(stripped, offset + 1):
            if not allowed(ch):
                raise ValueError(f"`{field}` must be {what}: {describe_char(ch)} at column {col} of the value"
                                 " is not allowed")
    return stripped


@dataclass(frozen=True)
class _TextRule:
    what: str
    max_len: int
    allowed: Any = None
    first: Any = None


TEXT_RULES: dict[str, _TextRule] = {
    "name": _TextRule("a name of letters, digits and `._+-` (no spaces, at most 64)", 64, _name_char,
                      lambda ch: _name_char(ch) and ch.isalnum()),
    "label": _TextRule("printable text on one line", 100),
    "chem": _TextRule("a chemical name such as `InCl3`, `THF` or `β-PVDF`", 40, _chem_char, str.isalnum),
    "text": _TextRule("text", 2000),
}


def check_text(kind: str, value: Any, field: str) -> str:
    """Check `value` as a field of `kind` (name, label, chem, text) by the protocol file's rules, for CLI
    options such as `--sample` and `--operator`. Returns the stripped text; ValueError says what and where."""
    rule = TEXT_RULES[kind]
    return _check(value, field, rule.what, rule.max_len, rule.allowed, rule.first)


def _text_validator(kind: str) -> Any:
    def check(value: Any, info: ValidationInfo) -> str:
        return check_text(kind, value, info.field_name or "value")

    return check


#: identifier for ids and keys (sample id, bath, station entries): ASCII letters, digits, `._+-`, no spaces.
#: No protocol string is sent to an instrument as it is (gases go to the MFC by number, baths become stage
#: coordinates), but ids name files and rows and are typed at a terminal, so they stay plain.
Name = Annotated[
    str,
    BeforeValidator(_text_validator("name")),
    WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"}),
]
#: short human label (protocol name, substrate, note): any printable Unicode on one line ("Li–In", "°C").
Label = Annotated[
    str,
    BeforeValidator(_text_validator("label")),
    WithJsonSchema({"type": "string", "maxLength": 100}),
]
#: chemical / gas / material name (InCl3, THF, Ar, Li₃N, β-PVDF, 2-MeTHF): letters of any script, digits,
#: spaces and `()[]._,+/-–·%:`; no `;` or quotes.
Chem = Annotated[
    str,
    BeforeValidator(_text_validator("chem")),
    WithJsonSchema({"type": "string", "maxLength": 40}),
]
#: free text shown to people only (operator messages, override reasons): one line of printable Unicode.
Text = Annotated[
    str,
    BeforeValidator(_text_validator("text")),
    WithJsonSchema({"type": "string", "maxLength": 2000}),
]
#: resource string (serial URL, device path, VISA resource): printable ASCII, no spaces or `;`.
Resource = Annotated[str, BeforeValidator(_resource_validator), WithJsonSchema({"type": "string"})]

_INT_SCHEMA = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": f"^{PARAM_REF}$"}]}
_BOOL_SCHEMA = {"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": f"^{PARAM_REF}$"}]}


def Count(ge: int = 0, le: int | None = None) -> Any:
    """A whole number (cycles, points per decade); `${param}` allowed in the file."""
    schema = dict(_INT_SCHEMA)
    return Annotated[int, Field(ge=ge, le=le), WithJsonSchema(schema)]


Flag = Annotated[bool, WithJsonSchema(_BOOL_SCHEMA)]
