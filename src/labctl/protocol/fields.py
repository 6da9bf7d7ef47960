"""Field types shared by protocol and station models: quantities with units, safe names and text.

A quantity field is written as a string with a unit (`"60 s"`) and held as a float in labctl's internal unit
(`labctl.units.KINDS`). Strings that can reach an instrument (names, ids, gases, salts) are restricted to
printable characters without `;`, quotes or line breaks, so they can never smuggle a command or terminator.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema

from labctl.units import KINDS, UnitError, parse

PARAM_REF = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, str_strip_whitespace=True)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _quantity_validator(kind: str) -> Any:
    def check(value: Any, info: ValidationInfo) -> float:
        name = info.field_name or "value"
        if isinstance(value, bool):
            raise ValueError(f"`{name}` must be {KINDS[kind].noun}, got `{value}`")
        try:
            return parse(value, kind)
        except UnitError as exc:
            raise ValueError(f"`{name}` {exc}") from None

    return check


def Qty(kind: str, description: str = "") -> Any:
    """A quantity of `kind` (see `labctl.units.KINDS`), parsed from a string, held as a float."""
    spec = KINDS[kind]
    schema = {
        "type": "string",
        "description": (description + " " if description else "")
        + f"{spec.noun} with a unit, e.g. `{spec.example}`",
        "examples": [spec.example],
    }
    return Annotated[float, BeforeValidator(_quantity_validator(kind)), WithJsonSchema(schema)]


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
