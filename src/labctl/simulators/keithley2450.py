"""Simulated Keithley 2450 SourceMeter in native SCPI mode, byte for byte, on the run's clock.

Facts from `reference/instruments.md` §1.1 (commands, `*LANG?`, error-log format, trigger-model states) and
the 2450 reference manual (2450-901-01 Rev B, §6 "SCPI command reference"; the 2461 manual, same command set,
where the 2450's page is not at hand). The command table with pages is `docs/instruments/keithley2450.md`. LF
terminates every message and reply. Commands are parsed by `simulators.scpi` (short/long forms, any case,
optional nodes, `;` compound messages and the tree rule, quoted strings, numeric suffixes, MIN/MAX/DEF/UP/
DOWN).
Errors go to the event log as the 2461 manual shows: `-113,"Undefined header;1;2026/11/25 08:00:00.000"`, and
set the Standard Event Status bits (IEEE 488.2: CME/EXE/DDE/QYE), read by `*ESR?` and summarised in `*STB?`.

What the core computes, and the choices where the sources are silent:
- a reading is of the sense function (`:SENS:FUNC`): `VOLT:DC` the cell voltage, `CURR:DC` the current,
  `RES` their ratio (9.9e37, the 2450's overflow, at zero current); power-on/`*RST` sense is `CURR:DC`;
- sourcing current, the voltage is `world.cell_voltage(t, i)`; sourcing voltage, the current is computed from
  the world's cell by `simulators.potentiostatic` (its impedance reduced to a Randles circuit, corrected by
  the world's DC answer); with the output off the cell is open: V = `world.cell_ocv(t)`, I = 0;
- the trigger model runs in simulated time: `:INIT` records the start; any later message fills the buffer with
  the points due by now (times start + k * period), the voltages from ONE vectorised world call per fill, with
  strictly increasing times (a reading at the instant of the previous one is taken 1 ns later). Duration and
  simple loops take the delay as their period (a reading takes no time); a sweep point takes its delay plus
  NPLC / line frequency; a model built block by block (`:TRIG:BLOC:*`) is played from
  `simulators.trigger_blocks` (a reading takes NPLC / line frequency there too);
- `*WAI` and `*OPC?` while the trigger model runs hold the instrument until it ends: later messages are
  executed at that time and their replies (and the `1`) released then; a stuck-busy model never answers;
- `:SENS:COUN n` makes `:READ?`/`:MEAS?` take n readings NPLC / line frequency apart and answer the last, the
  instrument busy meanwhile (as with `*WAI`);
- compliance: a |V| beyond the voltage limit (or |I| beyond the current limit when sourcing voltage) is
  clamped to it and latches `...:VLIM:TRIP?`/`...:ILIM:TRIP?` = 1 until the next `:INIT`, a new level, or the
  output changes. Sourcing current in voltage compliance, the current that flows is what the cell passes at
  the limit (the world's `cell_current_at_limit` if it has one, else the ohmic share level·V_limit/|V|): the
  measured current, and the SOURce element while the source read-back is on (the default); read-back off,
  SOURce is the programmed level;
- `RELative` is the time since the buffer's first reading; buffers keep their last `capacity` readings (fill
  mode CONTinuous) or their first (ONCE); `SEConds` is the fractional second of the reading's time
  (kept from the first version of this core) [verify: the manual's UTC seconds];
- `*LANG SCPI|TSP|SCPI2400` takes effect at the next power cycle, as on the instrument; in the other
  languages only `*LANG` is answered;
- settings the simulated cell cannot show (averaging filter, autozero, source delays, read-back, terminals,
  output-off mode, beeper, display text) are kept and read back exactly, not applied to the noise-free
  readings;
- data format (2450-901-01 Rev B p. 6-30 `:FORMat[:DATA]`, 2461-901-01 p. 6-45 `:FORMat:BORDer`, p. 6-160
  `:TRACe:DATA?`): `ASCii` (default), `REAL` (IEEE 754 float64) or `SREal` (float32), byte order `NORMal`
  (big-endian) or `SWAPped` (little-endian, the default); both reset by `*RST` and a power cycle. It applies
  to `:READ?`, `:MEASure?`, `:FETCh?` and `:TRACe:DATA?` only: a binary reply is `#0`, the values, LF (the
  manual's indefinite-length block); in a binary format only READing, RELative and SOURce may be asked,
  another element logs 1133 "Parameter <n>, Syntax error, expected valid name parameters." (n: its position
  among the command's parameters). Queries answer the short form (`ASC`, `REAL`, `SRE`; `NORM`, `SWAP`).
This module is longer than the house's ~400 lines because it is one instrument's command table; the parser,
status registers and the potentiostatic model live in their own modules.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from labctl.clock import Clock
from labctl.simulators import trigger_blocks
from labctl.simulators.core import DeviceCore
from labctl.simulators.potentiostatic import Potentiostat
from labctl.simulators.scpi import (
    ESR_OPC,
    ErrorQueue,
    ScpiError,
    ScpiParser,
    StatusRegisters,
    Unit,
    boolean,
    choice,
    esr_bit,
    mnemonics,
    need,
    number,
    range_value,
    string,
)
from labctl.simulators.world import SimpleWorld

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04096218,1.7.12b"
DEFAULT_BUFFERS = ("defbuffer1", "defbuffer2")
DEFAULT_CAPACITY = 100_000
MAX_CAPACITY = 4_000_000
OVERFLOW = 9.9e37  # what the 2450 reads when a value is beyond its range
ELEMENTS = mnemonics(
    "DATE", "FORMatted", "FRACtional", "READing", "RELative", "SEConds", "SOURce", "SOURFORMatted",
    "SOURSTATus", "SOURUNIT", "STATus", "TIME", "TSTamp", "UNIT",
)
TEXT_ELEMENTS = ("DATE", "FORM", "SOURFORM", "SOURUNIT", "TIME", "TST", "UNIT")
FMT = "%.9e"
DATA_FORMATS = {"ASC": "ASC", "ASCII": "ASC", "REAL": "REAL", "SRE": "SRE", "SREAL": "SRE"}
BINARY_TYPES = {"REAL": "f8", "SRE": "f4"}
BYTE_ORDERS = {"NORM": "NORM", "NORMAL": "NORM", "SWAP": "SWAP", "SWAPPED": "SWAP"}
BINARY_ELEMENTS = ("READ", "REL", "SOUR")
EPS = 1e-9  # s
MAX_BLOCKS = 63  # trigger model blocks [verify the 2450's limit]

CURRENT_RANGES = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
VOLTAGE_RANGES = (0.02, 0.2, 2.0, 20.0, 200.0)
RESISTANCE_RANGES = (20.0, 200.0, 2e3, 2e4, 2e5, 2e6, 2e7, 2e8)
SOURCE_RANGES = {"CURR": CURRENT_RANGES, "VOLT": VOLTAGE_RANGES}
SENSE_RANGES = {"CURR": CURRENT_RANGES, "VOLT": VOLTAGE_RANGES, "RES": RESISTANCE_RANGES}
SOURCE_MAX = {"CURR": 1.05, "VOLT": 210.0}
SOURCE_NODES = {"CURR": "CURRent", "VOLT": "VOLTage"}
SENSE_NODES = {"CURR": "CURRent[:DC]", "VOLT": "VOLTage[:DC]", "RES": "RESistance"}
LIMIT = {"CURR": ("VLIMit", 0.02, 210.0, 21.0), "VOLT": ("ILIMit", 1e-9, 1.05, 1.05e-4)}
UNITS = {"VOLT": "Volt DC", "CURR": "Amp DC", "RES": "Ohm"}
SYMBOLS = {"VOLT": "V", "CURR": "A", "RES": "Ohm"}
SENSE_FUNCTIONS = {
    "VOLT": "VOLT:DC", "VOLT:DC": "VOLT:DC", "VOLTAGE": "VOLT:DC", "VOLTAGE:DC": "VOLT:DC",
    "CURR": "CURR:DC", "CURR:DC": "CURR:DC", "CURRENT": "CURR:DC", "CURRENT:DC": "CURR:DC",
    "RES": "RES", "RESISTANCE": "RES",
}
OFF_MODES = mnemonics("NORMal", "HIMPedance", "ZERO", "GUARd")
TERMINALS = mnemonics("FRONt", "REAR")
PROTECTION = {f"PROT{v}": f"PROT{v}" for v in (2, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180)} | {
    "NONE": "NONE"
}
BUFFER_STYLES = mnemonics("STANdard", "COMPact", "FULL", "WRITable", "FULLWRITable")
FILL_MODES = mnemonics("CONTinuous", "ONCE")
#: settings `*SAV`/`*RCL` keep (IEEE 488.2 §10.27: the instrument's settings, not its data)
SAVED = (
    "function", "level", "vlevel", "vlim", "ilim", "sense", "settings", "data_format", "byte_order",
)


@dataclass
class Buffer:
    """A reading buffer: absolute time (core clock), voltage, current, source value, reading, its function,
    compliance flag per reading."""

    capacity: int
    style: str = "STAN"
    fill: str = "CONT"
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    v: np.ndarray = field(default_factory=lambda: np.zeros(0))
    i: np.ndarray = field(default_factory=lambda: np.zeros(0))
    src: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reading: np.ndarray = field(default_factory=lambda: np.zeros(0))
    func: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="<U4"))
    src_func: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="<U4"))
    flag: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    t_first: float | None = None

    COLUMNS = ("t", "v", "i", "src", "reading", "func", "src_func", "flag")

    def add(self, **cols: np.ndarray) -> None:
        n = len(cols["t"])
        if not n:
            return
        if self.t_first is None:
            self.t_first = float(cols["t"][0])
        room = self.capacity - len(self.t)
        if self.fill == "ONCE":
            if room <= 0:
                return
            cols = {k: v[:room] for k, v in cols.items()}
        for name in self.COLUMNS:
            merged = np.concatenate((getattr(self, name), np.broadcast_to(cols[name], (len(cols["t"]),))))
            setattr(self, name, merged[-self.capacity :])

    def clear(self) -> None:
        for name in self.COLUMNS:
            setattr(self, name, np.zeros(0, dtype=getattr(self, name).dtype))
        self.t_first = None


@dataclass
class Loop:
    """A loaded trigger model: DurationLoop, SimpleLoop or a source sweep."""

    kind: str
    duration: float  # s
    period: float  # s between points
    buffer: str
    count: int | None = None  # points (None: as many as fit the duration)
    levels: np.ndarray | None = None  # the sweep's source levels, one per point
    function: str = "CURR"  # what a sweep sources


def _no_params(u: Unit) -> None:
    need(u, 0)


def need_n(params: list[str], n: int) -> list[str]:
    """Exactly `n` of a block's parameters after its number (-109 too few, -108 too many)."""
    if len(params) < n:
        raise ScpiError(-109)
    if len(params) > n:
        raise ScpiError(-108)
    return params


