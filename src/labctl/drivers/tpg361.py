"""Pfeiffer TPG 361 single-gauge controller (mnemonic protocol with ACK/ENQ) as the `gauge` role.

Protocol facts: `reference/instruments.md` §4.1 (TPG 36x/26x manuals, InstrumentKit's transcript). 9600 8N1.
Every operation is two steps: the host sends a mnemonic `PR1\\r\\n`, the gauge answers ACK `\\x06\\r\\n`
(or NAK `\\x15\\r\\n` when it refuses it); the host sends ENQ `\\x05` and the gauge sends the data line
`0,+1.0000E-03\\r\\n`.
A set command (`UNI,2`) is followed by ENQ too, which reads the stored value back.

Choices, documented:
- one deadline (the transport timeout) covers the whole two-step operation, including the `ERR` read that
  explains a NAK;
- after any failed exchange the next one starts with ETX (`\\x03`, which clears the gauge's input buffer) and
  waits until the line is quiet, so a late reply is never taken for the next answer; after a disconnect the
  port is reopened;
- `pressure()` reads the unit (`UNI`) with every reading, so a unit changed on the front panel can never
  scale a reading wrongly (two short exchanges, ~30 ms at 9600 baud);
- the gauge only measures: `safe_state()` has nothing to switch off, it confirms the gauge answers and
  reports its state (error word, measurement status, pressure).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from labctl.drivers.base import Driver, idempotent
from labctl.drivers.limits import Limit
from labctl.drivers.transport import SerialSettings, Transport
from labctl.errors import (
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    MalformedReply,
    SafeStateError,
)

ACK, NAK, ENQ, ETX = b"\x06", b"\x15", b"\x05", b"\x03"
EOL = b"\r\n"
STATUS = {0: "measurement data okay", 1: "underrange", 2: "overrange", 3: "sensor error", 4: "sensor off",
          5: "no sensor", 6: "identification error"}
#: `UNI` codes -> (name, Pa per unit); 5 = the display shows volts, not a pressure
UNITS: dict[int, tuple[str, float | None]] = {0: ("mbar", 100.0), 1: ("Torr", 101325.0 / 760.0),
                                              2: ("Pa", 1.0), 3: ("Micron", 101325.0 / 760.0 / 1000.0),
                                              4: ("hPa", 100.0), 5: ("V", None)}
#: `ERR` word bits, left to right
ERROR_BITS = ("controller error (see the front panel)", "no hardware", "inadmissible parameter",
              "syntax error")
READING = re.compile(r"([0-9]),\s*([+-]?\d\.\d+E[+-]\d+)")


@dataclass(frozen=True)
class GaugeReading:
    """One `PR1` answer: status code and text, value in the gauge's unit, and in Pa (None unless ok)."""

    status: int
    status_text: str
    value: float
    unit: str
    pressure_pa: float | None


def error_text(word: str) -> str:
    """Meaning of an `ERR` word such as `0001`."""
    meanings = [text for bit, text in zip(word, ERROR_BITS, strict=False) if bit == "1"]
    return "; ".join(meanings) or "no error"


