"""Simulated Alicat mass-flow controller feeding the shared chamber, byte for byte.

Facts from `reference/instruments.md` §4.2 and Alicat's Serial Primer (commands are `<unit id><command>\\r`,
any case; `A\\r` polls the data frame; `AS <sp>` new setpoint, `ALS [sp]` setpoint query/set answered
`A <current> <requested> <units code> <units label>`; `AG<n>` (and `AGS [n]`) gas; `A$$W46=<n>`/`A$$R46` the
gas register, `AR<reg>`/`AW<reg>=<v>` (legacy and `$$` forms) registers answered `A   <reg> = <value>`, 122
the control point (37 mass flow, 36 volumetric flow); `AV`/`A$$V` tare flow, `AP`/`A$$P`/`APC`/`A$$PC` tare
pressure; `AHP`/`A$$H` hold the valve at its position, `AHC` hold it closed, `AC`/`A$$C` cancel the hold;
`AL`/`A$$L` lock the front panel (frame flag `LCK`), `AU`/`A$$U` unlock; `A@=B` new unit id (the frame comes
back under it), `A@=@` streaming (frames every `stream_interval` s, unasked) and `@@=A` polling again; `AVE`
firmware; `A??M*` manufacturer information, `A??D*` data frame description, `A??G*` the gas table, each a
block of `<id> <Mnn|Dnn|Gnn> ...` lines; `?` for a command the unit cannot execute). The frame: unit id,
absolute pressure psia, temperature degC, volumetric flow ccm, mass flow sccm, setpoint, gas, flags.

Where the sources are silent this core chooses, and says so:
- the mass flow is what the world reports flowing (`world.gas_flow_actual`), which the core sets through
  `world.gas_flow` on every setpoint, gas or valve change; the volumetric flow is computed from it at the
  frame's pressure and temperature (Alicat standard conditions 25 degC, 14.696 psia);
- inlet pressure and gas temperature are plant conditions (constructor arguments), not measurements made up;
- a setpoint outside 0..full scale and an unknown gas number are answered `?`; numbers may follow the
  command letter with or without a space;
- control on volumetric flow converts the setpoint to mass flow at the frame's conditions; pressure control
  points (34, 38, 39) are refused (`?`): the bench has no downstream volume whose pressure the MFC could hold;
- a flow tare (`V`) takes the present flow reading as zero from then on (tare with no flow!): the readings
  drop by that offset and the control loop, regulating the reading, lets that much more flow;
  pressure tares are accepted and do not move the absolute pressure the frame shows (no barometer offset);
- registers other than those listed in `REGISTERS` are answered `?` (this core keeps no full register map);
- this unit has no totalizer: `T` and `$$TB` are answered `?`; setpoint ramping (`LSRC`, `SR`) is not
  modelled and answered `?`;
- flow beyond 128 % of full scale sets MOV (and VOV) [verify on hardware]; the measured value is still shown;
- `valve_stuck_sccm` (a test knob) models a valve that fails open: that flow goes on whatever the setpoint;
- power-up: setpoint 0, no hold, not locked, polling mode; gas, unit id and registers are kept (non-volatile);
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
GAS_NAMES = ("Air", "Argon", "Methane", "Carbon Monoxide", "Carbon Dioxide", "Ethane", "Hydrogen",
             "Helium", "Nitrogen", "Nitrous Oxide", "Neon", "Oxygen", "Propane", "normal-Butane", "Acetylene",
             "Ethylene", "iso-Butane", "Krypton", "Xenon", "Sulfur Hexafluoride")
STD_K, STD_PSIA = 298.15, 14.696
OVER_RANGE = 1.28
FIRMWARE = "10v05.0-R22"
NUMBER = r"\s*([+-]?(?:\d+\.?\d*|\.\d+))"
SCCM = (4, "SCCM")                       # engineering units code and label (Serial Primer appendix)
MASS_FLOW, VOL_FLOW = 37, 36
#: register -> power-on default; 46 gas (low 9 bits), 122 control point, 85 loop type, 21/22/23 P/D/I gains
REGISTERS = {46: 8, 122: MASS_FLOW, 85: 1, 21: 100, 22: 5000, 23: 0}


class AlicatSim(DeviceCore):
    """One controller at `unit_id` on the line."""

    SERIAL = SerialSettings(19200)
    TERMINATORS = (b"\r",)

    def __init__(self, name: str = "alicat", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, unit_id: str = "A", full_scale: float = 100.0, gas: str = "N2",
                 inlet_psia: float = 14.70, temperature_c: float = 25.0, serial_number: str = "190001",
                 stream_interval: float = 0.05) -> None:
        self.unit_id = unit_id.upper()             # non-volatile, like the gas and the registers
        self.full_scale = full_scale
        self.registers = dict(REGISTERS)
        self.registers[46] = GASES.index(gas)
        self.inlet_psia, self.temperature_c = inlet_psia, temperature_c
        self.serial_number, self.stream_interval = serial_number, stream_interval
        self.valve_stuck_sccm: float | None = None
        self.flow_tare = 0.0
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    @property
    def gas(self) -> int:
        return self.registers[46] & 0x1FF

    def reset(self) -> None:
        self.setpoint = 0.0                       # in control-point units
        self.hold: float | None = None            # flow the valve is held at (0 = held closed)
        self.locked = False
        self.streaming_from: float | None = None  # next frame time while streaming
        self._apply()

    def set_stuck_busy(self) -> None:
        super().set_stuck_busy()
        self.hold = self._flow()
        self._apply()

    # -- physics ----------------------------------------------------------------------------------------

    def _to_vol(self, mass: float) -> float:
        return mass * (self.temperature_c + 273.15) / STD_K * STD_PSIA / self.inlet_psia

    def _setpoint_sccm(self) -> float:
        if self.registers[122] == VOL_FLOW:
            return self.setpoint / self._to_vol(1.0)
        return self.setpoint

    def _commanded(self) -> float:
        """What flows: the loop regulates the (tared) reading to the setpoint; setpoint 0 closes the valve."""
        if self.valve_stuck_sccm is not None:
            return self.valve_stuck_sccm
        if self.hold is not None:
            return self.hold
        sp = self._setpoint_sccm()
        return sp + self.flow_tare if sp > 0 else 0.0

    def _apply(self) -> None:
        self.world.gas_flow(self.now(), GASES[self.gas], self._commanded())  # type: ignore[union-attr]

    def _flow(self) -> float:
        return float(self.world.gas_flow_actual(self.now()))  # type: ignore[union-attr]

    def frame(self, unit_id: str | None = None) -> bytes:
        if self.valve_stuck_sccm is not None:
            self._apply()
        mass = self._flow() - self.flow_tare
        vol = self._to_vol(mass)
        flags = ["LCK"] if self.locked else []
        if self.hold is not None:
            flags.append("HLD")
        if abs(mass) > OVER_RANGE * self.full_scale:
            flags.append("MOV")
        if abs(vol) > OVER_RANGE * self.full_scale:
            flags.append("VOV")
        values = (self.inlet_psia, self.temperature_c, vol, mass, self.setpoint)
        fields = [unit_id or self.unit_id] + [f"{v:+07.2f}" for v in values]
        return " ".join([*fields, GASES[self.gas], *flags]).encode("ascii") + b"\r"

    # -- streaming --------------------------------------------------------------------------------------

    def _stream(self) -> None:
        """Frames the unit has streamed by now (emitted lazily, when the host looks)."""
        if self.streaming_from is None:
            return
        now = self.now()
        while self.streaming_from <= now:
            self.emit(self.frame("@"), at=self.streaming_from)
            self.streaming_from += self.stream_interval

    def read(self, limit: int = 1 << 20) -> bytes:
        with self.lock:
            self._stream()
        return super().read(limit)

    def available(self) -> int:
        with self.lock:
            self._stream()
        return super().available()

    def next_release(self) -> float | None:
        with self.lock:
            self._stream()
            nxt = super().next_release()
            if self.streaming_from is None:
                return nxt
            return self.streaming_from if nxt is None else min(nxt, self.streaming_from)

    # -- protocol ---------------------------------------------------------------------------------------

    def handle(self, message: bytes) -> bytes | None:
        text = message.decode("ascii", "replace").strip().upper()
        me = "@" if self.streaming_from is not None else self.unit_id
        if not text or text[0] != me:
            return None                            # another unit's command (or line noise)
        self._stream()
        reply = self._command(text[1:].strip())
        return b"?\r" if reply is None else reply

    def _command(self, cmd: str) -> bytes | None:
        """The reply to one command (without the unit id), None for `?`."""
        if cmd == "":
            return self.frame()
        legacy = cmd[2:] if cmd.startswith("$$") else cmd
        if m := re.fullmatch(r"(?:\$\$)?([RW])\s*(\d+)(?:\s*=\s*(-?\d+))?", cmd):
            return self._register(m.group(1), int(m.group(2)), m.group(3))
        if m := re.fullmatch("S" + NUMBER, cmd):
            return self.frame() if self._set_setpoint(float(m.group(1))) else None
        if m := re.fullmatch("LS(?:" + NUMBER + ")?", cmd):
            if m.group(1) is not None and not self._set_setpoint(float(m.group(1))):
                return None
            return self._line(f"{self.setpoint:+07.2f} {self.setpoint:+07.2f} {SCCM[0]} {SCCM[1]}")
        if m := re.fullmatch(r"G(S)?\s*(\d+)?", cmd):
            if m.group(2) is not None:
                if int(m.group(2)) >= len(GASES):
                    return None
                self.registers[46] = (self.registers[46] & ~0x1FF) | int(m.group(2))
                self._apply()
            elif not m.group(1):
                return None
            if m.group(1):
                return self._line(f"{self.gas} {GASES[self.gas]} {GAS_NAMES[self.gas]}")
            return self.frame()
        if cmd in ("HP", "$$H", "HC"):
            self.hold = 0.0 if cmd == "HC" else self._flow()
            self._apply()
            return self.frame()
        if legacy == "C":
            if not self.stuck_busy:
                self.hold = None
                self._apply()
            return self.frame()
        if legacy in ("L", "U"):
            self.locked = legacy == "L"
            return self.frame()
        if legacy == "V":
            self.flow_tare = self._flow()
            reply = self.frame()                   # measured at the tare; the loop answers after it
            self._apply()
            return reply
        if legacy in ("P", "PC"):
            return self.frame()
        if m := re.fullmatch(r"@\s*=\s*([A-Z@])", cmd):
            return self._new_id(m.group(1))
        if cmd == "VE":
            return self._line(FIRMWARE)
        if m := re.fullmatch(r"\?\?([MDG])\*", cmd):
            return self._info(m.group(1))
        return None

    def _line(self, text: str, unit_id: str | None = None) -> bytes:
        return f"{unit_id or self._me()} {text}\r".encode("ascii")

    def _me(self) -> str:
        return "@" if self.streaming_from is not None else self.unit_id

    def _set_setpoint(self, value: float) -> bool:
        limit = self.full_scale if self.registers[122] == MASS_FLOW else self._to_vol(self.full_scale)
        if not 0.0 <= value <= limit:
            return False
        self.setpoint = round(value, 2)
        self._apply()
        return True

    def _register(self, op: str, reg: int, value: str | None) -> bytes | None:
        if reg not in self.registers or (op == "W") != (value is not None):
            return None
        if op == "W":
            assert value is not None
            v = int(value)
            if reg == 122 and v not in (MASS_FLOW, VOL_FLOW):
                return None                         # pressure control: see the module docstring
            if reg == 46 and (v & 0x1FF) >= len(GASES):
                return None
            if reg == 122 and v != self.registers[122]:
                self.setpoint = 0.0                 # a new control point starts from a zero setpoint
            self.registers[reg] = v
            self._apply()
        return self._line(f"  {reg:03d} = {self.registers[reg]}")

    def _new_id(self, new: str) -> bytes:
        """`@=X`: the unit answers under X; `@` means streaming, a letter back to polling."""
        if new == "@":
            self.streaming_from = self.now() + self.stream_interval
            return b""                               # the stream itself is the answer
        self.streaming_from = None
        self.unit_id = new
        return self.frame()

    def _info(self, kind: str) -> bytes:
        me = self._me()
        if kind == "M":
            lines = ["Alicat Scientific", "www.alicat.com", "Ph   520-290-6060", "Fax  520-290-0109",
                     f"Model Number MC-{self.full_scale:g}SCCM-D", f"Serial Number {self.serial_number}",
                     "Date Manufactured 01/15/2024", "Date Calibrated   01/15/2024", "Calibrated By     SIM",
                     f"Software Revision {FIRMWARE}"]
        elif kind == "G":
            lines = [f"{GASES[i]:<8} {GAS_NAMES[i]}" for i in range(len(GASES))]
        else:
            lines = ["ID_ NAME______________________ TYPE_______ WIDTH NOTES___________",
                     "700 Unit ID                    string          1",
                     "002 Abs Press                  s decimal     7/2 010 02 PSIA",
                     "003 Flow Temp                  s decimal     7/2 002 02 `C",
                     "004 Volu Flow                  s decimal     7/2 012 02 CCM",
                     "005 Mass Flow                  s decimal     7/2 012 02 SCCM",
                     f"{self.registers[122]:03d} Setpoint                   s decimal     7/2 012 02 SCCM",
                     "703 Gas                        string          6",
                     "*** Status Codes               string          3 LCK HLD MOV VOV"]
        return b"".join(f"{me} {kind}{i:02d} {line}\r".encode("ascii") for i, line in enumerate(lines))

    def error_reply(self, message: bytes) -> bytes | None:
        return b"?\r"

    def rejects(self, reply: bytes) -> bool:
        """True when any line of `reply` is the unit's "cannot execute" answer (`?`, bare or after the unit
        id), and for silence."""
        lines = reply.split(b"\r")[:-1]
        return not lines or any(re.fullmatch(rb"(?:[A-Z@] )?\?", line.strip()) for line in lines)
