"""Simulated New Era NE-1000 syringe pumps on one RS-232 network (basic mode), byte for byte.

Facts from `reference/instruments.md` §3 (NE-1000 manual §10.2-10.4, NE-500/NE-1600 sibling manuals):
- host -> pump `[<address>][<command>]<CR>`; the pump ignores spaces and control characters, any case;
- pump -> host `<STX><address, 2 digits><status>[<data> | ?<error>]<ETX>`;
- status prompts I S W P T U X, alarms `A?R` (reset / power interrupted), `A?S` (stall), ...;
- errors `?` (not recognized), `?NA`, `?OOR`, `?COM`, `?IGN`;
- an alarm is acknowledged by being reported in response to a valid command; until then the pump does not
  change data or start (manual §10.3), so the command that gets the alarm reply is not executed;
- data is kept in non-volatile memory, so a power cycle keeps diameter, rate, volume and direction; it stops
  the pump and leaves the reset alarm `A?R` pending (this core starts powered-up, so the first valid command
  of a session is answered `A?R`);
- a pump address no pump on the network has gets no reply.

Where the manual is silent this core chooses, and says so:
- a packet without an address goes to address 0;
- numbers with more than 4 digits or more than 3 decimals -> `?OOR`;
- `STP` while pumping pauses (`P`), `STP` while paused stops (`S`) and ends the phase; `RUN` from `P` resumes;
- `DIA`, `DIR`, `VOL` and rate units cannot change while pumping (`?NA`); a new rate value can;
- the rate range is set by the plunger's linear speed, derived from the NE-1000 specification (1699 mL/h
  with a 26.59 mm syringe, 0.73 uL/h with a 4.699 mm syringe): 0.0421 .. 3060 mm/h [verify on hardware];
- `DIS` keeps counting across power cycles (non-volatile, like the other data).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from labctl.clock import Clock
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore
from labctl.simulators.world import SimpleWorld

STX, ETX = b"\x02", b"\x03"
FIRMWARE = "NE1000V3.928"
DIAMETER_MM = (0.1, 50.0)
LINEAR_MM_H = (0.0421, 3060.0)         # plunger speed range (see module docstring)
RATE_UNITS = {"UM": (1e-9, 60.0), "MM": (1e-6, 60.0), "UH": (1e-9, 3600.0), "MH": (1e-6, 3600.0)}  # m^3, s
VOLUME_UNITS = {"UL": 1e-9, "ML": 1e-6}
NUMBER = re.compile(r"(\d*)\.?(\d*)")


def fmt4(value: float) -> str:
    """The pump's 4-digit number format: 3 decimals below 10, then 2, 1, 0."""
    for decimals, bound in ((3, 10), (2, 100), (1, 1000)):
        if round(value, decimals) < bound:
            return f"{value:.{decimals}f}"
    return f"{value:.0f}"


def parse4(text: str) -> float | None:
    """A number the pump accepts (≤ 4 digits, ≤ 3 decimals), or None."""
    m = NUMBER.fullmatch(text)
    if not m or not (m.group(1) or m.group(2)):
        return None
    if len(m.group(1) + m.group(2)) > 4 or len(m.group(2)) > 3:
        return None
    return float(text)


@dataclass
class Pump:
    """One pump's state. Volumes in the pump's current volume units are derived from SI on demand."""

    name: str
    diameter_mm: float = 0.0
    rate: float = 0.0              # value in rate_units
    rate_units: str = "MM"
    direction: str = "INF"
    target: float = 0.0            # volume to be dispensed, in volume_units (0 = continuous)
    volume_units: str = "ML"
    infused_m3: float = 0.0
    withdrawn_m3: float = 0.0
    prompt: str = "S"              # S stopped, I/W pumping, P paused, X purging
    alarm: str | None = "R"
    run_t0: float = 0.0
    run_rate_m3_s: float = 0.0
    phase_done_m3: float = 0.0     # volume pumped in the current phase before the current run segment
    run_until: float | None = None

    def rate_m3_s(self) -> float:
        unit, seconds = RATE_UNITS[self.rate_units]
        return self.rate * unit / seconds

    def target_m3(self) -> float:
        return self.target * VOLUME_UNITS[self.volume_units]