class Keithley2450Sim(DeviceCore):
    """One 2450 with its reading buffers, trigger model, status registers and event log."""

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
        self.status = StatusRegisters()
        # QCoDeS makes a buffer with `:TRACe:MAKE '<name>', <size>, ` (its style "" by default) and its
        # example notebook ran that on a 2450: an empty last parameter counts as left out [verify on hardware]
        self.parser = ScpiParser(self._error, trailing_empty_ok=True)
        self.saved: dict[int, dict[str, object]] = {}
        self.beeps: list[tuple[float, float, float]] = []  # (time, Hz, s): what the beeper played
        self.logged: list[int] = []  # codes logged since the last `rejects()` (for the command-table test)
        self._build()
        self._last_t = -math.inf  # the last time the world's cell was asked (never ask twice)
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    # -- state ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """`*RST` / power-on settings (the event log, `*LANG`, saved setups and status enables survive)."""
        self.function = "VOLT"
        self.level = 0.0  # A, the current source level
        self.vlevel = 0.0  # V, the voltage source level
        self.vlim = 21.0
        self.ilim = 1.05e-4
        self.sense = "CURR:DC"
        self.settings: dict[str, object] = {"sense.count": 1, "route.term": "FRON", "display.text": {}}
        for f, ranges in SOURCE_RANGES.items():
            self.settings |= {
                f"src.{f}.range": ranges[0] if f == "CURR" else 0.02, f"src.{f}.range_auto": True,
                f"src.{f}.delay": 0.0, f"src.{f}.delay_auto": True, f"src.{f}.readback": True,
                f"src.{f}.highcap": False,
                f"src.{f}.smod": "NORM", **{f"src.{f}.user{n}": 0.0 for n in range(1, 6)},
            }
        for f, ranges in SENSE_RANGES.items():
            self.settings |= {
                f"sense.{f}.range": ranges[-1] if f == "RES" else ranges[0], f"sense.{f}.range_auto": True,
                f"sense.{f}.nplc": 1.0, f"sense.{f}.rsense": False, f"sense.{f}.azero": True,
                f"sense.{f}.avg": False, f"sense.{f}.avg_count": 10, f"sense.{f}.avg_tcon": "REP",
                f"sense.{f}.ocom": False,
                **{f"sense.{f}.user{n}": 0.0 for n in range(1, 6)},
            }
        self.settings["src.VOLT.prot"] = "NONE"
        self.last_reading: dict[str, float] = {}  # per sense function, for the autorange queries
        self.output = False
        self.tripped = False
        self.buffers: dict[str, Buffer] = {b: Buffer(DEFAULT_CAPACITY) for b in DEFAULT_BUFFERS}
        self.loop: Loop | None = None
        self.blocks: dict[int, trigger_blocks.Block] = {}  # a model built block by block
        self.schedule: trigger_blocks.Schedule | None = None  # its run, from :INIT
        self.block_counts: dict[int, int] = {}  # branch counters as the running model passed them
        self.started: float | None = None  # trigger model start time
        self.done_k = 0  # points of the running model already in the buffer
        self.state = "IDLE"
        self.opc = False  # *OPC given while the model ran: set the ESR's OPC bit when it ends
        self.held_until = -math.inf  # *WAI / *OPC? / a multi-reading :READ?: busy until then
        self.data_format = "ASC"
        self.byte_order = "SWAP"
        self.potentiostat = Potentiostat(self.world) if getattr(self, "world", None) is not None else None

    @property
    def nplc(self) -> float:
        return float(self.settings[f"sense.{self._sense_key()}.nplc"])  # type: ignore[arg-type]

    @property
    def rsense(self) -> bool:
        return bool(self.settings["sense.VOLT.rsense"])

    def power_cycle(self) -> None:
        self.language = self.next_language
        self.errors.clear()
        self.status = StatusRegisters()
        super().power_cycle()

    def _error(self, code: int, message: str) -> None:
        self.errors.push(code, message, self.clock.time())
        self.status.esr |= esr_bit(code)
        self.logged.append(code)

    def error_reply(self, message: bytes) -> bytes | None:
        """An execution error: logged, and a query gets no answer (as on the instrument)."""
        self._error(-200, "Execution error")
        return None

    def rejects(self, reply: bytes) -> bool:
        """Whether the messages since the last call were refused: a SCPI instrument answers nothing to a bad
        command, so this asks the event log (any error logged since), not the reply."""
        refused, self.logged = bool(self.logged), []
        return refused

    # -- time ---------------------------------------------------------------------------------------------

    def _t(self) -> float:
        """The instrument's time: the clock's, or later while it is held by `*WAI`, `*OPC?` or a long read."""
        return max(self.now(), self.held_until)

    def _model_end(self) -> float:
        """When the running trigger model ends (inf when it never does)."""
        if self.state != "RUNNING" or self.started is None or (self.loop is None and self.schedule is None):
            return -math.inf
        if self.stuck_busy:
            return math.inf
        if self.schedule is not None:
            return self.schedule.finish_time()
        return self.started + self.loop.duration  # type: ignore[union-attr]

    # -- measurement ------------------------------------------------------------------------------------

    def _cell(self, t: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Voltage at times `t` for current `i`: one world call for the new times, clamped at the limit."""
        t = np.asarray(t, dtype=float)
        v = np.empty(len(t))
        if not self.output:
            v[:] = [self.world.cell_ocv(float(x)) for x in t]  # type: ignore[union-attr]
            return v
        t_world = t
        if len(t):
            # the world wants strictly increasing times: a reading at the instant of the previous one (a new
            # level, a :READ? right after :INIT) is taken a nanosecond later
            t_world = np.maximum(t, self._last_t + EPS * np.arange(1, len(t) + 1))
            v[:] = self.world.cell_voltage(t_world, np.asarray(i, dtype=float))  # type: ignore[union-attr]
            self._last_t = float(t_world[-1])
        over = np.abs(v) > self.vlim
        if over.any():
            self.tripped = True
            # in compliance the 2450 holds V at the limit: what flows is less than the programmed level;
            # `i` (the caller's copy) is updated in place to the current that flowed
            limited = getattr(self.world, "cell_current_at_limit", None)
            i[over] = (
                limited(t_world[over], i[over], v[over], self.vlim)
                if limited is not None
                else i[over] * self.vlim / np.abs(v[over])
            )
            v[over] = np.sign(v[over]) * self.vlim
        return v

    def _source(self) -> float:
        return self.level if self.output and self.function == "CURR" else 0.0

    def _potentiostatic(self, t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sourcing voltage: (V, I) at times `t` for levels `e`, the current clamped at the current limit."""
        assert self.potentiostat is not None
        self.potentiostat.last_t = max(self.potentiostat.last_t, self._last_t)
        i, _ = self.potentiostat.apply(t, e)
        self._last_t = self.potentiostat.last_t
        v = np.array(e, dtype=float)
        over = np.abs(i) > self.ilim
        if over.any():  # in compliance the source becomes a current source at the limit
            self.tripped = True
            clamped = np.sign(i[over]) * self.ilim
            ocv = np.array([self.world.cell_ocv(float(x)) for x in np.asarray(t)[over]])  # type: ignore[union-attr]
            v[over] = ocv + (v[over] - ocv) * clamped / i[over]  # the cell's voltage at the limit current
            i[over] = clamped
        return v, i

    def _measure(self, t: np.ndarray, levels: np.ndarray | None = None, function: str | None = None) -> dict:
        """Readings at times `t` (source `levels` of `function`, default the programmed one): its columns."""
        function = function or self.function
        n = len(t)
        tripped_before = self.tripped
        self.tripped = False
        if function == "CURR" or not self.output:
            programmed = (np.full(n, self._source()) if levels is None or not self.output
                          else np.array(levels, dtype=float))
            i = programmed.copy()  # _cell lowers it in place where the voltage limit holds the cell
            v = self._cell(t, i)
        else:
            e = np.full(n, self.vlevel) if levels is None else np.asarray(levels, dtype=float)
            v, i = self._potentiostatic(t, e)
        if function == "CURR" or not self.output:
            flag = self.output & (np.abs(v) >= self.vlim * (1 - 1e-12))
        else:
            flag = np.abs(i) >= self.ilim * (1 - 1e-12)
        self.tripped = self.tripped or tripped_before
        if function == "CURR":  # read-back on: the current that flowed (below the level in compliance)
            src = i if self.settings["src.CURR.readback"] else programmed
        elif not self.output:
            src = np.zeros(n)
        elif self.settings["src.VOLT.readback"]:  # read-back on: the measured source value
            src = v
        else:
            src = np.full(n, self.vlevel) if levels is None else np.asarray(levels, dtype=float)
        sense = self._sense_key()
        if sense == "VOLT":
            reading = v
        elif sense == "CURR":
            reading = i
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                reading = np.where(np.abs(i) > 0, v / np.where(i == 0, 1, i), OVERFLOW)
        if n:
            self.last_reading |= {"VOLT": float(v[-1]), "CURR": float(i[-1])}
            self.last_reading["RES"] = float(v[-1] / i[-1]) if i[-1] else OVERFLOW
        return {"t": np.asarray(t, dtype=float), "v": v, "i": i, "src": src, "reading": reading,
                "func": np.full(n, sense), "src_func": np.full(n, function), "flag": flag}

    def _sense_key(self) -> str:
        return self.sense.split(":")[0]

    def _advance(self) -> None:
        """Fill the running trigger model's buffer with the points due by now."""
        if self.schedule is not None and self.state == "RUNNING" and not self.stuck_busy:
            self._play()
            return
        loop = self.loop
        if self.state != "RUNNING" or loop is None or self.started is None or self.stuck_busy:
            return
        now = self._t()
        if loop.count is not None:
            total = loop.count
        elif math.isinf(loop.duration):  # an endless sweep: as many points as are due
            total = math.floor((now - self.started) / loop.period + 1e-9) + 1
        else:  # a DurationLoop: its period is positive
            total = max(1, math.ceil(loop.duration / loop.period - 1e-9))
        elapsed = math.floor((now - self.started) / loop.period + 1e-9) + 1 if loop.period > 0 else total
        due = min(total, elapsed)
        if due > self.done_k:
            k = np.arange(self.done_k, due)
            t = self.started + k * loop.period
            levels = None if loop.levels is None else loop.levels[k % len(loop.levels)]
            function = loop.function if levels is not None else None
            self.buffers[loop.buffer].add(**self._measure(t, levels, function))
            self.done_k = due
        if self.done_k >= total and now >= self.started + loop.duration - 1e-9:
            self.state = "IDLE"
            if loop.levels is not None:  # the sweep leaves the source at its last level
                self._set_level_value(loop.function, float(loop.levels[-1]))
            if self.opc:
                self.status.esr |= ESR_OPC
                self.opc = False

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
        data = (reply if isinstance(reply, bytes) else reply.encode("ascii")) + b"\n"
        at = self._t()
        if at > self.now():  # held by *WAI / *OPC? / a long read: the reply comes when the work is done
            if math.isfinite(at):
                self.emit(data, at=at)
            return None
        return data

    def _build(self) -> None:
        add = self.parser.add
        q = {"query": True}
        # IEEE 488.2 common commands
        add("*IDN", lambda u: IDN, **q)
        add("*RST", lambda u: self._rst())
        add("*CLS", lambda u: self._cls())
        add("*OPC", self._opc_query, **q)
        add("*OPC", self._opc)
        add("*WAI", self._wai)
        add("*ESR", lambda u: str(self.status.read_esr()), **q)
        add("*ESE", lambda u: setattr(self.status, "ese", int(number(need(u, 1)[0], 0, 255))))
        add("*ESE", lambda u: str(self.status.ese), **q)
        add("*SRE", lambda u: setattr(self.status, "sre", int(number(need(u, 1)[0], 0, 255))))
        add("*SRE", lambda u: str(self.status.sre), **q)
        add("*STB", lambda u: str(self.status.stb(len(self.errors))), **q)
        add("*TRG", _no_params)
        add("*TST", lambda u: "0", **q)
        add("*SAV", self._sav)
        add("*RCL", self._rcl)
        add("*LANG", lambda u: self.language, **q)
        add("*LANG", self._set_lang)
        # :STATus (2450-901-01 §6 STATus subsystem)
        add(":STATus:PRESet", lambda u: self.status.preset())
        add(":STATus:CLEar", lambda u: self._clear_events())
        for reg in ("OPERation", "QUEStionable"):
            key = reg[:4].lower()
            add(f":STATus:{reg}[:EVENt]", lambda u, k=key: str(self._read_event(k)), **q)
            add(f":STATus:{reg}:CONDition", lambda u: "0", **q)
            add(f":STATus:{reg}:ENABle", lambda u, k=key: self._set_enable(k, u))
            add(f":STATus:{reg}:ENABle", lambda u, k=key: str(self.status.enables.get(k, 0)), **q)
        # :SYSTem
        add(":SYSTem:ERRor[:NEXT]", self._next_error, **q)
        add(":SYSTem:ERRor:CODE[:NEXT]", lambda u: str(self._pop_error()[0]), **q)
        add(":SYSTem:ERRor:COUNt", lambda u: str(len(self.errors)), **q)
        add(":SYSTem:EVENtlog:NEXT", self._next_error, **q)
        add(":SYSTem:EVENtlog:COUNt", lambda u: str(len(self.errors)), **q)
        add(":SYSTem:EVENtlog:CLEar", lambda u: self.errors.clear())
        add(":SYSTem:EVENtlog:POST", self._post)
        add(":SYSTem:CLEar", lambda u: self._cls())
        add(":SYSTem:LFRequency", lambda u: str(self.line_frequency), **q)
        add(":SYSTem:VERSion", lambda u: "1999.0", **q)
        add(":SYSTem:TIME", lambda u: str(int(self.clock.time())), **q)
        add(":SYSTem:BEEPer[:IMMediate]", self._beep)
        # :SOURce, :OUTPut, :ROUTe
        add(":SOURce[1]:FUNCtion[:MODE]", self._set_function)
        add(":SOURce[1]:FUNCtion[:MODE]", lambda u: self.function, **q)
        for f, node in SOURCE_NODES.items():
            self._build_source(f, node)
        prot = ":SOURce[1]:VOLTage:PROTection[:LEVel]"
        add(prot, self._setter("src.VOLT.prot", lambda x: choice(x, PROTECTION)))
        add(prot, lambda u: str(self.settings["src.VOLT.prot"]), **q)
        add(prot + ":TRIPped", lambda u: "0", **q)
        add(":OUTPut[1][:STATe]", self._set_output)
        add(":OUTPut[1][:STATe]", lambda u: "1" if self.output else "0", **q)
        for f, node in SOURCE_NODES.items():
            key = f"src.{f}.smod"
            add(f":OUTPut[1]:{node}:SMODe", self._setter(key, lambda x: choice(x, OFF_MODES)))
            add(f":OUTPut[1]:{node}:SMODe", lambda u, k=key: str(self.settings[k]), **q)
        add(":ROUTe:TERMinals", self._setter("route.term", lambda x: choice(x, TERMINALS)))
        add(":ROUTe:TERMinals", lambda u: str(self.settings["route.term"]), **q)
        # :SENSe
        add("[:SENSe[1]]:FUNCtion[:ON]", self._set_sense)
        add("[:SENSe[1]]:FUNCtion[:ON]", lambda u: f'"{self.sense}"', **q)
        add("[:SENSe[1]]:COUNt", self._setter("sense.count", lambda x: int(number(x, 1, 300000, 1))))
        add("[:SENSe[1]]:COUNt", lambda u: str(self.settings["sense.count"]), **q)
        add("[:SENSe[1]]:AZERo:ONCE", _no_params)
        add("[:SENSe[1]]:NPLCycles", self._set_all_nplc)  # no function: every function's (p. 6-48)
        for f, node in SENSE_NODES.items():
            self._build_sense(f, node)
        # :FORMat, readings, buffers, trigger model
        add(":FORMat[:DATA]", self._set_format)
        add(":FORMat[:DATA]", lambda u: self.data_format, **q)
        add(":FORMat:BORDer", self._set_byte_order)
        add(":FORMat:BORDer", lambda u: self.byte_order, **q)
        add(":READ", self._read, **q)
        add(":MEASure", self._read, **q)
        for f, node in SENSE_NODES.items():
            add(f":MEASure:{node}", lambda u, f=f: self._measure_function(f, u), **q)
        add(":FETCh", self._fetch, **q)
        add(":TRACe:MAKE", self._make)
        add(":TRACe:DELete", self._delete)
        add(":TRACe:CLEar", lambda u: self._buffer(need(u, 0, 1)[0] if u.params else None).clear())
        add(":TRACe:ACTual", lambda u: str(len(self._named(u).t)), **q)
        add(":TRACe:ACTual:STARt", lambda u: "1" if len(self._named(u).t) else "0", **q)
        add(":TRACe:ACTual:END", lambda u: str(len(self._named(u).t)), **q)
        add(":TRACe:POINts", self._points)
        add(":TRACe:POINts", lambda u: str(self._named(u).capacity), **q)
        add(":TRACe:FILL:MODE", self._fill_mode)
        add(":TRACe:FILL:MODE", lambda u: self._named(u).fill, **q)
        add(":TRACe:DATA", self._data, **q)
        add(":TRACe:TRIGger", self._trace_trigger)
        for stat, fn in (("AVERage", np.mean), ("MAXimum", np.max), ("MINimum", np.min),
                         ("STDDev", lambda a: np.std(a, ddof=1) if len(a) > 1 else 0.0),
                         ("PK2Pk", np.ptp)):
            add(f":TRACe:STATistics:{stat}", lambda u, fn=fn: self._statistic(u, fn), **q)
        add(":TRACe:STATistics:CLEar", lambda u: self._check_buffer(u))
        add(":TRIGger:LOAD", self._load)
        blocks = (("BUFFer:CLEar", "clear"), ("MEASure", "measure"), ("DELay:CONStant", "delay"),
                  ("BRANch:COUNter", "counter"), ("BRANch:ALWays", "always"), ("BRANch:ONCE", "once"),
                  ("BRANch:ONCE:EXCLuded", "once_excluded"), ("SOURce:STATe", "source"), ("NOP", "nop"))
        for spec, kind in blocks:
            add(f":TRIGger:BLOCk:{spec}", lambda u, k=kind: self._block(u, k))
        add(":TRIGger:BLOCk:BRANch:COUNter:COUNt", self._block_count, **q)
        add(":TRIGger:STATe", self._trigger_state, **q)
        add(":INITiate[:IMMediate]", self._init)
        add(":ABORt", self._abort)
        # :DISPlay
        light = {w: w for w in ("ON100", "ON75", "ON50", "ON25", "OFF")} | mnemonics("BLACkout")
        add(":DISPlay:LIGHt:STATe", self._setter("display.light", lambda x: choice(x, light)))
        add(":DISPlay:USER<n>:TEXT[:DATA]", self._display_text)
        add(":DISPlay:CLEar", lambda u: self.settings.__setitem__("display.text", {}))

    def _build_source(self, f: str, node: str) -> None:
        add, q = self.parser.add, {"query": True}
        base = f":SOURce[1]:{node}"
        add(f"{base}[:LEVel][:IMMediate][:AMPLitude]", lambda u: self._set_level(f, u))
        add(f"{base}[:LEVel][:IMMediate][:AMPLitude]",
            lambda u: f"{(self.level if f == 'CURR' else self.vlevel):.6e}", **q)
        limit, low, high, default = LIMIT[f]
        attr = "vlim" if f == "CURR" else "ilim"
        add(f"{base}:{limit}[:LEVel]",
            lambda u: setattr(self, attr, number(need(u, 1)[0], low, high, default)))
        add(f"{base}:{limit}[:LEVel]", lambda u: f"{getattr(self, attr):.6e}", **q)
        add(f"{base}:{limit}[:LEVel]:TRIPped",
            lambda u: "1" if self.tripped and self.function == f else "0", **q)
        add(f"{base}:RANGe", lambda u: self._set_source_range(f, u))
        add(f"{base}:RANGe", lambda u: f"{self._source_range(f):.6e}", **q)
        self._flag(f"{base}:RANGe:AUTO", f"src.{f}.range_auto")
        add(f"{base}:DELay", self._setter(f"src.{f}.delay", lambda x: number(x, 0, 1e4, 0)))
        add(f"{base}:DELay", lambda u: f"{self.settings[f'src.{f}.delay']:.6e}", **q)
        self._flag(f"{base}:DELay:AUTO", f"src.{f}.delay_auto")
        add(f"{base}:DELay:USER<n>", lambda u: self._user_delay("src", f, u))
        add(f"{base}:DELay:USER<n>", lambda u: self._user_delay("src", f, u), **q)
        self._flag(f"{base}:READ:BACK", f"src.{f}.readback")
        for shape in ("LINear", "LINear:STEP", "LOG"):
            add(f":SOURce[1]:SWEep:{node}:{shape}", lambda u, s=shape: self._sweep(f, u, s))
        self._flag(f"{base}:HIGH:CAPacitance", f"src.{f}.highcap")

    def _build_sense(self, f: str, node: str) -> None:
        add, q = self.parser.add, {"query": True}
        base = f"[:SENSe[1]]:{node}"
        add(f"{base}:RANGe[:UPPer]", lambda u: self._set_sense_range(f, u))
        add(f"{base}:RANGe[:UPPer]", lambda u: f"{self._sense_range(f):.6e}", **q)
        self._flag(f"{base}:RANGe:AUTO", f"sense.{f}.range_auto")
        ranges = SENSE_RANGES[f]
        add(f"{base}:RANGe:AUTO:LLIMit",
            self._setter(f"sense.{f}.llim", lambda x: range_value(x, ranges, ranges[0], ranges[0])))
        add(f"{base}:RANGe:AUTO:LLIMit",
            lambda u: f"{self.settings.get(f'sense.{f}.llim', ranges[0]):.6e}", **q)
        add(f"{base}:RANGe:AUTO:ULIMit", lambda u: f"{ranges[-1]:.6e}", **q)
        if f == "RES":
            self._flag(f"{base}:OCOMpensated", "sense.RES.ocom")
        add(f"{base}:NPLCycles", self._setter(f"sense.{f}.nplc", lambda x: number(x, 0.01, 10.0, 1.0)))
        add(f"{base}:NPLCycles", lambda u: f"{self.settings[f'sense.{f}.nplc']:g}", **q)
        self._flag(f"{base}:RSENse", f"sense.{f}.rsense")
        self._flag(f"{base}:AZERo[:STATe]", f"sense.{f}.azero")
        self._flag(f"{base}:AVERage[:STATe]", f"sense.{f}.avg")
        add(f"{base}:AVERage:COUNt",
            self._setter(f"sense.{f}.avg_count", lambda x: int(number(x, 1, 100, 10))))
        add(f"{base}:AVERage:COUNt", lambda u: str(self.settings[f"sense.{f}.avg_count"]), **q)
        tcon = {"REP": "REP", "REPEAT": "REP", "MOV": "MOV", "MOVING": "MOV"}
        add(f"{base}:AVERage:TCONtrol", self._setter(f"sense.{f}.avg_tcon", lambda x: choice(x, tcon)))
        add(f"{base}:AVERage:TCONtrol", lambda u: str(self.settings[f"sense.{f}.avg_tcon"]), **q)
        add(f"{base}:DELay:USER<n>", lambda u: self._user_delay("sense", f, u))
        add(f"{base}:DELay:USER<n>", lambda u: self._user_delay("sense", f, u), **q)

    # -- generic settings -------------------------------------------------------------------------------

    def _setter(self, key: str, parse: Callable[[str], object]) -> Callable[[Unit], None]:
        def handler(u: Unit) -> None:
            self.settings[key] = parse(need(u, 1)[0])
        return handler

    def _flag(self, spec: str, key: str) -> None:
        self.parser.add(spec, self._setter(key, boolean))
        self.parser.add(spec, lambda u: "1" if self.settings[key] else "0", query=True)

    def _set_all_nplc(self, u: Unit) -> None:
        value = number(need(u, 1)[0], 0.01, 10.0, 1.0)
        for f in SENSE_RANGES:
            self.settings[f"sense.{f}.nplc"] = value

    def _user_delay(self, part: str, f: str, u: Unit) -> str | None:
        n = u.suffixes[-1] if u.suffixes and u.path.rstrip("0123456789") != u.path else 1
        if not 1 <= n <= 5:
            raise ScpiError(-114)
        key = f"{part}.{f}.user{n}"
        if u.query:
            need(u, 0)
            return f"{self.settings[key]:.6e}"
        self.settings[key] = number(need(u, 1)[0], 0, 1e4, 0)
        return None

    # -- handlers ---------------------------------------------------------------------------------------

    def _rst(self) -> None:
        self.reset()

    def _cls(self) -> None:
        self.errors.clear()
        self._clear_events()

    def _clear_events(self) -> None:
        self.status.esr = 0
        self.status.questionable = self.status.operation = 0

    def _read_event(self, key: str) -> int:
        attr = "operation" if key == "oper" else "questionable"
        value = getattr(self.status, attr)
        setattr(self.status, attr, 0)
        return value

    def _set_enable(self, key: str, u: Unit) -> None:
        self.status.enables[key] = int(number(need(u, 1)[0], 0, 65535))

    def _opc(self, u: Unit) -> None:
        if self.state == "RUNNING":
            self.opc = True
        else:
            self.status.esr |= ESR_OPC

    def _opc_query(self, u: Unit) -> str | None:
        if self._model_end() == math.inf:
            return None  # a model that never ends never completes: no answer (the host times out)
        self._wai(u)
        return "1"

    def _wai(self, u: Unit) -> None:
        """Hold later messages until the trigger model ends (a model that never ends does not hold: the
        simulated instrument stays reachable for :ABORt, where a real one would need a device clear)."""
        end = self._model_end()
        if self._t() < end < math.inf:
            self.held_until = end
            self._advance()

    def _sav(self, u: Unit) -> None:
        slot = int(number(need(u, 1)[0], 0, 4))
        self.saved[slot] = {name: copy.deepcopy(getattr(self, name)) for name in SAVED}

    def _rcl(self, u: Unit) -> None:
        slot = int(number(need(u, 1)[0], 0, 4))
        if slot not in self.saved:
            raise ScpiError(-224, "No saved setup in that location")
        for name, value in self.saved[slot].items():
            setattr(self, name, copy.deepcopy(value))

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

    def _post(self, u: Unit) -> None:
        params = need(u, 1, 2)
        kinds = {"INF": 4, "INFO": 4, "WARN": 2, "WARNING": 2, "ERR": 1, "ERROR": 1}
        kind = kinds[choice(params[1], {k: k for k in kinds})] if len(params) > 1 else 4
        self.errors.push(1000 if kind == 4 else 1001, string(params[0]), self.clock.time(), kind)

    def _beep(self, u: Unit) -> None:
        freq, duration = need(u, 2)
        self.beeps.append((self._t(), number(freq, 20, 8000), number(duration, 0.001, 100)))

    def _display_text(self, u: Unit) -> None:
        n = u.suffixes[-1] if u.suffixes else 1
        if n not in (1, 2):
            raise ScpiError(-114)
        text = string(need(u, 1)[0])
        if len(text) > (20 if n == 1 else 32):
            raise ScpiError(-222, "Text too long")
        self.settings["display.text"][n] = text  # type: ignore[index]

    def _set_function(self, u: Unit) -> None:
        value = choice(need(u, 1)[0], {"CURR": "CURR", "CURRENT": "CURR", "VOLT": "VOLT", "VOLTAGE": "VOLT"})
        if value != self.function and self.output:
            self.output = False  # the 2450 turns the output off when the source function changes
        self.function = value

    def _set_level_value(self, f: str, value: float) -> None:
        if f == "CURR":
            self.level = value
        else:
            self.vlevel = value

    def _set_level(self, f: str, u: Unit) -> None:
        value = number(need(u, 1)[0], -SOURCE_MAX[f], SOURCE_MAX[f], 0.0)
        if not self.settings[f"src.{f}.range_auto"] and abs(value) > 1.05 * self.settings[f"src.{f}.range"]:
            raise ScpiError(-222, "Parameter too large for present source range")
        self._set_level_value(f, value)
        self.tripped = False
        self._anchor()

    def _source_range(self, f: str) -> float:
        """The range in use: the programmed one, or with autorange the smallest that holds the level."""
        if not self.settings[f"src.{f}.range_auto"]:
            return float(self.settings[f"src.{f}.range"])  # type: ignore[arg-type]
        level = abs(self.level if f == "CURR" else self.vlevel)
        return next((r for r in SOURCE_RANGES[f] if level <= r * 1.05), SOURCE_RANGES[f][-1])

    def _sense_range(self, f: str) -> float:
        """The range in use: the programmed one, or with autorange the smallest holding the last reading."""
        if not self.settings[f"sense.{f}.range_auto"]:
            return float(self.settings[f"sense.{f}.range"])  # type: ignore[arg-type]
        last = abs(self.last_reading.get(f, 0.0))
        return next((r for r in SENSE_RANGES[f] if last <= r * 1.05), SENSE_RANGES[f][-1])

    def _set_source_range(self, f: str, u: Unit) -> None:
        current = float(self.settings[f"src.{f}.range"])  # type: ignore[arg-type]
        self.settings[f"src.{f}.range"] = range_value(need(u, 1)[0], SOURCE_RANGES[f], current)
        self.settings[f"src.{f}.range_auto"] = False

    def _set_sense_range(self, f: str, u: Unit) -> None:
        current = float(self.settings[f"sense.{f}.range"])  # type: ignore[arg-type]
        self.settings[f"sense.{f}.range"] = range_value(need(u, 1)[0], SENSE_RANGES[f], current)
        self.settings[f"sense.{f}.range_auto"] = False

    def _set_sense(self, u: Unit) -> None:
        value = string(need(u, 1)[0]).upper()
        if value not in SENSE_FUNCTIONS:
            raise ScpiError(-224)
        self.sense = SENSE_FUNCTIONS[value]

    def _set_output(self, u: Unit) -> None:
        on = boolean(need(u, 1)[0])
        if on != self.output:
            self.tripped = False
        self.output = on
        self._anchor()

    def _anchor(self) -> None:
        """A potential is applied from now on (output on, a new voltage level): the cell charges from here."""
        if self.output and self.function == "VOLT" and self.potentiostat is not None:
            self.potentiostat.last_t = max(self.potentiostat.last_t, self._last_t, self._t())

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
        unix = buf.t[lo:hi] + self.clock.time() - self.now()

        def column(e: str) -> np.ndarray:  # only the elements asked for: a 1000 h test asks REL, READ, SOUR
            if e == "READ":
                return buf.reading[lo:hi]
            if e == "SOUR":
                return buf.src[lo:hi]
            if e == "REL":
                return buf.t[lo:hi] - (buf.t_first if buf.t_first is not None else 0.0)
            if e in ("SEC", "FRAC"):
                return np.mod(unix, 1.0)
            return np.where(buf.flag[lo:hi], 1.0, 0.0)  # STAT, SOURSTAT

        cols = {e: column(e) for e in dict.fromkeys(elements) if e not in TEXT_ELEMENTS}
        if not any(e in TEXT_ELEMENTS for e in elements):
            if self.data_format != "ASC":
                order = "<" if self.byte_order == "SWAP" else ">"
                # each column cast straight into its place in the reply's row-major table (one copy)
                table = np.empty((len(unix), len(elements)), dtype=order + BINARY_TYPES[self.data_format])
                for k, e in enumerate(elements):
                    table[:, k] = cols[e]
                return b"#0" + table.tobytes()
            flat = np.column_stack([cols[e] for e in elements]).ravel()
            if not len(flat):
                return ""
            return ",".join(map(FMT.__mod__, flat.tolist()))  # 3x faster than np.char.mod (measured)
        out: list[str] = []
        for k in range(hi - lo):
            for e in elements:
                out.append(self._text_element(buf, lo + k, e, float(unix[k])) if e in TEXT_ELEMENTS
                           else FMT % cols[e][k])
        return ",".join(out)

    @staticmethod
    def _text_element(buf: Buffer, k: int, element: str, unix: float) -> str:
        """The text elements [verify: the manual's exact layouts]: units as the front panel names them."""
        stamp = time.gmtime(unix)
        frac = f"{unix % 1:.9f}"[1:]
        if element == "DATE":
            return time.strftime("%m/%d/%Y", stamp)
        if element == "TIME":
            return time.strftime("%H:%M:%S", stamp) + frac
        if element == "TST":
            return time.strftime("%m/%d/%Y %H:%M:%S", stamp) + frac
        if element == "UNIT":
            return UNITS[str(buf.func[k])]
        if element == "SOURUNIT":
            return UNITS[str(buf.src_func[k])]
        if element == "FORM":
            return f"{buf.reading[k]:+.6e} {SYMBOLS[str(buf.func[k])]}"
        return f"{buf.src[k]:+.6e} {SYMBOLS[str(buf.src_func[k])]}"  # SOURFORM

    def _take(self, buf: Buffer, count: int) -> None:
        """`count` readings into `buf`, NPLC / line frequency apart (the instrument busy meanwhile)."""
        t0 = self._t()
        t = t0 + np.arange(count) * (self.nplc / self.line_frequency)
        buf.add(**self._measure(t))
        if count > 1:
            self.held_until = float(t[-1])

    def _read(self, u: Unit) -> str | bytes:
        buf = self._buffer(u.params[0] if u.params else None)
        elements = self._elements(u.params[1:], 2)
        self._take(buf, int(self.settings["sense.count"]))  # type: ignore[arg-type]
        return self._format(buf, len(buf.t) - 1, len(buf.t), elements)

    def _measure_function(self, f: str, u: Unit) -> str | bytes:
        self.sense = SENSE_FUNCTIONS[f]
        return self._read(u)

    def _fetch(self, u: Unit) -> str | bytes:
        buf = self._buffer(u.params[0] if u.params else None)
        if not len(buf.t):
            raise ScpiError(-230)
        return self._format(buf, len(buf.t) - 1, len(buf.t), self._elements(u.params[1:], 2))

    def _check_buffer(self, u: Unit) -> None:
        self._named(u)  # statistics are computed from the buffer at each query: nothing to clear

    def _named(self, u: Unit) -> Buffer:
        return self._buffer(need(u, 0, 1)[0] if u.params else None)

    def _make(self, u: Unit) -> None:
        params = need(u, 2, 3)
        name = string(params[0])
        if not name or len(name) > 31 or name in self.buffers:
            raise ScpiError(-224, "Buffer name invalid or in use")
        style = choice(params[2], BUFFER_STYLES) if len(params) > 2 and params[2] else "STAN"
        # user buffers fill once, the default ones continuously (2450-901-01 p. 6-112)
        self.buffers[name] = Buffer(int(number(params[1], 10, MAX_CAPACITY)), style=style, fill="ONCE")

    def _delete(self, u: Unit) -> None:
        name = string(need(u, 1)[0])
        if name in DEFAULT_BUFFERS or name not in self.buffers:
            raise ScpiError(-224)
        if self.state == "RUNNING" and self.loop is not None and self.loop.buffer == name:
            raise ScpiError(-221, "Buffer in use by the trigger model")
        del self.buffers[name]

    def _points(self, u: Unit) -> None:
        params = need(u, 1, 2)
        buf = self._buffer(params[1] if len(params) > 1 else None)
        buf.capacity = int(number(params[0], 10, MAX_CAPACITY))
        buf.clear()

    def _fill_mode(self, u: Unit) -> None:
        params = need(u, 1, 2)
        buf = self._buffer(params[1] if len(params) > 1 else None)
        mode = choice(params[0], FILL_MODES)
        if len(buf.t) and mode != buf.fill:
            raise ScpiError(-221, "Fill mode can only be changed on an empty buffer")  # p. 6-112
        buf.fill = mode

    def _trace_trigger(self, u: Unit) -> None:
        self._take(self._named(u), int(self.settings["sense.count"]))  # type: ignore[arg-type]

    def _statistic(self, u: Unit, fn: Callable[[np.ndarray], float]) -> str:
        buf = self._named(u)
        if not len(buf.reading):
            return FMT % OVERFLOW  # [verify: the manual's answer for an empty buffer]
        return FMT % float(fn(buf.reading))

    def _data(self, u: Unit) -> str | bytes:
        params = need(u, 2, 20)
        buf = self._buffer(params[2] if len(params) > 2 else None)
        n = len(buf.t)
        lo, hi = int(number(params[0], 1, max(1, n))), int(number(params[1], 1, max(1, n)))
        if n == 0 or lo > hi:
            raise ScpiError(-222)
        return self._format(buf, lo - 1, hi, self._elements(params[3:], 4))

    def _load(self, u: Unit) -> None:
        if self.state == "RUNNING":
            raise ScpiError(-221, "Trigger model is running")
        params = need(u, 1, 4)
        kind = {"EMPTY": "Empty", "DURATIONLOOP": "DurationLoop", "SIMPLELOOP": "SimpleLoop"}.get(
            string(params[0]).upper(), string(params[0]))
        self.blocks = {}  # a template replaces the model (and "Empty" leaves none)
        if kind == "Empty":
            need(u, 1)
            self.loop = None
            return
        need(u, 2, 4)
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

    def _sweep(self, f: str, u: Unit, shape: str = "LINear") -> None:
        """`:SOURce:SWEep:<function>:LINear|LINear:STEP|LOG start, stop, points|step[, delay[, count[, range[,
        failAbort[, dual[, "buffer"]]]]]]` builds the sweep trigger model; `:INIT` runs it (2450-901-01
        pp. 6-81, 6-83, 6-87; LOG takes an asymptote before `"buffer"`, accepted and taken as 0)."""
        if self.state == "RUNNING":
            raise ScpiError(-221, "Trigger model is running")
        p = need(u, 3, 10 if shape == "LOG" else 9)
        if shape == "LOG" and len(p) == 10:
            number(p.pop(8), -SOURCE_MAX[f], SOURCE_MAX[f])  # the asymptote
        top = SOURCE_MAX[f]
        start, stop = number(p[0], -top, top), number(p[1], -top, top)
        if shape == "LINear:STEP":
            step = number(p[2], 1e-12, 2 * top)
            points = math.floor(abs(stop - start) / step + 1e-9) + 1
            stop = start + math.copysign(step * (points - 1), stop - start)
        else:
            points = int(number(p[2], 2, 1e6))
        if shape == "LOG" and (start <= 0 or stop <= 0):
            raise ScpiError(-222, "Log sweep levels must be positive")
        delay = number(p[3], -1, 1e4, -1) if len(p) > 3 else -1.0
        if -1 < delay < 50e-6 and delay != 0:
            raise ScpiError(-222)
        delay = max(delay, 0.0)  # -1: autodelay, which this simulator takes as no delay
        count = int(number(p[4], 0, 268435455, 1)) if len(p) > 4 else 1  # 0: until :ABORt
        if len(p) > 5:
            choice(p[5], mnemonics("BEST", "AUTO", "FIXed"))
        if len(p) > 6:
            boolean(p[6])
        dual = boolean(p[7]) if len(p) > 7 else False
        buffer = string(p[8]) if len(p) > 8 else "defbuffer1"
        if buffer not in self.buffers:
            raise ScpiError(-224, "Buffer not found")
        one = np.geomspace(start, stop, points) if shape == "LOG" else np.linspace(start, stop, points)
        if dual:
            one = np.concatenate((one, one[::-1]))
        levels = np.tile(one, max(count, 1))
        period = delay + self.nplc / self.line_frequency
        if count == 0:
            self.loop = Loop("Sweep", math.inf, period, buffer, None, levels, f)
        else:
            self.loop = Loop("Sweep", len(levels) * period, period, buffer, len(levels), levels, f)
        self.function = f

    def _init(self, u: Unit) -> None:
        if self.loop is None and not self.blocks:
            raise ScpiError(-221, "No trigger model loaded")
        if self.state == "RUNNING":
            raise ScpiError(-221, "Trigger model already running")
        if self.loop is None:  # a model built block by block
            self.started = self._t()
            reading_s = self.nplc / self.line_frequency
            self.schedule = trigger_blocks.Schedule(self.blocks, self.started, reading_s)
            self.block_counts = {}
            self.tripped = False
            self.state = "RUNNING"
            self._advance()
            return
        self.schedule = None
        if self.loop.levels is not None:
            self.output = True  # [verify] a sweep's trigger model turns the output on
        self.started = self._t()
        self.done_k = 0
        self.tripped = False
        self.state = "RUNNING"
        self._advance()

    def _abort(self, u: Unit) -> None:
        if self.state == "RUNNING":
            self._advance()
            self.state = "ABORTED" if self.state == "RUNNING" else self.state

    def _play(self) -> None:
        """The block model's events due by now, in order ; consecutive readings: one world call."""
        sched = self.schedule
        assert sched is not None
        now = self._t()
        run: list[float] = []
        run_buffer = ""

        def flush() -> None:
            if run:
                self.buffers[run_buffer].add(**self._measure(np.array(run)))
                run.clear()

        for t, kind, data in sched.until(now):
            if kind == "measure":
                if run and data != run_buffer:
                    flush()
                run_buffer = str(data)
                run.append(t)
                continue
            flush()
            if kind == "clear":
                self.buffers[str(data)].clear()
            elif kind == "source":
                if bool(data) != self.output:
                    self.tripped = False
                self.output = bool(data)
                self.held_until, saved = t, self.held_until  # the potential applies from the event's time
                self._anchor()
                self.held_until = saved
            elif kind == "count":
                block, value = data  # type: ignore[misc]
                self.block_counts[block] = value
        flush()
        if sched.end is not None and now >= sched.end and not sched.until(now):
            self.state = "IDLE"
            if self.opc:
                self.status.esr |= ESR_OPC
                self.opc = False

    def _block(self, u: Unit, kind: str) -> None:
        """`:TRIGger:BLOCk:<kind> <block>, ...`: defines one block (the templates' model is replaced)."""
        if self.state == "RUNNING":
            raise ScpiError(-221, "Trigger model is running")
        p = u.params
        if not p:
            raise ScpiError(-109)
        n = int(number(p[0], 1, MAX_BLOCKS))
        args = p[1:]
        block: trigger_blocks.Block
        if kind in ("clear", "measure"):
            if len(args) > (1 if kind == "clear" else 2):
                raise ScpiError(-108)
            buffer = string(args[0]) if args else "defbuffer1"
            if buffer not in self.buffers:
                raise ScpiError(-224, "Buffer not found")
            count = int(number(args[1], 1, MAX_CAPACITY, 1)) if len(args) > 1 else 1
            block = trigger_blocks.Block(kind, buffer=buffer, count=count)
        elif kind == "delay":
            block = trigger_blocks.Block(kind, seconds=number(need_n(args, 1)[0], 0, 1e4))
        elif kind == "counter":
            count, target = need_n(args, 2)
            block = trigger_blocks.Block(kind, count=int(number(count, 1, 2**31 - 1)),
                                         target=int(number(target, 1, MAX_BLOCKS)))
        elif kind in ("always", "once", "once_excluded"):
            block = trigger_blocks.Block(kind, target=int(number(need_n(args, 1)[0], 1, MAX_BLOCKS)))
        elif kind == "source":
            block = trigger_blocks.Block(kind, on=boolean(need_n(args, 1)[0]))
        else:
            need_n(args, 0)
            block = trigger_blocks.Block("nop")
        self.loop = None
        self.blocks[n] = block

    def _block_count(self, u: Unit) -> str:
        n = int(number(need(u, 1)[0], 1, MAX_BLOCKS))
        block = self.blocks.get(n)
        if block is None or block.kind != "counter":
            raise ScpiError(-224, "Block is not a counter branch")
        return str(self.block_counts.get(n, 0))

    def _trigger_state(self, u: Unit) -> str:
        block = 9 if self.state == "IDLE" else 4
        return f"{self.state};{self.state};{block}"
