"""Simulated New Era NE-1000 syringe pumps on one RS-232 network (basic and safe mode), byte for byte.

Facts from `reference/instruments.md` §3 (NE-1000 manual §10.2-10.4, NE-500/NE-1600 sibling manuals):
- basic mode: host -> pump `[<address>][<command>]<CR>`; the pump ignores spaces and control characters, any
  case; pump -> host `<STX><address, 2 digits><status>[<data> | ?<error>]<ETX>`;
- safe mode (§10.2.3): `<STX><length><command data><CRC16 hi><CRC16 lo><ETX>`, length = bytes left in the
  packet including itself, CRC-16 CCITT (XModem) of the command data; a pump in safe mode answers in the
  same framing, stops with alarm `A?T` when no valid packet came for its `SAF` time out, and sends alarm
  packets by itself (auto-alarm), which do not acknowledge the alarm; safe mode survives a power cycle
  (non-volatile), the time out timer starting at the first valid packet;
- status prompts I S W P T U X, alarms `A?R` (reset / power interrupted), `A?S` (stall, where the plunger's
  travel is given), `A?T` (safe mode time out), `A?E` (program error), `A?O` (phase out of range); errors `?`,
  `?NA`, `?OOR`, `?COM`, `?IGN`;
- an alarm is acknowledged by being reported in response to a valid command; until then the pump does not
  change data or start (manual §10.3), so the command that gets the alarm reply is not executed;
- data is kept in non-volatile memory; a power cycle stops the pump and leaves the reset alarm pending (this
  core starts powered-up, so the first valid command of a session is answered `A?R`);
- the Pumping Program (`labctl.simulators.ne1000_pump`): 41 phases selected with `PHN`; `RAT`/`VOL`/`DIR` act
  on the selected phase, which must be a rate phase (`FUN RAT|INC|DEC`), else `?NA`; `RUN [phase]` runs the
  program from phase 1 (or the given one) phase after phase; `PHN` follows the running phase;
- a pump address no pump on the network has gets no reply;
- a network command burst (`<n><command>*`, n 0-9, NE-500 manual §8.3.5) runs each command on its pump at
  once; with several pumps answering together the host reads line noise, as the manual says.

Where the manual is silent this core chooses, and says so:
- a fresh pump's program is phase 1 `RAT`, phases 2-41 `STP` (so a single-phase dispense ends by itself);
- a packet without an address goes to address 0; numbers with more than 4 digits or 3 decimals -> `?OOR`;
  numbers are answered with the decimal point always present (`2500.`, as nesp-lib's parser requires);
- `STP` while pumping pauses (`P`), `STP` while paused stops (`S`); `RUN` from `P` resumes; when the program
  ends (a `STP` phase, or a stop while paused) the selected phase goes back to 1;
- `DIA`, `DIR`, `VOL`, `PHN`, `FUN` and rate units cannot change while the program runs (`?NA`); a new
  rate can;
- the rate range is set by the plunger's linear speed (see `ne1000_pump`) [verify on hardware];
- nothing is wired to the TTL connector: inputs read high, so `IF` never jumps and event traps never fire;
- a basic-mode line sent to a pump in safe mode is an invalid packet (`?COM`, in safe framing); a safe packet
  is taken in basic mode too (the manual's return-to-basic packet is one);
- a `SAF n` packet is answered in the framing of the mode it selects, even with the alarm reply that means it
  was not executed (nesp-lib reads it so); every other reply in the pump's current mode;
- `ADR n` (and `*ADR n`) answers from the new address; `B <baud>` changes the line speed after the reply.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator

from labctl.clock import Clock
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore
from labctl.simulators.ne1000_pump import (
    DIAMETER_MM,
    FUNCTIONS,
    MOVING,
    PHASES,
    RATE_FUNCTIONS,
    RUNNING,
    TRIGGERS,
    VOLUME_UNITS,
    Pump,
)
from labctl.simulators.world import SimpleWorld

STX, ETX, CR = b"\x02", b"\x03", b"\r"
FIRMWARE = "NE1000V3.928"
NUMBER = re.compile(r"(\d*)\.?(\d*)")
BURST = re.compile(r"(?:\d[^*]+\*)+")        # network command burst: <n><command>* repeated
BAUDS = (300, 1200, 2400, 9600, 19200)
#: verbs, longest first so that `ALA` wins over `AL` and `DIA`/`DIN`/`DIR`/`DIS` are told apart
VERBS = ("DIA", "PHN", "FUN", "RAT", "VOL", "DIR", "RUN", "PUR", "STP", "DIS", "CLD", "SAF", "LOC", "ALA",
         "TRG", "DIN", "ROM", "OUT", "BUZ", "VER", "ADR", "AL", "PF", "BP", "IN")


def fmt4(value: float) -> str:
    """The pump's 4-digit number format: 3 decimals below 10, then 2, 1, 0 (`2500.`: the point stays)."""
    for decimals, bound in ((3, 10), (2, 100), (1, 1000)):
        if round(value, decimals) < bound:
            return f"{value:.{decimals}f}"
    return f"{value:.0f}."


