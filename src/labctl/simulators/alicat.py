"""Simulated Alicat mass-flow controller feeding the shared chamber, byte for byte.

Facts from `reference/instruments.md` §4.2 and Alicat's serial quick reference (commands are
`<unit id><command>\\r`, any case; `A\\r` polls the data frame; `AS <sp>` new setpoint; `AG<n>` gas; `AHP`
hold the valve at its position, `AHC` hold it closed, `AC` cancel the hold; `AVE` firmware; `?` for a
command the unit cannot execute). The frame: unit id, absolute pressure psia, temperature degC, volumetric
flow ccm, mass flow sccm, setpoint sccm, gas, flags.

Where the sources are silent this core chooses, and says so:
- the mass flow is what the world reports flowing (`world.gas_flow_actual`), which the core sets through
  `world.gas_flow` on every setpoint, gas or valve change; the volumetric flow is computed from it at the
  frame's pressure and temperature (Alicat standard conditions 25 degC, 14.696 psia);
- inlet pressure and gas temperature are plant conditions (constructor arguments), not measurements made up;
- a setpoint outside 0..full scale and an unknown gas number are answered `?`; numbers may follow the
  command letter with or without a space;
- flow beyond 128 % of full scale sets MOV (and VOV) [verify on hardware]; the measured value is still shown;
- `valve_stuck_sccm` (a test knob) models a valve that fails open: that flow goes on whatever the setpoint;
- power-up: setpoint 0, no hold; the gas selection is kept (non-volatile);
- `stuck busy` is modelled as a frozen control loop: the valve holds its position (HLD) and `AC` does not
  release it.
"""

from __future__ import annotations

import re

from labctl.clock import Clock
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore
from labctl.simulators.world import SimpleWorld

GASES = ("Air", "Ar", "CH4", "CO", "CO2", "C2H6", "H2", "He", "N2", "N2O", "Ne", "O2", "C3H8", "n-C4H10",
         "C2H2", "C2H4", "i-C4H10", "Kr", "Xe", "SF6")
STD_K, STD_PSIA = 298.15, 14.696
OVER_RANGE = 1.28
FIRMWARE = "10v05.0-R22"
NUMBER = r"\s*([+-]?(?:\d+\.?\d*|\.\d+))"


class AlicatSim(DeviceCore):
    """One controller at `unit_id` on the line."""

    SERIAL = SerialSettings(19200)
    TERMINATORS = (b"\r",)

    def __init__(self, name: str = "alicat", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, unit_id: str = "A", full_scale: float = 100.0, gas: str = "N2",
                 inlet_psia: float = 14.70, temperature_c: float = 25.0) -> None:
        self.unit_id = unit_id.upper()
        self.full_scale = full_scale
        self.gas = GASES.index(gas)                # non-volatile
        self.inlet_psia, self.temperature_c = inlet_psia, temperature_c
        self.valve_stuck_sccm: float | None = None
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    def reset(self) -> None:
        self.setpoint = 0.0
        self.hold: float | None = None            # flow the valve is held at (0 = held closed)
        self._apply()

    def set_stuck_busy(self) -> None:
        super().set_stuck_busy()
        self.hold = self._flow()
        self._apply()

    # -- physics ----------------------------------------------------------------------------------------

    def _commanded(self) -> float:
        if self.valve_stuck_sccm is not None:
            return self.valve_stuck_sccm
        return self.setpoint if self.hold is None else self.hold

    def _apply(self) -> None:
        self.world.gas_flow(self.now(), GASES[self.gas], self._commanded())  # type: ignore[union-attr]

    def _flow(self) -> float:
        return float(self.world.gas_flow_actual(self.now()))  # type: ignore[union-attr]

    def frame(self) -> bytes:
        if self.valve_stuck_sccm is not None:
            self._apply()
        mass = self._flow()
        vol = mass * (self.temperature_c + 273.15) / STD_K * STD_PSIA / self.inlet_psia
        flags = []
        if self.hold is not None:
            flags.append("HLD")
        if abs(mass) > OVER_RANGE * self.full_scale:
            flags.append("MOV")
        if abs(vol) > OVER_RANGE * self.full_scale:
            flags.append("VOV")
        fields = [self.unit_id] + [f"{v:+07.2f}" for v in (self.inlet_psia, self.temperature_c, vol, mass,
                                                           self.setpoint)]
        return " ".join([*fields, GASES[self.gas], *flags]).encode("ascii") + b"\r"

    # -- protocol ---------------------------------------------------------------------------------------

    def handle(self, message: bytes) -> bytes | None:
        text = message.decode("ascii", "replace").strip().upper()
        if not text or text[0] != self.unit_id:
            return None                            # another unit's command (or line noise)
        cmd = text[1:].strip()
        if cmd == "":
            return self.frame()
        if m := re.fullmatch("S" + NUMBER, cmd):
            value = float(m.group(1))
            if not 0.0 <= value <= self.full_scale:
                return b"?\r"
            self.setpoint = round(value, 2)
            self._apply()
            return self.frame()
        if m := re.fullmatch(r"G\s*(\d+)", cmd):
            number = int(m.group(1))
            if number >= len(GASES):
                return b"?\r"
            self.gas = number
            self._apply()
            return self.frame()
        if cmd in ("HP", "HC"):
            self.hold = self._flow() if cmd == "HP" else 0.0
            self._apply()
            return self.frame()
        if cmd == "C":
            if not self.stuck_busy:
                self.hold = None
                self._apply()
            return self.frame()
        if cmd == "VE":
            return f"{self.unit_id} {FIRMWARE}\r".encode("ascii")
        return b"?\r"

    def error_reply(self, message: bytes) -> bytes | None:
        return b"?\r"
