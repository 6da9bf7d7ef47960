"""A SCPI parser for simulated instruments (IEEE 488.2 / SCPI-99 syntax, the parts instruments use).

Commands are declared with their manual spelling, e.g. `":SOURce[1]:CURRent[:LEVel][:IMMediate]"`: upper-case
letters are the short form, the whole word the long form (nothing in between: `SOURC` is no spelling),
`[...]` an optional node, `[1]` an optional numeric suffix that may only be 1, `<n>` a numeric suffix the
handler reads from `Unit.suffixes` (e.g. `:DELay:USER<n>`). A received message is split on `;` (outside
quotes) into program units; each unit's header matches either form in any case, with or without a leading `:`.

The tree rule (SCPI-99 vol. 1 §6.2.4): a header without a leading `:` that follows another unit of the same
message is resolved relative to the previous unit's path (`:SOUR:CURR:VLIM 3;VLIM?`); common commands
(`*...`, also written `:*CLS`) neither use nor change that path. Where the relative reading names no command
the header is tried from the root, a leniency instruments share and that keeps drivers writing
`...;:SENS:...` and `...;SENS:...` alike working.

Error rules (IEEE 488.2 §6.1.6, SCPI-99 §21.8; codes and texts as the 2450 logs them): a parse error (-100
series: -102 syntax, -103 separator, -104 data type, -108/-109 parameter count, -112 mnemonic too long,
-113 undefined header, -114 suffix out of range, -120 numeric data, -151 string data) or an execution error
(-200 series, raised by handlers as `ScpiError`) ends the message: the units after it are not executed and a
query among them is not answered. Each error goes to `on_error` (the instrument's event log).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

MESSAGES = {
    -100: "Command error",
    -102: "Syntax error",
    -103: "Invalid separator",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -112: "Program mnemonic too long",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -120: "Numeric data error",
    -151: "Invalid string data",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Parameter data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -350: "Queue overflow",
    -363: "Input buffer overrun",
    -410: "Query INTERRUPTED",
}


class ScpiError(Exception):
    """Raised by a handler: the unit is rejected with SCPI error `code`."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or MESSAGES.get(code, "Error"))
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")


class ErrorQueue:
    """The instrument's error/event log: FIFO of `(code, message, type, unix time)`, bounded (2450: 1000).

    When full, the newest entry is replaced by -350 "Queue overflow" (SCPI-99 §21.8.2); later errors are lost.
    """

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._q: deque[tuple[int, str, int, float]] = deque()

    def push(self, code: int, message: str, when: float, type_: int = 1) -> None:
        if len(self._q) >= self.capacity:
            if self._q[-1][0] != -350:
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


# -- IEEE 488.2 status registers --------------------------------------------------------------------------

ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME, ESR_PON = 0x01, 0x04, 0x08, 0x10, 0x20, 0x80
STB_EAV, STB_MAV, STB_ESB, STB_MSS = 0x04, 0x10, 0x20, 0x40


def esr_bit(code: int) -> int:
    """The Standard Event Status bit an error sets (IEEE 488.2 §11.5.1): -1xx command, -2xx execution,
    -3xx and positive (device-specific) device-dependent, -4xx query."""
    if -199 <= code <= -100:
        return ESR_CME
    if -299 <= code <= -200:
        return ESR_EXE
    if -499 <= code <= -400:
        return ESR_QYE
    return ESR_DDE if code else 0


@dataclass
class StatusRegisters:
    """Standard Event Status Register and its enable, Service Request Enable (IEEE 488.2 §11).

    `*STB?` is computed from these and the error queue (EAV, bit 2 as on the 2450) by the instrument.
    """

    esr: int = ESR_PON
    ese: int = 0
    sre: int = 0
    questionable: int = 0
    operation: int = 0
    enables: dict[str, int] = field(default_factory=dict)

    def stb(self, errors: int, message_available: bool = False) -> int:
        value = (STB_EAV if errors else 0) | (STB_MAV if message_available else 0)
        if self.esr & self.ese:
            value |= STB_ESB
        if value & self.sre & ~STB_MSS:
            value |= STB_MSS
        return value

    def read_esr(self) -> int:
        value, self.esr = self.esr, 0
        return value

    def preset(self) -> None:
        """`:STATus:PRESet`: the SCPI enable registers back to their defaults (0 on the 2450)."""
        self.enables.clear()


