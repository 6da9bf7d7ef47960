"""Simulated PalmSens EmStat4: a MethodSCRIPT interpreter for the subset labctl uses, on the shared cell.

Facts from `reference/instruments.md` §1.2: `t` (version, two lines, the last ending `*`), `Z` (abort: `Z`
then the script's end, or `Z!0006` when nothing runs), `e` + script + empty line (ack `e`, `M0000` at a
loop's start, one `P...` package per point, `*` at its end, an empty line when the script is over), data
encoded as in `labctl.drivers.methodscript`. Commands interpreted: `var`, `set_pgstat_chan`,
`set_pgstat_mode`, `set_max_bandwidth`, `set_range`, `set_range_minmax`, `set_autoranging`, `set_e`, `set_i`,
`cell_on`, `cell_off`, `wait`, `meas_loop_eis|geis` (f, z_re, z_im, amplitude, f_start, f_end, points, dc),
`meas_loop_ocp` (potential, interval, duration), `meas_loop_cp` (potential, current, dc current, interval,
duration), `pck_start`, `pck_add`, `pck_end`, `endloop`, `on_finished:`, and what PalmSens' own example
scripts (MethodSCRIPT_Examples `MethodSCRIPTs/Measurement_Loops/*.mscr`, v1.8) add around them: `#` comments
(whole line or after a command), indentation, `store_var <var> <number> <type>` and variables in place of
any numeric argument, `11i` integer literals, `timer_start` and `timer_get <var>` (seconds since
`timer_start`, type `eb`, read at each point when inside a loop) [verify: the timer's type id].

Physics: the impedance is `world.cell_impedance(t, f)` at each point's own time, with 0.1 % complex noise; OCP
reads `world.cell_ocv`, CP `world.cell_voltage` for the held current (10 uV noise). One EIS point takes
max(3 periods, 0.1 s); OCP/CP points come every interval; packages are released at those times on the clock.

Where the sources are silent this core chooses, and says so [verify against the MethodSCRIPT manual]:
- error codes: 0x0002 unknown command, 0x0003 invalid argument (count, number, range, undeclared variable),
  0x0004 wrong mode for the loop (galvanostatic loops need mode 6, potentiostatic ones not 6), 0x0005 loop
  structure (endloop without loop, loop without endloop), 0x0006 nothing to abort (instruments.md), 0x0010 a
  device fault (INSTRUMENT_ERROR); a bad script answers `e`, `!XXXX: Line N`, then the empty line, and nothing
  of it runs; an unknown idle command answers its first character + `!0002`;
- while a script runs, every input but `Z` is ignored; `Z` answers `Z`, `*`, then the empty line, and runs
  `on_finished:` (the cell goes off);
- `Z` also drops output still queued for the host (a slow line's tail);
- a script half received when the link drops is discarded when it comes back;
- a simulation limit, not the device's: a loop of more than `MAX_POINTS` points is refused (`!0003`), as the
  core computes a loop's packages when the script starts;
- version `tes4_lr1.3.1` / `#2024-01-16 labctl-sim*`; `stuck busy` is a script that never ends: `Z` is
  answered but the device stays busy.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from labctl.clock import Clock
from labctl.drivers.methodscript import encode_value, parse_literal
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore, Fault, FaultKind
from labctl.simulators.world import SimpleWorld

VERSION = b"tes4_lr1.3.1\n#2024-01-16 labctl-sim*\n"
E_UNKNOWN, E_ARG, E_MODE, E_STRUCTURE, E_NOTHING, E_DEVICE = 0x2, 0x3, 0x4, 0x5, 0x6, 0x10
F_RANGE = (1e-5, 2e5)
MAX_POINTS = 1_000_000
SIMPLE = {
    "set_pgstat_chan": 1,
    "set_pgstat_mode": 1,
    "set_max_bandwidth": 1,
    "set_range": 2,
    "set_range_minmax": 3,
    "set_autoranging": 3,
    "set_e": 1,
    "set_i": 1,
    "cell_on": 0,
    "cell_off": 0,
    "wait": 1,
    "pck_start": 0,
    "pck_end": 0,
    "pck_add": 1,
    "store_var": 3,
    "timer_start": 0,
    "timer_get": 1,
}
LOOPS = {
    "meas_loop_eis": (3, 5, ("dc", "cc", "cd")),
    "meas_loop_geis": (3, 5, ("dc", "cc", "cd")),
    "meas_loop_ocp": (1, 2, ("ab",)),
    "meas_loop_cp": (2, 3, ("ab", "ba")),
}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TYPE_ID = re.compile(r"[a-z]{2}")
TIMER_TYPE = "eb"


class ScriptError(Exception):
    def __init__(self, code: int, line: int) -> None:
        super().__init__(f"!{code:04X}: Line {line}")
        self.code, self.line = code, line


@dataclass
class Loop:
    kind: str
    out: list[str]  # the variables the loop sets
    args: list[float]
    packs: list[str] = field(default_factory=list)
    timers: set[str] = field(default_factory=set)  # variables `timer_get` sets at each point
    stored: dict[str, tuple[str, float]] = field(default_factory=dict)  # constants packed: type, value


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
        self.finish: list[tuple[str, list[float]]] = []
        self._timer0 = 0.0

    def set_stuck_busy(self) -> None:
        super().set_stuck_busy()
        self.busy_until = math.inf

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
        if text == "e":
            self.script = []
            return None
        if text == "t":
            return VERSION
        if text == "Z":
            self.cancel_pending()  # whatever was still queued for the host is dropped too
            return f"Z!{E_NOTHING:04X}\n".encode()
        if not text.strip():
            return None
        return f"{text[0]}!{E_UNKNOWN:04X}\n".encode()

    def error_reply(self, message: bytes) -> bytes | None:
        """INSTRUMENT_ERROR: a device fault (0x0010) refuses the command or the whole script."""
        if self.script is not None and not message.strip():
            self.script = None
            return f"e\n!{E_DEVICE:04X}: Line 1\n\n".encode()
        if self.script is not None:
            self.script.append(message.decode("ascii", "replace").strip())
            return None
        return message[:1] + f"!{E_DEVICE:04X}\n".encode()

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
            program, finish = self._parse(lines)
        except ScriptError as exc:
            return f"e\n{exc}\n\n".encode()
        t = self._timer0 = self.now()
        for item in program:
            t = self._run_loop(item, t) if isinstance(item, Loop) else self._apply(*item, t)
        self.finish = finish  # run when the script ends (or is aborted)
        self.busy_until = t
        self._stream.append((t, b"\n"))
        return b"e\n"

    def _finish(self, t: float) -> None:
        for cmd, nums in self.finish:
            self._apply(cmd, nums, t)
        self.finish = []

    def _parse(self, lines: list[str]) -> tuple[list, list[tuple[str, list[float]]]]:
        """Check the whole script before any of it runs; numbers (and stored variables) resolved here."""
        declared: set[str] = set()
        stored: dict[str, tuple[str, float]] = {}  # store_var: type id, value
        program: list = []
        finish: list[tuple[str, list[float]]] = []
        loop: Loop | None = None
        in_finish = False
        mode = self.mode
        for n, raw in enumerate(lines, start=1):
            words = raw.split("#", 1)[0].split()
            if not words:  # a comment line
                continue
            cmd, args = words[0], words[1:]
            if cmd == "on_finished:" and not args and loop is None:
                in_finish = True
                continue
            if cmd == "var":
                if len(args) != 1 or not IDENT.fullmatch(args[0]):
                    raise ScriptError(E_ARG, n)
                declared.add(args[0])
                continue
            if cmd == "endloop" and not args:
                if loop is None:
                    raise ScriptError(E_STRUCTURE, n)
                program.append(loop)
                loop = None
                continue
            if cmd in LOOPS:
                n_vars, n_nums, _ = LOOPS[cmd]
                if loop is not None or in_finish:
                    raise ScriptError(E_STRUCTURE, n)
                if len(args) != n_vars + n_nums or any(a not in declared for a in args[:n_vars]):
                    raise ScriptError(E_ARG, n)
                galvanostatic = cmd in ("meas_loop_geis", "meas_loop_cp")
                if galvanostatic != (mode == 6):
                    raise ScriptError(E_MODE, n)
                loop = Loop(cmd, args[:n_vars], self._numbers(args[n_vars:], n, stored))
                self._check_loop(loop, n)
                continue
            if cmd not in SIMPLE:
                raise ScriptError(E_UNKNOWN, n)
            if len(args) != SIMPLE[cmd]:
                raise ScriptError(E_ARG, n)
            if cmd == "store_var":
                name, value, type_id = args
                if name not in declared or not TYPE_ID.fullmatch(type_id):
                    raise ScriptError(E_ARG, n)
                stored[name] = (type_id, self._numbers([value], n, stored)[0])
                continue
            if cmd == "timer_get":
                if args[0] not in declared:
                    raise ScriptError(E_ARG, n)
                if loop is not None:
                    loop.timers.add(args[0])
                continue  # outside a loop nothing can pack it: reading the timer changes nothing
            if cmd == "pck_add":
                if loop is None:
                    raise ScriptError(E_STRUCTURE, n)
                name = args[0]
                if name in stored and name not in loop.out and name not in loop.timers:
                    loop.stored[name] = stored[name]
                elif name not in loop.out and name not in loop.timers:
                    raise ScriptError(E_ARG, n)
                loop.packs.append(name)
                continue
            if cmd in ("pck_start", "pck_end"):
                if loop is None:
                    raise ScriptError(E_STRUCTURE, n)
                continue
            numeric = args[1:] if cmd in ("set_range", "set_range_minmax", "set_autoranging") else args
            nums = self._numbers(numeric, n, stored)
            if cmd == "set_pgstat_mode":
                mode = int(nums[0])
                if mode not in (0, 2, 3, 4, 6):
                    raise ScriptError(E_ARG, n)
            if loop is not None:
                raise ScriptError(E_STRUCTURE, n)
            (finish if in_finish else program).append((cmd, nums))
        if loop is not None:
            raise ScriptError(E_STRUCTURE, len(lines))
        return program, finish

    @staticmethod
    def _numbers(args: list[str], n: int, stored: dict[str, tuple[str, float]]) -> list[float]:
        """Literals or variables given a value by `store_var` (a declared but unset one is an error)."""
        try:
            return [stored[a][1] if a in stored else parse_literal(a) for a in args]
        except ValueError:
            raise ScriptError(E_ARG, n) from None

    @staticmethod
    def _check_loop(loop: Loop, n: int) -> None:
        a = loop.args
        if loop.kind in ("meas_loop_eis", "meas_loop_geis"):
            amp, fs, fe, points, _ = a
            if not (
                F_RANGE[0] <= fs <= F_RANGE[1]
                and F_RANGE[0] <= fe <= F_RANGE[1]
                and amp > 0
                and 2 <= points <= MAX_POINTS
                and points == int(points)
            ):
                raise ScriptError(E_ARG, n)
        else:
            interval, duration = a[-2], a[-1]
            if not 0 < interval <= duration or duration / interval > MAX_POINTS:
                raise ScriptError(E_ARG, n)

    def _apply(self, cmd: str, nums: list[float], t: float) -> float:
        if cmd == "set_pgstat_mode":
            self.mode = int(nums[0])
        elif cmd in ("cell_on", "cell_off"):
            self._cell_on = cmd == "cell_on"
        elif cmd == "timer_start":
            self._timer0 = t
        elif cmd == "wait":
            return t + nums[0]
        return t

    def _run_loop(self, loop: Loop, t: float) -> float:
        world = self.world
        self._stream.append((t, b"M0000\n"))
        rows: list[tuple[float, dict[str, str]]] = []
        if loop.kind in ("meas_loop_eis", "meas_loop_geis"):
            _, fs, fe, points, _ = loop.args
            for f in np.geomspace(fs, fe, int(points)):
                t += max(3.0 / f, 0.1)
                z = complex(world.cell_impedance(t, np.array([f]))[0])  # type: ignore[union-attr]
                z *= 1 + complex(self.rng.gauss(0, 1e-3), self.rng.gauss(0, 1e-3))
                rows.append(
                    (
                        t,
                        {
                            "dc": encode_value("dc", float(f)),
                            "cc": encode_value("cc", z.real),
                            "cd": encode_value("cd", z.imag),
                        },
                    )
                )
        else:
            interval, duration = loop.args[-2], loop.args[-1]
            times = t + interval * np.arange(1, int(duration / interval + 1e-9) + 1)
            if loop.kind == "meas_loop_ocp":
                volts = [world.cell_ocv(float(x)) for x in times]  # type: ignore[union-attr]
                amps = [0.0] * len(times)
            else:
                current = loop.args[0]
                amps = [current] * len(times)
                volts = list(world.cell_voltage(times, np.full(len(times), current)))  # type: ignore[union-attr]
            for x, v, i in zip(times, volts, amps, strict=True):
                rows.append(
                    (
                        float(x),
                        {
                            "ab": encode_value("ab", v + self.rng.gauss(0, 1e-5), "10"),
                            "ba": encode_value("ba", i, "10"),
                        },
                    )
                )
            if len(times):
                t = float(times[-1])
        _, _, types = LOOPS[loop.kind]
        bound = dict(zip(loop.out, types, strict=True))
        constants = {v: encode_value(*typed) for v, typed in loop.stored.items()}
        for when, values in rows:
            if loop.packs:
                parts = [
                    values[bound[v]]
                    if v in bound
                    else encode_value(TIMER_TYPE, when - self._timer0)
                    if v in loop.timers
                    else constants[v]
                    for v in loop.packs
                ]
                self._stream.append((when, ("P" + ";".join(parts) + "\n").encode("ascii")))
        self._stream.append((t, b"*\n"))
        return t