def parse4(text: str) -> float | None:
    """A number the pump accepts (≤ 4 digits, ≤ 3 decimals), or None."""
    m = NUMBER.fullmatch(text)
    if not m or not (m.group(1) or m.group(2)):
        return None
    if len(m.group(1) + m.group(2)) > 4 or len(m.group(2)) > 3:
        return None
    return float(text)


def crc16(data: bytes) -> bytes:
    """CRC-16 CCITT (XModem, init 0), high byte first: the safe-mode check (manual §10.2.3)."""
    return binascii.crc_hqx(data, 0).to_bytes(2, "big")


def safe_packet(data: bytes) -> bytes:
    """`data` in safe-mode framing: STX, length, data, CRC hi, CRC lo, ETX."""
    return STX + bytes([len(data) + 4]) + data + crc16(data) + ETX


class NE1000Sim(DeviceCore):
    """One RS-232 network of NE-1000 pumps (`ne1000_pump.Pump`, one per address): framing and commands.

    About 450 lines: the manual's command set is one table of small handlers that share the dry-run/execute
    convention; splitting it would scatter that table.
    """

    SERIAL = SerialSettings(19200)
    TERMINATORS = (CR,)

    def __init__(self, name: str = "ne1000", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, addresses: tuple[int, ...] = (1, 2),
                 pump_names: dict[int, str] | None = None,
                 plungers: dict[int, tuple[float, float]] | None = None) -> None:
        """`plungers`: address -> (travel, withdrawn) of the plunger in mm, where a stall is modelled."""
        names = pump_names or {}
        # non-volatile memory: survives power cycles
        self.pumps: dict[int, Pump] = {a: Pump(names.get(a, f"{name}.{a}"), a, flow=self._pump_flow)
                                       for a in addresses}
        for address, (travel, position) in (plungers or {}).items():
            if address not in self.pumps or not 0 <= position <= travel:
                raise ValueError(f"plungers: pump {address}: need a pump at that address and 0 <= withdrawn "
                                 f"<= travel, got travel {travel} mm, withdrawn {position} mm")
            self.pumps[address].travel_mm, self.pumps[address].position_mm = travel, position
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    def reset(self) -> None:
        """Power-on: pumping stops, the reset alarm is pending, non-volatile data is kept."""
        now = self.now()
        for pump in self.pumps.values():
            if pump.prompt in RUNNING:
                pump.settle(now)
                if pump.prompt in MOVING:
                    pump.halt(now)
            pump.end_program()
            pump.alarm, pump.safe_deadline = "R", None

    def _pump_flow(self, name: str, t: float, rate_m3_s: float, until: float | None) -> None:
        self.world.pump_flow(name, t, rate_m3_s, until)  # type: ignore[union-attr]

    def on_power_up(self) -> None:
        """Pumps in safe mode announce the reset alarm by themselves (auto-alarm, manual §10.2.3)."""
        for pump in self.pumps.values():
            if pump.safe_timeout:
                self.emit(safe_packet(f"{pump.address:02d}A?R".encode()))

    # -- framing ---------------------------------------------------------------------------------------

    def split(self) -> Iterator[bytes]:
        """Basic lines end at CR; a packet starting with STX is a safe-mode packet of its stated length."""
        while self._inbuf:
            if self._inbuf[:1] == STX:
                if len(self._inbuf) < 2 or len(self._inbuf) < 1 + self._inbuf[1]:
                    return
                n = 1 + max(self._inbuf[1], 1)
            else:
                cr, stx = self._inbuf.find(CR), self._inbuf.find(STX)
                if stx >= 0 and (cr < 0 or stx < cr):
                    del self._inbuf[:stx]     # an unfinished line cut short by a packet is discarded
                    continue
                if cr < 0:
                    return
                n = cr + 1
            msg = bytes(self._inbuf[:n])
            del self._inbuf[:n]
            yield msg

    def _unframe(self, message: bytes) -> tuple[bytes, bool, bool]:
        """(command data, came in safe framing, framing valid)."""
        if message[:1] != STX:
            return message, False, True
        data = message[2:-3]
        ok = (len(message) >= 5 and message[-1:] == ETX and message[1] == len(message) - 1
              and message[-3:-1] == crc16(data))
        return data, True, ok

    def _frame(self, pump: Pump | int, body: str) -> bytes:
        address = pump if isinstance(pump, int) else pump.address
        data = f"{address:02d}{body}".encode("ascii")
        if isinstance(pump, Pump) and pump.safe_timeout:
            return safe_packet(data)
        return STX + data + ETX

    def _parse(self, data: bytes) -> tuple[int | None, str]:
        """(address, command); address None for a system command (`*`)."""
        text = bytes(b for b in data if b > 0x20 and b != 0x7F).decode("latin-1").upper()
        m = re.match(r"(\*|\d{1,2})?(.*)", text)
        assert m is not None
        if m.group(1) == "*":
            return None, m.group(2)
        return int(m.group(1) or 0), m.group(2)

    # -- the host side ----------------------------------------------------------------------------------

    def handle(self, message: bytes) -> bytes | None:
        now = self.now()
        self._check_timeouts(now)
        data, safe, ok = self._unframe(message)
        address, command = self._parse(data)
        if not safe and BURST.fullmatch(f"{address}{command}"):
            return self._burst(f"{address}{command}", now)
        if address is None:
            return self._system(command, now)
        pump = self.pumps.get(address)
        if pump is None:
            return None
        if not ok or (pump.safe_timeout and not safe):   # safe packets are taken in basic mode too
            return self._frame(pump, pump.prompt + "?COM")
        if pump.safe_timeout:
            pump.safe_deadline = now + pump.safe_timeout
        pump.settle(now)
        status, reply = self._execute(pump, command, now)
        if self.stuck_busy:
            status = "I"
        m = re.fullmatch(r"SAF(\d{1,3})", command)
        if m and not reply.startswith("?"):      # answered in the framing it selects, alarm or not
            data = f"{pump.address:02d}{status}{reply}".encode("ascii")
            return safe_packet(data) if int(m.group(1)) else STX + data + ETX
        return self._frame(pump, status + reply)

    def _system(self, command: str, now: float) -> bytes | None:
        """`*` commands reach every pump; each answers, so with several pumps the host reads gibberish."""
        if not command.startswith("ADR"):
            return None
        replies = b""
        for pump in list(self.pumps.values()):
            pump.settle(now)
            status, data = self._execute(pump, command, now)
            replies += self._frame(pump, status + data)
        return replies or None

    def _burst(self, text: str, now: float) -> bytes | None:
        """Network command burst `<n><command>*...` (NE-500 manual §8.3.5): each pump 0-9 named executes its
        command at once; all answer at the same time, so the host reads the overlap (line noise)."""
        frames = []
        for m in re.finditer(r"(\d)([^*]+)\*", text):
            pump = self.pumps.get(int(m.group(1)))
            if pump is not None:
                pump.settle(now)
                status, data = self._execute(pump, m.group(2), now)
                frames.append(self._frame(pump, status + data))
        if len(frames) < 2:
            return frames[0] if frames else None
        return self._noise(max(len(f) for f in frames))

    def _check_timeouts(self, now: float) -> None:
        """Safe-mode time out: the pump stops with alarm T and says so by itself."""
        for pump in self.pumps.values():
            if pump.safe_deadline is not None and now >= pump.safe_deadline:
                t = pump.safe_deadline
                pump.settle(t)
                if pump.prompt in MOVING:
                    pump.halt(t)
                pump.end_program()
                pump.alarm, pump.safe_deadline = "T", None
                self.emit(safe_packet(f"{pump.address:02d}A?T".encode()), at=t)

    def read(self, limit: int = 1 << 20) -> bytes:
        with self.lock:
            self._check_timeouts(self.now())
        return super().read(limit)

    def available(self) -> int:
        with self.lock:
            self._check_timeouts(self.now())
        return super().available()

    def next_release(self) -> float | None:
        with self.lock:
            self._check_timeouts(self.now())
            times = [p.safe_deadline for p in self.pumps.values() if p.safe_deadline is not None]
            nxt = super().next_release()
            return min(times + ([nxt] if nxt is not None else []), default=None)

    # -- the command set --------------------------------------------------------------------------------

    def _execute(self, pump: Pump, command: str, now: float) -> tuple[str, str]:
        """(status, data) for one command; data starting with `?` is an error."""
        verb = next((v for v in VERBS if command.startswith(v)), "")
        arg = command[len(verb):]
        handler = getattr(self, f"_cmd_{verb.lower()}") if verb else self._cmd_status
        if not verb and command:
            return pump.prompt, "?"
        error = handler(pump, arg, now, dry=True)
        if error is not None:                     # an error: the alarm, if any, stays pending
            return pump.prompt, error
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

    def _locked(self, pump: Pump, arg: str) -> str | None:
        return "?NA" if arg and pump.prompt in RUNNING else None

    def _rate_phase(self, pump: Pump) -> str | None:
        return None if pump.phase.function in RATE_FUNCTIONS else "?NA"

    def _cmd_dia(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            if not arg:
                return None
            value = parse4(arg)
            if value is None or not DIAMETER_MM[0] <= value <= DIAMETER_MM[1]:
                return "?OOR"
            return self._locked(pump, arg)
        if not arg:
            return fmt4(pump.diameter_mm)
        pump.diameter_mm = float(arg)
        pump.volume_units = "UL" if pump.diameter_mm <= 14.0 else "ML"   # the manual's default units
        return None

    def _cmd_phn(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            if not arg:
                return None
            if not arg.isdigit() or len(arg) > 2:
                return "?"
            return "?OOR" if not 1 <= int(arg) <= PHASES else self._locked(pump, arg)
        if not arg:
            return f"{pump.phase_no:02d}"
        pump.phase_no = int(arg)
        return None

    def _cmd_fun(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        fun = next((f for f in FUNCTIONS if arg.startswith(f)), None)
        if dry:
            if not arg:
                return None
            if fun is None:
                return "?"
            rng, data = FUNCTIONS[fun], arg[len(fun):]
            if rng is None:
                return "?" if data else self._locked(pump, arg)
            if not data.isdigit() or len(data) > 2:
                return "?"
            return "?OOR" if not rng[0] <= int(data) <= rng[1] else self._locked(pump, arg)
        if not arg:
            return pump.phase.describe()
        assert fun is not None
        pump.phase.function = fun
        pump.phase.data = int(arg[len(fun):] or 0)
        return None

    def _cmd_dir(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            if arg and arg not in ("INF", "WDR", "REV"):
                return "?"
            return self._rate_phase(pump) or self._locked(pump, arg)
        if not arg:
            return pump.direction
        pump.phase.direction = ("WDR" if pump.direction == "INF" else "INF") if arg == "REV" else arg
        return None

    def _cmd_rat(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        m = re.fullmatch(r"([\d.]+)(UM|MM|UH|MH)?", arg)
        if dry:
            if not arg:
                return self._rate_phase(pump)
            if not m:
                return "?"
            value = parse4(m.group(1))
            units = m.group(2) or pump.rate_units
            if value is None or not pump.rate_ok(value, units):
                return "?OOR"
            if self._rate_phase(pump):
                return "?NA"
            return "?NA" if pump.prompt in RUNNING and units != pump.rate_units else None
        if not arg:
            return fmt4(pump.rate) + pump.rate_units
        assert m is not None
        pump.phase.rate, pump.phase.rate_units = float(m.group(1)), m.group(2) or pump.rate_units
        if pump.prompt in "IW" and pump.phase.function == "RAT":   # a new rate takes effect at once
            pump.start(now)
        return None

    def _cmd_vol(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            if arg and arg not in VOLUME_UNITS and parse4(arg) is None:
                return "?OOR" if re.fullmatch(r"[\d.]+", arg) else "?"
            return self._rate_phase(pump) or self._locked(pump, arg)
        if not arg:
            return fmt4(pump.target) + pump.volume_units
        if arg in VOLUME_UNITS:
            pump.volume_units = arg
        else:
            pump.phase.target = float(arg)
        return None

    def _cmd_run(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            if arg and (not arg.isdigit() or len(arg) > 2):
                return "?"
            if arg and not 1 <= int(arg) <= PHASES:
                return "?OOR"
            if pump.prompt in RUNNING:
                return None                       # already running: status only
            start = pump.phases[int(arg or 1) - 1] if pump.prompt == "S" else pump.phase
            if pump.diameter_mm <= 0 or (start.function in RATE_FUNCTIONS and start.rate <= 0):
                return "?NA"
            return None
        if pump.prompt == "P" and not arg and pump.phase.function in RATE_FUNCTIONS:
            pump.start(now)                # resumes the phase where it was paused
        elif pump.prompt == "P" and not arg:
            pump.enter_phase(now)
        elif pump.prompt not in RUNNING:
            pump.phase_no = int(arg or 1)
            pump.loops.clear()
            pump.enter_phase(now)
        return None

    def _cmd_pur(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            return "?" if arg else ("?NA" if pump.diameter_mm <= 0 else None)
        if pump.prompt in "IW":
            pump.halt(now)
        pump.start(now, purge=True)
        return None

    def _cmd_stp(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            return "?" if arg else None
        if pump.prompt in RUNNING:
            if pump.prompt in MOVING:
                pump.halt(now)
            if pump.prompt == "X":
                pump.end_program()
            else:
                pump.prompt, pump.run_until = "P", None
        elif pump.prompt == "P":
            pump.end_program()
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
            if not arg.isdigit() or len(arg) > 3:
                return "?"
            return None if int(arg) <= 255 else "?OOR"
        if not arg:
            return str(pump.safe_timeout)
        pump.safe_timeout = int(arg)
        pump.safe_deadline = now + pump.safe_timeout if pump.safe_timeout else None
        return None

    def _flag(self, key: str, pump: Pump, arg: str, dry: bool) -> str | None:
        if dry:
            return None if arg in ("", "0", "1") else ("?OOR" if arg.isdigit() else "?")
        if not arg:
            return str(pump.flags[key])
        pump.flags[key] = int(arg)
        return None

    def _cmd_loc(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        return self._flag("LOC", pump, arg, dry)

    def _cmd_ala(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        return self._flag("ALA", pump, arg, dry)

    _cmd_al = _cmd_ala                          # firmware 3.9 spells the alarm-mode command `AL`

    def _cmd_pf(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        return self._flag("PF", pump, arg, dry)

    def _cmd_din(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        return self._flag("DIN", pump, arg, dry)

    def _cmd_rom(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        return self._flag("ROM", pump, arg, dry)

    def _cmd_bp(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        return self._flag("BP", pump, arg, dry)

    def _cmd_trg(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        if dry:
            return None if not arg or arg in TRIGGERS else "?"
        if not arg:
            return pump.trigger
        pump.trigger = arg
        return None

    def _cmd_out(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        """`OUT 5 <level>`: pin 5 is the one user-settable TTL output."""
        if dry:
            if arg[:1] != "5":
                return "?" if not arg[:1].isdigit() else "?OOR"
            return None if arg[1:] in ("", "0", "1") else "?OOR"
        if len(arg) == 1:
            return str(pump.out_level)
        pump.out_level = int(arg[1:])
        return None

    def _cmd_in(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        """`IN <pin>`: TTL inputs 2, 3, 4, 6 read high (pulled up, nothing wired)."""
        if dry:
            if not arg.isdigit() or len(arg) != 1:
                return "?"
            return None if arg in "2346" else "?OOR"
        return "1"

    def _cmd_buz(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        """`BUZ [0|1 [n]]`: buzzer off, on (continuous) or n beeps; the query says whether it sounds."""
        if dry:
            if arg and arg[:1] not in "01":
                return "?OOR" if arg[:1].isdigit() else "?"
            if arg[1:] and (not arg[1:].isdigit() or len(arg[1:]) > 2 or arg[:1] == "0"):
                return "?OOR" if arg[1:].isdigit() else "?"
            return None
        if not arg:
            return str(pump.buzzer)
        pump.buzzer = int(arg[0]) if len(arg) == 1 or int(arg[1:]) == 0 else 0   # n beeps end by themselves
        return None

    def _cmd_adr(self, pump: Pump, arg: str, now: float, dry: bool) -> str | None:
        """`ADR [n [B baud]]`: the pump's network address (and the line speed)."""
        m = re.fullmatch(r"(\d{1,2})(?:B(\d+))?", arg)
        if dry:
            if not arg:
                return None
            if m is None:
                return "?"
            taken = int(m.group(1)) in self.pumps and int(m.group(1)) != pump.address
            bad_baud = m.group(2) is not None and int(m.group(2)) not in BAUDS
            return "?OOR" if bad_baud else ("?NA" if taken else None)
        if not arg:
            return f"{pump.address:02d}"
        assert m is not None
        del self.pumps[pump.address]
        pump.address = int(m.group(1))
        self.pumps[pump.address] = pump
        if m.group(2):
            self.SERIAL = SerialSettings(int(m.group(2)))  # the reply still goes out at the old speed
        return None

    # -- faults and the table test ----------------------------------------------------------------------

    def error_reply(self, message: bytes) -> bytes | None:
        address, _ = self._parse(self._unframe(message)[0])
        pump = self.pumps.get(address) if address is not None else None
        return None if pump is None else self._frame(pump, pump.prompt + "?COM")

    def rejects(self, reply: bytes) -> bool:
        """True when any answer in `reply` is "not recognized" (`?`) or "invalid packet" (`?COM`), in either
        framing, and for silence (no pump at that address) or bytes that are no answers at all."""
        datas = _answers(reply)
        return not datas or any(d is None or d in (b"?", b"?COM") for d in datas)


def _answers(reply: bytes) -> list[bytes | None]:
    """The data field of each answer in `reply` (None for one that does not parse)."""
    out: list[bytes | None] = []
    i = 0
    while i < len(reply):
        if reply[i:i + 1] != STX or i + 3 > len(reply):
            return [*out, None]
        if reply[i + 1:i + 3].isdigit():           # basic: STX address status data ETX
            j = reply.find(ETX, i)
            if j < 0:
                return [*out, None]
            body, i = reply[i + 1:j], j + 1
        else:                                       # safe: STX length data CRC CRC ETX
            body, i = reply[i + 2:i + reply[i + 1] - 2], i + 1 + reply[i + 1]
        out.append(body[5:] if body[2:4] == b"A?" else body[3:])
    return out
