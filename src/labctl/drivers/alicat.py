"""Alicat mass-flow controller (ASCII serial, unit id) as the `mfc` role.

Protocol facts: `reference/instruments.md` §4.2 and Alicat's serial quick reference. 19200 8N1, CR-terminated.
- poll `A\\r` -> data frame `A +014.70 +025.00 +010.00 +010.00 +010.00 N2 [flags]`: unit id, absolute
  pressure (psia), temperature (degC), volumetric flow (ccm), mass flow (sccm), setpoint (sccm), gas, then
  status flags (MOV/VOV/POV/TOV over range, HLD valve hold, OPL over pressure limit, LCK, ADC, EXH, ...);
- setpoint `AS 10.00\\r` and gas `AG8\\r` answer with a data frame (the driver checks it shows the change);
- a command the unit cannot execute is answered `?`.

Choices, documented: the setpoint is sent with the frame's resolution (2 decimals at 100 sccm full scale);
`flow()` raises on a mass-flow over-range flag (the number is then not a measurement); after a failed
exchange the next one first waits for the line to fall quiet, after a disconnect the port is reopened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from labctl.drivers.base import Driver, idempotent
from labctl.drivers.limits import Limit
from labctl.drivers.transport import SerialSettings, Transport
from labctl.errors import (
    ConfigError,
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    LimitViolation,
    MalformedReply,
    SafeStateError,
)

CR = b"\r"
PSI_PA = 6894.757293168
#: Alicat's standard gas numbers (Gas Select list, numbers 0-19)
GASES = ("Air", "Ar", "CH4", "CO", "CO2", "C2H6", "H2", "He", "N2", "N2O", "Ne", "O2", "C3H8", "n-C4H10",
         "C2H2", "C2H4", "i-C4H10", "Kr", "Xe", "SF6")
FLAGS = {"ADC": "analog-to-digital converter error", "EXH": "exhaust valve open", "HLD": "valve hold active",
         "LCK": "front panel locked", "MOV": "mass flow over range", "OPL": "over pressure limit",
         "OVR": "totalizer rolled over", "POV": "pressure over range", "TMF": "totalizer missed flow",
         "TOV": "temperature over range", "VOV": "volumetric flow over range", "VTM": "valve drive timeout"}


@dataclass(frozen=True)
class AlicatFrame:
    """One data frame in labctl units: Pa, degC, ccm, sccm."""

    unit_id: str
    pressure_pa: float
    temperature_c: float
    volumetric_ccm: float
    mass_sccm: float
    setpoint_sccm: float
    gas: str
    flags: tuple[str, ...]


def gas_number(name: str) -> int:
    """Alicat's number of a gas named as in `GASES` (any case)."""
    for number, gas in enumerate(GASES):
        if gas.lower() == name.strip().lower():
            return number
    raise ConfigError(f"unknown gas {name!r}; the Alicat standard gases are {', '.join(GASES)}")


