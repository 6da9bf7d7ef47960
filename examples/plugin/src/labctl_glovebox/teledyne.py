"""Teledyne 3000TA trace oxygen analyzer as role `glovebox.o2` (driver `teledyne3000ta`).

Protocol facts (Teledyne Analytical Instruments, Model 3000TA/3000ZA manuals §3.3 "RS-232 port", and the
Teledyne RS-232 FAQ): 2400 baud, 8 data bits, no parity, 1 stop bit; in sample mode the analyzer sends a
status line every 2 s, e.g. `ST, 0.00 PPM, RA-LO 0-100 PPM, AL-1 DISABLED, AL-2 ON, ` + CR LF: the
concentration with its unit (PPM or %), the range (`RA-` auto-ranging or `RF-` fixed; LO/MED/HI/CAL) and
its span, then alarms that are disabled or tripped. It sends nothing in zero, span or self-diagnostic mode.
Inputs: `as<CR>` starts an autospan, `az<CR>` an autozero, `st<CR>` toggles the status output.

Choices, documented:
- the analyzer is never commanded: `as`/`az` change its calibration and `st` is a toggle (sending it twice
  undoes it), so none is ever sent; the driver only listens;
- a reading discards what is buffered (it may be minutes old) and takes the next complete status line; the
  deadline is two report periods plus margin (`TIMEOUT`); a silent analyzer is an `InstrumentTimeout` that
  says why it may be silent (zero/span mode, stream toggled off);
- concentrations are returned as a mole fraction (1 ppm = 1e-6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from labctl.drivers.base import Driver, idempotent
from labctl.drivers.limits import Limit
from labctl.drivers.transport import SerialSettings
from labctl.errors import InstrumentError, InstrumentTimeout, MalformedReply, SafeStateError

LABCTL_PLUGIN_API = 1
EOL = b"\r\n"
PERIOD_S = 2.0
STATUS = re.compile(r"ST,\s*([0-9]+(?:\.[0-9]*)?)\s*(PPM|%)\s*,\s*(R[AF])-(LO|MED|HI|CAL)\s+([^,]*?)\s*,(.*)")
SCALE = {"PPM": 1e-6, "%": 1e-2}


@dataclass(frozen=True)
class O2Status:
    """One status line: concentration (mole fraction), range, span text, and alarms named in it."""

    fraction: float
    auto_range: bool
    range: str
    span: str
    alarms: tuple[str, ...]


def parse_status(line: bytes) -> O2Status:
    """Parse one status line (CR LF included)."""
    m = STATUS.fullmatch(line.decode("ascii", "replace").strip())
    if m is None:
        raise MalformedReply(f"not a 3000TA status line: {line!r}")
    value, unit, mode, rng, span, rest = m.groups()
    alarms = tuple(a.strip() for a in rest.split(",") if a.strip())
    return O2Status(float(value) * SCALE[unit], mode == "RA", rng, span, alarms)


class Teledyne3000TA(Driver):
    """One 3000TA analyzer, read from its status stream."""

    LABCTL_PLUGIN_API = 1
    NAME = "teledyne3000ta"
    ROLE = "glovebox"
    SIMULATOR = "labctl_glovebox.teledyne_sim:Teledyne3000TASim"
    SERIAL = SerialSettings(2400)
    TIMEOUT = 2 * PERIOD_S + 1.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "o2": Limit("o2", "", 0.0, 0.25, "0-10 ppm lowest range .. 0-25 % highest (3000TA data sheet)"),
    }

    def _next_status(self) -> O2Status:
        t = self.transport
        self._prepare_link()
        deadline = t.clock.monotonic() + t.timeout
        with self._link_guard():
            t.drain()  # buffered lines are old news
            while True:
                remaining = deadline - t.clock.monotonic()
                try:
                    line = t.read_until(EOL, timeout=max(0.0, remaining))
                except InstrumentTimeout as exc:
                    raise InstrumentTimeout(
                        f"no status line within {t.timeout:.0f} s (zero/span/diagnostic mode, or the "
                        "stream toggled off with `st`?)", instrument=self.name) from exc
                try:
                    return parse_status(line)
                except MalformedReply:
                    if t.clock.monotonic() >= deadline:  # only fragments (joined mid-line) until the end
                        raise
                    continue

    @idempotent
    def status(self) -> O2Status:
        """The next status line."""
        return self._next_status()

    @idempotent
    def oxygen(self) -> float:
        """O2 mole fraction (1 ppm = 1e-6) from the next status line."""
        return self.status().fraction

    def identify(self) -> str:
        """The analyzer has no identification query: its status line (range and span) is what it says."""
        s = self.status()
        return f"Teledyne 3000TA ({'auto' if s.auto_range else 'fixed'} range {s.range} {s.span})"

    def safe_state(self) -> dict[str, Any]:
        """Nothing to switch off (it only measures): confirm it still reports."""
        try:
            s = self.status()
        except InstrumentError as exc:
            raise SafeStateError(f"analyzer silent: {exc.detail}", instrument=self.name) from exc
        return {"state": "read-only instrument, nothing to switch off", "o2_ppm": s.fraction * 1e6,
                "range": s.range, "alarms": list(s.alarms)}
