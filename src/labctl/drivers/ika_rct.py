"""IKA RCT digital hotplate/stirrer (NAMUR commands) as the `hotplate` role; the bath temperature is its
external PT1000 (`IN_PV_1`).

Protocol facts: `reference/instruments.md` §5.1. 9600 7E1, commands end CR LF, queries answer
`<value> <channel>\\r\\n`; set, start and stop commands answer nothing, so the driver confirms them by reading
the setpoint (`IN_SP_1`, `IN_SP_4`) or the status (`STATUS_1`, `STATUS_4`: `11` on, `12` off, followed by the
channel digit like every NAMUR answer; a bare `11`/`12` is taken too) back.
`OUT_WD1@<s>` arms watchdog mode 1 (heater and motor off if no command comes within s) and echoes s.
"""

from __future__ import annotations

from typing import Any, ClassVar

from labctl.drivers.base import Driver, idempotent
from labctl.drivers.limits import Limit
from labctl.drivers.transport import SerialSettings, Transport
from labctl.errors import InstrumentError, LimitViolation, MalformedReply, SafeStateError

CRLF = b"\r\n"
STATUS = {"11": True, "12": False}


class IkaRct(Driver):
    """One IKA RCT digital; implements `Hotplate`."""

    NAME = "ika_rct"
    ROLE = "hotplate"
    SIMULATOR = "labctl.simulators.ika_rct:IkaRctSim"
    SERIAL = SerialSettings(9600, 7, "E", 1)
    TIMEOUT = 1.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "temperature": Limit("temperature", "degC", 0.0, 310.0, "RCT digital setpoint range"),
        "stir": Limit("stir", "rpm", 0.0, 1500.0, "RCT digital speed range"),
    }
    WATCHDOG = (20, 1500)  # s, watchdog mode 1 range

    def __init__(
        self,
        transport: Transport,
        *,
        name: str = "",
        limits: dict[str, tuple[float | None, float | None]] | None = None,
    ) -> None:
        super().__init__(transport, name=name, limits=limits)
        self._commanded: dict[str, Any] = {}  # heater/motor on-off and setpoint as last confirmed

    # -- the exchange layer ---------------------------------------------------------------------------

    def _send(self, command: str) -> None:
        self._prepare_link()
        with self._link_guard():
            self.transport.write(command.encode("ascii") + CRLF)

    def _query(self, command: str) -> str:
        self._prepare_link()
        with self._link_guard():
            raw = self.transport.query(command.encode("ascii") + CRLF, CRLF)
        body = raw[:-2]
        if not body.isascii() or not body.strip() or b"\r" in body or b"\n" in body:
            self._resync = True
            raise MalformedReply(f"bad reply {raw!r} to {command!r}", instrument=self.name)
        return body.decode("ascii").strip()

    @idempotent
    def _value(self, command: str) -> float:
        """A `<value> <channel>` answer; the channel must be the one asked."""
        text = self._query(command)
        words = text.split()
        try:
            if len(words) != 2 or words[1] != command.rsplit("_", 1)[1]:
                raise ValueError
            return float(words[0])
        except ValueError:
            self._resync = True
            raise MalformedReply(f"{command!r} answered {text!r}", instrument=self.name) from None

    def _status(self, channel: int) -> bool:
        text = self._query(f"STATUS_{channel}")
        words = text.split()
        if len(words) == 2 and words[1] == str(channel):
            text = words[0]
        if text not in STATUS:
            self._resync = True
            raise MalformedReply(f"STATUS_{channel} answered {text!r}", instrument=self.name)
        return STATUS[text]

    def _switch(self, channel: int, on: bool) -> None:
        self._send(f"{'START' if on else 'STOP'}_{channel}")
        what = "heater" if channel == 1 else "motor"
        if self._status(channel) != on:
            raise InstrumentError(f"{what} did not switch {'on' if on else 'off'}", instrument=self.name)
        self._commanded[what] = on

    def _after_retry(self) -> None:
        """A lost reply may have been a restart (the RCT powers up with heater and motor off): after a retry,
        heater, motor and setpoint must still be as last confirmed."""
        lost = [f"{what} off" for what, channel in (("heater", 1), ("motor", 4))
                if self._commanded.get(what) and not self._status(channel)]
        if "setpoint" in self._commanded and abs(self._value("IN_SP_1") - self._commanded["setpoint"]) > 0.05:
            lost.append("setpoint changed")
        if lost:
            raise InstrumentError(f"after a lost reply the hotplate reports {', '.join(lost)}: it restarted "
                                  "(power cycle?) and lost what was commanded", instrument=self.name)

    # -- operations -----------------------------------------------------------------------------------

    def identify(self) -> str:
        return self._query("IN_NAME")

    @idempotent
    def set_temperature(self, celsius: float) -> None:
        """External-probe (bath) setpoint, degC, confirmed by `IN_SP_1`."""
        self.check("temperature", celsius)
        value = round(celsius, 1)
        self._send(f"OUT_SP_1 {value:.1f}")
        back = self._value("IN_SP_1")
        if abs(back - value) > 0.05:
            raise InstrumentError(f"setpoint read back {back:g} degC, sent {value:g}", instrument=self.name)
        self._commanded["setpoint"] = value

    @idempotent
    def heater(self, on: bool) -> None:
        self._switch(1, on)

    @idempotent
    def stirrer(self, rpm: float) -> None:
        """Stir at `rpm` (0 stops the motor), speed confirmed by `IN_SP_4`, motor by `STATUS_4`."""
        self.check("stir", rpm)
        if rpm == 0:
            self._switch(4, False)
            return
        value = round(rpm)
        self._send(f"OUT_SP_4 {value}")
        back = self._value("IN_SP_4")
        if back != value:
            raise InstrumentError(f"speed read back {back:g} rpm, sent {value}", instrument=self.name)
        self._switch(4, True)

    @idempotent
    def bath_temperature(self) -> float:
        return self._value("IN_PV_1")

    @idempotent
    def plate_temperature(self) -> float:
        return self._value("IN_PV_2")

    def watchdog(self, seconds: float) -> None:
        """Arm watchdog mode 1: heater and motor off if no command arrives within `seconds` (20..1500)."""
        low, high = self.WATCHDOG
        if not low <= seconds <= high or seconds != int(seconds):
            raise LimitViolation(
                f"{self.name}: watchdog must be a whole number of seconds in [{low}, {high}], got {seconds!r}"
            )
        text = self._query(f"OUT_WD1@{int(seconds)}")
        if text != str(int(seconds)):
            self._resync = True
            raise MalformedReply(f"watchdog echoed {text!r}, sent {int(seconds)}", instrument=self.name)

    def safe_state(self) -> dict[str, Any]:
        """Heater and motor off (`STOP_1`, `STOP_4`), confirmed by `STATUS_1`/`STATUS_4`; returns bath T."""
        try:
            self._send("STOP_1")
            self._send("STOP_4")
            heating, stirring = self._status(1), self._status(4)
            bath = self.bath_temperature()
        except InstrumentError as exc:
            raise SafeStateError(
                f"could not confirm heater and motor off: {exc.detail}", instrument=self.name
            ) from exc
        self._commanded.update(heater=heating, motor=stirring)
        if heating or stirring:
            raise SafeStateError(
                f"read back heater {'on' if heating else 'off'}, motor {'on' if stirring else 'off'}",
                instrument=self.name,
            )
        return {"heating": False, "stirring": False, "bath_c": bath}