class NE1000Sim(DeviceCore):
    """One RS-232 network of NE-1000 pumps; one pump per address."""

    SERIAL = SerialSettings(19200)
    TERMINATORS = (b"\r",)

    def __init__(self, name: str = "ne1000", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, addresses: tuple[int, ...] = (1, 2),
                 pump_names: dict[int, str] | None = None) -> None:
        names = pump_names or {}
        self.pumps: dict[int, Pump] = {a: Pump(names.get(a, f"{name}.{a}")) for a in addresses}  # NV memory
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    def reset(self) -> None:
        """Power-on: pumping stops, the reset alarm is pending, non-volatile data is kept."""
        now = self.now()
        for pump in self.pumps.values():
            if pump.prompt in "IWX":
                self._settle(pump, now)
                self._halt(pump, now)
            pump.prompt = "S"
            pump.phase_done_m3 = 0.0
            pump.alarm = "R"

    # -- pumping in simulated time ----------------------------------------------------------------------

    def _settle(self, pump: Pump, t: float) -> None:
        """Account the volume pumped up to t; auto-stop at the target volume."""
        if pump.prompt not in "IWX":
            return
        end = t if pump.run_until is None else min(t, pump.run_until)
        moved = abs(pump.run_rate_m3_s) * max(0.0, end - pump.run_t0)
        if pump.direction == "WDR" and pump.prompt != "X":
            pump.withdrawn_m3 += moved
        else:
            pump.infused_m3 += moved
        pump.phase_done_m3 += moved
        pump.run_t0 = end
        if pump.run_until is not None and t >= pump.run_until:
            pump.prompt, pump.phase_done_m3, pump.run_until = "S", 0.0, None

    def _start(self, pump: Pump, t: float, purge: bool = False) -> None:
        rate = self._max_rate(pump) if purge else pump.rate_m3_s()
        pump.prompt = "X" if purge else ("W" if pump.direction == "WDR" else "I")
        pump.run_t0, pump.run_rate_m3_s = t, rate
        left = pump.target_m3() - pump.phase_done_m3
        pump.run_until = None if purge or pump.target <= 0 else t + max(0.0, left) / rate
        sign = -1.0 if pump.prompt == "W" else 1.0
        self.world.pump_flow(pump.name, t, sign * rate, pump.run_until)  # type: ignore[union-attr]

    def _halt(self, pump: Pump, t: float) -> None:
        self.world.pump_flow(pump.name, t, 0.0, None)  # type: ignore[union-attr]

    @staticmethod
    def _area_mm2(pump: Pump) -> float:
        return math.pi / 4 * pump.diameter_mm ** 2

    def _max_rate(self, pump: Pump) -> float:
        return self._area_mm2(pump) * LINEAR_MM_H[1] * 1e-9 / 3600

    def _rate_ok(self, pump: Pump, value: float, units: str) -> bool:
        unit, seconds = RATE_UNITS[units]
        area = self._area_mm2(pump)
        if area <= 0:
            return False
        speed_mm_h = value * unit / seconds * 1e9 * 3600 / area
        return LINEAR_MM_H[0] <= speed_mm_h <= LINEAR_MM_H[1]

    # -- the protocol ---------------------------------------------------------------------------------

    def _reply(self, address: int, status: str, data: str = "") -> bytes:
        return STX + f"{address:02d}{status}{data}".encode("ascii") + ETX

    def _parse(self, message: bytes) -> tuple[int, str] | None:
        text = bytes(b for b in message if b > 0x20 and b != 0x7F).decode("latin-1").upper()
        m = re.match(r"(\*|\d{1,2})?(.*)", text)
        assert m is not None
        if m.group(1) == "*":
            return None  # system commands (*ADR, network bursts) are not simulated; nobody answers
        return int(m.group(1) or 0), m.group(2)

    def handle(self, message: bytes) -> bytes | None:
        parsed = self._parse(message)
        if parsed is None or parsed[0] not in self.pumps:
            return None
        address, command = parsed
        pump = self.pumps[address]
        now = self.now()
        self._settle(pump, now)
        status, data = self._execute(pump, command, now)
        if self.stuck_busy:
            status = "I"
        return self._reply(address, status, data)

    def _execute(self, pump: Pump, command: str, now: float) -> tuple[str, str]:
        """(status, data) for one command; data starting with `?` is an error."""
        m = re.fullmatch(r"([A-Z]{3})?(.*)", command)
        assert m is not None
        verb, arg = m.group(1) or "", m.group(2)
        handler = getattr(self, f"_cmd_{verb.lower()}", None) if verb else self._cmd_status
        if handler is None or (not verb and arg):
            return pump.prompt, "?"
        valid = handler(pump, arg, now, dry=True)
        if valid is not None:                     # an error: the alarm, if any, stays pending
            return pump.prompt, valid
        if pump.alarm is not None:                # a valid command acknowledges the alarm, nothing else
            alarm, pump.alarm = pump.alarm, None
            return f"A?{alarm}", ""
        data = handler(pump, arg, now, dry=False) or ""
        return pump.prompt, data

    # Each _cmd_x(pump, arg, now, dry) returns an error string ("?OOR") or None when dry; when not dry it
    # executes and returns the reply data (or None).

    def _cmd_status(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        return None

    def _cmd_ver(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            return "?" if arg else None
        return FIRMWARE

    def _cmd_dia(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            if not arg:
                return None
            value = parse4(arg)
            if value is None or not DIAMETER_MM[0] <= value <= DIAMETER_MM[1]:
                return "?OOR"
            return "?NA" if pump.prompt in "IWX" else None
        if not arg:
            return fmt4(pump.diameter_mm)
        pump.diameter_mm = float(arg)
        pump.volume_units = "UL" if pump.diameter_mm <= 14.0 else "ML"   # the manual's default units
        return None

    def _cmd_dir(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            if arg and arg not in ("INF", "WDR", "REV"):
                return "?"
            return "?NA" if arg and pump.prompt in "IWX" else None
        if not arg:
            return pump.direction
        pump.direction = ("WDR" if pump.direction == "INF" else "INF") if arg == "REV" else arg
        return None

    def _cmd_rat(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        m = re.fullmatch(r"([\d.]+)(UM|MM|UH|MH)?", arg)
        if dry:
            if not arg:
                return None
            if not m:
                return "?"
            value = parse4(m.group(1))
            units = m.group(2) or pump.rate_units
            if value is None or not self._rate_ok(pump, value, units):
                return "?OOR"
            return "?NA" if pump.prompt in "IWX" and units != pump.rate_units else None
        if not arg:
            return fmt4(pump.rate) + pump.rate_units
        assert m is not None
        pump.rate, pump.rate_units = float(m.group(1)), m.group(2) or pump.rate_units
        if pump.prompt in "IW":                   # a new rate takes effect at once
            self._start(pump, now)
        return None

    def _cmd_vol(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            if not arg:
                return None
            if arg not in VOLUME_UNITS and parse4(arg) is None:
                return "?OOR" if re.fullmatch(r"[\d.]+", arg) else "?"
            return "?NA" if pump.prompt in "IWX" else None
        if not arg:
            return fmt4(pump.target) + pump.volume_units
        if arg in VOLUME_UNITS:
            pump.volume_units = arg
        else:
            pump.target = float(arg)
        return None

    def _cmd_run(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            if arg:
                return "?"
            if pump.prompt in "IWX":
                return None                       # already running: status only
            return "?NA" if pump.diameter_mm <= 0 or pump.rate <= 0 else None
        if pump.prompt not in "IWX":
            self._start(pump, now)
        return None

    def _cmd_pur(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            return "?" if arg else ("?NA" if pump.diameter_mm <= 0 else None)
        if pump.prompt in "IW":
            self._halt(pump, now)
        self._start(pump, now, purge=True)
        return None

    def _cmd_stp(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            return "?" if arg else None
        if pump.prompt in "IWX":
            self._halt(pump, now)
            pump.prompt = "S" if pump.prompt == "X" else "P"
            pump.run_until = None
        elif pump.prompt == "P":
            pump.prompt, pump.phase_done_m3 = "S", 0.0
        return None

    def _cmd_dis(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            return "?" if arg else None
        unit = VOLUME_UNITS[pump.volume_units]
        return f"I{fmt4(pump.infused_m3 / unit)}W{fmt4(pump.withdrawn_m3 / unit)}{pump.volume_units}"

    def _cmd_cld(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            return None if arg in ("INF", "WDR") else "?"
        if arg == "INF":
            pump.infused_m3 = 0.0
        else:
            pump.withdrawn_m3 = 0.0
        return None

    def _cmd_saf(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            if not arg:
                return None
            return None if arg == "0" else "?NA"   # safe mode is not simulated; basic mode only
        return "0" if not arg else None

    # -- faults ---------------------------------------------------------------------------------------

    def error_reply(self, message: bytes) -> bytes | None:
        parsed = self._parse(message)
        if parsed is None or parsed[0] not in self.pumps:
            return None
        return self._reply(parsed[0], self.pumps[parsed[0]].prompt, "?COM")
