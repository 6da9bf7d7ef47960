"""GRBL 1.1 motion controller as the bench's `stage` (dip coater / immersion lift).

X selects the bath position, Z is the height (m, down negative; Z = 0 is above every bath). Protocol facts:
`reference/instruments.md` §2.1 (gnea/grbl 1.1h). Lines end `\\n`; GRBL answers every line `ok` or
`error:N` (when the line is *queued*, not when the move ends), pushes `ALARM:N` and `[MSG:...]` lines, and
takes the real-time bytes `?` (status), `!` (feed hold), `~` (resume) and 0x18 (soft reset) at any time.

Completion of a move is detected by polling `?` on the transport's clock. The driver predicts when the move
ends — GRBL plans a lone block as a trapezoid from rest to rest, so the time is L/v + v/a with the feed and
acceleration limited per axis by `$110..$112` and `$120..$122`, read with `$$` at connect — sleeps until then
(instant on a virtual clock), and polls: every FAST_POLL_S for at most FAST_WINDOW after the predicted end,
then every POLL_S (5 Hz, the docs' advice for continuous polling). The short 100 Hz burst is what lets a
timed immersion be confirmed within ~10 ms: `?` is a real-time command answered at any time, and a ~45-byte
report takes ~4 ms at 115200 baud, so the burst keeps the link under half busy for a fraction of a second.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from labctl.drivers.base import Driver, idempotent
from labctl.drivers.limits import Limit
from labctl.drivers.transport import SerialSettings, Transport
from labctl.errors import (
    Disconnected,
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
    SafeStateError,
)

#: error:N -> message (gnea/grbl doc/csv/error_codes_en_US.csv)
ERRORS: dict[int, str] = {
    1: "Expected command letter: G-code words consist of a letter and a value. Letter was not found.",
    2: "Bad number format: missing the expected G-code word value or numeric value format is not valid.",
    3: "Invalid statement: Grbl '$' system command was not recognized or supported.",
    4: "Value < 0: negative value received for an expected positive value.",
    5: "Setting disabled: homing cycle failure. Homing is not enabled via settings.",
    6: "Value < 3 usec: minimum step pulse time must be greater than 3 usec.",
    7: "EEPROM read fail. Using defaults: an EEPROM read failed. Auto-restoring affected EEPROM to defaults.",
    8: "Not idle: Grbl '$' command cannot be used unless Grbl is IDLE.",
    9: "G-code lock: G-code commands are locked out during alarm or jog state.",
    10: "Homing not enabled: soft limits cannot be enabled without homing also enabled.",
    11: "Line overflow: max characters per line exceeded. Received command line was not executed.",
    12: "Step rate > 30kHz: Grbl '$' setting value cause the step rate to exceed the maximum supported.",
    13: "Check Door: safety door detected as opened and door state initiated.",
    14: "Line length exceeded: build info or startup line exceeded EEPROM line length limit.",
    15: "Travel exceeded: jog target exceeds machine travel. Jog command has been ignored.",
    16: "Invalid jog command: jog command has no '=' or contains prohibited g-code.",
    17: "Setting disabled: laser mode requires PWM output.",
    20: "Unsupported command: unsupported or invalid g-code command found in block.",
    21: "Modal group violation: more than one g-code command from same modal group found in block.",
    22: "Undefined feed rate: feed rate has not yet been set or is undefined.",
    23: "G-code command in block requires an integer value.",
    24: "More than one g-code command that requires axis words found in block.",
    25: "Repeated g-code word found in block.",
    26: "No axis words found in block for g-code command or current modal state which requires them.",
    27: "Line number value is invalid.",
    28: "G-code command is missing a required value word.",
    29: "G59.x work coordinate systems are not supported.",
    30: "G53 only allowed with G0 and G1 motion modes.",
    31: "Axis words found in block when no command or current modal state uses them.",
    32: "G2 and G3 arcs require at least one in-plane axis word.",
    33: "Motion command target is invalid.",
    34: "Arc radius value is invalid.",
    35: "G2 and G3 arcs require at least one in-plane offset word.",
    36: "Unused value words found in block.",
    37: "G43.1 dynamic tool length offset is not assigned to configured tool length axis.",
    38: "Tool number greater than max supported value.",
}

#: ALARM:N -> message (gnea/grbl doc/csv/alarm_codes_en_US.csv)
ALARMS: dict[int, str] = {
    1: "Hard limit triggered. Machine position is likely lost due to sudden halt. Re-homing is highly "
       "recommended.",
    2: "Soft limit: G-code motion target exceeds machine travel. Machine position retained. Alarm may be "
       "safely unlocked.",
    3: "Abort during cycle: reset while in motion. Machine position is likely lost due to sudden halt. "
       "Re-homing is highly recommended.",
    4: "Probe fail: probe is not in the expected initial state before starting probe cycle.",
    5: "Probe fail: probe did not contact the workpiece within the programmed travel.",
    6: "Homing fail: the active homing cycle was reset.",
    7: "Homing fail: safety door was opened during homing cycle.",
    8: "Homing fail: pull off travel failed to clear limit switch.",
    9: "Homing fail: could not find limit switch within search distances.",
    10: "Homing fail: could not find the second limit switch for self-squaring.",
}

RT_STATUS, RT_HOLD, RT_RESUME, RT_RESET = b"?", b"!", b"~", b"\x18"
STATUS_RE = re.compile(r"<([A-Za-z]+)(?::(\d))?((?:\|[^|>]*)*)>")


def describe_error(code: int) -> str:
    return f"error:{code} {ERRORS.get(code, 'unknown error code')}"


def describe_alarm(code: int) -> str:
    return f"ALARM:{code} {ALARMS.get(code, 'unknown alarm code')}"


@dataclass(frozen=True)
class GrblStatus:
    """One parsed status report; positions in m (machine frame), feed in m/s."""

    state: str                    # Idle, Run, Hold, Jog, Alarm, Door, Check, Home, Sleep
    substate: int | None
    mpos: tuple[float, float, float]
    feed: float
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def x(self) -> float:
        return self.mpos[0]

    @property
    def z(self) -> float:
        return self.mpos[2]


def parse_status(line: str, wco: tuple[float, float, float] = (0.0, 0.0, 0.0), *,
                 instrument: str = "") -> GrblStatus:
    """Parse `<Idle|MPos:0.000,0.000,0.000|FS:0,0>` (WPos reports are turned into MPos with `wco`, mm)."""
    m = STATUS_RE.fullmatch(line.strip())
    if not m:
        raise MalformedReply(f"not a GRBL status report: {line!r}", instrument=instrument)
    fields: dict[str, str] = {}
    for part in m.group(3).split("|")[1:]:
        key, _, value = part.partition(":")
        fields[key] = value
    try:
        if "WCO" in fields:
            wco = tuple(float(v) for v in fields["WCO"].split(","))[:3]  # type: ignore[assignment]
        if "MPos" in fields:
            mm = [float(v) for v in fields["MPos"].split(",")]
        elif "WPos" in fields:
            mm = [float(v) + o for v, o in zip(fields["WPos"].split(","), wco, strict=False)]
        else:
            raise MalformedReply(f"status report without a position: {line!r}", instrument=instrument)
        rate = fields.get("FS", fields.get("F", "0")).split(",")[0]
        feed = float(rate) / 60000
    except ValueError as exc:
        raise MalformedReply(f"bad number in status report {line!r}", instrument=instrument) from exc
    mm += [0.0] * (3 - len(mm))
    sub = m.group(2)
    return GrblStatus(m.group(1), int(sub) if sub else None, (mm[0] / 1000, mm[1] / 1000, mm[2] / 1000),
                      feed, fields)


def _mm(v: float) -> str:
    return f"{v * 1000:.3f}"


class Grbl(Driver):
    """GRBL 1.1 stage driver (implements `labctl.roles.Stage`)."""

    NAME = "grbl"
    ROLE = "stage"
    SIMULATOR = "labctl.simulators.grbl:GrblSim"
    SERIAL = SerialSettings(115200)
    TIMEOUT = 1.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "x": Limit("x", "m", 0.0, 0.3, "bath row travel"),
        "z": Limit("z", "m", -0.06, 0.0, "height; 0 is above every bath"),
        "speed": Limit("speed", "m/s", 1.0 / 60000, 0.02, "GRBL MINIMUM_FEED_RATE is 1 mm/min"),
    }
    POLL_S = 0.2            # status polling period while waiting (GRBL docs: at most 5 Hz)
    FAST_POLL_S = 0.01      # polling period just after a move's predicted end (a short burst)
    FAST_WINDOW = 0.5       # s after the predicted end during which FAST_POLL_S is used
    HOMING_TIMEOUT = 120.0  # s
    SAFE_SPEED = 0.005      # m/s, the lift to z = 0 in safe_state
    Z_TOLERANCE = 0.01e-3   # m, read-back tolerance for "at z = 0" (several steps)
    RESYNC_QUIET = 0.5      # s of silence that ends a resynchronisation after a failed exchange
    RESYNC_MAX = 15.0

    def __init__(self, transport: Transport, *, name: str = "",
                 limits: dict[str, tuple[float | None, float | None]] | None = None) -> None:
        super().__init__(transport, name=name, limits=limits)
        self._lock = threading.RLock()
        self._resync = False
        self._reopen = False
        self._wco = (0.0, 0.0, 0.0)
        self._move_done_at: float | None = None   # transport-clock time the last move should end
        self._motion: dict[int, float] = {}       # $100..$102, $110..$112, $120..$122 read at connect
        self.messages: list[str] = []             # [MSG:...] and other feedback lines seen
        self.alarms: list[int] = []               # ALARM:N codes seen

    # -- the exchange layer ---------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Before an exchange: reopen after a disconnect, resynchronise after a failed exchange."""
        t = self.transport
        reopened = self._reopen
        if self._reopen:
            t.close()
            t.open()
            self._reopen = False
            self._resync = True
        if self._resync:
            deadline = t.clock.monotonic() + self.RESYNC_MAX
            while t.drain(quiet=self.RESYNC_QUIET) and t.clock.monotonic() < deadline:
                pass
            self._resync = False
        else:
            self._note_unsolicited(t.drain())
        if reopened:
            self._reidentify()

    def _note_unsolicited(self, data: bytes) -> None:
        for line in data.decode("latin-1").split("\r\n"):
            if line.startswith("ALARM:") and line[6:].isdigit():
                self.alarms.append(int(line[6:]))
            elif line.startswith("[MSG:"):
                self.messages.append(line)

    def _guarded(self, fn: Any) -> Any:
        with self._lock:
            self._prepare()
            try:
                return fn()
            except Disconnected:
                self._reopen = True
                raise
            except (InstrumentTimeout, MalformedReply):
                self._resync = True
                raise

    def _read_line(self, deadline: float) -> str:
        remaining = max(0.0, deadline - self.transport.clock.monotonic())
        raw = self.transport.read_until(b"\r\n", timeout=remaining)
        try:
            return raw[:-2].decode("ascii")
        except UnicodeDecodeError as exc:
            raise MalformedReply(f"non-ASCII reply {raw!r}", instrument=self.name) from exc

    def _push_line(self, line: str, *, in_reply_to: str) -> bool:
        """Handle a line GRBL may push at any time; True if it was one of those."""
        if line == "":
            return True
        if line.startswith("Grbl "):
            self.messages.append(line)
            raise InstrumentReportedError(
                f"controller restarted ({line!r}) while waiting for the reply to {in_reply_to!r}; "
                "queued motion is lost and the position must be re-established", instrument=self.name,
                code="reset")
        if line.startswith("ALARM:"):
            code = int(line[6:]) if line[6:].isdigit() else -1
            self.alarms.append(code)
            raise InstrumentReportedError(f"{describe_alarm(code)} (after {in_reply_to!r})",
                                          instrument=self.name, code=f"ALARM:{code}")
        if line.startswith("[") or line.startswith(">"):
            self.messages.append(line)
            return True
        return False

    def _command(self, line: str, timeout: float | None = None) -> list[str]:
        """Send one line, return the feedback lines before its `ok`; `error:N` raises."""
        def run() -> list[str]:
            self.transport.write(line.encode("ascii") + b"\n")
            deadline = self.transport.clock.monotonic() + (self.transport.timeout if timeout is None
                                                           else timeout)
            info: list[str] = []
            while True:
                reply = self._read_line(deadline)
                if reply == "ok":
                    return info
                if reply.startswith("error:"):
                    code = int(reply[6:]) if reply[6:].isdigit() else -1
                    raise InstrumentReportedError(f"{line!r} refused: {describe_error(code)}",
                                                  instrument=self.name, code=code)
                if reply.startswith("<"):
                    continue  # a status report left over from an earlier `?`
                if self._push_line(reply, in_reply_to=line):
                    if reply.startswith("["):
                        info.append(reply)
                    continue
                raise MalformedReply(f"unexpected reply {reply!r} to {line!r}", instrument=self.name)
        return self._guarded(run)

    def _realtime(self, byte: bytes) -> None:
        self._guarded(lambda: self.transport.write(byte))

    # -- identity, status -----------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the port and read the controller's state (no reset: a reset would abort motion).

        Opening the port of an Arduino-based GRBL resets it (DTR), so a banner during this first exchange is
        expected: it is recorded and the status is read again.
        """
        self.transport.open()
        try:
            st = self.status()
        except InstrumentReportedError as exc:
            if exc.code != "reset":
                raise
            st = self.status()
        self._read_motion_settings(st)

    def _read_motion_settings(self, st: GrblStatus) -> None:
        """Cache the rate and acceleration settings `move_time` uses (GRBL refuses `$$` while moving or held:
        then moves are predicted as L/v until the next connect, and the fast polls catch the real end)."""
        if st.state in ("Run", "Jog", "Hold", "Home"):
            return
        try:
            every = self.settings()
        except (InstrumentReportedError, InstrumentTimeout, MalformedReply):
            return
        self._motion = {k: v for k, v in every.items() if 100 <= k <= 122}

    def identify(self) -> str:
        info = self._command("$I")
        ver = next((i for i in info if i.startswith("[VER:")), None)
        if ver is None:
            raise MalformedReply(f"$I gave no [VER:...] line: {info!r}", instrument=self.name)
        return "Grbl " + ver[5:-1].rstrip(":")

    @idempotent
    def status(self) -> GrblStatus:
        """One `?` status report."""
        def run() -> GrblStatus:
            self.transport.write(RT_STATUS)
            deadline = self.transport.clock.monotonic() + self.transport.timeout
            while True:
                line = self._read_line(deadline)
                if line.startswith("<"):
                    st = parse_status(line, self._wco, instrument=self.name)
                    if "WCO" in st.fields:
                        self._wco = tuple(float(v) for v in st.fields["WCO"].split(","))[:3]  # type: ignore
                    return st
                if line.startswith("ALARM:"):    # pushed by the controller; the report will say Alarm
                    self.alarms.append(int(line[6:]) if line[6:].isdigit() else -1)
                    continue
                if line == "ok" or self._push_line(line, in_reply_to="?"):
                    continue
                raise MalformedReply(f"unexpected reply {line!r} to '?'", instrument=self.name)
        return self._guarded(run)

    @idempotent
    def position(self) -> tuple[float, float]:
        st = self.status()
        return st.x, st.z

    def is_idle(self) -> bool:
        return self.status().state == "Idle"

    def settings(self) -> dict[int, float]:
        """`$$`: the controller's settings."""
        out: dict[int, float] = {}
        def collect() -> None:
            self.transport.write(b"$$\n")
            deadline = self.transport.clock.monotonic() + self.transport.timeout
            while (line := self._read_line(deadline)) != "ok":
                m = re.fullmatch(r"\$(\d+)=([-\d.]+)", line)
                if m:
                    out[int(m.group(1))] = float(m.group(2))
                elif line.startswith("error:"):
                    code = int(line[6:]) if line[6:].isdigit() else -1
                    raise InstrumentReportedError(f"'$$' refused: {describe_error(code)}",
                                                  instrument=self.name, code=code)
                elif not self._push_line(line, in_reply_to="$$"):
                    raise MalformedReply(f"unexpected reply {line!r} to '$$'", instrument=self.name)
        self._guarded(collect)
        return out

    def set_setting(self, number: int, value: float) -> None:
        """`$N=v` (stored in the controller's EEPROM)."""
        self._command(f"${number}={value:g}")

    # -- control --------------------------------------------------------------------------------------

    def reset(self) -> GrblStatus:
        """Soft reset (0x18): flushes queued motion; during motion GRBL raises ALARM:3. Returns the status."""
        def run() -> None:
            self.transport.write(RT_RESET)
            deadline = self.transport.clock.monotonic() + self.transport.timeout
            while True:
                line = self._read_line(deadline)
                if line.startswith("Grbl "):
                    return
                if line.startswith("ALARM:"):
                    self.alarms.append(int(line[6:]) if line[6:].isdigit() else -1)
                elif line.startswith("["):
                    self.messages.append(line)
        self._guarded(run)
        self._move_done_at = None
        return self.status()

    def unlock(self) -> None:
        """`$X`: leave the Alarm state without homing (the position is then only as good as before)."""
        self._command("$X")

    def home(self) -> None:
        """`$H`: homing cycle; GRBL answers `ok` when it is complete (X = 0, Z = 0)."""
        self._command("$H", timeout=self.HOMING_TIMEOUT)
        self._move_done_at = None

    def move_to(self, *, x: float | None = None, z: float | None = None, speed: float,
                wait: bool = True, timeout: float | None = None) -> tuple[float, float]:
        """Absolute linear move (G90 G21 G1) at `speed` m/s. With `wait`, returns the read-back (x, z)."""
        if x is None and z is None:
            raise InstrumentError("move_to needs x and/or z", instrument=self.name)
        if x is not None:
            self.check("x", x)
        if z is not None:
            self.check("z", z)
        self.check("speed", speed)
        start = self.position()
        words = (f" X{_mm(x)}" if x is not None else "") + (f" Z{_mm(z)}" if z is not None else "")
        feed = speed * 60000
        self._command(f"G21 G90 G1{words} F{feed:.3f}")
        dx = 0.0 if x is None else x - start[0]
        dz = 0.0 if z is None else z - start[1]
        duration = self.move_time(dx=dx, dz=dz, speed=speed)
        self._move_done_at = self.transport.clock.monotonic() + duration
        if not wait:
            return start
        return self.wait_idle(timeout if timeout is not None else 2 * duration + 5.0)

    def move_time(self, *, dx: float = 0.0, dz: float = 0.0, speed: float) -> float:
        """Predicted duration (s) of one linear move by (dx, dz) m at `speed` m/s, from rest to rest.

        GRBL's planner limits the feed and the acceleration of a block by each axis's `$11x` / `$12x` over
        its share of the direction; a lone block is a trapezoid (a triangle if too short to reach the feed).
        Before the settings are known (not connected, or connected mid-move) this is the plain L/v.
        """
        length = math.hypot(dx, dz) * 1000  # mm
        if length == 0:
            return 0.0
        vmax, accel = speed * 1000, math.inf  # mm/s, mm/s^2
        for axis, d in ((0, dx * 1000), (2, dz * 1000)):
            share = abs(d) / length
            if share and 110 + axis in self._motion:
                vmax = min(vmax, self._motion[110 + axis] / 60 / share)
            if share and self._motion.get(120 + axis, 0) > 0:
                accel = min(accel, self._motion[120 + axis] / share)
        if math.isinf(accel):
            return length / vmax
        if length >= vmax * vmax / accel:
            return length / vmax + vmax / accel
        return 2 * math.sqrt(length / accel)

    def wait_idle(self, timeout: float) -> tuple[float, float]:
        """Sleep until the move's predicted end, then poll `?` until Idle (fast at first). Returns (x, z)."""
        clock = self.transport.clock
        deadline = clock.monotonic() + timeout
        expected = self._move_done_at if self._move_done_at is not None else clock.monotonic()
        if self._move_done_at is not None:
            clock.sleep(min(self._move_done_at, deadline) - clock.monotonic())
        while True:
            st = self.status()
            if st.state == "Idle":
                self._move_done_at = None
                return st.x, st.z
            if st.state == "Alarm":
                last = self.alarms[-1] if self.alarms else None
                raise InstrumentReportedError(
                    "controller is in Alarm while waiting for idle"
                    + (f": {describe_alarm(last)}" if last is not None else ""), instrument=self.name,
                    code=f"ALARM:{last}" if last is not None else "ALARM")
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise InstrumentBusy(f"still {st.state} at x={st.x:.6f} m, z={st.z:.6f} m after "
                                     f"{timeout:g} s", instrument=self.name)
            fast = clock.monotonic() < expected + self.FAST_WINDOW
            clock.sleep(min(self.FAST_POLL_S if fast else self.POLL_S, remaining))

    def hold(self) -> None:
        """Feed hold (`!`): decelerate and stop; `resume()` continues the queued motion."""
        self._realtime(RT_HOLD)

    def resume(self) -> None:
        """Cycle start (`~`)."""
        self._realtime(RT_RESUME)

    def safe_state(self) -> dict[str, Any]:
        """Lift the sample out of every bath and confirm it.

        1. If moving: feed hold `!` and wait for `Hold:0` (at rest, position kept).
        2. If held or in Alarm: soft reset 0x18 (flushes queued motion; a critical alarm needs it), then `$X`
           if the controller is still in Alarm — after ALARM:3 (reset during motion) the position may be off
           by the lost steps, which the returned record says.
        3. Move Z (only Z) to 0 at SAFE_SPEED and confirm by status report: Idle and |z| within Z_TOLERANCE.
        """
        actions: list[str] = []
        try:
            st = self.status()
        except (InstrumentTimeout, MalformedReply, InstrumentReportedError):
            st = None
        if st is not None and st.state in ("Run", "Jog", "Hold"):
            if st.state != "Hold":
                self.hold()
                actions.append("feed hold")
            deadline = self.transport.clock.monotonic() + 10.0
            while st.state != "Hold" or st.substate != 0:
                if self.transport.clock.monotonic() > deadline:
                    raise SafeStateError(f"stage still {st.state} after a feed hold", instrument=self.name)
                self.transport.clock.sleep(self.FAST_POLL_S)  # a deceleration lasts ~v/a (0.1 s)
                st = self.status()
        alarms_before = len(self.alarms)
        if st is None or st.state in ("Hold", "Alarm", "Home", "Door"):
            st = self.reset()
            actions.append("soft reset")
        position_lost = any(a in (1, 3, 6) for a in self.alarms[alarms_before:])
        if st.state == "Alarm":
            self.unlock()
            actions.append("unlock ($X)")
        try:
            self.move_to(z=0.0, speed=self.SAFE_SPEED, timeout=0.07 / self.SAFE_SPEED + 5.0)
            actions.append("lift to z=0")
            st = self.status()
        except (InstrumentBusy, InstrumentReportedError) as exc:
            raise SafeStateError(f"could not lift the stage to z=0: {exc.detail}",
                                 instrument=self.name) from exc
        if st.state != "Idle" or abs(st.z) > self.Z_TOLERANCE:
            raise SafeStateError(f"read-back {st.state} at z={st.z:.6f} m, expected Idle at z=0",
                                 instrument=self.name)
        return {"state": st.state, "x": st.x, "z": st.z, "actions": actions, "position_lost": position_lost}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.close()
