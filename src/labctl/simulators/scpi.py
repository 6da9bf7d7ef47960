"""A small SCPI parser for simulated instruments (IEEE 488.2 / SCPI-99 syntax, the parts instruments use).

Commands are declared with their manual spelling, e.g. `":SOURce[1]:CURRent[:LEVel][:IMMediate]"`: upper-case
letters are the short form, the whole word the long form, `[...]` an optional node, a trailing digit in
brackets an optional numeric suffix. A received line is split on `;` (outside quotes) into program units; each
unit's header matches either form in any case, with or without a leading `:`. A header without a leading `:`
that follows another unit on the same line is first resolved relative to the previous unit's path (the SCPI
tree rule), then from the root. Parameters are split on `,` outside quotes.

Errors go to an `ErrorQueue`; a handler raises `ScpiError(code)` to report one.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MESSAGES = {
    -100: "Command error",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -221: "Settings conflict",
    -222: "Parameter data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -350: "Queue overflow",
    -410: "Query INTERRUPTED",
}


class ScpiError(Exception):
    """Raised by a handler: the unit is rejected with SCPI error `code`."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or MESSAGES.get(code, "Error"))
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")


class ErrorQueue:
    """The instrument's error/event log: FIFO of `(code, message, type, unix time)`, bounded (2450: 1000)."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._q: deque[tuple[int, str, int, float]] = deque()

    def push(self, code: int, message: str, when: float, type_: int = 1) -> None:
        if len(self._q) >= self.capacity:
            self._q.pop()
            self._q.append((-350, MESSAGES[-350], 1, when))
            return
        self._q.append((code, message, type_, when))

    def pop(self) -> tuple[int, str, int, float] | None:
        return self._q.popleft() if self._q else None

    def clear(self) -> None:
        self._q.clear()

    def __len__(self) -> int:
        return len(self._q)


_NODE = re.compile(r"(\[)?:?([A-Za-z*]+)(\[\d\]|\d)?(\])?")


def compile_header(spec: str) -> re.Pattern[str]:
    """Regex matching every accepted spelling of `spec` (normalised: upper case, leading ':')."""
    spec = spec.strip()
    if spec.startswith("*"):
        return re.compile(re.escape(spec.upper()) + r"\Z")
    parts: list[str] = []
    pos = 0
    while pos < len(spec):
        m = _NODE.match(spec, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"bad SCPI spec {spec!r} at {pos}")
        optional, word, suffix, _ = m.groups()
        short = "".join(c for c in word if c.isupper() or not c.isalpha())
        long_ = word.upper()
        alts = sorted({short, long_}, key=len, reverse=True)
        node = "(?:" + "|".join(re.escape(a) for a in alts) + ")"
        if suffix:
            node += "(?:" + suffix.strip("[]") + ")?"
        node = ":" + node
        parts.append(f"(?:{node})?" if optional else node)
        pos = m.end()
    return re.compile("".join(parts) + r"\Z")


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on `sep` except inside '...' or "..." strings."""
    if "'" not in text and '"' not in text:
        return text.split(sep)
    out, cur, quote = [], [], ""
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


@dataclass
class Unit:
    """One program unit: header as received, normalised path, query flag and raw parameters."""

    header: str
    path: str
    query: bool
    params: list[str]


Handler = Callable[[Unit], str | bytes | None]  # bytes: a binary reply (an IEEE 488.2 block)


