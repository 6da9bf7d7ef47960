"""Vaisala DRYCAP DMT143 dew-point transmitter as role `glovebox.h2o` (driver `vaisala_dmt143`).

Protocol facts (Vaisala DMT143 User's Guide M211435EN, "Serial line operation"): RS-232/RS-485 service port,
19200 baud 8N1 by default; commands are ASCII ending in CR; `SEND` outputs one measurement in the format set
by `FORM` (quantities `Tdf` dew/frost point, `Tdfa` converted to atmospheric pressure, `H2O` ppm by volume;
modifiers such as `x.y`, `U3` the unit name, `#r #n`); `VERS` the product and software version; `ERRS` the
active errors; the reply ends in CR LF.

Choices, documented:
- the transmitter is assumed in STOP mode with echo off (`SMODE STOP`, `ECHO OFF`), as a logger leaves it;
  the driver never changes `FORM`, `UNIT` or the mode (settings that outlive the run); it parses `Tdf=` and
  `H2O=` from whatever the output format holds, and refuses a line without `H2O=` naming `FORM`;
- `SEND` and `VERS` are reads: retried once after a lost or garbled reply (`@idempotent`);
- water is returned as a mole fraction (1 ppmV = 1e-6), the frost point in degC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from labctl.drivers.base import Driver, idempotent
from labctl.drivers.limits import Limit
from labctl.drivers.transport import SerialSettings
from labctl.errors import InstrumentError, InstrumentReportedError, MalformedReply, SafeStateError

LABCTL_PLUGIN_API = 1
EOL = b"\r\n"
H2O = re.compile(r"H2O=\s*([-+]?[0-9]+(?:\.[0-9]*)?)\s*ppmV?", re.IGNORECASE)
TDF = re.compile(r"Tdf=\s*([-+]?[0-9]+(?:\.[0-9]*)?)\s*'C")


@dataclass(frozen=True)
class DewReading:
    """One `SEND` line: water (mole fraction) and the frost point (degC, None if the format lacks it)."""

    h2o: float
    frost_point_c: float | None


class DMT143(Driver):
    """One DMT143 on its own serial line."""

    LABCTL_PLUGIN_API = 1
    NAME = "vaisala_dmt143"
    ROLE = "glovebox"
    SIMULATOR = "labctl_glovebox.dmt143_sim:DMT143Sim"
    SERIAL = SerialSettings(19200)
    TIMEOUT = 1.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "h2o": Limit("h2o", "", 0.0, 0.02, "measuring range Td -70 .. +60 degC (DMT143 data sheet)"),
    }

    def _query(self, command: str) -> str:
        self._prepare_link()
        with self._link_guard():
            reply = self.transport.query(command.encode("ascii") + b"\r", EOL)
            text = reply[:-2].decode("ascii", "replace")
            if text.strip().lower() == "unknown command":  # the transmitter's one error answer
                raise InstrumentReportedError(f"{command!r} refused: {text.strip()}", instrument=self.name,
                                              code=text.strip())
        return text

    def identify(self) -> str:
        """`VERS`: product name and software version."""
        return self._query("VERS")

    @idempotent
    def reading(self) -> DewReading:
        """`SEND`: one measurement in the configured output format."""
        line = self._query("SEND")
        h2o = H2O.search(line)
        if h2o is None:
            raise MalformedReply(f"SEND gave {line!r}, no `H2O=`: add H2O to the transmitter's FORM",
                                 instrument=self.name)
        tdf = TDF.search(line)
        return DewReading(float(h2o.group(1)) * 1e-6, float(tdf.group(1)) if tdf else None)

    def water(self) -> float:
        """H2O mole fraction (1 ppmV = 1e-6)."""
        return self.reading().h2o

    def errors(self) -> str:
        """`ERRS`: the active errors (`No errors` when none)."""
        return self._query("ERRS")

    def safe_state(self) -> dict[str, Any]:
        """Nothing to switch off (it only measures): confirm it answers and has no active error."""
        try:
            errs = self.errors()
            r = self.reading()
        except InstrumentError as exc:
            raise SafeStateError(f"transmitter does not answer properly: {exc.detail}",
                                 instrument=self.name) from exc
        if "no error" not in errs.lower():
            raise InstrumentReportedError(f"active errors: {errs}", instrument=self.name)
        return {"state": "read-only instrument, nothing to switch off", "errors": errs,
                "h2o_ppm": r.h2o * 1e6, "frost_point_c": r.frost_point_c}
