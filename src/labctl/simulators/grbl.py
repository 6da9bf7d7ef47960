"""Simulated GRBL 1.1h motion controller (the dip-coater / immersion lift), byte for byte.

Grammar and behaviour follow `gnea/grbl` 1.1h (`report.c`, `protocol.c`, `system.c`, `gcode.c`,
`motion_control.c`) as summarised in `reference/instruments.md` §2.1:
- lines end with `\\n` or `\\r`; every output line ends `\\r\\n`; `ok` when a line is parsed and *queued*;
- real-time bytes `?` `!` `~` 0x18 are taken out of the stream wherever they appear and never answered `ok`;
- status `<State|MPos:x,y,z|FS:f,s>` plus `|WCO:` / `|Ov:` on GRBL's own refresh counters;
- booting with homing enabled locks into `Alarm` with `[MSG:'$H'|'$X' to unlock]`;
- soft reset: during motion -> `ALARM:3` (during homing `ALARM:6`) and position may be lost; after a completed
  feed hold position is kept and the controller is Idle; the `Alarm` state survives a soft reset;
- a motion target outside travel with soft limits on (`$20=1`) -> `ALARM:2` + `[MSG:Reset to continue]`,
  then nothing but real-time bytes is served until a soft reset (GRBL's critical-alarm loop).

Motion is planned in simulated time: each block is a trapezoid (acceleration from `$120..$122`, feed
limited by `$110..$112`) that starts and ends at rest — GRBL's junction blending between blocks is not
modelled, which makes multi-block paths slightly slower than on the real controller. Positions are quantised
to steps (`$100..$102`). The planner holds 15 blocks: when it is full, a motion line's `ok` is delayed until
a block completes. Lines that arrive while the parser is busy (homing, dwell, full planner) are handled at
the time GRBL would reach them, and their replies are emitted then. This module is the machine (planner,
real-time bytes, status); the line commands are `grbl_lines.py`, block parsing `grbl_gcode.py`.

The `$` commands are all of 1.1h's (`$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H $RST=`); lines are
cleaned as `protocol.c` does (comments and spaces dropped before the 80-byte line check, `grbl_gcode.py`), and
G-code blocks are checked as `gcode.c` does. Work coordinates (G54-G59 and G10 L2/L20, G92, G28/G30 and their
.1 forms, G43.1/G49 tool length offset, G53) change the WCO the status report shows; spindle (M3/M4/M5 S) and
coolant (M7/M8/M9) words are state the `$G` report and `FS:` show (the bench has no spindle); `$C` check mode
parses and moves nothing; `$J=` jogs (state `Jog`, travel checked without an alarm: error 15) until done or
cancelled by 0x85 or a feed hold; M0 pauses after the queued motion (Hold:0, resumed by `~`), M2/M30 end the
program (modal state back to defaults, `[MSG:Pgm End]`). Arcs (G2/G3) and probing (G38.x) answer error 20: no
arc is ever needed by a dip coater and the board has no probe pin (docs/instruments/grbl.md).

Machine frame of this bench (settings as configured on the bench, not GRBL's factory defaults): homing sets
X=0 (bath row start; `$23` homes X to its negative end, travel 0..+300 mm) and Z=0 (top, out of every bath;
travel -60..0 mm). The homing pull-off is folded into the home position (as GRBL's HOMING_FORCE_SET_ORIGIN).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from labctl.clock import Clock
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore
from labctl.simulators.grbl_lines import COORD_NAMES, DEFAULT_SETTINGS, ORIGIN, GrblLines, _fmt
from labctl.simulators.world import SimpleWorld, Vec3

BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
UNLOCK_MSG = b"[MSG:'$H'|'$X' to unlock]\r\n"
REALTIME = frozenset(b"?!~\x18")
JOG_CANCEL = 0x85
REJECTING_ERRORS = (1, 2, 3, 16, 20, 23, 24, 25, 27, 36)   # the command itself is unknown or malformed
MIN_FEED_MM_MIN = 1.0        # MINIMUM_FEED_RATE (config.h)
WCO_REFRESH = (30, 10)       # REPORT_WCO_REFRESH_BUSY_COUNT, _IDLE_COUNT
OVR_REFRESH = (20, 10)       # REPORT_OVR_REFRESH_BUSY_COUNT, _IDLE_COUNT
@dataclass
class Segment:
    """One planned block: from `start` towards `end` (mm) starting at time t0, trapezoidal speed (mm/s).

    `v0` > 0 only for the deceleration of a feed hold (then the block has no acceleration phase).
    """

    t0: float
    start: Vec3
    end: Vec3
    vmax: float
    accel: float
    v0: float = 0.0
    feed: float = 0.0           # commanded feed, mm/min (kept to re-plan the rest of a block after a hold)
    jog: bool = False           # a `$J=` motion: status `Jog`, cancelled (not held) by a feed hold or 0x85

    def __post_init__(self) -> None:
        d = [e - s for s, e in zip(self.start, self.end, strict=True)]
        self.length = math.sqrt(sum(c * c for c in d))
        self.unit = tuple(c / self.length for c in d) if self.length > 0 else (0.0, 0.0, 0.0)
        a, v0 = self.accel, self.v0
        vp = min(max(self.vmax, v0), math.sqrt(a * self.length + v0 * v0 / 2)) if self.length > 0 else 0.0
        self.vpeak = vp
        self.d_acc = max(0.0, (vp * vp - v0 * v0) / (2 * a)) if vp else 0.0
        self.d_dec = vp * vp / (2 * a) if vp else 0.0
        self.t_acc = (vp - v0) / a if vp else 0.0
        cruise = max(0.0, self.length - self.d_acc - self.d_dec)
        self.t_cru = cruise / vp if vp else 0.0
        self.t_dec = vp / a if vp else 0.0
        self.t1 = self.t0 + self.t_acc + self.t_cru + self.t_dec

    def s_v(self, t: float) -> tuple[float, float]:
        """Distance travelled (mm) and speed (mm/s) at time t."""
        tau = min(max(0.0, t - self.t0), self.t1 - self.t0)
        a, v0, vp = self.accel, self.v0, self.vpeak
        if tau <= self.t_acc:
            return v0 * tau + a * tau * tau / 2, v0 + a * tau
        tau -= self.t_acc
        if tau <= self.t_cru:
            return self.d_acc + vp * tau, vp
        tau = min(tau - self.t_cru, self.t_dec)
        return self.d_acc + vp * self.t_cru + vp * tau - a * tau * tau / 2, max(0.0, vp - a * tau)

    def pos(self, t: float) -> Vec3:
        s, _ = self.s_v(t)
        if t >= self.t1:
            return self.end
        return tuple(p + u * s for p, u in zip(self.start, self.unit, strict=True))  # type: ignore[return-value]


class GrblSim(GrblLines, DeviceCore):
    """GRBL 1.1h on a 3-axis board; this bench uses X (bath) and Z (height)."""

    SERIAL = SerialSettings(115200)

    def __init__(self, name: str = "grbl", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, settings: dict[int, float] | None = None) -> None:
        self.settings: dict[int, float] = {**DEFAULT_SETTINGS, **(settings or {})}  # EEPROM: kept over resets
        self._restore_offsets()
        self.startup_lines = ["", ""]                    # $N0, $N1 (EEPROM)
        self.build_info = ""                             # $I=... (EEPROM)
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)
        self.on_power_up()

    # -- power-on state -------------------------------------------------------------------------------

    def _restore_offsets(self) -> None:
        """`$RST=#`: G54-G59, G28 and G30 back to zero (EEPROM)."""
        self.coords: dict[str, Vec3] = {name: ORIGIN for name in COORD_NAMES}
        self.g28: Vec3 = ORIGIN
        self.g30: Vec3 = ORIGIN

    def reset(self) -> None:
        self.sleeping = False
        self._line = bytearray()
        self.mpos: Vec3 = (0.0, 0.0, 0.0)      # GRBL forgets its position when powered down
        self.state = "Alarm" if self.settings[22] else "Idle"
        self.critical = False                 # critical alarm: only real-time bytes until soft reset
        self._init_runtime()

    def _init_runtime(self) -> None:
        """What a soft reset clears (position and the Alarm state survive it)."""
        self.segments: list[Segment] = []
        self.held: list[tuple[Vec3, float]] = []   # (target, feed mm/min) still to run after a feed hold
        self.hold_until: float | None = None       # end of a feed hold's deceleration
        self.homing_until: float | None = None
        self.home_segments: list[Segment] = []
        self.line_time = 0.0                       # when the line parser is free again
        self.inches, self.feed = False, 0.0
        self._modal_defaults()
        self.g92: Vec3 = ORIGIN                    # volatile in 1.1h
        self.tlo = 0.0                             # G43.1 dynamic tool length offset (Z), mm
        self.tool = 0
        self.check_mode = False
        self.check_pos: Vec3 | None = None         # the parser's position while nothing moves ($C)
        self.pause_at: float | None = None         # M0: held from here (queued motion done) until `~`
        self.wco_counter = 0
        self.ovr_counter = 0

    def _modal_defaults(self, motion: int = 0) -> None:
        """The parser's modal state at power-up (G0) and after M2/M30 (G1); F and the tool are kept."""
        self.motion, self.absolute, self.coord = motion, True, "G54"
        self.plane, self.inverse_time, self.spindle, self.coolant = 17, False, 5, 9
        self.spindle_speed = 0.0

    def on_power_up(self) -> None:
        self.emit(BANNER + (UNLOCK_MSG if self.state == "Alarm" else self._startup()))

    def _startup(self) -> bytes:
        """Run the `$N` startup lines (not in Alarm), echoing each as `>line:ok` or `>line:error:N`."""
        out = b""
        for line in self.startup_lines:
            if line:
                reply = self._gcode(line, self.now())
                out += b">" + line.encode() + b":" + reply
        return out

    def rejects(self, reply: bytes) -> bool:
        """GRBL's "unknown or malformed command" errors (1, 2, 3, 16, 20, 23-25, 27, 36) anywhere in `reply`;
        state errors (8 not idle, 9 locked, 15 travel, 22 no feed, ...) answer a known command."""
        return any(int(m) in REJECTING_ERRORS for m in re.findall(rb"error:(\d+)", reply))

    # -- coordinates --------------------------------------------------------------------------------------

    def wco(self) -> Vec3:
        """Work coordinate offset: the active G54-G59 offset + G92 + the tool length offset on Z."""
        c, g = self.coords[self.coord], self.g92
        return (c[0] + g[0], c[1] + g[1], c[2] + g[2] + self.tlo)

    def _program_position(self) -> Vec3:
        """Where the parser believes the tool is (machine coordinates, mm)."""
        return self.check_pos if self.check_mode and self.check_pos is not None else self._end_of_plan()

    # -- framing: real-time bytes are picked out of the stream ----------------------------------------

    def split(self) -> Iterator[bytes]:
        while self._inbuf:
            b = self._inbuf[0]
            del self._inbuf[0]
            if b in REALTIME or b >= 0x80:
                yield bytes([b])
                continue
            self._line.append(b)
            if b in (0x0A, 0x0D):
                msg = bytes(self._line)
                self._line.clear()
                yield msg

    # -- clock-driven state ---------------------------------------------------------------------------

    def _settle(self, t: float) -> None:
        """Retire everything finished by time t."""
        if self.homing_until is not None and t >= self.homing_until:
            self.mpos = self.home_segments[-1].end if self.home_segments else self.mpos
            self.homing_until, self.home_segments = None, []
            if self.state == "Home":
                self.state = "Idle"
        while self.segments and self.segments[0].t1 <= t and self.hold_until is None:
            self.mpos = self.segments.pop(0).end
        if self.hold_until is not None and self.segments and self.segments[0].t1 <= t:
            self.mpos = self.segments[0].end

    def _position(self, t: float) -> Vec3:
        for seg in self.home_segments:
            if seg.t0 <= t < seg.t1:
                return seg.pos(t)
        for seg in self.segments:
            if seg.t0 <= t < seg.t1:
                return seg.pos(t)
        if self.segments and t >= self.segments[-1].t1:
            return self.segments[-1].end
        return self.mpos

    def _speed(self, t: float) -> float:
        for seg in self.home_segments + self.segments:
            if seg.t0 <= t < seg.t1:
                return seg.s_v(t)[1]
        return 0.0

    def _status_word(self, t: float) -> str:
        if self.sleeping:
            return "Sleep"
        if self.stuck_busy:
            return "Run"
        if self.state == "Alarm":
            return "Alarm"
        if self.homing_until is not None and t < self.homing_until:
            return "Home"
        if self.hold_until is not None:
            return "Hold:1" if t < self.hold_until else "Hold:0"
        if self.segments and t < self.segments[-1].t1:
            return "Jog" if self.segments[-1].jog else "Run"
        if self.pause_at is not None and t >= self.pause_at:
            return "Hold:0"                        # M0 program pause
        if self.check_mode:
            return "Check"
        return "Idle"

    def machine_state(self) -> tuple[str, Vec3]:
        """(status word, machine position in mm) now, as a status report would give them: for tests that
        check the stage itself rather than what a driver says about it."""
        with self.lock:
            t = self.now()
            self._settle(t)
            return self._status_word(t), self._position(t)

    def _end_of_plan(self) -> Vec3:
        if self.held:
            return self.held[-1][0]
        return self.segments[-1].end if self.segments else self._position(self.now())

    # -- real-time commands ---------------------------------------------------------------------------

    def _status_report(self) -> bytes:
        t = self.now()
        self._settle(t)
        word = self._status_word(t)
        pos = self._position(t)
        steps = [self.settings[100 + i] for i in range(3)]
        pos = tuple(round(p * s) / s for p, s in zip(pos, steps, strict=True))
        rate = 0.0 if word in ("Idle", "Alarm", "Hold:0", "Check", "Sleep") else self._speed(t) * 60
        out = f"<{word}|MPos:{','.join(_fmt(p) for p in pos)}|FS:{rate:.0f},{self._spindle_rpm():.0f}"
        busy = word not in ("Idle", "Alarm")
        if self.wco_counter > 0:
            self.wco_counter -= 1
        else:
            self.wco_counter = (WCO_REFRESH[0] if busy else WCO_REFRESH[1]) - 1
            if self.ovr_counter == 0:
                self.ovr_counter = 1
            out += f"|WCO:{','.join(_fmt(x) for x in self.wco())}"
        if self.ovr_counter > 0:
            self.ovr_counter -= 1
        else:
            self.ovr_counter = (OVR_REFRESH[0] if busy else OVR_REFRESH[1]) - 1
            out += "|Ov:100,100,100"
        return (out + ">\r\n").encode()

    def _spindle_rpm(self) -> float:
        """The spindle speed FS: reports: S clamped to [$31, $30] while M3/M4 is on (no spindle on the bench:
        nothing turns, the report tells what the PWM output would command)."""
        if self.spindle == 5 or self.check_mode:
            return 0.0
        return min(max(self.spindle_speed, self.settings[31]), self.settings[30])

    def _feed_hold(self, t: float) -> float | None:
        """Start decelerating now; returns when the stage will be at rest (None if nothing moves). A jog is
        cancelled instead: it decelerates and what remains of it is dropped (1.1h `Jog` state)."""
        self._settle(t)
        word = self._status_word(t)
        if word not in ("Run", "Jog") or self.stuck_busy:
            return None
        current = next(s for s in self.segments if s.t0 <= t < s.t1) if any(
            s.t0 <= t < s.t1 for s in self.segments) else None
        if current is None:
            return None
        p, v = current.pos(t), current.s_v(t)[1]
        stop_len = v * v / (2 * current.accel)
        p_stop = tuple(a + u * stop_len for a, u in zip(p, current.unit, strict=True))
        decel = Segment(t, p, p_stop, v, current.accel, v0=v, feed=current.feed,  # type: ignore[arg-type]
                        jog=current.jog)
        if current.jog:
            self.segments, self.held = [decel], []
            self.world.stage_stop(decel.t1)  # type: ignore[union-attr]
            return decel.t1
        rest = [s for s in self.segments if s.t0 >= current.t1]
        self.held = [(current.end, current.feed)] + [(s.end, s.feed) for s in rest]
        self.segments = [decel]
        self.hold_until = decel.t1
        self.world.stage_stop(decel.t1)  # type: ignore[union-attr]
        return decel.t1

    def _cycle_start(self, t: float) -> None:
        if self.pause_at is not None and t >= self.pause_at:   # resume after M0
            held, self.held, self.pause_at = self.held, [], None
            for target, feed in held:
                self._plan(target, feed, t)
            return
        if self.hold_until is None:
            return
        t_res = max(t, self.hold_until)
        self._settle(t_res)
        start = self.segments[-1].end if self.segments else self.mpos
        self.mpos = start
        held, self.held = self.held, []
        self.segments, self.hold_until = [], None
        for target, feed in held:
            self._plan(target, feed, t_res)

    def _soft_reset(self) -> bytes:
        t = self.now()
        self._settle(t)
        word = self._status_word(t)
        self.mpos = self._position(t)
        alarm = b""
        if word in ("Run", "Hold:1", "Home", "Jog") and not self.stuck_busy:
            alarm = b"ALARM:6\r\n" if word == "Home" else b"ALARM:3\r\n"
            self.state = "Alarm"
            self.world.stage_stop(t)  # type: ignore[union-attr]
        if self.sleeping:                      # a reset wakes it into Alarm (position may have been lost)
            self.sleeping, self.state = False, "Alarm"
        self.cancel_pending()
        self._line.clear()
        self.critical = False
        self._init_runtime()
        return alarm + BANNER + (UNLOCK_MSG if self.state == "Alarm" else self._startup())

    # -- lines ----------------------------------------------------------------------------------------

    def handle(self, message: bytes) -> bytes | None:
        if message == b"?":
            return self._status_report()
        if message == b"\x18":
            return self._soft_reset()
        if message == b"!":
            if not self.critical:
                self._feed_hold(self.now())
            return None
        if message == b"~":
            if not self.critical:
                self._cycle_start(self.now())
            return None
        if message[0] == JOG_CANCEL:
            if not self.critical and self._status_word(self.now()) == "Jog":
                self._feed_hold(self.now())
            return None
        if len(message) == 1 and message[0] >= 0x80:
            return None                    # overrides, safety door, ...: accepted, no reply
        if self.critical:
            return None                    # GRBL sits in its critical-alarm loop until a soft reset
        t = max(self.now(), self.line_time)
        self._settle(t)
        reply = self._line_reply(message, t)
        if reply is None:
            return None
        if t > self.now():
            self.emit(reply, at=t)
            return None
        return reply

    def _home(self, t: float) -> float:
        """Homing cycle: Z first (up to 0), then X/Y; seek at $25, locate/pull-off at $24."""
        seek, feed, pulloff = self.settings[25] / 60, self.settings[24] / 60, self.settings[27]
        locate = 3 * pulloff / feed
        self.state = "Home"
        start = self._position(t)
        after_z = (start[0], start[1], 0.0)
        home = (0.0, 0.0, 0.0)
        big = 1e9  # homing moves at constant seek rate (acceleration is negligible here)
        z_seg = Segment(t, start, after_z, seek, big)
        xy_seg = Segment(z_seg.t1 + locate, after_z, home, seek, big)
        self.home_segments = [z_seg, xy_seg]
        end = xy_seg.t1 + locate
        self.homing_until = end
        for seg in self.home_segments:
            if seg.length > 0:
                self._tell_world(seg)
        return end

    def _plan_end(self) -> float:
        return self.segments[-1].t1 if self.segments else 0.0

    def _within_travel(self, target: Vec3) -> bool:
        for i, v in enumerate(target):
            travel = self.settings[130 + i]
            lo, hi = (0.0, travel) if int(self.settings[23]) & (1 << i) else (-travel, 0.0)
            if not lo - 1e-9 <= v <= hi + 1e-9:
                return False
        return True

    def _soft_limit(self, t: float) -> bytes:
        stop = self._feed_hold(t) or t
        self.held, self.state, self.critical = [], "Alarm", True
        msg = b"ALARM:2\r\n[MSG:Reset to continue]\r\n"
        if stop > t:
            self.emit(msg, at=stop)
            return b""
        self.segments = []
        return msg

    def _plan(self, target: Vec3, feed_mm_min: float, t: float, *, jog: bool = False) -> None:
        """Queue a linear move at `feed` (mm/min), limited per axis by $110.. and $120.."""
        if self.hold_until is not None or (self.pause_at is not None and t >= self.pause_at):
            self.held.append((target, feed_mm_min))
            return
        start = self._end_of_plan()
        steps = [self.settings[100 + i] for i in range(3)]
        target = tuple(round(v * s) / s for v, s in zip(target, steps, strict=True))  # type: ignore[assignment]
        probe = Segment(0.0, start, target, 1.0, 1.0)
        if probe.length == 0:
            return
        vmax = max(feed_mm_min, MIN_FEED_MM_MIN) / 60
        accel = math.inf
        for i, u in enumerate(probe.unit):
            if u:
                vmax = min(vmax, self.settings[110 + i] / 60 / abs(u))
                accel = min(accel, self.settings[120 + i] / abs(u))
        t0 = max(t, self._plan_end())
        seg = Segment(t0, start, target, vmax, accel, feed=feed_mm_min, jog=jog)
        self.segments.append(seg)
        self._tell_world(seg)

    def _tell_world(self, seg: Segment) -> None:
        to_m = tuple(v / 1000 for v in seg.start), tuple(v / 1000 for v in seg.end)
        self.world.stage_move(seg.t0, to_m[0], to_m[1], seg.vpeak / 1000)  # type: ignore[union-attr]

    # -- faults ---------------------------------------------------------------------------------------

    def error_reply(self, message: bytes) -> bytes | None:
        if len(message) == 1 and (message[0] in REALTIME or message[0] >= 0x80):
            return None            # GRBL never answers a real-time byte with an error
        return b"error:20\r\n"
