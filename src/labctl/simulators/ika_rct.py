"""Simulated IKA RCT digital hotplate/stirrer (NAMUR commands), byte for byte, heating the world's bath.

Facts from `reference/instruments.md` §5.1: 9600 7E1, commands upper case, parameter after a space, lines
end CR LF; queries answer `<value> <channel>\\r\\n` (`IN_PV_1` -> `25.3 1`); set/start/stop commands answer
nothing; unknown commands answer nothing; `OUT_WD1@<20..1500>` arms watchdog mode 1 and echoes the value;
when no command arrives within the watchdog time, heating and stirring switch off.

The NAMUR set of the RCT digital manual (IKA Plate RCT digital, 201811, "Interface and outputs") and of the
drivers written from it (numat `ika-control`, PyLabware, the `ika` package): identity `IN_NAME`, `IN_TYPE`,
`IN_VERSION`, `IN_SOFTWARE_ID`; actual values `IN_PV_1` (external PT1000), `IN_PV_2` (plate), `IN_PV_3` (the
plate's safety circuit), `IN_PV_4` (speed), `IN_PV_5` (viscosity trend), `IN_PV_7` (second element of a double
PT1000); setpoints `IN_SP_1/2/3/4` and `OUT_SP_1/4`; watchdog `OUT_WD1@`, `OUT_WD2@` with the safety setpoints
`OUT_SP_12@`/`OUT_SP_42@` (echoed) and `IN_SP_12`/`IN_SP_42`; `START_/STOP_1/4`, `STATUS_1/4`, `RESET`,
`SET_MODE_A/B/D`. Every query answers `<value> <channel>`: numat's driver refuses a reply whose last character
is not the query's channel digit, so `STATUS_4` answers `11 4`, not `11`.

Where the sources are silent this core chooses, and says so ([verify on hardware]):
- temperatures come from the world (`bath_temperature` = external PT1000, also its second element `IN_PV_7`;
  `plate_temperature` = plate and its safety sensor `IN_PV_3`); every setpoint/heater/motor change is told to
  the world through `world.hotplate(t, setpoint, heating, rpm)`;
- `STATUS_1` / `STATUS_4` answer `11 <ch>` (on) or `12 <ch>` (off) (`11` active / `12` inactive per numat);
- `IN_TYPE` answers `RCT digital`, `IN_VERSION` the firmware `1.20`, `IN_SOFTWARE_ID` `6002;1.20`;
- `IN_SP_3` is the safety-circuit limit set on the device (360 degC, the RCT digital's maximum; setpoints stop
  50 K below it, which is the 310 degC setpoint range); `IN_SP_2` reads the one temperature setpoint with the
  plate's channel (the RCT digital has one setpoint, applied to the external probe when one is plugged in);
- `IN_PV_5`, the viscosity trend (% change of the motor torque since stirring started), is 0 while stirring:
  the simulated bath's viscosity does not change; 0 when the motor is off;
- out-of-range setpoints (temperature outside 0..310 degC, speed outside 0..1500 rpm) are ignored (the
  setpoint read-back shows the old value); power-up: setpoints 0, heater and motor off, no watchdog, mode A;
- a watchdog expiry is applied at its time (the world hears about it then) when the next message arrives; mode
  1 switches heating and stirring off (ER 2), mode 2 sets the setpoints to the safety setpoints (`OUT_WD2@0`
  clears it); the instrument then takes commands again (the real one shows ER 2 until restarted);
- stuck busy: the controller stops taking set commands (queries still answer);
- unknown commands and out-of-range values are answered by silence, as the manual says; the core remembers
  them so that `rejects` can tell (the command-table test asks it).
"""

from __future__ import annotations

import re

from labctl.clock import Clock
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore
from labctl.simulators.world import SimpleWorld

NAME = "RCT digital"
TYPE, VERSION, SOFTWARE_ID = "RCT digital", "1.20", "6002;1.20"
MAX_C, MAX_RPM = 310.0, 1500.0
SAFETY_LIMIT_C = 360.0
MODES = ("A", "B", "D")
NUMBER = r"([+-]?(?:\d+\.?\d*|\.\d+))"


