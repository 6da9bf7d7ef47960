"""Simulated IKA RCT digital hotplate/stirrer (NAMUR commands), byte for byte, heating the world's bath.

Facts from `reference/instruments.md` §5.1: 9600 7E1, commands upper case, parameter after a space, lines
end CR LF; queries answer `<value> <channel>\\r\\n` (`IN_PV_1` -> `25.3 1`); set/start/stop commands answer
nothing; unknown commands answer nothing; `OUT_WD1@<20..1500>` arms watchdog mode 1 and echoes the value;
when no command arrives within the watchdog time, heating and stirring switch off.

Where the sources are silent this core chooses, and says so:
- temperatures come from the world (`bath_temperature` = external PT1000, `plate_temperature` = plate);
  every setpoint/heater/motor change is told to the world through `world.hotplate(t, setpoint, heating, rpm)`;
- `STATUS_1` / `STATUS_4` answer `11` (on) or `12` (off) [verify on hardware];
- out-of-range setpoints (temperature outside 0..310 degC, speed outside 0..1500 rpm) are ignored (the
  setpoint read-back shows the old value); power-up: setpoints 0, heater and motor off, no watchdog;
- a watchdog expiry is applied at its time (the world hears about it then) when the next message arrives;
  the instrument then takes commands again (the real one shows ER 2 until restarted);
- stuck busy: the controller stops taking set commands (queries still answer).
"""

from __future__ import annotations

import re

from labctl.clock import Clock
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore
from labctl.simulators.world import SimpleWorld

NAME = "RCT digital"
MAX_C, MAX_RPM = 310.0, 1500.0
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
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    def reset(self) -> None:
        self.setpoint = 0.0
        self.speed = 0.0
        self.heating = False
        self.stirring = False
        self.watchdog: float | None = None
        self.last_message = self.now()
        self.watchdog_tripped = False
        self._apply(self.now())

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
        if self.now() > expiry and (self.heating or self.stirring):
            self.heating = self.stirring = False
            self.watchdog_tripped = True
            self._apply(expiry)

    def handle(self, message: bytes) -> bytes | None:
        self._check_watchdog()
        self.last_message = self.now()
        text = message.decode("ascii", "replace").strip()
        reply = self._answer(text)
        return None if reply is None else reply.encode("ascii") + b"\r\n"

    def _answer(self, text: str) -> str | None:
        now = self.now()
        if text == "IN_NAME":
            return NAME
        if text == "IN_PV_1":
            return f"{self.world.bath_temperature(now):.1f} 1"  # type: ignore[union-attr]
        if text == "IN_PV_2":
            return f"{self.world.plate_temperature(now):.1f} 2"  # type: ignore[union-attr]
        if text == "IN_PV_4":
            return f"{self.speed if self.stirring else 0.0:.0f} 4"
        if text == "IN_SP_1":
            return f"{self.setpoint:.1f} 1"
        if text == "IN_SP_4":
            return f"{self.speed:.0f} 4"
        if text in ("STATUS_1", "STATUS_4"):
            on = self.heating if text.endswith("1") else self.stirring
            return "11" if on else "12"
        if m := re.fullmatch(r"OUT_WD1@(\d+)", text):
            seconds = int(m.group(1))
            if not 20 <= seconds <= 1500:
                return None
            self.watchdog = float(seconds)
            return str(seconds)
        if self.stuck_busy:
            return None
        if m := re.fullmatch(r"OUT_SP_1 " + NUMBER, text):
            value = float(m.group(1))
            if 0.0 <= value <= MAX_C:
                self.setpoint = round(value, 1)
                self._apply(now)
        elif m := re.fullmatch(r"OUT_SP_4 " + NUMBER, text):
            value = float(m.group(1))
            if 0.0 <= value <= MAX_RPM:
                self.speed = float(round(value))
                self._apply(now)
        elif text in ("START_1", "STOP_1", "START_4", "STOP_4"):
            on = text.startswith("START")
            if text.endswith("1"):
                self.heating = on
            else:
                self.stirring = on
            self._apply(now)
        elif text == "RESET":
            self.heating = self.stirring = False
            self._apply(now)
        return None
