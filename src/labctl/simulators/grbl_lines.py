"""GRBL 1.1h's line commands for `GrblSim`: the `$` system commands (`system.c`) and the execution of checked
G-code blocks (`gcode.c`: modal state, work coordinates, G28/G30, G92, dwell, program flow).

A mixin, not a class of its own: it reads and writes the machine state `GrblSim` (grbl.py) keeps (parser
modes, offsets, the planner through `_plan`, the clock). It is split out so that neither file passes ~400
lines; parsing and checking a block is `grbl_gcode.py`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from labctl.simulators.grbl_gcode import AXES, Block, GcodeError, clean_line, parse_block, takes_axis_words
from labctl.simulators.world import Vec3

VERSION_FMT = "[VER:1.1h.20190830:{}]\r\n[OPT:V,15,128]\r\n"
VERSION = VERSION_FMT.format("").encode()
HELP = b"[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]\r\n"
PLANNER_BLOCKS = 15          # BLOCK_BUFFER_SIZE 16, one slot kept free
COORD_NAMES = ("G54", "G55", "G56", "G57", "G58", "G59")
ORIGIN: Vec3 = (0.0, 0.0, 0.0)

#: settings as configured on the reference bench; integers are printed without decimals
DEFAULT_SETTINGS: dict[int, float] = {
    0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: 1, 11: 0.010, 12: 0.002, 13: 0,
    20: 1, 21: 0, 22: 1, 23: 1, 24: 25.0, 25: 500.0, 26: 250, 27: 1.0, 30: 1000, 31: 0, 32: 0,
    100: 250.0, 101: 250.0, 102: 800.0, 110: 1500.0, 111: 1500.0, 112: 1500.0,
    120: 100.0, 121: 100.0, 122: 100.0, 130: 300.0, 131: 10.0, 132: 60.0,
}
FLOAT_SETTINGS = frozenset({11, 12, 24, 25, 27, 100, 101, 102, 110, 111, 112, 120, 121, 122, 130, 131, 132})




def _fmt(v: float, decimals: int = 3) -> str:
    """GRBL's printFloat: sign only for negative values, fixed decimals."""
    s = f"{abs(v):.{decimals}f}"
    return ("-" + s) if v < 0 and float(s) != 0.0 else s