class IkaRctSim(DeviceCore):
    """One RCT digital with its external PT1000 in the bath."""

    SERIAL = SerialSettings(9600, 7, "E", 1)
    TERMINATORS = (b"\n",)

    def __init__(
        self,
        name: str = "ika_rct",
        *,
        clock: Clock | None = None,
        world: object | None = None,
        seed: int = 0,
        **_: object,
    ) -> None:
        self.mode = "A"                 # operating mode, kept over a power cycle (set on the device)
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    def reset(self) -> None:
        self.setpoint = 0.0
        self.speed = 0.0
        self.heating = False
        self.stirring = False
        self.watchdog: float | None = None
        self.watchdog_mode = 1
        self.wd_setpoint = 0.0          # OUT_SP_12@: the temperature setpoint a WD2 event falls back to
        self.wd_speed = 0.0             # OUT_SP_42@: the speed a WD2 event falls back to
        self.last_message = self.now()
        self.watchdog_tripped = False
        self.not_understood: list[bytes] = []   # messages refused in silence since power-up
        self._apply(self.now())

    def rejects(self, reply: bytes) -> bool:
        """The RCT answers an unknown command (or a value out of range) with silence, like a set command: the
        core remembers what it refused since power-up."""
        return bool(self.not_understood)

    def _apply(self, t: float) -> None:
        self.world.hotplate(
            t,
            self.setpoint,
            self.heating,  # type: ignore[union-attr]
            self.speed if self.stirring else 0.0,
        )

    def _check_watchdog(self) -> None:
        if self.watchdog is None:
            return
        expiry = self.last_message + self.watchdog
        if self.now() <= expiry:
            return
        if self.watchdog_mode == 1 and (self.heating or self.stirring):
            self.heating = self.stirring = False
            self.watchdog_tripped = True
            self._apply(expiry)
        elif self.watchdog_mode == 2 and not self.watchdog_tripped:
            self.setpoint, self.speed = self.wd_setpoint, self.wd_speed
            self.watchdog_tripped = True
            self._apply(expiry)

    def handle(self, message: bytes) -> bytes | None:
        self._check_watchdog()
        self.last_message = self.now()
        text = message.decode("ascii", "replace").strip()
        reply = self._query(text)
        if reply is None and not self._command(text):
            self.not_understood.append(message)
        return None if reply is None else reply.encode("ascii") + b"\r\n"

    def _query(self, text: str) -> str | None:
        """Queries answer in any state (a stuck controller still reports)."""
        now = self.now()
        world = self.world
        values = {
            "IN_NAME": lambda: NAME,
            "IN_TYPE": lambda: TYPE,
            "IN_VERSION": lambda: VERSION,
            "IN_SOFTWARE_ID": lambda: SOFTWARE_ID,
            "IN_PV_1": lambda: f"{world.bath_temperature(now):.1f} 1",  # type: ignore[union-attr]
            "IN_PV_2": lambda: f"{world.plate_temperature(now):.1f} 2",  # type: ignore[union-attr]
            "IN_PV_3": lambda: f"{world.plate_temperature(now):.1f} 3",  # type: ignore[union-attr]
            "IN_PV_4": lambda: f"{self.speed if self.stirring else 0.0:.0f} 4",
            "IN_PV_5": lambda: "0.0 5",
            "IN_PV_7": lambda: f"{world.bath_temperature(now):.1f} 7",  # type: ignore[union-attr]
            "IN_SP_1": lambda: f"{self.setpoint:.1f} 1",
            "IN_SP_2": lambda: f"{self.setpoint:.1f} 2",
            "IN_SP_3": lambda: f"{SAFETY_LIMIT_C:.0f} 3",
            "IN_SP_4": lambda: f"{self.speed:.0f} 4",
            "IN_SP_12": lambda: f"{self.wd_setpoint:.1f} 12",
            "IN_SP_42": lambda: f"{self.wd_speed:.0f} 42",
            "STATUS_1": lambda: f"{11 if self.heating else 12} 1",
            "STATUS_4": lambda: f"{11 if self.stirring else 12} 4",
        }
        if text in values:
            return values[text]()
        if m := re.fullmatch(r"OUT_WD([12])@(\d+)", text):
            seconds = int(m.group(2))
            if m.group(1) == "2" and seconds == 0:   # clears a WD2 event and stops the watchdog
                self.watchdog, self.watchdog_tripped = None, False
                return "0"
            if not 20 <= seconds <= 1500:
                return None
            self.watchdog, self.watchdog_mode = float(seconds), int(m.group(1))
            return str(seconds)
        if m := re.fullmatch(r"OUT_SP_12@" + NUMBER, text):
            value = float(m.group(1))
            if 0.0 <= value <= MAX_C:
                self.wd_setpoint = round(value, 1)
                return f"{self.wd_setpoint:.1f}"
            return None
        if m := re.fullmatch(r"OUT_SP_42@" + NUMBER, text):
            value = float(m.group(1))
            if 0.0 <= value <= MAX_RPM:
                self.wd_speed = float(round(value))
                return f"{self.wd_speed:.0f}"
        return None

    def _command(self, text: str) -> bool:
        """Set, start and stop commands (no reply); False if not understood or out of range."""
        if text.startswith(("OUT_WD", "OUT_SP_12@", "OUT_SP_42@")):
            return False                     # a query form that _query refused (out of range)
        if self.stuck_busy:
            return True                      # taken, not executed
        now = self.now()
        if m := re.fullmatch(r"OUT_SP_1 " + NUMBER, text):
            value = float(m.group(1))
            if not 0.0 <= value <= MAX_C:
                return False
            self.setpoint = round(value, 1)
        elif m := re.fullmatch(r"OUT_SP_4 " + NUMBER, text):
            value = float(m.group(1))
            if not 0.0 <= value <= MAX_RPM:
                return False
            self.speed = float(round(value))
        elif text in ("START_1", "STOP_1", "START_4", "STOP_4"):
            on = text.startswith("START")
            if text.endswith("1"):
                self.heating = on
            else:
                self.stirring = on
        elif text == "RESET":
            self.heating = self.stirring = False
        elif m := re.fullmatch(r"SET_MODE_([A-Z])", text):
            if m.group(1) not in MODES:
                return False
            self.mode = m.group(1)
            return True
        else:
            return False
        self._apply(now)
        return True
