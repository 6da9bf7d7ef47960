"""Inficon SQM-160 quartz-crystal rate/thickness monitor (framed packets, 14-bit CRC) as the `qcm` role.

Protocol facts: `reference/instruments.md` §4.4 (pymeasure's SQM-160 driver and tests, SQC-310 manual
§4.2-4.3).
19200 8N1. A command is `!`, a length character `chr(len(message) + 34)`, the message and two CRC characters;
the answer is `!`, `chr(len(status + message) + 35)`, a status letter (A ok, B ok but the instrument was
reset, C invalid command, D bad data, E wrong mode), the message and two CRC characters. The CRC (`crc14`)
covers the length character and the message (and the status letter in answers), never the sync `!`.

Commands used: `@` firmware, `J` channel count, `L1` rate (A/s), `N1` thickness (A), `P1` frequency (Hz), `R1`
crystal life (%), `W` all channels at once, `S` zero rate and thickness, `T` zero the time, `Y` power-up reset
flag, `D<n>` active film,
`A<n>?` / `A<n><name> <density g/cc> <tooling %> <z-ratio> <final kA> <setpoint kA> <time s> <sensor mask>`
film parameters (field layout as in the SQM-160 manual's `A` command, read from lapkindm/sqm160
`sqm160/models.py`) [verify on hardware].

Units [verify on hardware]: instruments.md (pymeasure) gives the `N` thickness in A, which this driver and the
simulator use (`THICKNESS_UNIT_M`). The SQC-310 manual's examples (`N1` -> `1.000`) and the film parameters'
final thickness in kA suggest the SQM-160 may answer kA in its Angstrom display mode; check one reading
against the front panel before trusting absolute numbers. The constant is the one place to change.

Shutter [verify on hardware]: `U1` opens, `U0` closes and `U?` reads the source-shutter relay (`1` open, `0`
closed), as implemented and described as tested on an SQM-160 over RS-232 and USB by lapkindm/sqm160
(`sqm160/commands.py`, citing the SQM-160 Operating Manual's command chapter). instruments.md could not verify
a shutter command (only the SQC-310's `HA` parameter 3 "Shutter"); the Inficon manual itself was not read.

Choices, documented: every operation is one packet and one answer within one deadline; commands are never
re-sent after a failure (the next exchange first waits for the line to go quiet); a status `B` answer is
accepted and counted in `resets_seen` (the engine can see the instrument restarted); `shutter()` confirms by
`U?` and raises `InstrumentBusy` if the relay does not follow within `CONFIRM_TIMEOUT`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from labctl.drivers.base import Driver, idempotent
from labctl.drivers.limits import Limit
from labctl.drivers.transport import SerialSettings, Transport
from labctl.errors import (
    ChecksumError,
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
    PartialReply,
    SafeStateError,
)

SYNC = b"!"
STATUS = {"A": "ok", "B": "ok, instrument was reset", "C": "invalid command", "D": "bad data in command",
          "E": "wrong mode"}
THICKNESS_UNIT_M = 1e-10    # `N` answers A (instruments.md) [verify on hardware]
RATE_UNIT_M_S = 1e-10       # `L` answers A/s
FILM_FIELDS = 7             # after the 8-character name


def crc14(data: bytes) -> bytes:
    """The SQM-160 CRC of `data` (length character + message) as its two characters."""
    crc = 0x3FFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0x2001
        crc &= 0x3FFF
    return bytes([(crc & 0x7F) + 34, ((crc >> 7) & 0x7F) + 34])


def packet(message: bytes) -> bytes:
    """A host command packet."""
    if not 1 <= len(message) <= 221:
        raise ValueError(f"SQM-160 message must be 1-221 bytes, got {len(message)}")
    body = bytes([len(message) + 34]) + message
    return SYNC + body + crc14(body)


def response(status: str, message: bytes = b"") -> bytes:
    """An instrument answer packet (used by the simulator and by tests)."""
    body = bytes([len(message) + 1 + 35]) + status.encode("ascii") + message
    return SYNC + body + crc14(body)


def film_message(film: int, name: str, density: float, tooling: float, z_ratio: float,
                 final_m: float = 0.0, setpoint_m: float = 0.0, time_s: int = 0, sensors: int = 1) -> str:
    """The `A<n>` film-parameter set message, SI in: density kg/m^3, tooling fraction, thicknesses m."""
    return (f"A{film}{name.upper()[:8]:<8} {density / 1000:.2f} {round(tooling * 100)} {z_ratio:.3f} "
            f"{final_m * 1e7:.3f} {setpoint_m * 1e7:.3f} {time_s} {sensors}")


class Sqm160(Driver):
    """One SQM-160, sensor 1, film 1; implements `ThicknessMonitor`."""

    NAME = "sqm160"
    ROLE = "qcm"
    SIMULATOR = "labctl.simulators.sqm160:Sqm160Sim"
    SERIAL = SerialSettings(19200)
    TIMEOUT = 1.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "thickness": Limit("thickness", "m", 0.0, 1e-4, "display range 0-999.9 kA"),
        "density": Limit("density", "kg/m^3", 500.0, 99_990.0, "film density 0.50-99.99 g/cc"),
        "z_ratio": Limit("z_ratio", "", 0.1, 9.999, "acoustic impedance ratio"),
        "tooling": Limit("tooling", "", 0.1, 3.99, "tooling 10-399 %"),
    }
    SENSOR = 1
    FILM = 1
    CONFIRM_TIMEOUT = 1.0   # s for the shutter relay read-back to follow
    POLL = 0.05

    def __init__(self, transport: Transport, *, name: str = "",
                 limits: dict[str, tuple[float | None, float | None]] | None = None) -> None:
        super().__init__(transport, name=name, limits=limits)
        self.resets_seen = 0

    # -- the exchange layer ---------------------------------------------------------------------------

    def _read(self, n: int, deadline: float) -> bytes:
        t = self.transport
        return t.read_exact(n, timeout=max(0.0, deadline - t.clock.monotonic()))

    def _transact(self, message: str, deadline: float) -> str:
        self.transport.write(packet(message.encode("ascii")))
        head = self._read(2, deadline)
        if head[:1] != SYNC or head[1] < 36:
            raise MalformedReply(f"bad answer header {head!r} to {message!r}", instrument=self.name)
        try:
            rest = self._read(head[1] - 35 + 2, deadline)
        except InstrumentTimeout as exc:
            raise PartialReply(f"answer to {message!r} cut short after {head!r}",
                               instrument=self.name) from exc
        body, crc = head[1:2] + rest[:-2], rest[-2:]
        if crc14(body) != crc:
            raise ChecksumError(f"answer {head + rest!r} to {message!r} fails its CRC", instrument=self.name)
        status, text = chr(body[1]), body[2:]
        if status not in STATUS:
            raise MalformedReply(f"unknown status {status!r} in answer to {message!r}", instrument=self.name)
        if status in "CDE":
            raise InstrumentReportedError(f"{message!r} refused: {STATUS[status]} (status {status})",
                                          instrument=self.name, code=status)
        if status == "B":
            self.resets_seen += 1
        try:
            return text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise MalformedReply(f"non-ASCII answer {text!r} to {message!r}", instrument=self.name) from exc

    def _exchange(self, message: str) -> str:
        """One command -> the answer's message text (status letter removed)."""
        t = self.transport
        self._prepare_link()
        with self._link_guard():
            return self._transact(message, t.clock.monotonic() + t.timeout)

    def _number(self, message: str) -> float:
        text = self._exchange(message)
        try:
            return float(text)
        except ValueError as exc:
            raise MalformedReply(f"{message!r} answered {text!r}, not a number",
                                 instrument=self.name) from exc

    # -- identity and status --------------------------------------------------------------------------

    def identify(self) -> str:
        """`@`: the firmware version, e.g. `MON Ver 4.13`."""
        return self._exchange("@").strip()

    def channels(self) -> int:
        """`J`: number of installed sensor channels."""
        return int(self._number("J"))

    def power_up_reset(self) -> bool:
        """`Y`: True once after the instrument powered up (reading clears it)."""
        return self._exchange("Y").strip() == "1"

    # -- film -----------------------------------------------------------------------------------------

    def set_film(self, *, density: float, z_ratio: float, tooling: float) -> None:
        """Film 1: density kg/m^3, Z-ratio, tooling fraction; written, read back, made the active film."""
        self.check("density", density)
        self.check("z_ratio", z_ratio)
        self.check("tooling", tooling)
        self._exchange(film_message(self.FILM, "LABCTL", density, tooling, z_ratio))
        back = self.film()
        if (abs(back["density"] - density) > 5.0 or abs(back["z_ratio"] - z_ratio) > 5e-4
                or abs(back["tooling"] - tooling) > 5e-3):
            raise InstrumentError(f"film read back {back}, sent density {density:g}, z {z_ratio:g}, tooling "
                                  f"{tooling:g}", instrument=self.name)
        self._exchange(f"D{self.FILM}")

    @idempotent
    def film(self) -> dict[str, Any]:
        """`A1?`: film 1's parameters in SI (density kg/m^3, tooling fraction, thicknesses m)."""
        text = self._exchange(f"A{self.FILM}?")
        fields = text[8:].split()
        if len(text) < 8 or len(fields) != FILM_FIELDS:
            raise MalformedReply(f"bad film parameters {text!r}", instrument=self.name)
        try:
            return {"name": text[:8].strip(), "density": float(fields[0]) * 1000,
                    "tooling": int(fields[1]) / 100, "z_ratio": float(fields[2]),
                    "final_thickness": float(fields[3]) * 1e-7, "thickness_setpoint": float(fields[4]) * 1e-7,
                    "time_setpoint": int(fields[5]), "sensors": int(fields[6])}
        except ValueError as exc:
            raise MalformedReply(f"bad film parameters {text!r}", instrument=self.name) from exc

    # -- readings -------------------------------------------------------------------------------------

    @idempotent
    def zero(self) -> None:
        """`S`: rate and thickness to zero."""
        self._exchange("S")

    def zero_time(self) -> None:
        """`T`: the deposition timer to zero."""
        self._exchange("T")

    @idempotent
    def thickness(self) -> float:
        """Sensor 1 thickness since the last zero, m."""
        return self._number(f"N{self.SENSOR}") * THICKNESS_UNIT_M

    @idempotent
    def rate(self) -> float:
        """Sensor 1 deposition rate, m/s."""
        return self._number(f"L{self.SENSOR}") * RATE_UNIT_M_S

    @idempotent
    def frequency(self) -> float:
        """Sensor 1 crystal frequency, Hz."""
        return self._number(f"P{self.SENSOR}")

    @idempotent
    def readings(self) -> dict[str, Any]:
        """`W`: every channel at once: `time` (s, the leading `MM.SS` field) and per sensor `rate` (m/s),
        `thickness` (m), `frequency` (Hz), as {"time": s, "sensors": {1: {...}, 2: {...}}} [verify on
        hardware: the leading field's meaning; pymeasure and lapkindm/sqm160 both skip it]."""
        text = self._exchange("W")
        fields = text.split()
        if len(fields) < 4 or (len(fields) - 1) % 3:
            raise MalformedReply(f"bad all-readings answer {text!r}", instrument=self.name)
        try:
            minutes, _, seconds = fields[0].partition(".")
            values = [float(x) for x in fields[1:]]
            elapsed = 60 * int(minutes) + int(seconds or 0)
        except ValueError as exc:
            raise MalformedReply(f"bad all-readings answer {text!r}", instrument=self.name) from exc
        sensors = {
            n + 1: {"rate": values[3 * n] * RATE_UNIT_M_S, "thickness": values[3 * n + 1] * THICKNESS_UNIT_M,
                    "frequency": values[3 * n + 2]}
            for n in range(len(values) // 3)
        }
        return {"time": float(elapsed), "sensors": sensors}

    @idempotent
    def crystal_life(self) -> float:
        """Sensor 1 crystal life, % (see the simulator for the convention) [verify on hardware]."""
        return self._number(f"R{self.SENSOR}")

    # -- shutter --------------------------------------------------------------------------------------

    @idempotent
    def shutter_is_open(self) -> bool:
        """`U?`: the source-shutter relay, True when open."""
        text = self._exchange("U?").strip()
        if text not in ("0", "1"):
            raise MalformedReply(f"shutter state {text!r} is neither 0 nor 1", instrument=self.name)
        return text == "1"

    @idempotent
    def shutter(self, is_open: bool) -> None:
        """`U1` open / `U0` close, confirmed by `U?` within `CONFIRM_TIMEOUT` (else `InstrumentBusy`)."""
        self._exchange("U1" if is_open else "U0")
        clock = self.transport.clock
        deadline = clock.monotonic() + self.CONFIRM_TIMEOUT
        while self.shutter_is_open() != is_open:
            if clock.monotonic() >= deadline:
                raise InstrumentBusy(f"shutter still {'closed' if is_open else 'open'} "
                                     f"{self.CONFIRM_TIMEOUT:g} s after the command", instrument=self.name)
            clock.sleep(self.POLL)

    def safe_state(self) -> dict[str, Any]:
        """Shutter closed, confirmed by `U?`; reports thickness and rate as read afterwards."""
        try:
            self.shutter(False)
            closed = not self.shutter_is_open()
            thickness, rate = self.thickness(), self.rate()
        except InstrumentError as exc:
            raise SafeStateError(f"shutter closed not confirmed: {exc.detail}", instrument=self.name) from exc
        if not closed:
            raise SafeStateError("read-back shows the shutter open", instrument=self.name)
        return {"shutter_open": False, "thickness_m": thickness, "rate_m_s": rate}