class ScpiParser:
    """Command table plus line parsing. `execute(line)` returns the reply (units joined by ';') or None; the
    reply is bytes when a handler answered with bytes (binary data), else text."""

    def __init__(self, on_error: Callable[[int, str], None]) -> None:
        self._commands: list[tuple[re.Pattern[str], bool, Handler]] = []
        self._cache: dict[tuple[str, bool], Handler | None] = {}
        self.on_error = on_error

    def add(self, spec: str, handler: Handler, *, query: bool = False) -> None:
        self._commands.append((compile_header(spec), query, handler))
        self._cache.clear()

    def _lookup(self, path: str, query: bool) -> Handler | None:
        key = (path, query)
        if key in self._cache:
            return self._cache[key]
        found = next(
            (h for pattern, is_query, h in self._commands if is_query == query and pattern.match(path)), None
        )
        if len(self._cache) < 4096:
            self._cache[key] = found
        return found

    def execute(self, line: str) -> str | bytes | None:
        replies: list[str | bytes] = []
        prefix = ""
        for raw in split_outside_quotes(line.strip(), ";"):
            raw = raw.strip()
            if not raw:
                continue
            header, _, rest = raw.partition(" ")
            header = header.strip()
            query = header.endswith("?")
            name = header[:-1] if query else header
            params = [p.strip() for p in split_outside_quotes(rest, ",")] if rest.strip() else []
            upper = name.upper()
            candidates: list[str] = []
            if upper.startswith("*") or upper.startswith(":"):
                candidates = [upper]
            else:
                if prefix:
                    candidates.append(prefix + ":" + upper)
                candidates.append(":" + upper)
            handler = None
            path = candidates[-1]
            for cand in candidates:
                handler = self._lookup(cand, query)
                if handler is not None:
                    path = cand
                    break
            if handler is None:
                self.on_error(-113, MESSAGES[-113])
                break  # the rest of the line is not executed after a command error
            if not upper.startswith("*"):
                prefix = path.rsplit(":", 1)[0]
            if any(p == "" for p in params):
                self.on_error(-109, MESSAGES[-109])
                break
            try:
                reply = handler(Unit(header, path, query, params))
            except ScpiError as exc:
                self.on_error(exc.code, exc.message)
                break
            if reply is not None:
                replies.append(reply)
        if not replies:
            return None
        if any(isinstance(r, bytes) for r in replies):
            return b";".join(r if isinstance(r, bytes) else r.encode("ascii") for r in replies)
        return ";".join(replies)  # type: ignore[arg-type]


# -- parameter helpers (raise ScpiError as the instrument would) -------------------------------------------


def need(unit: Unit, n: int, most: int | None = None) -> list[str]:
    """The unit's parameters, checking there are at least `n` and at most `most` (default n)."""
    most = n if most is None else most
    if len(unit.params) < n:
        raise ScpiError(-109)
    if len(unit.params) > most:
        raise ScpiError(-108)
    return unit.params


def number(text: str, low: float, high: float, default: float | None = None) -> float:
    """A numeric parameter (MINimum/MAXimum/DEFault accepted) checked against [low, high]."""
    word = text.strip().upper()
    if word in ("MIN", "MINIMUM"):
        return low
    if word in ("MAX", "MAXIMUM"):
        return high
    if word in ("DEF", "DEFAULT") and default is not None:
        return default
    try:
        value = float(word)
    except ValueError:
        raise ScpiError(-104) from None
    if value != value or not low <= value <= high:
        raise ScpiError(-222)
    return value


def boolean(text: str) -> bool:
    word = text.strip().upper()
    if word in ("1", "ON"):
        return True
    if word in ("0", "OFF"):
        return False
    try:
        return round(float(word)) != 0
    except ValueError:
        raise ScpiError(-104) from None


def string(text: str) -> str:
    """A quoted string parameter ('...' or "...")."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    raise ScpiError(-104)


def choice(text: str, options: dict[str, str]) -> str:
    """A character-data parameter: `options` maps every accepted spelling (upper case) to its value."""
    word = text.strip().upper()
    if word not in options:
        raise ScpiError(-224)
    return options[word]


def mnemonic(long_form: str) -> dict[str, str]:
    """Both spellings of a SCPI mnemonic like `HIMPedance` -> {"HIMP": "HIMP", "HIMPEDANCE": "HIMP"}."""
    short = "".join(c for c in long_form if c.isupper() or c.isdigit())
    return {short: short, long_form.upper(): short}
