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
the time GRBL would reach them, and their replies are emitted then. Not simulated (answered `error:3`):
`$#`, `$N`, `$C`, `$J=`, `$SLP`.

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
from labctl.simulators.world import SimpleWorld, Vec3

BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
UNLOCK_MSG = b"[MSG:'$H'|'$X' to unlock]\r\n"
VERSION = b"[VER:1.1h.20190830:]\r\n[OPT:V,15,128]\r\n"
HELP = b"[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]\r\n"
REALTIME = frozenset(b"?!~\x18")
PLANNER_BLOCKS = 15          # BLOCK_BUFFER_SIZE 16, one slot kept free
LINE_MAX = 80                # LINE_BUFFER_SIZE
MIN_FEED_MM_MIN = 1.0        # MINIMUM_FEED_RATE (config.h)
WCO_REFRESH = (30, 10)       # REPORT_WCO_REFRESH_BUSY_COUNT, _IDLE_COUNT
OVR_REFRESH = (20, 10)       # REPORT_OVR_REFRESH_BUSY_COUNT, _IDLE_COUNT

#: settings as configured on the reference bench; integers are printed without decimals
DEFAULT_SETTINGS: dict[int, float] = {
    0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: 1, 11: 0.010, 12: 0.002, 13: 0,
    20: 1, 21: 0, 22: 1, 23: 1, 24: 25.0, 25: 500.0, 26: 250, 27: 1.0, 30: 1000, 31: 0, 32: 0,
    100: 250.0, 101: 250.0, 102: 800.0, 110: 1500.0, 111: 1500.0, 112: 1500.0,
    120: 100.0, 121: 100.0, 122: 100.0, 130: 300.0, 131: 10.0, 132: 60.0,
}
FLOAT_SETTINGS = frozenset({11, 12, 24, 25, 27, 100, 101, 102, 110, 111, 112, 120, 121, 122, 130, 131, 132})
AXES = "XYZ"


def _fmt(v: float, decimals: int = 3) -> str:
    """GRBL's printFloat: sign only for negative values, fixed decimals."""
    s = f"{abs(v):.{decimals}f}"
    return ("-" + s) if v < 0 and float(s) != 0.0 else s


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