class Tpg361(Driver):
    """One TPG 361 (single gauge, channel 1); implements `PressureGauge`."""

    NAME = "tpg361"
    ROLE = "gauge"
    SIMULATOR = "labctl.simulators.tpg361:Tpg361Sim"
    IDENTITY_IS_UNIQUE = True  # the identification names the serial number: leased as the unit
    SERIAL = SerialSettings(9600)
    TIMEOUT = 1.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "pressure": Limit("pressure", "Pa", 5e-7, 1e5,
                          "PKR 251 full-range gauge, 5e-9 .. 1000 mbar; stations set the process window"),
    }

    def __init__(self, transport: Transport, *, name: str = "",
                 limits: dict[str, tuple[float | None, float | None]] | None = None) -> None:
        super().__init__(transport, name=name, limits=limits)

    # -- the exchange layer ---------------------------------------------------------------------------

    def _on_resync(self) -> None:
        self.transport.write(ETX)  # the gauge discards whatever partial mnemonic it holds

    def _line(self, deadline: float) -> bytes:
        t = self.transport
        return t.read_until(EOL, timeout=max(0.0, deadline - t.clock.monotonic()))

    def _two_step(self, mnemonic: str, deadline: float) -> str | None:
        """Mnemonic -> ACK -> ENQ -> data line (without CR LF); None if the gauge NAKs either step."""
        t = self.transport
        t.write(mnemonic.encode("ascii") + EOL)
        answer = self._line(deadline)
        if answer == NAK + EOL:
            return None
        if answer != ACK + EOL:
            raise MalformedReply(f"expected ACK or NAK to {mnemonic!r}, got {answer!r}", instrument=self.name)
        t.write(ENQ)
        data = self._line(deadline)
        if data == NAK + EOL:
            return None
        if data == ACK + EOL or not data[:-2].isascii():
            raise MalformedReply(f"bad data line {data!r} for {mnemonic!r}", instrument=self.name)
        return data[:-2].decode("ascii")

    def _exchange(self, mnemonic: str) -> str:
        """One operation -> its data text. A NAK is explained by reading the error word (which clears it)."""
        t = self.transport
        self._prepare_link()
        deadline = t.clock.monotonic() + t.timeout
        with self._link_guard():
            data = self._two_step(mnemonic, deadline)
            if data is not None:
                return data
            word = self._two_step("ERR", deadline)
        if word is None:
            raise InstrumentBusy(f"gauge refuses every command (NAK to {mnemonic!r} and to ERR); is the "
                                 "front panel in a parameter menu?", instrument=self.name)
        raise InstrumentReportedError(f"{mnemonic!r} refused (NAK): error word {word} ({error_text(word)})",
                                      instrument=self.name, code=word)

    # -- identity and settings ------------------------------------------------------------------------

    def identify(self) -> str:
        """`AYT`: type, model number, serial number, firmware and hardware versions, comma-separated."""
        return self._exchange("AYT")

    def gauge_type(self) -> str:
        """`TID`: the connected gauge's identification (PKR, TPR, IKR9, ..., `noSEn`, `noid`)."""
        return self._exchange("TID")

    def error_word(self) -> str:
        """`ERR`: `0000` when there is no error; reading it clears it on the gauge."""
        word = self._exchange("ERR")
        if not re.fullmatch(r"[01]{4}", word):
            raise MalformedReply(f"bad error word {word!r}", instrument=self.name)
        return word

    @idempotent
    def unit(self) -> str:
        """The gauge's pressure unit (`UNI`): mbar, Torr, Pa, Micron, hPa or V."""
        return UNITS[self._unit_code()][0]

    def _unit_code(self) -> int:
        text = self._exchange("UNI")
        if not text.isdigit() or int(text) not in UNITS:
            raise MalformedReply(f"bad unit code {text!r}", instrument=self.name)
        return int(text)

    def set_unit(self, unit: str) -> None:
        """Set the display/interface unit (`UNI,n`) and confirm the read-back."""
        codes = {name.lower(): code for code, (name, _) in UNITS.items()}
        if unit.lower() not in codes:
            known = ", ".join(n for n, _ in UNITS.values())
            raise InstrumentError(f"unknown unit {unit!r}; the gauge knows {known}", instrument=self.name)
        code = codes[unit.lower()]
        back = self._exchange(f"UNI,{code}")
        if back != str(code):
            raise InstrumentError(f"unit read back {back!r}, sent {code}", instrument=self.name)

    # -- measurement ----------------------------------------------------------------------------------

    @idempotent
    def reading(self) -> GaugeReading:
        """Unit and `PR1`, never raising for the measurement status (see `GaugeReading`)."""
        code = self._unit_code()
        text = self._exchange("PR1")
        m = READING.fullmatch(text)
        if m is None:
            raise MalformedReply(f"bad measurement {text!r}", instrument=self.name)
        status, value = int(m.group(1)), float(m.group(2))
        name, factor = UNITS[code]
        ok = status == 0 and factor is not None
        return GaugeReading(status, STATUS.get(status, f"unknown status {status}"), value, name,
                            value * factor if ok and factor is not None else None)

    @idempotent
    def pressure(self) -> float:
        """Chamber pressure in Pa; raises `InstrumentReportedError` (code = status) unless status is 0."""
        r = self.reading()
        if r.status != 0:
            raise InstrumentReportedError(f"gauge reports {r.status_text} (status {r.status})",
                                          instrument=self.name, code=r.status)
        if r.pressure_pa is None:
            raise InstrumentError("the gauge is set to show volts (UNI,5); set a pressure unit",
                                  instrument=self.name)
        return r.pressure_pa

    def safe_state(self) -> dict[str, Any]:
        """Nothing to switch off (the gauge only measures): confirm it answers and report its state."""
        try:
            word = self.error_word()
            r = self.reading()
        except InstrumentError as exc:
            raise SafeStateError(f"gauge does not answer properly: {exc.detail}",
                                 instrument=self.name) from exc
        return {"state": "read-only instrument, nothing to switch off", "error_word": word,
                "error": error_text(word), "status": r.status, "status_text": r.status_text,
                "pressure_pa": r.pressure_pa, "unit": r.unit}