class GrblLines:
    """The line-command half of `GrblSim` (see the module docstring)."""

    # attributes and methods of the machine half (grbl.py), for readers and type checkers
    settings: dict[int, float]
    coords: dict[str, Vec3]
    g28: Vec3
    g30: Vec3
    g92: Vec3
    state: str
    startup_lines: list[str]
    build_info: str
    _restore_offsets: Any
    _status_word: Any
    _soft_reset: Any
    _home: Any
    _plan: Any
    _plan_end: Any
    _end_of_plan: Any
    _within_travel: Any
    _soft_limit: Any
    _modal_defaults: Any
    wco: Any
    _program_position: Any
    emit: Any
    now: Any

    def _line_reply(self, message: bytes, t: float) -> bytes | None:
        try:
            text = clean_line(message.rstrip(b"\r\n")).decode("latin-1")
        except GcodeError as exc:
            return b"error:%d\r\n" % exc.code
        if not text:
            return b"ok\r\n"
        if self.sleeping:
            return None                    # asleep: nothing but a reset wakes it
        if text.startswith("$"):
            return self._system(text, t)
        if self.state == "Alarm" or self._status_word(t) == "Jog":
            return b"error:9\r\n"                # G-code is locked out in Alarm and while jogging
        return self._gcode(text, t)

    def _system(self, text: str, t: float) -> bytes | None:
        word = self._status_word(t)
        idle = word in ("Idle", "Alarm")
        if text == "$":
            return HELP + b"ok\r\n"
        if text == "$$":
            if word.startswith(("Run", "Hold", "Jog")):
                return b"error:8\r\n"
            lines = "".join(f"${n}={v:.3f}\r\n" if n in FLOAT_SETTINGS else f"${n}={int(v)}\r\n"
                            for n, v in sorted(self.settings.items()))
            return lines.encode() + b"ok\r\n"
        if text == "$#":
            return self._offsets_report() + b"ok\r\n"
        if text == "$I":
            return VERSION_FMT.format(self.build_info).encode() + b"ok\r\n"
        if text.startswith("$I="):
            if not idle:
                return b"error:8\r\n"
            self.build_info = text[3:]
            return b"ok\r\n"
        if text == "$G":
            return self._parser_report() + b"ok\r\n"
        if text == "$N":
            listing = "".join(f"$N{i}={line}\r\n" for i, line in enumerate(self.startup_lines))
            return listing.encode() + b"ok\r\n"
        if m := re.fullmatch(r"\$N(\d+)=(.*)", text):
            return self._store_startup(int(m.group(1)), m.group(2), idle)
        if text == "$C":
            return self._check_mode(word)
        if text == "$X":
            if self.state == "Alarm":
                self.state = "Idle"
                return b"[MSG:Caution: Unlocked]\r\nok\r\n"
            return b"ok\r\n"
        if text == "$H":
            if not self.settings[22]:
                return b"error:5\r\n"
            if not idle:
                return b"error:8\r\n"
            end = self._home(t)
            self.line_time = end
            self.emit(b"ok\r\n", at=end)
            return None
        if text.startswith("$J="):
            return self._jog(text[3:], t, word)
        if text == "$SLP":
            if not idle:
                return b"error:8\r\n"
            self.spindle, self.coolant, self.sleeping = 5, 9, True
            return b"ok\r\n[MSG:Sleeping]\r\n"
        if m := re.fullmatch(r"\$RST=([$#*])", text):
            if not idle:
                return b"error:8\r\n"
            if m.group(1) in "$*":
                self.settings = dict(DEFAULT_SETTINGS)
            if m.group(1) in "#*":
                self._restore_offsets()
            if m.group(1) == "*":
                self.startup_lines, self.build_info = ["", ""], ""
            return b"[MSG:Restoring defaults]\r\nok\r\n"
        m = re.fullmatch(r"\$(\d+)=(.*)", text)
        if m:
            if not idle:
                return b"error:8\r\n"
            n = int(m.group(1))
            if n not in self.settings:
                return b"error:3\r\n"
            try:
                value = float(m.group(2))
            except ValueError:
                return b"error:2\r\n"
            if value < 0:
                return b"error:4\r\n"
            if n == 20 and value and not self.settings[22]:
                return b"error:10\r\n"
            self.settings[n] = value
            return b"ok\r\n"
        return b"error:3\r\n"

    # -- reports --------------------------------------------------------------------------------------

    def _offsets_report(self) -> bytes:
        """`$#`: G54-G59, G28, G30, G92, TLO and the last probe (never probed: zeros and 0)."""
        def vec(v: Vec3) -> str:
            return ",".join(_fmt(x) for x in v)
        lines = [f"[{name}:{vec(self.coords[name])}]" for name in COORD_NAMES]
        lines += [f"[G28:{vec(self.g28)}]", f"[G30:{vec(self.g30)}]", f"[G92:{vec(self.g92)}]",
                  f"[TLO:{_fmt(self.tlo)}]", "[PRB:0.000,0.000,0.000:0]"]
        return "".join(line + "\r\n" for line in lines).encode()

    def _parser_report(self) -> bytes:
        coolant = {7: "M7", 8: "M8", 9: "M9"}[self.coolant]
        gc = (f"[GC:G{self.motion} {self.coord} G{self.plane} {'G20' if self.inches else 'G21'} "
              f"{'G90' if self.absolute else 'G91'} {'G93' if self.inverse_time else 'G94'} M{self.spindle} "
              f"{coolant} T{self.tool} F{self.feed / (25.4 if self.inches else 1):.0f} "
              f"S{self.spindle_speed:.0f}]\r\n")
        return gc.encode()

    # -- $N, $C, $J= ----------------------------------------------------------------------------------

    def _store_startup(self, n: int, line: str, idle: bool) -> bytes:
        if n >= len(self.startup_lines):
            return b"error:3\r\n"
        if not idle:
            return b"error:8\r\n"
        if line:
            try:
                parse_block(line, motion=self.motion, feed_defined=self.feed > 0,
                            inverse_time=self.inverse_time)
            except GcodeError as exc:
                return b"error:%d\r\n" % exc.code
        self.startup_lines[n] = line
        return b"ok\r\n"

    def _check_mode(self, word: str) -> bytes:
        if self.check_mode:                      # leaving check mode is a soft reset (system.c)
            self.check_mode = False
            return b"[MSG:Disabled]\r\nok\r\n" + self._soft_reset()
        if word != "Idle":
            return b"error:8\r\n"
        self.check_mode, self.check_pos = True, self._end_of_plan()
        return b"[MSG:Enabled]\r\nok\r\n"

    def _jog(self, line: str, t: float, word: str) -> bytes:
        """`$J=`: only G20/G21, G90/G91, G53, axis words, F and N; travel checked (error 15, no alarm)."""
        if word not in ("Idle", "Jog"):
            return b"error:8\r\n"
        try:
            block = parse_block(line, motion=1, feed_defined=False, inverse_time=False)
        except GcodeError as exc:
            return b"error:%d\r\n" % (16 if exc.code in (20, 21, 24, 36) else exc.code)
        allowed = {"distance", "units"} | ({"nonmodal"} if block.nonmodal == 53 else set())
        if set(block.modal) - allowed or set(block.words) - {"F", "N"}:
            return b"error:16\r\n"
        if "F" not in block.words:
            return b"error:22\r\n"
        if not block.axes:
            return b"error:26\r\n"
        inches = block.modal.get("units", 20 if self.inches else 21) == 20
        absolute = block.modal.get("distance", 90 if self.absolute else 91) == 90
        target = self._target(block, inches=inches, absolute=absolute, machine=block.nonmodal == 53)
        if self.settings[20] and not self._within_travel(target):
            return b"error:15\r\n"
        scale = 25.4 if inches else 1.0
        if self.check_mode:
            self.check_pos = target
        else:
            self._plan(target, block.words["F"] * scale, t, jog=True)
        return b"ok\r\n"

    def _target(self, block: Block, *, inches: bool, absolute: bool, machine: bool = False) -> Vec3:
        """Machine coordinates (mm) of a block's axis words: work coordinates unless G53."""
        scale = 25.4 if inches else 1.0
        base, wco = self._program_position(), (ORIGIN if machine else self.wco())
        return tuple(  # type: ignore[return-value]
            ((block.axes[a] * scale + wco[i]) if absolute or machine else base[i] + block.axes[a] * scale)
            if a in block.axes else base[i] for i, a in enumerate(AXES))

    def _gcode(self, text: str, t: float) -> bytes:
        """One block, checked as gcode.c does, then executed in its order (modes, offsets, motion, M)."""
        try:
            block = parse_block(text, motion=self.motion, feed_defined=self.feed > 0,
                                inverse_time=self.inverse_time)
        except GcodeError as exc:
            return b"error:%d\r\n" % exc.code
        modal, words = block.modal, block.words
        inches = modal.get("units", 20 if self.inches else 21) == 20
        scale = 25.4 if inches else 1.0
        if "tlo" in modal and modal["tlo"] == 43.1 and set(block.axes) - {"Z"}:
            return b"error:37\r\n"
        absolute = modal.get("distance", 90 if self.absolute else 91) == 90
        nonmodal, mode = block.nonmodal, int(modal.get("motion", self.motion))
        moves = bool(block.axes) and not takes_axis_words(block) and mode != 80
        target = (self._target(block, inches=inches, absolute=absolute, machine=nonmodal == 53)
                  if moves else None)
        if target is not None and self.settings[20] and not self._within_travel(target):
            self._commit(block, inches, absolute, mode)
            return self._soft_limit(t)
        self._commit(block, inches, absolute, mode)
        if nonmodal == 4:                                   # dwell: syncs with the planner, then waits
            return self._sync(t, words["P"])
        if nonmodal == 10:
            self._set_coordinates(block, scale)
        elif nonmodal in (28, 30):
            return self._go_home_position(block, t, inches, absolute, nonmodal)
        elif nonmodal in (28.1, 30.1):
            pos = self._program_position()
            if nonmodal == 28.1:
                self.g28 = pos
            else:
                self.g30 = pos
        elif nonmodal == 92:
            pos, coord = self._program_position(), self.coords[self.coord]
            self.g92 = tuple(  # type: ignore[assignment]
                pos[i] - coord[i] - (self.tlo if i == 2 else 0.0) - block.axes[a] * scale
                if a in block.axes else self.g92[i] for i, a in enumerate(AXES))
        elif nonmodal == 92.1:
            self.g92 = ORIGIN
        reply = b"ok\r\n"
        if target is not None:
            reply = self._move(target, mode, t)
        program = modal.get("program")
        if program in (0, 2, 30):
            return self._program_flow(int(program), t)
        return reply

    def _commit(self, block: Block, inches: bool, absolute: bool, mode: int) -> None:
        """The block is valid: its modal words become the parser's state (gcode.c does this before moving)."""
        modal, words = block.modal, block.words
        self.inches, self.absolute, self.motion = inches, absolute, mode
        if "feed_mode" in modal:
            self.inverse_time = modal["feed_mode"] == 93
        if "F" in words:
            self.feed = words["F"] * (25.4 if inches else 1.0)
        if "S" in words:
            self.spindle_speed = words["S"]
        if "T" in words:
            self.tool = int(words["T"])
        if "spindle" in modal:
            self.spindle = int(modal["spindle"])
        if "coolant" in modal:
            self.coolant = int(modal["coolant"])
        if "plane" in modal:
            self.plane = int(modal["plane"])
        if "coord" in modal:
            self.coord = f"G{int(modal['coord'])}"
        if "tlo" in modal:
            self.tlo = block.axes.get("Z", 0.0) * (25.4 if inches else 1.0) if modal["tlo"] == 43.1 else 0.0

    def _set_coordinates(self, block: Block, scale: float) -> None:
        """G10 L2 Pn: offsets as given; L20: offsets such that the current position reads as given."""
        p = int(block.words["P"])
        name = self.coord if p == 0 else COORD_NAMES[p - 1]
        old, pos = self.coords[name], self._program_position()
        if block.words["L"] == 2:
            new = [block.axes[a] * scale if a in block.axes else old[i] for i, a in enumerate(AXES)]
        else:
            new = [pos[i] - self.g92[i] - (self.tlo if i == 2 else 0.0) - block.axes[a] * scale
                   if a in block.axes else old[i] for i, a in enumerate(AXES)]
        self.coords[name] = tuple(new)  # type: ignore[assignment]

    def _go_home_position(self, block: Block, t: float, inches: bool, absolute: bool, which: float) -> bytes:
        """G28/G30: rapid to the intermediate point (axis words, work coordinates) if any, then to the stored
        position: only the axes named when axis words are given (gcode.c), every axis otherwise."""
        stored = self.g28 if which == 28 else self.g30
        reply = b"ok\r\n"
        if block.axes:
            middle = self._target(block, inches=inches, absolute=absolute)
            if self.settings[20] and not self._within_travel(middle):
                return self._soft_limit(t)
            reply = self._move(middle, 0, t)
            home = tuple(stored[i] if a in block.axes else middle[i] for i, a in enumerate(AXES))
        else:
            home = stored
        if self.settings[20] and not self._within_travel(home):  # type: ignore[arg-type]
            return self._soft_limit(t)
        return self._move(home, 0, t) if reply == b"ok\r\n" else reply  # type: ignore[arg-type]

    def _move(self, target: Vec3, mode: int, t: float) -> bytes:
        if self.check_mode:
            self.check_pos = target
            return b"ok\r\n"
        rate = max(self.settings[110 + i] for i in range(3)) if mode == 0 else self.feed
        if mode == 1 and self.inverse_time:      # G93: F is 1/min, the block takes 1/F minutes
            start = self._end_of_plan()
            rate = self.feed * math.dist(start, target)
        self._plan(target, rate, t)
        active = [s for s in self.segments if s.t1 > t]
        if len(active) > PLANNER_BLOCKS:
            free_at = active[len(active) - PLANNER_BLOCKS - 1].t1
            self.line_time = free_at
            self.emit(b"ok\r\n", at=free_at)
            return b""
        return b"ok\r\n"

    def _sync(self, t: float, extra: float = 0.0, message: bytes = b"") -> bytes:
        """Reply `ok` once the queued motion is done (+ `extra` s): G4, M0, M2/M30."""
        end = t if self.check_mode else max(t, self._plan_end()) + extra
        self.line_time = end
        if end > t:
            self.emit(message + b"ok\r\n", at=end)
            return b""
        return message + b"ok\r\n"

    def _program_flow(self, program: int, t: float) -> bytes:
        """M0: pause (Hold:0) once the queued motion is done, until `~`; M2/M30: end of program."""
        if program == 0:
            reply = self._sync(t)
            if not self.check_mode:
                self.pause_at = self.line_time
            return reply
        reply = self._sync(t, message=b"[MSG:Pgm End]\r\n")
        self._modal_defaults(motion=1)
        self.g92, self.tlo = ORIGIN, 0.0
        return reply