class GrblSim(DeviceCore):
    """GRBL 1.1h on a 3-axis board; this bench uses X (bath) and Z (height)."""

    SERIAL = SerialSettings(115200)

    def __init__(self, name: str = "grbl", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, settings: dict[int, float] | None = None) -> None:
        self.settings: dict[int, float] = {**DEFAULT_SETTINGS, **(settings or {})}  # EEPROM: kept over resets
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)
        self.on_power_up()

    # -- power-on state -------------------------------------------------------------------------------

    def reset(self) -> None:
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
        self.absolute, self.inches, self.feed, self.motion = True, False, 0.0, 0
        self.wco_counter = 0
        self.ovr_counter = 0

    def on_power_up(self) -> None:
        self.emit(BANNER + (UNLOCK_MSG if self.state == "Alarm" else b""))

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
        if self.stuck_busy:
            return "Run"
        if self.state == "Alarm":
            return "Alarm"
        if self.homing_until is not None and t < self.homing_until:
            return "Home"
        if self.hold_until is not None:
            return "Hold:1" if t < self.hold_until else "Hold:0"
        if self.segments and t < self.segments[-1].t1:
            return "Run"
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
        rate = 0.0 if word in ("Idle", "Alarm", "Hold:0") else self._speed(t) * 60
        out = f"<{word}|MPos:{','.join(_fmt(p) for p in pos)}|FS:{rate:.0f},0"
        busy = word not in ("Idle", "Alarm")
        if self.wco_counter > 0:
            self.wco_counter -= 1
        else:
            self.wco_counter = (WCO_REFRESH[0] if busy else WCO_REFRESH[1]) - 1
            if self.ovr_counter == 0:
                self.ovr_counter = 1
            out += "|WCO:0.000,0.000,0.000"
        if self.ovr_counter > 0:
            self.ovr_counter -= 1
        else:
            self.ovr_counter = (OVR_REFRESH[0] if busy else OVR_REFRESH[1]) - 1
            out += "|Ov:100,100,100"
        return (out + ">\r\n").encode()

    def _feed_hold(self, t: float) -> float | None:
        """Start decelerating now; returns when the stage will be at rest (None if nothing moves)."""
        self._settle(t)
        if self._status_word(t) != "Run" or self.stuck_busy:
            return None
        current = next(s for s in self.segments if s.t0 <= t < s.t1) if any(
            s.t0 <= t < s.t1 for s in self.segments) else None
        if current is None:
            return None
        p, v = current.pos(t), current.s_v(t)[1]
        stop_len = v * v / (2 * current.accel)
        p_stop = tuple(a + u * stop_len for a, u in zip(p, current.unit, strict=True))
        decel = Segment(t, p, p_stop, v, current.accel, v0=v, feed=current.feed)  # type: ignore[arg-type]
        rest = [s for s in self.segments if s.t0 >= current.t1]
        self.held = [(current.end, current.feed)] + [(s.end, s.feed) for s in rest]
        self.segments = [decel]
        self.hold_until = decel.t1
        self.world.stage_stop(decel.t1)  # type: ignore[union-attr]
        return decel.t1

    def _cycle_start(self, t: float) -> None:
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
        if word in ("Run", "Hold:1", "Home") and not self.stuck_busy:
            alarm = b"ALARM:6\r\n" if word == "Home" else b"ALARM:3\r\n"
            self.state = "Alarm"
            self.world.stage_stop(t)  # type: ignore[union-attr]
        self.cancel_pending()
        self._line.clear()
        self.critical = False
        self._init_runtime()
        return alarm + BANNER + (UNLOCK_MSG if self.state == "Alarm" else b"")

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
        if len(message) == 1 and message[0] >= 0x80:
            return None                    # overrides, jog cancel, ...: accepted, no reply
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

    def _line_reply(self, message: bytes, t: float) -> bytes | None:
        raw = message.rstrip(b"\r\n")
        if len(raw) > LINE_MAX:
            return b"error:11\r\n"
        text = re.sub(r"\(.*?\)|;.*$", "", raw.decode("latin-1")).replace(" ", "").upper()
        if not text:
            return b"ok\r\n"
        if text.startswith("$"):
            return self._system(text, t)
        if self.state == "Alarm":
            return b"error:9\r\n"
        return self._gcode(text, t)

    def _system(self, text: str, t: float) -> bytes | None:
        word = self._status_word(t)
        idle = word in ("Idle", "Alarm")
        if text == "$":
            return HELP + b"ok\r\n"
        if text == "$$":
            if word.startswith(("Run", "Hold")):
                return b"error:8\r\n"
            lines = "".join(f"${n}={v:.3f}\r\n" if n in FLOAT_SETTINGS else f"${n}={int(v)}\r\n"
                            for n, v in sorted(self.settings.items()))
            return lines.encode() + b"ok\r\n"
        if text == "$I":
            return VERSION + b"ok\r\n"
        if text == "$G":
            gc = (f"[GC:G{self.motion} G54 G17 {'G20' if self.inches else 'G21'} "
                  f"{'G90' if self.absolute else 'G91'} G94 M5 M9 T0 F{self.feed:.0f} S0]\r\n")
            return gc.encode() + b"ok\r\n"
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

    def _gcode(self, text: str, t: float) -> bytes:
        words = re.findall(r"([A-Z])([^A-Z]*)", text)
        if "".join(f"{a}{b}" for a, b in words) != text:
            return b"error:1\r\n"
        values: dict[str, float] = {}
        gcodes: list[float] = []
        for letter, num in words:
            try:
                value = float(num)
            except ValueError:
                return b"error:2\r\n"
            if letter == "G":
                gcodes.append(value)
            elif letter in values:
                return b"error:25\r\n"
            elif letter in "XYZFPN":
                values[letter] = value
            else:
                return b"error:20\r\n"
        for letter in "FPN":
            if values.get(letter, 0.0) < 0:
                return b"error:4\r\n"
        motion, dwell = None, False
        absolute, inches = self.absolute, self.inches
        for g in gcodes:
            if g in (0, 1):
                if motion is not None:
                    return b"error:21\r\n"
                motion = int(g)
            elif g == 4:
                dwell = True
            elif g in (20, 21):
                inches = g == 20
            elif g in (90, 91):
                absolute = g == 90
            elif g in (17, 54, 94):
                pass
            else:
                return b"error:20\r\n"
        scale = 25.4 if inches else 1.0
        axis_words = {a: values[a] * scale for a in AXES if a in values}
        if dwell:
            if "P" not in values:
                return b"error:28\r\n"
            if axis_words and motion is None:
                return b"error:31\r\n"
        feed = values["F"] * scale if "F" in values else self.feed
        mode = self.motion if motion is None else motion
        if axis_words and mode == 1 and feed <= 0:
            return b"error:22\r\n"
        # the block is valid: commit its modal state
        self.absolute, self.inches, self.motion, self.feed = absolute, inches, mode, feed
        if dwell:
            end = max(t, self._plan_end()) + values["P"]   # G4 syncs with the planner, then dwells
            self.line_time = end
            if end > t:
                self.emit(b"ok\r\n", at=end)
                return b""
            return b"ok\r\n"
        if not axis_words:
            return b"ok\r\n"
        base = self._end_of_plan()
        target = tuple(
            (axis_words[a] if absolute else base[i] + axis_words[a]) if a in axis_words else base[i]
            for i, a in enumerate(AXES))
        if self.settings[20] and not self._within_travel(target):  # type: ignore[arg-type]
            return self._soft_limit(t)
        rate = max(self.settings[110 + i] for i in range(3)) if mode == 0 else feed
        self._plan(target, rate, t)  # type: ignore[arg-type]
        active = [s for s in self.segments if s.t1 > t]
        if len(active) > PLANNER_BLOCKS:
            free_at = active[len(active) - PLANNER_BLOCKS - 1].t1
            self.line_time = free_at
            self.emit(b"ok\r\n", at=free_at)
            return b""
        return b"ok\r\n"

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

    def _plan(self, target: Vec3, feed_mm_min: float, t: float) -> None:
        """Queue a linear move at `feed` (mm/min), limited per axis by $110.. and $120.."""
        if self.hold_until is not None:
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
        seg = Segment(t0, start, target, vmax, accel, feed=feed_mm_min)
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
