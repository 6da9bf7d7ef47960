"""Simulated PalmSens EmStat4: a MethodSCRIPT device on the shared cell.

Facts from `reference/instruments.md` §1.2 and PalmSens' MethodSCRIPT_Examples (v1.8 scripts; the Python and C
examples' readers): `t` (version, two lines, the last ending `*`), `v` (MethodSCRIPT version), `i` (serial
number), `Z` (abort: `Z` then the script's end, or `Z!0006` when nothing runs), `e` + script + empty line (ack
`e`; `M0000` at a measurement loop's start and `*` at its end, `C0000`/`-` around each scan of a CV with
`nscans(n)`, `L`/`+` around a `loop`, one `P...` package per `pck_end`, `T<text>` per `send_string`, an empty
line when the script is over), package data encoded as in `labctl.drivers.methodscript`. The language (what
is accepted, the static checks) is `simulators.mscript`; the command table with its sources is
`docs/instruments/emstat4.md`.

Physics, all from the world's cell, nothing tabulated:
- EIS/GEIS: `world.cell_impedance(t, f)` at each point's own time, with 0.1 % complex noise; one point takes
  max(3 periods, 0.1 s);
- OCP: `world.cell_ocv`; CP and LSP (galvanostatic): `world.cell_voltage` for the applied current (10 uV
  noise);
- LSV, CV, DPV, SWV, CA (potentiostatic): the current the cell draws at the applied potential, from
  `simulators.potentiostatic` (the world's impedance reduced to a Randles circuit, integrated between
  samples, corrected by the world's DC answer). A step's current is sampled at the step's end; DPV reports
  i(pulse end) - i(before the pulse), SWV i(forward) - i(reverse) with both halves; with the cell off the
  current is 0. Points come every step/scan rate (1/frequency for SWV), packages at those times on the clock.

Where the sources are silent this core chooses, and says so [verify against the MethodSCRIPT manual]:
- error codes are the device's (PalmSens' SDK table, see `simulators.mscript`): the static checks' codes
  there; at run time 0x0011 an EIS frequency outside 10 uHz-200 kHz, 0x0012 a non-positive amplitude, 0x0014
  OCP with the cell on, 0x0028 division by zero, 0x0007 any other bad loop parameter (and the simulator's
  point/statement limits); 0x0006 `Z` with nothing running (instruments.md), 0x0003 an unknown idle command
  (its first character + `!0003`), 0x0001 a device fault (INSTRUMENT_ERROR). A script failing the static
  checks answers `e`, `!XXXX: Line N`, then the empty line, and nothing of it runs; a loop's parameters are
  checked when the loop starts (variables may change at run time): then `!XXXX: Line N` ends the output
  there, then the empty line;
- the `M`/`C` codes are `0000` for every technique; `send_string f"..{x}.."` puts `x`'s value as `%g`;
- while a script runs, every input but `Z` is ignored; `Z` answers `Z`, `*`, then the empty line, and runs
  `on_finished:` (the cell goes off); `Z` also drops output still queued for the host (a slow line's tail);
- a script half received when the link drops is discarded when it comes back;
- the core computes a script's output when it starts, so its cell/mode state is the script's end state at
  once; simulation limits, not the device's: at most `MAX_POINTS` points and `MAX_STEPS` statements per
  script (`!0003` at the line that passes them);
- version `tes4_lr1.3.1` / `#2024-01-16 labctl-sim*`, `v` -> `v0108` (MethodSCRIPT 1.8), `i` -> the serial;
  `stuck busy` is a script that never ends: `Z` is answered but the device stays busy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import numpy as np

from labctl.clock import Clock
from labctl.drivers.methodscript import encode_value, parse_literal
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore, Fault, FaultKind
from labctl.simulators.mscript import (
    ARITHMETIC,
    E_AMPLITUDE,
    E_CHARACTER,
    E_COMM_MODE,
    E_DIVIDE_BY_ZERO,
    E_FREQUENCY,
    E_INDEX,
    E_MEMORY,
    E_NOT_RECOGNIZED,
    E_OCP_CELL_ON,
    E_UNSPECIFIED,
    E_VALUE,
    ELEMENT,
    IDENT,
    TECHNIQUES,
    TIMER_TYPE,
    If,
    Loop,
    MeasLoop,
    ScriptError,
    Stmt,
    parse,
)
from labctl.simulators.potentiostatic import Potentiostat
from labctl.simulators.world import SimpleWorld

VERSION = b"tes4_lr1.3.1\n#2024-01-16 labctl-sim*\n"
MSCRIPT_VERSION = b"v0108\n"
SERIAL_NUMBER = b"iES4LR24SIM0001\n"
F_RANGE = (1e-5, 2e5)
MAX_POINTS = 1_000_000
MAX_STEPS = 10_000_000
MAX_ARRAY = 100_000  # elements per array (the device's memory; 0x000B "Cannot reserve the memory" beyond)
UNSET_TYPE = "aa"  # "unknown": an array element nothing has set
CHUNK = 512  # points per world call in a measurement loop (a `breakloop` stops asking the world)
META = "10"  # status 0


class _Break(Exception):
    """`breakloop`."""


class _Abort(Exception):
    """The script command `abort`: the script ends here (its `on_finished:` part still runs)."""


def _arithmetic(cmd: str, a: float, b: float, line: int) -> float:
    """`a op b` for the `*_var` commands; the bit operations work on the integer parts."""
    if cmd in ("div_var", "mod_var") and b == 0:
        raise ScriptError(E_DIVIDE_BY_ZERO, line)
    ia, ib = int(a), int(b)
    ops = {
        "add_var": lambda: a + b, "sub_var": lambda: a - b, "mul_var": lambda: a * b,
        "div_var": lambda: a / b, "mod_var": lambda: math.fmod(a, b), "pow_var": lambda: a**b,
        "bit_and_var": lambda: ia & ib, "bit_or_var": lambda: ia | ib, "bit_xor_var": lambda: ia ^ ib,
        "bit_lsl_var": lambda: ia << ib, "bit_lsr_var": lambda: ia >> ib,
        "bit_inv_var": lambda: ~ia & 0xFFFFFFFF,  # [verify: the device's integer width]
        "int_to_float": lambda: a, "float_to_int": lambda: float(math.trunc(a)),
    }
    try:
        return float(ops[cmd]())
    except (OverflowError, ValueError, ZeroDivisionError):
        raise ScriptError(E_VALUE, line) from None


class EmStat4Sim(DeviceCore):
    """One EmStat4 LR on the world's cell."""

    SERIAL = SerialSettings(921600)
    TERMINATORS = (b"\n",)

    def __init__(
        self, name: str = "emstat4", *, clock: Clock | None = None, world: object | None = None, seed: int = 0
    ) -> None:
        self._stream: list[tuple[float, bytes]] = []
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    def reset(self) -> None:
        self.script: list[str] | None = None  # lines of a script being received
        self.busy_until = -math.inf
        self._cell_on = False
        self.mode = 3
        self.finish: list[Stmt] = []
        self._timer0 = 0.0
        self.env: dict[str, tuple[str, float]] = {}  # variables: type id, value
        self.arrays: dict[str, list[tuple[str, float]]] = {}
        self.settings: dict[str, object] = {"e": 0.0, "i": 0.0}
        self.pstat = Potentiostat(self.world)
        self._package: list[str] | None = None
        self._points = self._steps = 0

    def set_stuck_busy(self) -> None:
        super().set_stuck_busy()
        self.busy_until = math.inf

    def rejects(self, reply: bytes) -> bool:
        """Whether `reply` is the device's refusal: a line with `!` and four hex digits (`q!0002`,
        `!0003: Line 2`)."""
        return re.search(rb"!([0-9A-Fa-f]{4})", reply) is not None

    @property
    def cell_on(self) -> bool:
        """The cell switch, after a finished script's `on_finished:` part."""
        if self.finish and not self.running:
            self._finish(self.busy_until)
        return self._cell_on

    @property
    def running(self) -> bool:
        return self.now() < self.busy_until

    # -- messages ---------------------------------------------------------------------------------------

    def handle(self, message: bytes) -> bytes | None:
        text = message.rstrip(b"\r\n").decode("ascii", "replace")
        if self.finish and not self.running:
            self._finish(self.busy_until)
        if self.running:
            return self._abort() if text.strip() == "Z" else None
        if self.script is not None:
            if text.strip():
                self.script.append(text)
                return None
            lines, self.script = self.script, None
            return self._execute(lines)
        idle = {"t": VERSION, "v": MSCRIPT_VERSION, "i": SERIAL_NUMBER}
        if text in idle:
            return idle[text]
        if text == "e":
            self.script = []
            return None
        if text == "Z":
            self.cancel_pending()  # whatever was still queued for the host is dropped too
            return f"Z!{E_COMM_MODE:04X}\n".encode()
        if not text.strip():
            return None
        return f"{text[0]}!{E_NOT_RECOGNIZED:04X}\n".encode()

    def error_reply(self, message: bytes) -> bytes | None:
        """INSTRUMENT_ERROR: a device fault (0x0010) refuses the command or the whole script."""
        if self.script is not None and not message.strip():
            self.script = None
            return f"e\n!{E_UNSPECIFIED:04X}: Line 1\n\n".encode()
        if self.script is not None:
            self.script.append(message.decode("ascii", "replace").strip())
            return None
        return message[:1] + f"!{E_UNSPECIFIED:04X}\n".encode()

    def _abort(self) -> bytes:
        self.cancel_pending()
        if not self.stuck_busy:
            self.busy_until = self.now()
            self._finish(self.now())
        return b"Z\n*\n\n"

    def _dispatch(self, message: bytes, fault: Fault | None) -> None:
        """Faults hit a script's whole output: its acknowledge through the core, its stream here."""
        self._stream = []
        super()._dispatch(message, fault)
        stream, self._stream = self._stream, []
        kind = fault.kind if fault else None
        if not stream:
            return
        if kind is FaultKind.NO_REPLY:  # the script was lost on the way: nothing runs
            self.busy_until = -math.inf
            self._finish(self.now())
            return
        if kind is FaultKind.TRUNCATE:  # output lost; the device still runs its time
            return
        shift = (
            {FaultKind.LATE: fault.delay, FaultKind.TRICKLE: 2 * fault.delay}.get(kind, 0.0) if fault else 0.0
        )
        now = self.now()  # on a real clock time moved on since the acknowledge was emitted: keep it first
        for t, data in stream:
            garble = kind is FaultKind.GARBAGE or not self.line_ok
            at = max(t + shift, now)
            if kind is FaultKind.TRICKLE and fault is not None:  # the whole stream trickles, in order
                for i, byte in enumerate(data):
                    self.emit(bytes([byte]), at + i * fault.delay)
                now = at + len(data) * fault.delay
            else:
                self.emit(self._noise(len(data)) if garble else data, at)

    def reconnect(self) -> None:
        """The link is back; a script half received before it dropped is discarded."""
        with self.lock:
            self.script = None
        super().reconnect()

    # -- the interpreter --------------------------------------------------------------------------------

    def _execute(self, lines: list[str]) -> bytes:
        try:
            program = parse(lines, self.mode)
        except ScriptError as exc:
            return f"e\n{exc}\n\n".encode()
        self._t = self._timer0 = self.now()
        self.env = {}
        self.arrays = {}
        self._package = None
        self._points = self._steps = 0
        self._closers: list[str] = []  # the end markers of the blocks being run
        try:
            self._block(program.body)
        except ScriptError as exc:  # a run-time error ends the script's output there
            self._say(f"{exc}\n")
        except _Abort:  # the blocks it was in end as they would
            while self._closers:
                self._close()
        self.finish = program.finish  # run when the script ends (or is aborted)
        self.busy_until = self._t
        self._say("\n")
        return b"e\n"

    def _finish(self, t: float) -> None:
        finish, self.finish = self.finish, []
        self._t = t
        for stmt in finish:
            try:
                self._simple(stmt)
            except ScriptError:
                break

    def _say(self, text: str) -> None:
        self._stream.append((self._t, text.encode("ascii")))

    def _value(self, text: str, line: int) -> float:
        if IDENT.fullmatch(text) or ELEMENT.fullmatch(text):
            return self._get(text, line)[1]
        return parse_literal(text)

    def _slot(self, name: str, line: int) -> tuple[list, int] | None:
        """An array element's (array, index), or None for a plain variable; a bad index is 0x400F."""
        m = ELEMENT.fullmatch(name)
        if m is None:
            return None
        items = self.arrays.get(m.group(1))
        k = int(self._value(m.group(2), line))
        if items is None or not 0 <= k < len(items):
            raise ScriptError(E_INDEX, line)
        return items, k

    def _get(self, name: str, line: int) -> tuple[str, float]:
        slot = self._slot(name, line)
        if slot is not None:
            return slot[0][slot[1]]
        if name not in self.env:
            raise ScriptError(E_CHARACTER, line)
        return self.env[name]

    def _put(self, name: str, value: tuple[str, float], line: int) -> None:
        slot = self._slot(name, line)
        if slot is not None:
            slot[0][slot[1]] = value
        else:
            self.env[name] = value

    def _cond(self, cond: tuple[str, str, str], line: int) -> bool:
        a, op, b = self._value(cond[0], line), cond[1], self._value(cond[2], line)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]

    def _step(self, line: int) -> None:
        self._steps += 1
        if self._steps > MAX_STEPS:
            raise ScriptError(E_VALUE, line)

    def _block(self, body: list) -> None:
        for item in body:
            if isinstance(item, MeasLoop):
                self._measure(item)
            elif isinstance(item, Loop):
                self._open("L\n", "+\n")
                try:
                    while self._cond(item.cond, item.line):
                        self._step(item.line)
                        self._block(item.body)
                except _Break:
                    pass
                self._close()
            elif isinstance(item, If):
                for cond, branch in item.branches:
                    if cond is None or self._cond(cond, item.line):
                        self._block(branch)
                        break
            else:
                self._simple(item)

    def _simple(self, s: Stmt) -> None:
        self._step(s.line)
        cmd, args, n = s.cmd, s.args, s.line
        if cmd == "breakloop":
            raise _Break
        if cmd == "store_var":
            self.env[args[0]] = (args[2], self._value(args[1], n))
        elif cmd == "copy_var":
            self._put(args[1], self._get(args[0], n), n)
        elif cmd in ARITHMETIC:
            type_id, a = self._get(args[0], n)
            b = self._value(args[1], n) if len(args) > 1 else 0.0
            named = len(args) > 1 and (IDENT.fullmatch(args[1]) or ELEMENT.fullmatch(args[1]))
            if type_id == UNSET_TYPE and named:
                type_id = self._get(args[1], n)[0]  # an array element takes the type of what it first gets
            self._put(args[0], (type_id, _arithmetic(cmd, a, b, n)), n)
        elif cmd == "abort":
            raise _Abort
        elif cmd == "array":
            size = int(self._value(args[1], n))
            if not 0 < size <= MAX_ARRAY:
                raise ScriptError(E_MEMORY, n)
            self.arrays[args[0]] = [(UNSET_TYPE, 0.0)] * size
        elif cmd == "alter_vartype":
            self._put(args[0], (args[1], self._get(args[0], n)[1]), n)
        elif cmd == "meas":
            self._t += max(self._value(args[0], n), 0.0)
            self.env[args[1]] = (args[2], self._single(args[2]))
        elif cmd == "timer_start":
            self._timer0 = self._t
        elif cmd == "timer_get":
            self.env[args[0]] = (TIMER_TYPE, self._t - self._timer0)
        elif cmd == "wait":
            self._t += max(self._value(args[0], n), 0.0)
        elif cmd == "set_pgstat_mode":
            self.mode = int(self._value(args[0], n))
        elif cmd in ("set_e", "set_i"):
            self.settings[cmd[-1]] = self._value(args[0], n)
            self._anchor()
        elif cmd in ("cell_on", "cell_off"):
            self._cell_on = cmd == "cell_on"
            self._anchor()
        elif cmd == "pck_start":
            self._package = []
        elif cmd == "pck_add":
            if self._package is None:
                self._package = []
            self._package.append(encode_value(*self._get(args[0], n)))
        elif cmd == "pck_end":
            self._emit_package()
        elif cmd == "send_string":
            self._say("T" + self._text(args[0], n) + "\n")
        else:  # ranges, bandwidth, channel: kept (the simulated cell has no noise floor to range over)
            key = cmd + (f":{args[0]}" if cmd in ("set_range", "set_range_minmax", "set_autoranging") else "")
            first = 1 if cmd in ("set_range", "set_range_minmax", "set_autoranging") else 0
            self.settings[key] = [self._value(a, n) for a in args[first:]]

    def _text(self, literal: str, line: int) -> str:
        if literal.startswith("f"):
            return re.sub(r"\{([^{}]+)\}", lambda m: f"{self._value(m.group(1), line):g}", literal[2:-1])
        return literal[1:-1]

    def _single(self, type_id: str) -> float:
        """`meas`: one reading of the quantity `type_id` names, now (potential `ab`, current `ba`)."""
        t = np.array([self._t])
        e, i = float(self.settings["e"]), float(self.settings["i"])  # type: ignore[arg-type]
        if type_id == "ba":
            if self.mode == 6:
                return i if self._cell_on else 0.0
            return float(self._potentiostatic(t, np.array([e]))[0])
        if self._cell_on and self.mode == 6:
            return float(self._galvanostatic(t, np.array([i]))[0])
        return e if self._cell_on else float(self._ocv(t)[0])

    def _emit_package(self) -> None:
        if self._package:
            self._say("P" + ";".join(self._package) + "\n")
        self._package = None

    def _anchor(self) -> None:
        """A potential is applied from now: the double layer charges from here (see `potentiostatic`)."""
        self.pstat.last_t = max(self.pstat.last_t, self._t)

    # -- measurement loops ------------------------------------------------------------------------------

    def _measure(self, loop: MeasLoop) -> None:
        params = [self._value(p, loop.line) for p in loop.params]
        options = {k: self._value(v, loop.line) for k, v in loop.options.items()}
        scans = self._check(loop, params, options)
        types = TECHNIQUES[loop.kind].types
        self._open("M0000\n", "*\n")
        try:
            for scan in range(scans):
                if scans > 1:
                    self._open("C0000\n", "-\n")
                for times, columns in self._points_of(loop.kind, params, scan):
                    for k, when in enumerate(times):
                        self._t = float(when)
                        for name, type_id, col in zip(loop.out, types, columns, strict=True):
                            self.env[name] = (type_id, float(col[k]))
                        self._package = None
                        self._block(loop.body)
                        self._emit_package()  # `pck_add` with no `pck_start`: one package per point
                if scans > 1:
                    self._close()
        except _Break:
            self._package = None
            if scans > 1:
                self._close()
        self._close()

    def _open(self, start: str, end: str) -> None:
        self._say(start)
        self._closers.append(end)

    def _close(self) -> None:
        self._say(self._closers.pop())

    def _check(self, loop: MeasLoop, p: list[float], options: dict[str, float]) -> int:
        """A loop's parameters, checked when it starts; returns the number of scans."""
        bad = False
        if loop.kind in ("meas_loop_eis", "meas_loop_geis"):
            amp, fs, fe, points, _ = p
            if not (F_RANGE[0] <= fs <= F_RANGE[1] and F_RANGE[0] <= fe <= F_RANGE[1]):
                raise ScriptError(E_FREQUENCY, loop.line)
            if amp <= 0:
                raise ScriptError(E_AMPLITUDE, loop.line)
            bad = not (2 <= points <= MAX_POINTS and points == int(points))
            n = points
        elif loop.kind in ("meas_loop_ocp", "meas_loop_cp", "meas_loop_ca"):
            if loop.kind == "meas_loop_ocp" and self._cell_on:
                raise ScriptError(E_OCP_CELL_ON, loop.line)
            interval, duration = p[-2], p[-1]
            bad = not 0 < interval <= duration
            n = duration / interval if not bad else 0
        elif loop.kind in ("meas_loop_lsv", "meas_loop_lsp", "meas_loop_dpv", "meas_loop_swv"):
            step = p[2]
            rate = p[-1]
            bad = not (step > 0 and rate > 0)
            n = abs(p[1] - p[0]) / step + 1 if not bad else 0
            if loop.kind == "meas_loop_dpv" and not bad:
                bad = not 0 < p[4] < step / rate
        else:  # CV
            step, rate = p[3], p[4]
            bad = not (step > 0 and rate > 0)
            n = (abs(p[1] - p[0]) + abs(p[2] - p[1]) + abs(p[0] - p[2])) / step if not bad else 0
        scans = int(options.get("nscans", 1))
        bad = bad or scans < 1 or scans != options.get("nscans", 1)
        if bad or self._points + n * scans > MAX_POINTS:
            raise ScriptError(E_VALUE, loop.line)
        self._points += int(n * scans)
        return scans

    def _points_of(self, kind: str, p: list[float], scan: int) -> Iterator[tuple[np.ndarray, list]]:
        """The loop's points in chunks: (times, one array per output variable)."""
        t0 = self._t
        if kind in ("meas_loop_eis", "meas_loop_geis"):
            yield from self._eis(p, t0)
            return
        if kind in ("meas_loop_ocp", "meas_loop_cp", "meas_loop_ca"):
            interval, duration = p[-2], p[-1]
            k = np.arange(1, int(duration / interval + 1e-9) + 1)
            for chunk in np.array_split(k, max(1, len(k) // CHUNK)):
                times = t0 + interval * chunk
                if kind == "meas_loop_ocp":
                    yield times, [self._ocv(times)]
                elif kind == "meas_loop_cp":
                    amps = np.full(len(times), p[0])
                    yield times, [self._galvanostatic(times, amps), amps]
                else:
                    e = np.full(len(times), p[0])
                    yield times, [e, self._potentiostatic(times, e)]
            return
        if kind == "meas_loop_cv":
            e = _cv_potentials(p[0], p[1], p[2], p[3])
            dt = p[3] / p[4]
        elif kind == "meas_loop_swv":
            e = _ramp(p[0], p[1], p[2])
            dt = 1.0 / p[4]
        else:  # LSV, LSP, DPV: begin, end, step, ..., rate
            e = _ramp(p[0], p[1], p[2])
            dt = p[2] / p[-1]
        k = np.arange(len(e))
        for chunk in np.array_split(k, max(1, len(k) // CHUNK)):
            times = t0 + (chunk + 1) * dt
            if kind in ("meas_loop_lsv", "meas_loop_cv"):
                yield times, [e[chunk], self._potentiostatic(times, e[chunk])]
            elif kind == "meas_loop_lsp":
                yield times, [self._galvanostatic(times, e[chunk]), e[chunk]]
            elif kind == "meas_loop_dpv":
                pulse, t_pulse = p[3], p[4]
                both = np.column_stack((times - t_pulse, times)).ravel()
                i = self._potentiostatic(both, np.column_stack((e[chunk], e[chunk] + pulse)).ravel())
                yield times, [e[chunk], i[1::2] - i[0::2]]
            else:  # SWV: forward half at E + amplitude, reverse half at E - amplitude
                amp = p[3]
                both = np.column_stack((times - dt / 2, times)).ravel()
                i = self._potentiostatic(both, np.column_stack((e[chunk] + amp, e[chunk] - amp)).ravel())
                fwd, rev = i[0::2], i[1::2]
                yield times, [e[chunk], fwd - rev, fwd, rev]

    def _eis(self, p: list[float], t: float) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        _, fs, fe, points, _ = p
        for f in np.geomspace(fs, fe, int(points)):
            t += max(3.0 / f, 0.1)
            z = complex(self.world.cell_impedance(t, np.array([f]))[0])  # type: ignore[union-attr]
            z *= 1 + complex(self.rng.gauss(0, 1e-3), self.rng.gauss(0, 1e-3))
            yield np.array([t]), [np.array([f]), np.array([z.real]), np.array([z.imag])]

    def _ocv(self, times: np.ndarray) -> np.ndarray:
        return np.array([self.world.cell_ocv(float(x)) + self.rng.gauss(0, 1e-5)  # type: ignore[union-attr]
                         for x in times])

    def _galvanostatic(self, times: np.ndarray, amps: np.ndarray) -> np.ndarray:
        """The cell's voltage at `times` for the currents applied (its OCV with the cell off), 10 uV noise."""
        if not self._cell_on:
            return self._ocv(times)
        t = self.pstat.times(times)
        v = np.asarray(self.world.cell_voltage(t, amps), dtype=float)  # type: ignore[union-attr]
        self.pstat.last_t = float(t[-1])
        return v + np.array([self.rng.gauss(0, 1e-5) for _ in v])

    def _potentiostatic(self, times: np.ndarray, e: np.ndarray) -> np.ndarray:
        """The current the cell draws at potentials `e` held until `times` (0 with the cell off)."""
        if not self._cell_on:
            return np.zeros(len(times))
        i, _ = self.pstat.apply(times, e)
        return i * (1 + np.array([self.rng.gauss(0, 1e-4) for _ in i]))


def _ramp(begin: float, end: float, step: float) -> np.ndarray:
    """begin, begin +- step, ... up to end (included when a step lands on it)."""
    n = math.floor(abs(end - begin) / step + 1e-9)
    return begin + math.copysign(step, end - begin) * np.arange(n + 1)


def _cv_potentials(begin: float, vertex1: float, vertex2: float, step: float) -> np.ndarray:
    """One CV scan: begin -> vertex 1 -> vertex 2 -> begin, each vertex once."""
    legs = [_ramp(begin, vertex1, step), _ramp(vertex1, vertex2, step)[1:], _ramp(vertex2, begin, step)[1:]]
    return np.concatenate(legs)
