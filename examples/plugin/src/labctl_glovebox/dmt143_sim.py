"""Simulated Vaisala DMT143: `SEND`, `VERS`, `ERRS` over its serial line, STOP mode, echo off.

Facts as in `labctl_glovebox.dmt143`. Where the manual is silent this core chooses, and says so:
- the output format is `Tdf=` 3.1 `'C H2O=` 4.1 `ppmV` (a FORM a logger would set); the frost point follows
  from the water content at 1013.25 hPa through the Magnus formula over ice (WMO-No. 8, Annex 4.B):
  e = x p, Tf = 272.62 ln(e/611.2) / (22.46 - ln(e/611.2)) degC;
- an unknown command is answered `Unknown command` (the transmitter's own words, [verify on hardware]);
- the water level is the world's `glovebox_h2o_ppm` when it has one, else `ppm`, with 2 % noise.
"""

from __future__ import annotations

import math

from labctl.clock import Clock
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore

LABCTL_PLUGIN_API = 1
P_ATM = 101325.0
VERSION = "DMT143 / 1.4.2"


def frost_point_c(ppm: float) -> float:
    """Frost point (degC) of water at `ppm` by volume in a gas at 1 atm (Magnus over ice)."""
    e = max(ppm, 1e-6) * 1e-6 * P_ATM
    ln = math.log(e / 611.2)
    return 272.62 * ln / (22.46 - ln)


class DMT143Sim(DeviceCore):
    """One DMT143 in the glovebox atmosphere."""

    SERIAL = SerialSettings(19200)
    TERMINATORS = (b"\r",)

    def __init__(self, name: str = "h2o", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, ppm: float = 0.8) -> None:
        self.ppm = ppm
        super().__init__(name, clock=clock, world=world, seed=seed)

    def reset(self) -> None:
        self.errors: list[str] = []

    def level(self) -> float:
        base = getattr(self.world, "glovebox_h2o_ppm", None)
        base = self.ppm if base is None else float(base)
        return max(0.0, base * (1.0 + 0.02 * self.rng.gauss(0.0, 1.0)))

    def handle(self, message: bytes) -> bytes | None:
        cmd = message.strip(b"\r\n ").upper()
        if cmd == b"SEND":
            ppm = self.level()
            text = f"Tdf={frost_point_c(ppm):6.1f} 'C H2O={ppm:7.1f} ppmV"
        elif cmd == b"VERS":
            text = VERSION
        elif cmd == b"ERRS":
            text = ", ".join(self.errors) or "No errors"
        else:
            text = "Unknown command"
        return text.encode("ascii") + b"\r\n"

    def error_reply(self, message: bytes) -> bytes | None:
        return b"Unknown command\r\n"