class Alicat(Driver):
    """One Alicat mass-flow controller at `unit_id` (A-Z); implements `MassFlowController`."""

    NAME = "alicat"
    ROLE = "mfc"
    SIMULATOR = "labctl.simulators.alicat:AlicatSim"
    SERIAL = SerialSettings(19200)
    TIMEOUT = 1.0
    FULL_SCALE = 100.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "flow": Limit("flow", "sccm", 0.0, FULL_SCALE, "100 sccm full-scale controller"),
    }
    DECIMALS = 2                 # setpoint resolution at 100 sccm full scale
    ZERO_TOLERANCE = 0.01        # fraction of full scale that counts as "no flow"
    SAFE_TIMEOUT = 5.0           # s for the valve to close in safe_state
    POLL = 0.1                   # s between polls while waiting

    @classmethod
    def spec_options(cls, spec: Any) -> dict[str, Any]:
        """The station `address` n is the Alicat unit id A + n (address 0 = unit A)."""
        return {} if spec.address is None else {"unit_id": chr(ord("A") + spec.address)}

    @classmethod
    def simulator_options(cls, addresses: dict[str, int]) -> dict[str, Any]:
        return {"unit_id": chr(ord("A") + next(iter(addresses.values())))} if addresses else {}

    def __init__(self, transport: Transport, *, unit_id: str = "A", name: str = "",
                 limits: dict[str, tuple[float | None, float | None]] | None = None) -> None:
        if len(unit_id) != 1 or not unit_id.isalpha() or not unit_id.isupper():
            raise LimitViolation(f"Alicat unit id must be one letter A-Z, got {unit_id!r}")
        super().__init__(transport, name=name, limits=limits)
        self._commanded: dict[str, Any] = {}  # setpoint and gas as last confirmed
        self.unit_id = unit_id

    # -- the exchange layer ---------------------------------------------------------------------------

    def _exchange(self, command: str) -> str:
        """`<unit id><command>\\r` -> the reply line without CR; `?` raises `InstrumentReportedError`."""
        t = self.transport
        self._prepare_link()
        with self._link_guard():
            raw = t.query(f"{self.unit_id}{command}".encode("ascii") + CR, CR)
        text = raw[:-1].decode("ascii", "replace").strip()
        if text == "?" or text == f"{self.unit_id} ?":
            raise InstrumentReportedError(f"{command!r} refused (?)", instrument=self.name, code="?")
        if not raw[:-1].isascii() or not text.startswith(self.unit_id):
            self._resync = True
            raise MalformedReply(f"bad reply {raw!r} to {command!r}", instrument=self.name)
        return text

    def _frame(self, command: str) -> AlicatFrame:
        text = self._exchange(command)
        words = text.split()
        try:
            if len(words) < 7:
                raise ValueError("too few fields")
            p, temp, vol, mass, sp = (float(w) for w in words[1:6])
        except ValueError as exc:
            self._resync = True
            raise MalformedReply(f"bad data frame {text!r}: {exc}", instrument=self.name) from exc
        return AlicatFrame(words[0], p * PSI_PA, temp, vol, mass, sp, words[6], tuple(words[7:]))

    # -- operations -----------------------------------------------------------------------------------

    def identify(self) -> str:
        """Firmware version (`VE`), e.g. `10v05.0-R22`."""
        return self._exchange("VE")[1:].strip()

    @idempotent
    def poll(self) -> AlicatFrame:
        """One data frame (never raises for its flags)."""
        return self._frame("")

    @idempotent
    def flow(self) -> float:
        """Mass flow in sccm; raises `InstrumentReportedError` on a mass-flow over-range flag."""
        frame = self.poll()
        if "MOV" in frame.flags:
            raise InstrumentReportedError(f"mass flow over range (MOV), reading {frame.mass_sccm:g} sccm",
                                          instrument=self.name, code="MOV")
        return frame.mass_sccm

    @idempotent
    def set_flow(self, sccm: float) -> None:
        """New setpoint (sccm), confirmed from the frame the controller answers with."""
        self.check("flow", sccm)
        value = round(sccm, self.DECIMALS)
        frame = self._frame(f"S {value:.{self.DECIMALS}f}")
        if abs(frame.setpoint_sccm - value) > 0.6 * 10 ** -self.DECIMALS:
            raise InstrumentError(f"setpoint read back {frame.setpoint_sccm:g} sccm, sent {value:g}",
                                  instrument=self.name)
        self._commanded["setpoint"] = value
        if "HLD" in frame.flags:
            raise InstrumentBusy("valve hold is active (HLD): the controller will not follow the setpoint",
                                 instrument=self.name)

    @idempotent
    def select_gas(self, gas: str) -> None:
        """Select a gas of the standard list by name (`AG<n>`), confirmed from the answered frame."""
        number = gas_number(gas)
        frame = self._frame(f"G{number}")
        if frame.gas.lower() != GASES[number].lower():
            raise InstrumentError(f"gas read back {frame.gas!r}, selected {GASES[number]!r}",
                                  instrument=self.name)
        self._commanded["gas"] = GASES[number]

    def _after_retry(self) -> None:
        """A lost reply may have been a restart (setpoint back to its power-up value): after a retry the
        setpoint and gas must still be as last confirmed."""
        frame = self._frame("")
        lost = []
        if "setpoint" in self._commanded and abs(frame.setpoint_sccm - self._commanded["setpoint"]) > 1e-6:
            lost.append(f"setpoint {frame.setpoint_sccm:g} sccm (commanded {self._commanded['setpoint']:g})")
        if "gas" in self._commanded and frame.gas.lower() != str(self._commanded["gas"]).lower():
            lost.append(f"gas {frame.gas} (selected {self._commanded['gas']})")
        if lost:
            raise InstrumentError(f"after a lost reply the controller reports {', '.join(lost)}: it "
                                  "restarted (power cycle?) and lost what was commanded",
                                  instrument=self.name)

    def cancel_hold(self) -> AlicatFrame:
        """`AC`: end a valve hold so the controller follows its setpoint again."""
        return self._frame("C")

    def safe_state(self) -> dict[str, Any]:
        """Setpoint 0 (a valve hold is cancelled), then poll until the mass flow reads ~0.

        Waits at most `SAFE_TIMEOUT` s on the transport's clock; raises `SafeStateError` if gas still flows.
        """
        t = self.transport
        tolerance = self.ZERO_TOLERANCE * self.FULL_SCALE
        try:
            frame = self._frame(f"S {0:.{self.DECIMALS}f}")
            if "HLD" in frame.flags:
                frame = self.cancel_hold()
            deadline = t.clock.monotonic() + self.SAFE_TIMEOUT
            while abs(frame.mass_sccm) > tolerance or frame.setpoint_sccm != 0.0:
                if t.clock.monotonic() >= deadline:
                    raise SafeStateError(f"gas still flows: {frame.mass_sccm:g} sccm, setpoint "
                                         f"{frame.setpoint_sccm:g}, flags {' '.join(frame.flags) or 'none'}, "
                                         f"{self.SAFE_TIMEOUT:g} s after setpoint 0", instrument=self.name)
                t.clock.sleep(self.POLL)
                frame = self.poll()
        except SafeStateError:
            raise
        except InstrumentError as exc:
            raise SafeStateError(f"could not confirm zero flow: {exc.detail}", instrument=self.name) from exc
        return {"setpoint_sccm": frame.setpoint_sccm, "flow_sccm": frame.mass_sccm, "gas": frame.gas,
                "flags": list(frame.flags)}
