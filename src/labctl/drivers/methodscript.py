"""PalmSens MethodSCRIPT text: number literals for scripts, data-package variables, error lines.

Facts: `reference/instruments.md` §1.2 (PalmSens MethodSCRIPT_Examples `palmsens/mscript.py`, README
"Parsing the response"). A package variable is a 2-character type id, 7 hex digits holding value + 2^27 and
one SI-prefix character (`i` = plain integer); `     nan` is NaN; metadata follow after commas (`1X` status
bits, `2XX` range).
Script literals are integers with an optional SI prefix (`10m`, `200k`, `-500m`) or an `i` suffix (`11i`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

PREFIXES: dict[str, float] = {
    "a": 1e-18,
    "f": 1e-15,
    "p": 1e-12,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    " ": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}
#: the decimal exponent of each prefix, to scale text exactly
EXPONENTS: dict[str, int] = {p: round(math.log10(v)) for p, v in PREFIXES.items()}
OFFSET = 1 << 27
STATUS_BITS = {1: "timing error", 2: "overload", 4: "underload", 8: "overload warning"}
ERROR = re.compile(rb".*!([0-9A-Fa-f]{4})(:.*)?\n?$", re.DOTALL)
#: type ids used by labctl
TYPES = {
    "da": "applied potential",
    "db": "applied current",
    "ab": "WE potential",
    "ba": "WE current",
    "dc": "applied frequency",
    "cc": "Z real",
    "cd": "Z imaginary",
    "eb": "time",
}


def literal(value: float) -> str:
    """A script literal: integer mantissa (6 significant digits) with the largest exact SI prefix."""
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} in a MethodSCRIPT script")
    if value == 0:
        return "0"
    value = float(f"{value:.6g}")
    for prefix, scale in sorted(PREFIXES.items(), key=lambda kv: -kv[1]):
        mantissa = value / scale
        if abs(mantissa) >= 1 and abs(mantissa - round(mantissa)) <= 1e-9 * abs(mantissa):
            return f"{round(mantissa)}{prefix.strip()}"
    raise ValueError(f"{value!r} is too small for a MethodSCRIPT literal")


def parse_literal(text: str) -> float:
    """Inverse of `literal` (also `1.5m` decimals and `11i` integers). ValueError if it is not a number.

    Scaled by decimal exponent, not by multiplying floats, so `10u` is exactly the double nearest 1e-5
    (10 * 1e-6 is one ulp below it, and would fail a range check at the limit).
    """
    m = re.fullmatch(r"([+-]?\d+)i|([+-]?\d+(?:\.\d+)?)([afpnumkMGTPE]?)", text)
    if m is None:
        raise ValueError(f"not a MethodSCRIPT number: {text!r}")
    if m.group(1) is not None:
        return float(int(m.group(1)))
    return float(f"{m.group(2)}e{EXPONENTS[m.group(3) or ' ']}")


def encode_value(type_id: str, value: float, meta: str = "") -> str:
    """One package variable: type id, 7 hex digits + SI prefix (the smallest prefix that fits), metadata."""
    if math.isnan(value):
        body = "     nan"
    else:
        for prefix, scale in sorted(PREFIXES.items(), key=lambda kv: kv[1]):
            n = round(value / scale)
            if -OFFSET <= n < OFFSET:
                body = f"{n + OFFSET:07X}{prefix}"
                break
        else:
            raise ValueError(f"{value!r} does not fit a MethodSCRIPT variable")
    return type_id + body + (f",{meta}" if meta else "")


@dataclass
class Variable:
    type_id: str
    value: float
    status: int = 0
    range_index: int | None = None
    meta: list[str] = field(default_factory=list)

    @property
    def status_text(self) -> str:
        return ", ".join(t for bit, t in STATUS_BITS.items() if self.status & bit) or "ok"


def decode_variable(text: str) -> Variable:
    """`ba48D503Dp,10,288` -> Variable('ba', 2.8e-09 ...). ValueError if it does not parse."""
    head, *meta = text.split(",")
    if len(head) != 10:
        raise ValueError(f"bad package variable {text!r}")
    type_id, body = head[:2], head[2:]
    if body == "     nan":
        value = math.nan
    else:
        digits, prefix = body[:7], body[7]
        if prefix == "i":
            value = float(int(digits, 16) - OFFSET)
        elif prefix in PREFIXES:
            value = float(f"{int(digits, 16) - OFFSET}e{EXPONENTS[prefix]}")
        else:
            raise ValueError(f"bad SI prefix {prefix!r} in {text!r}")
    var = Variable(type_id, value, meta=meta)
    for item in meta:
        if item[:1] == "1" and len(item) >= 2:
            var.status = int(item[1:], 16)
        elif item[:1] == "2" and len(item) >= 3:
            var.range_index = int(item[1:], 16)
    return var


def decode_package(line: str) -> list[Variable]:
    """A data package line `P...;...` (terminator optional) -> its variables."""
    line = line.rstrip("\n")
    if not line.startswith("P") or len(line) < 11:
        raise ValueError(f"not a data package: {line!r}")
    return [decode_variable(part) for part in line[1:].split(";")]


def error_code(line: bytes) -> int | None:
    """The 4-hex-digit code of an error line (`!0006`, `Z!0006`, `!2003: Line 4, Col 2`), else None."""
    m = ERROR.match(line)
    return int(m.group(1), 16) if m else None
