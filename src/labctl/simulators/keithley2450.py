"""Simulated Keithley 2450 SourceMeter in native SCPI mode, byte for byte, on the run's clock.

Facts from `reference/instruments.md` §1.1 (commands, `*LANG?`, error-log format, trigger-model states). LF
terminates every message and reply. Commands are parsed by `simulators.scpi` (short/long forms, any case,
optional leading `:`, `;` compound lines, quoted strings, optional numeric suffixes). Errors go to the event
log as the 2461 manual shows: `-113,"Undefined header;1;2026/11/25 08:00:00.000"`.

What the core computes, and the choices where the sources are silent:
- the trigger model runs in simulated time: `:INIT` records the start; any later query fills the buffer with
  the points due by now (times start + k * delay, k = 0.. while k * delay < duration), voltages from ONE
  vectorised `world.cell_voltage(t, i)` call per fill, with strictly increasing times (a reading at the
  instant of the previous one is taken 1 ns later); a reading takes no time, so the period is the delay;
- with the output off the cell is open: V = `world.cell_ocv(t)`, I = 0;
- compliance: a |V| beyond the voltage limit is clamped to it and latches `:SOUR:CURR:VLIM:TRIP?` = 1 until
  the next `:INIT`, a new level, or the output changes; the SOURce element is the source readback (on by
  default): the programmed level, or in compliance the current that flowed at the limit (the world's
  `cell_current_at_limit` if it has one, else the ohmic share level·V_limit/|V|);
- `RELative` is the time since the buffer's first reading; buffers keep their last `capacity` readings;
- `*LANG SCPI|TSP|SCPI2400` takes effect at the next power cycle, as on the instrument;
- stuck busy: the trigger model never finishes (`:TRIG:STAT?` stays RUNNING, the buffer stops filling);
- data format (2450-901-01 Rev B p. 6-30 `:FORMat[:DATA]`, 2461-901-01 p. 6-45 `:FORMat:BORDer`, p. 6-160
  `:TRACe:DATA?`): `ASCii` (default), `REAL` (IEEE 754 float64) or `SREal` (float32), byte order `NORMal`
  (big-endian) or `SWAPped` (little-endian, the default); both reset by `*RST` and a power cycle. It applies
  to `:READ?`, `:MEASure?`, `:FETCh?` and `:TRACe:DATA?` only: a binary reply is `#0`, the values, LF (the
  manual's indefinite-length block); in a binary format only READing, RELative and SOURce may be asked (EXTRa
  is not modelled), another element logs 1133 "Parameter <n>, Syntax error, expected valid name
  parameters." (n: its position among the command's parameters). Queries answer the short form (`ASC`,
  `REAL`, `SRE`; `NORM`, `SWAP`): the manual gives no example, SCPI's rule is the short form.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from labctl.clock import Clock
from labctl.simulators.core import DeviceCore
from labctl.simulators.scpi import (
    ErrorQueue,
    ScpiError,
    ScpiParser,
    Unit,
    boolean,
    choice,
    need,
    number,
    string,
)
from labctl.simulators.world import SimpleWorld

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04096218,1.7.12b"
DEFAULT_BUFFERS = ("defbuffer1", "defbuffer2")
DEFAULT_CAPACITY = 100_000
MAX_CAPACITY = 4_000_000
ELEMENTS = {
    "READ": "READ",
    "READING": "READ",
    "SOUR": "SOUR",
    "SOURCE": "SOUR",
    "REL": "REL",
    "RELATIVE": "REL",
    "SEC": "SEC",
    "SECONDS": "SEC",
}
FMT = "%.9e"
DATA_FORMATS = {"ASC": "ASC", "ASCII": "ASC", "REAL": "REAL", "SRE": "SRE", "SREAL": "SRE"}
BINARY_TYPES = {"REAL": "f8", "SRE": "f4"}
BYTE_ORDERS = {"NORM": "NORM", "NORMAL": "NORM", "SWAP": "SWAP", "SWAPPED": "SWAP"}
BINARY_ELEMENTS = ("READ", "REL", "SOUR")
EPS = 1e-9  # s


@dataclass
class Buffer:
    """A reading buffer: arrays of absolute time (core clock), voltage, source level."""

    capacity: int
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    v: np.ndarray = field(default_factory=lambda: np.zeros(0))
    i: np.ndarray = field(default_factory=lambda: np.zeros(0))
    t_first: float | None = None

    def add(self, t: np.ndarray, v: np.ndarray, i: np.ndarray) -> None:
        if self.t_first is None and len(t):
            self.t_first = float(t[0])
        self.t = np.concatenate((self.t, t))[-self.capacity :]
        self.v = np.concatenate((self.v, v))[-self.capacity :]
        self.i = np.concatenate((self.i, i))[-self.capacity :]

    def clear(self) -> None:
        self.t = self.v = self.i = np.zeros(0)
        self.t_first = None


@dataclass
class Loop:
    """A loaded DurationLoop / SimpleLoop."""

    kind: str
    duration: float  # s (DurationLoop) or count * delay (SimpleLoop)
    delay: float
    buffer: str
    count: int | None = None


class Keithley2450Sim(DeviceCore):
    """One 2450 with its reading buffers, trigger model and event log."""

    TERMINATORS = (b"\n",)

    def __init__(
        self,
        name: str = "potentiostat",
        *,
        clock: Clock | None = None,
        world: object | None = None,
        seed: int = 0,
        language: str = "SCPI",
        line_frequency: int = 50,
        **_: object,
    ) -> None:
        self.language = language
        self.next_language = language
        self.line_frequency = line_frequency
        self.errors = ErrorQueue()
        self.parser = ScpiParser(self._error)
        self._build()
        self._last_t = -math.inf  # the last time the world's cell was asked (never ask twice)
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    # -- state ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """`*RST` / power-on settings (the event log and `*LANG` survive `*RST`)."""
        self.function = "VOLT"
        self.level = 0.0
        self.vlim = 21.0
        self.ilim = 1.05e-4
        self.range_auto = True
        self.current_range = 1e-8
        self.sense = "CURR:DC"
        self.rsense = False
        self.nplc = 1.0
        self.output = False
        self.tripped = False
        self.buffers: dict[str, Buffer] = {b: Buffer(DEFAULT_CAPACITY) for b in DEFAULT_BUFFERS}
        self.loop: Loop | None = None
        self.started: float | None = None  # trigger model start time
        self.done_k = 0  # points of the running model already in the buffer
        self.state = "IDLE"
        self.opc = False
        self.data_format = "ASC"
        self.byte_order = "SWAP"

    def power_cycle(self) -> None:
        self.language = self.next_language
        self.errors.clear()
        super().power_cycle()

    def _error(self, code: int, message: str) -> None:
        self.errors.push(code, message, self.clock.time())

    def error_reply(self, message: bytes) -> bytes | None:
        """An execution error: logged, and a query gets no answer (as on the instrument)."""
        self._error(-200, "Execution error")
        return None

    # -- measurement ------------------------------------------------------------------------------------

    def _cell(self, t: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Voltage at times `t` for current `i`: one world call for the new times, clamped at the limit."""
        t = np.asarray(t, dtype=float)
        v = np.empty(len(t))
        if not self.output:
            v[:] = [self.world.cell_ocv(float(x)) for x in t]  # type: ignore[union-attr]
            return v
        if len(t):
            # the world wants strictly increasing times: a reading at the instant of the previous one (a new
            # level, a :READ? right after :INIT) is taken a nanosecond later
            t_world = np.maximum(t, self._last_t + EPS * np.arange(1, len(t) + 1))
            v[:] = self.world.cell_voltage(t_world, np.asarray(i, dtype=float))  # type: ignore[union-attr]
            self._last_t = float(t_world[-1])
        over = np.abs(v) > self.vlim
        if over.any():
            self.tripped = True
            # in compliance the 2450 holds V at the limit and its source readback (on by default) reports
            # the current that actually flowed, not the programmed level: `i` is updated in place
            limited = getattr(self.world, "cell_current_at_limit", None)
            i[over] = (limited(t[over], i[over], v[over], self.vlim) if limited is not None
                       else i[over] * self.vlim / np.abs(v[over]))
            v[over] = np.sign(v[over]) * self.vlim
        return v

    def _source(self) -> float:
        return self.level if self.output and self.function == "CURR" else 0.0

    def _advance(self) -> None:
        """Fill the running trigger model's buffer with the points due by now."""
        loop = self.loop
        if self.state != "RUNNING" or loop is None or self.started is None or self.stuck_busy:
            return
        now = self.now()
        total = max(1, math.ceil(loop.duration / loop.delay - 1e-9)) if loop.delay > 0 else (loop.count or 1)
        due = min(
            total, math.floor((now - self.started) / loop.delay + 1e-9) + 1 if loop.delay > 0 else total
        )
        if due > self.done_k:
            k = np.arange(self.done_k, due)
            t = self.started + k * loop.delay
            i = np.full(len(k), self._source())
            self.buffers[loop.buffer].add(t, self._cell(t, i), i)
            self.done_k = due
        if self.done_k >= total and now >= self.started + loop.duration - 1e-9:
            self.state = "IDLE"

    def _buffer(self, text: str | None) -> Buffer:
        name = "defbuffer1" if text is None else string(text)
        if name not in self.buffers:
            raise ScpiError(-224, "Buffer not found")
        return self.buffers[name]

    # -- protocol ---------------------------------------------------------------------------------------

    def handle(self, message: bytes) -> bytes | None:
        if self.language != "SCPI":
            text = message.decode("ascii", "replace").strip().upper()
            if text == "*LANG?":
                return self.language.encode() + b"\n"
            if text.startswith("*LANG "):
                self.next_language = text.split()[1]
            return None
        self._advance()
        try:
            text = message.decode("ascii")
        except UnicodeDecodeError:
            self._error(-102, "Syntax error")
            return None
        reply = self.parser.execute(text)
        if reply is None:
            return None
        return (reply if isinstance(reply, bytes) else reply.encode("ascii")) + b"\n"

    def _build(self) -> None:
        add = self.parser.add
        q = {"query": True}
        add("*IDN", lambda u: IDN, **q)
        add("*RST", lambda u: self.reset())
        add("*CLS", lambda u: self._cls())
        add("*OPC", lambda u: "1", **q)
        add("*OPC", lambda u: None)
        add("*WAI", lambda u: None)
        add("*LANG", lambda u: self.language, **q)
        add("*LANG", self._set_lang)
        add(":SYSTem:ERRor[:NEXT]", self._next_error, **q)
        add(":SYSTem:ERRor:CODE[:NEXT]", lambda u: str(self._pop_error()[0]), **q)
        add(":SYSTem:ERRor:COUNt", lambda u: str(len(self.errors)), **q)
        add(":SYSTem:CLEar", lambda u: self._cls())
        add(":SYSTem:LFRequency", lambda u: str(self.line_frequency), **q)
        add(":SOURce[1]:FUNCtion[:MODE]", self._set_function)
        add(":SOURce[1]:FUNCtion[:MODE]", lambda u: self.function, **q)
        add(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", self._set_level)
        add(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", lambda u: f"{self.level:.6e}", **q)
        add(":SOURce[1]:CURRent:VLIMit[:LEVel]", self._set_vlim)
        add(":SOURce[1]:CURRent:VLIMit[:LEVel]", lambda u: f"{self.vlim:.6e}", **q)
        add(":SOURce[1]:CURRent:VLIMit[:LEVel]:TRIPped", lambda u: "1" if self.tripped else "0", **q)
        add(":SOURce[1]:CURRent:RANGe", self._set_range)
        add(":SOURce[1]:CURRent:RANGe", lambda u: f"{self.current_range:.6e}", **q)
        add(":SOURce[1]:CURRent:RANGe:AUTO", self._set_range_auto)
        add(":SOURce[1]:CURRent:RANGe:AUTO", lambda u: "1" if self.range_auto else "0", **q)
        add(":SENSe[1]:FUNCtion[:ON]", self._set_sense)
        add(":SENSe[1]:FUNCtion[:ON]", lambda u: f'"{self.sense}"', **q)
        add(":SENSe[1]:VOLTage[:DC]:RSENse", self._set_rsense)
        add(":SENSe[1]:VOLTage[:DC]:RSENse", lambda u: "1" if self.rsense else "0", **q)
        add(":SENSe[1]:VOLTage[:DC]:NPLCycles", self._set_nplc)
        add(":SENSe[1]:VOLTage[:DC]:NPLCycles", lambda u: f"{self.nplc:g}", **q)
        add(":SENSe[1]:VOLTage[:DC]:RANGe:AUTO", lambda u: boolean(need(u, 1)[0]) and None)
        add(":OUTPut[1][:STATe]", self._set_output)
        add(":OUTPut[1][:STATe]", lambda u: "1" if self.output else "0", **q)
        add(":FORMat[:DATA]", self._set_format)
        add(":FORMat[:DATA]", lambda u: self.data_format, **q)
        add(":FORMat:BORDer", self._set_byte_order)
        add(":FORMat:BORDer", lambda u: self.byte_order, **q)
        add(":READ", self._read, **q)
        add(":MEASure", self._read, **q)
        add(":FETCh", self._fetch, **q)
        add(":TRACe:MAKE", self._make)
        add(":TRACe:DELete", self._delete)
        add(":TRACe:CLEar", lambda u: self._buffer(need(u, 0, 1)[0] if u.params else None).clear())
        add(":TRACe:ACTual", lambda u: str(len(self._buffer(need(u, 0, 1)[0] if u.params else None).t)), **q)
        add(":TRACe:POINts", self._points)
        add(
            ":TRACe:POINts", lambda u: str(self._buffer(need(u, 0, 1)[0] if u.params else None).capacity), **q
        )
        add(":TRACe:DATA", self._data, **q)
        add(":TRIGger:LOAD", self._load)
        add(":TRIGger:STATe", self._trigger_state, **q)
        add(":INITiate[:IMMediate]", self._init)
        add(":ABORt", self._abort)

    # -- handlers ---------------------------------------------------------------------------------------

    def _cls(self) -> None:
        self.errors.clear()

    def _set_lang(self, u: Unit) -> None:
        self.next_language = choice(need(u, 1)[0], {"SCPI": "SCPI", "TSP": "TSP", "SCPI2400": "SCPI2400"})

    def _pop_error(self) -> tuple[int, str, int, str]:
        entry = self.errors.pop()
        if entry is None:
            return (0, "No error", 0, "0,0")
        when = entry[3]
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1000):03d}"
        return (entry[0], entry[1], entry[2], stamp)

    def _next_error(self, u: Unit) -> str:
        code, message, kind, stamp = self._pop_error()
        return f'{code},"{message};{kind};{stamp}"'

    def _set_function(self, u: Unit) -> None:
        self.function = choice(
            need(u, 1)[0], {"CURR": "CURR", "CURRENT": "CURR", "VOLT": "VOLT", "VOLTAGE": "VOLT"}
        )

    def _set_level(self, u: Unit) -> None:
        self.level = number(need(u, 1)[0], -1.05, 1.05, 0.0)
        self.tripped = False

    def _set_vlim(self, u: Unit) -> None:
        self.vlim = number(need(u, 1)[0], 0.02, 210.0, 21.0)

    def _set_range(self, u: Unit) -> None:
        self.current_range = number(need(u, 1)[0], 1e-8, 1.0, 1e-8)
        self.range_auto = False

    def _set_range_auto(self, u: Unit) -> None:
        self.range_auto = boolean(need(u, 1)[0])

    def _set_sense(self, u: Unit) -> None:
        value = string(need(u, 1)[0]).upper()
        modes = {
            "VOLT": "VOLT:DC",
            "VOLT:DC": "VOLT:DC",
            "CURR": "CURR:DC",
            "CURR:DC": "CURR:DC",
            "RES": "RES",
            "VOLTAGE:DC": "VOLT:DC",
            "CURRENT:DC": "CURR:DC",
            "RESISTANCE": "RES",
        }
        if value not in modes:
            raise ScpiError(-224)
        self.sense = modes[value]

    def _set_rsense(self, u: Unit) -> None:
        self.rsense = boolean(need(u, 1)[0])

    def _set_nplc(self, u: Unit) -> None:
        self.nplc = number(need(u, 1)[0], 0.01, 10.0, 1.0)

    def _set_output(self, u: Unit) -> None:
        on = boolean(need(u, 1)[0])
        if on != self.output:
            self.tripped = False
        self.output = on

    def _set_format(self, u: Unit) -> None:
        self.data_format = choice(need(u, 1)[0], DATA_FORMATS)

    def _set_byte_order(self, u: Unit) -> None:
        self.byte_order = choice(need(u, 1)[0], BYTE_ORDERS)

    def _elements(self, params: list[str], position: int) -> list[str]:
        """Buffer element names; `position`: the parameter number of the first (for the error message)."""
        out = []
        for k, p in enumerate(params):
            word = p.strip().upper()
            if word not in ELEMENTS:
                raise ScpiError(-224)
            if self.data_format != "ASC" and ELEMENTS[word] not in BINARY_ELEMENTS:
                raise ScpiError(
                    1133, f"Parameter {position + k}, Syntax error, expected valid name parameters."
                )
            out.append(ELEMENTS[word])
        return out or ["READ"]

    def _format(self, buf: Buffer, lo: int, hi: int, elements: list[str]) -> str | bytes:
        cols = {
            "READ": buf.v[lo:hi],
            "SOUR": buf.i[lo:hi],
            "REL": buf.t[lo:hi] - (buf.t_first if buf.t_first is not None else 0.0),
            "SEC": np.mod(buf.t[lo:hi] + self.clock.time() - self.now(), 1.0),
        }
        table = np.column_stack([cols[e] for e in elements]).ravel()
        if self.data_format != "ASC":
            order = "<" if self.byte_order == "SWAP" else ">"
            return b"#0" + table.astype(order + BINARY_TYPES[self.data_format]).tobytes()
        if not len(table):
            return ""
        return ",".join(map(FMT.__mod__, table.tolist()))  # 3x faster than np.char.mod (measured)

    def _read(self, u: Unit) -> str | bytes:
        buf = self._buffer(u.params[0] if u.params else None)
        elements = self._elements(u.params[1:], 2)
        now = np.array([self.now()])
        i = np.array([self._source()])
        buf.add(now, self._cell(now, i), i)
        return self._format(buf, len(buf.t) - 1, len(buf.t), elements)

    def _fetch(self, u: Unit) -> str | bytes:
        buf = self._buffer(u.params[0] if u.params else None)
        if not len(buf.t):
            raise ScpiError(-230)
        return self._format(buf, len(buf.t) - 1, len(buf.t), self._elements(u.params[1:], 2))

    def _make(self, u: Unit) -> None:
        name_text, size_text = need(u, 2, 3)[:2]
        name = string(name_text)
        if not name or len(name) > 31 or name in self.buffers:
            raise ScpiError(-224, "Buffer name invalid or in use")
        self.buffers[name] = Buffer(int(number(size_text, 10, MAX_CAPACITY)))

    def _delete(self, u: Unit) -> None:
        name = string(need(u, 1)[0])
        if name in DEFAULT_BUFFERS or name not in self.buffers:
            raise ScpiError(-224)
        del self.buffers[name]

    def _points(self, u: Unit) -> None:
        params = need(u, 1, 2)
        buf = self._buffer(params[1] if len(params) > 1 else None)
        buf.capacity = int(number(params[0], 10, MAX_CAPACITY))
        buf.clear()

    def _data(self, u: Unit) -> str | bytes:
        params = need(u, 2, 10)
        buf = self._buffer(params[2] if len(params) > 2 else None)
        n = len(buf.t)
        lo, hi = int(number(params[0], 1, max(1, n))), int(number(params[1], 1, max(1, n)))
        if n == 0 or lo > hi:
            raise ScpiError(-222)
        return self._format(buf, lo - 1, hi, self._elements(params[3:], 4))

    def _load(self, u: Unit) -> None:
        params = need(u, 2, 4)
        kind = string(params[0])
        if kind not in ("DurationLoop", "SimpleLoop"):
            raise ScpiError(-224, "Trigger model template not supported")
        delay = number(params[2], 0.0, 1e4) if len(params) > 2 else 0.0
        buffer = string(params[3]) if len(params) > 3 else "defbuffer1"
        if buffer not in self.buffers:
            raise ScpiError(-224, "Buffer not found")
        if kind == "DurationLoop":
            duration = number(params[1], 1e-3, 1e8)
            if delay <= 0:
                raise ScpiError(-222, "Delay must be positive in this simulator")
            self.loop = Loop(kind, duration, delay, buffer)
        else:
            count = int(number(params[1], 1, MAX_CAPACITY))
            self.loop = Loop(kind, count * delay, delay, buffer, count)

    def _init(self, u: Unit) -> None:
        if self.loop is None:
            raise ScpiError(-221, "No trigger model loaded")
        if self.state == "RUNNING":
            raise ScpiError(-221, "Trigger model already running")
        self.started = self.now()
        self.done_k = 0
        self.tripped = False
        self.state = "RUNNING"
        self._advance()

    def _abort(self, u: Unit) -> None:
        if self.state == "RUNNING":
            self._advance()
            self.state = "ABORTED" if self.state == "RUNNING" else self.state

    def _trigger_state(self, u: Unit) -> str:
        block = 9 if self.state == "IDLE" else 4
        return f"{self.state};{self.state};{block}"