# -- headers ----------------------------------------------------------------------------------------------

_NODE = re.compile(r"(\[)?:?([A-Za-z*]+(?:\d+[A-Za-z]+)*)(\[\d\]|\d|<n>)?(\])?")  # PK2Pk: digits inside
_HEADER_OK = re.compile(r":?\*?[A-Za-z][A-Za-z0-9_]*(?::[A-Za-z][A-Za-z0-9_]*)*\??")
_SUFFIX = re.compile(r"(?<=[A-Za-z])(\d+)(?=:|$)")
MAX_MNEMONIC = 12  # IEEE 488.2 §7.6.1.4


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
        if suffix == "<n>":
            node += r"(?:\d+)?"
        elif suffix:
            node += "(?:" + suffix.strip("[]") + ")?"
        node = ":" + node
        parts.append(f"(?:{node})?" if optional else node)
        pos = m.end()
    return re.compile("".join(parts) + r"\Z")


class _SyntaxError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(MESSAGES[code])
        self.code = code


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on `sep` except inside '...' or "..." strings (a doubled quote inside one is that quote)."""
    if "'" not in text and '"' not in text:
        return text.split(sep)
    out, cur, quote = [], [], ""
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""  # a doubled quote closes and reopens: the same characters either way
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


def _unterminated(text: str) -> bool:
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
    return bool(quote)


@dataclass
class Unit:
    """One program unit: header as received, normalised path, query flag, raw parameters and the numeric
    suffixes written in the header (`:SOUR:CURR:DEL:USER3?` -> [3])."""

    header: str
    path: str
    query: bool
    params: list[str]
    suffixes: list[int] = field(default_factory=list)


Handler = Callable[[Unit], str | bytes | None]  # bytes: a binary reply (an IEEE 488.2 block)


def _parse_params(rest: str, trailing_empty_ok: bool = False) -> list[str]:
    if not rest.strip():
        return []
    params = [p.strip() for p in split_outside_quotes(rest, ",")]
    if trailing_empty_ok and len(params) > 1 and not params[-1]:
        params.pop()
    for p in params:
        if not p:
            raise _SyntaxError(-109)
        if p[0] not in "'\"" and re.search(r"\s", p):
            raise _SyntaxError(-103)  # two data elements with no comma between them
        if p[0] in "'\"" and _string_end(p) != len(p):
            raise _SyntaxError(-103 if p[_string_end(p)].isspace() else -102)  # text after the string
    return params


def _string_end(p: str) -> int:
    """Index just past the quoted string that starts `p` (a doubled quote inside does not end it)."""
    q, k = p[0], 1
    while k < len(p):
        if p[k] == q:
            if k + 1 < len(p) and p[k + 1] == q:
                k += 2
                continue
            return k + 1
        k += 1
    return len(p)


class ScpiParser:
    """Command table plus message parsing. `execute(line)` returns the reply (units joined by ';') or None;
    the reply is bytes when a handler answered with bytes (binary data), else text."""

    def __init__(self, on_error: Callable[[int, str], None], *, trailing_empty_ok: bool = False) -> None:
        """`trailing_empty_ok`: an empty last parameter (`..., 100, `) counts as left out instead of -109."""
        self.trailing_empty_ok = trailing_empty_ok
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

    def knows(self, header: str) -> bool:
        """Whether `header` (any spelling, '?' for the query) names a command of the table."""
        query = header.endswith("?")
        name = header.rstrip("?").upper()
        return self._lookup(name if name.startswith((":", "*")) else ":" + name, query) is not None

    def _resolve(self, upper: str, query: bool, prefix: str) -> tuple[str, Handler | None]:
        if upper.startswith(":*"):
            upper = upper[1:]
        if upper.startswith("*") or upper.startswith(":"):
            candidates = [upper]
        else:
            candidates = ([prefix + ":" + upper] if prefix else []) + [":" + upper]
        for cand in candidates:
            handler = self._lookup(cand, query)
            if handler is not None:
                return cand, handler
        return candidates[-1], None

    def _undefined_code(self, upper: str, query: bool, prefix: str) -> int:
        """-114 when the header names a command but with a numeric suffix it does not take, else -113."""
        if any(len(node.rstrip("0123456789")) > MAX_MNEMONIC for node in upper.strip(":*").split(":")):
            return -112
        stripped = _SUFFIX.sub("", upper)
        if stripped != upper and self._resolve(stripped, query, prefix)[1] is not None:
            return -114
        return -113

    def execute(self, line: str) -> str | bytes | None:
        replies: list[str | bytes] = []
        prefix = ""
        text = line.strip()
        if _unterminated(text):
            self.on_error(-151, MESSAGES[-151])
            return None
        for raw in split_outside_quotes(text, ";"):
            raw = raw.strip()
            if not raw:
                continue
            parts = raw.split(None, 1)
            header, rest = parts[0], parts[1] if len(parts) > 1 else ""
            if not _HEADER_OK.fullmatch(header):
                self.on_error(-102, MESSAGES[-102])
                break
            query = header.endswith("?")
            upper = (header[:-1] if query else header).upper()
            path, handler = self._resolve(upper, query, prefix)
            if handler is None:
                code = self._undefined_code(upper, query, prefix)
                self.on_error(code, MESSAGES[code])
                break  # the rest of the message is not executed after a command error
            if not path.startswith("*"):
                prefix = path.rsplit(":", 1)[0]
            try:
                params = _parse_params(rest, self.trailing_empty_ok)
            except _SyntaxError as exc:
                self.on_error(exc.code, MESSAGES[exc.code])
                break
            suffixes = [int(s) for s in _SUFFIX.findall(path)]
            try:
                reply = handler(Unit(header, path, query, params, suffixes))
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


_NONDECIMAL = {"#H": 16, "#Q": 8, "#B": 2}


def to_float(text: str) -> float:
    """A numeric program data element: decimal (`1e-3`, `+.5`) or non-decimal (`#H1F`, `#Q17`, `#B101`)."""
    word = text.strip().upper()
    base = _NONDECIMAL.get(word[:2])
    try:
        return float(int(word[2:], base)) if base else float(word)
    except ValueError:
        if word[:1].isalpha():
            raise ScpiError(-104) from None  # character data where a number belongs
        raise ScpiError(-120) from None


def number(text: str, low: float, high: float, default: float | None = None) -> float:
    """A numeric parameter (MINimum/MAXimum/DEFault accepted) checked against [low, high]."""
    word = text.strip().upper()
    if word in ("MIN", "MINIMUM"):
        return low
    if word in ("MAX", "MAXIMUM"):
        return high
    if word in ("DEF", "DEFAULT") and default is not None:
        return default
    value = to_float(word)
    if value != value or not low <= value <= high:
        raise ScpiError(-222)
    return value


def range_value(text: str, ranges: tuple[float, ...], current: float, default: float | None = None) -> float:
    """A measurement/source range: a value (the smallest range that holds it), MIN/MAX/DEF, or UP/DOWN (the
    next range above or below `current`, stopping at the ends)."""
    word = text.strip().upper()
    k = min(range(len(ranges)), key=lambda j: abs(ranges[j] - current))
    if word == "UP":
        return ranges[min(k + 1, len(ranges) - 1)]
    if word == "DOWN":
        return ranges[max(k - 1, 0)]
    value = abs(number(word, -ranges[-1], ranges[-1], ranges[0] if default is None else default))
    return next(r for r in ranges if value <= r * (1 + 1e-9))


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
    """A quoted string parameter ('...' or "..."; a doubled quote inside stands for one)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        q = text[0]
        return text[1:-1].replace(q + q, q)
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


def mnemonics(*long_forms: str) -> dict[str, str]:
    """`mnemonic` over several words, in one mapping for `choice`."""
    out: dict[str, str] = {}
    for word in long_forms:
        out.update(mnemonic(word))
    return out
