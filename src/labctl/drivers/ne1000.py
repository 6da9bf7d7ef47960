"""New Era NE-1000 syringe pump (basic RS-232 mode) as a `pump.*` role.

Several pumps share one RS-232 network and are told apart by address (0-99): build one `NE1000` per pump on
the *same* transport. Exchanges on one transport are serialised by a per-network lock, replies carrying
another pump's address are discarded (a late reply of pump 1 is never taken for pump 2's answer), and a
failed exchange makes the next one on that network wait for the line to fall quiet first.

Protocol facts: `reference/instruments.md` §3. Host sends `<address 2 digits><command>[ <data>]\\r`; the pump
answers `\\x02<address 2 digits><status>[data | ?error]\\x03`. Numbers carry at most 4 digits and 3 decimals,
so the driver picks the volume and rate units in which the value is sent exactly (or most precisely).
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

from labctl.drivers.base import Driver, idempotent
from labctl.drivers.limits import Limit
from labctl.drivers.transport import SerialSettings, Transport
from labctl.errors import (
    Disconnected,
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    LimitViolation,
    MalformedReply,
    SafeStateError,
)

STX, ETX = b"\x02", b"\x03"
FRAME = re.compile(rb"\x02(\d{2})(A\?[A-Z]|[A-Z])([^\x02\x03]*)\x03", re.DOTALL)
PROMPTS = {"I": "infusing", "W": "withdrawing", "S": "stopped", "P": "paused", "T": "pause phase",
           "U": "user wait", "X": "purging"}
ALARMS = {"R": "pump was reset (power was interrupted); pumping stopped",
          "S": "pump motor stalled", "T": "safe mode communications time out",
          "E": "pumping program error", "O": "pumping program phase is out of range"}
ERRORS = {"?": "command is not recognized", "?NA": "command is not currently applicable",
          "?OOR": "command data is out of range", "?COM": "invalid communications packet received",
          "?IGN": "command ignored due to a simultaneous new phase start"}
#: m^3 per unit and s per unit of the pump's rate units; preference order when precision ties
RATE_UNITS: dict[str, tuple[float, float]] = {"MM": (1e-6, 60.0), "UM": (1e-9, 60.0), "MH": (1e-6, 3600.0),
                                              "UH": (1e-9, 3600.0)}
VOLUME_UNITS: dict[str, float] = {"ML": 1e-6, "UL": 1e-9}
#: plunger speed range, derived from the NE-1000 specification: 1699 mL/h with a 26.59 mm syringe and
#: 0.73 uL/h with a 4.699 mm syringe [verify on hardware]
LINEAR_SPEED_M_S = (0.0421e-3 / 3600, 3060e-3 / 3600)
RUNNING = frozenset("IWXTU")
ONE_SHOT = frozenset({"RUN", "STP"})  # repeating these does something: never retried blindly


def fmt4(value: float) -> str:
    """The pump's number format: at most 4 digits, at most 3 decimals."""
    for decimals, bound in ((3, 10), (2, 100), (1, 1000)):
        if round(value, decimals) < bound:
            return f"{value:.{decimals}f}"
    return f"{value:.0f}"


def encode_quantity(value: float, units: dict[str, float]) -> tuple[str, str]:
    """(number text, unit) for `value` (SI) in the unit that represents it most precisely.

    Ties prefer a value >= 1, then the order of `units`. Raises LimitViolation if no unit can hold it.
    """
    best: tuple[tuple[float, int, int], str, str] | None = None
    for i, (unit, factor) in enumerate(units.items()):
        v = value / factor
        text = fmt4(v)
        if len(text.replace(".", "")) > 4 or float(text) == 0.0:
            continue
        key = (round(abs(float(text) - v) / v, 9), 0 if v >= 1 else 1, i)
        if best is None or key < best[0]:
            best = (key, text, unit)
    if best is None:
        raise LimitViolation(f"{value:g} cannot be written with 4 digits in any of {', '.join(units)}")
    return best[1], best[2]


def rate_units() -> dict[str, float]:
    return {u: m3 / s for u, (m3, s) in RATE_UNITS.items()}


@dataclass
class _Network:
    """One RS-232 network (one transport) shared by the pumps on it."""

    lock: threading.RLock
    users: int = 0
    resync: bool = False
    reopen: bool = False
    epoch: int = 0          # times the port was reopened; each pump re-identifies once per epoch


_networks: weakref.WeakKeyDictionary[Transport, _Network] = weakref.WeakKeyDictionary()
_networks_lock = threading.Lock()


def network_of(transport: Transport) -> _Network:
    with _networks_lock:
        net = _networks.get(transport)
        if net is None:
            net = _networks[transport] = _Network(threading.RLock())
        return net


class NE1000(Driver):
    """One NE-1000 pump at `address` on a (possibly shared) RS-232 transport; implements `SyringePump`."""

    NAME = "ne1000"
    ROLE = "pump"
    SIMULATOR = "labctl.simulators.ne1000:NE1000Sim"
    SERIAL = SerialSettings(19200)
    TIMEOUT = 1.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "diameter": Limit("diameter", "m", 0.1e-3, 50.0e-3, "NE-1000 syringe inside diameter 0.1-50 mm"),
        "rate": Limit("rate", "m^3/s", 1e-12 / 3600, 50.0e-3 ** 2 * math.pi / 4 * LINEAR_SPEED_M_S[1],
                      "envelope over all syringes; the pump's range also depends on the diameter"),
        "volume": Limit("volume", "m^3", 1e-12, 60e-6, "0.001 uL to a 60 mL syringe"),
    }
    RESYNC_QUIET = 0.5
    RESYNC_MAX = 15.0

    @classmethod
    def spec_options(cls, spec: Any) -> dict[str, Any]:
        """Pumps share one RS-232 network and are told apart by their station `address`."""
        return {} if spec.address is None else {"address": spec.address}

    @classmethod
    def simulator_options(cls, addresses: dict[str, int]) -> dict[str, Any]:
        """One simulated network holds every pump of the link, each answering to its address."""
        return {"addresses": tuple(addresses.values()), "pump_names": {a: r for r, a in addresses.items()}}

    def __init__(self, transport: Transport, *, address: int = 0, name: str = "",
                 limits: dict[str, tuple[float | None, float | None]] | None = None) -> None:
        if not 0 <= address <= 99:
            raise LimitViolation(f"NE-1000 address must be 0-99, got {address}")
        super().__init__(transport, name=name or f"ne1000@{address:02d}", limits=limits)
        self.address = address
        self._net = network_of(transport)
        self._diameter: float | None = None
        self.alarms: list[str] = []       # alarm letters the pump reported (each clears it on the pump)
        self._connected = False
        self._epoch = 0

    # -- the exchange layer ---------------------------------------------------------------------------

    def _prepare(self) -> None:
        t, net = self.transport, self._net
        if net.reopen:
            t.close()
            t.open()
            net.reopen, net.resync = False, True
            net.epoch += 1
        if net.resync:
            deadline = t.clock.monotonic() + self.RESYNC_MAX
            while t.drain(quiet=self.RESYNC_QUIET) and t.clock.monotonic() < deadline:
                pass
            net.resync = False
        else:
            t.drain()
        if self._epoch != net.epoch:  # the port was reopened since this pump last spoke: who is there?
            self._epoch = net.epoch
            self._reidentify()

    def _exchange(self, command: str) -> tuple[str, str]:
        """One command -> (status, data); alarms and errors raise `InstrumentReportedError`. Every command
        but RUN and STP (which start a phase / toggle pause and stop) is retried after a transient failure."""
        if command.split(" ", 1)[0] in ONE_SHOT:
            return self._exchange_once(command)
        return self._exchange_retried(command)

    def _exchange_once(self, command: str) -> tuple[str, str]:
        tx = f"{self.address:02d}{command}\r".encode("ascii")
        with self._net.lock:
            self._prepare()
            try:
                status, data = self._transact(tx)
            except Disconnected:
                self._net.reopen = True
                raise
            except (InstrumentTimeout, MalformedReply):
                self._net.resync = True
                raise
        if status.startswith("A?"):
            letter = status[2:]
            self.alarms.append(letter)
            raise InstrumentReportedError(
                f"alarm {status} ({ALARMS.get(letter, 'unknown alarm')}) in reply to {command!r}; the "
                "command was not executed (the report acknowledged the alarm)", instrument=self.name,
                code=status)
        if data.startswith("?"):
            meaning = ERRORS.get(data, "unknown error")
            raise InstrumentReportedError(f"{command!r} refused: {data} ({meaning})", instrument=self.name,
                                          code=data)
        return status, data

    _exchange_retried = idempotent(_exchange_once)

    def _transact(self, tx: bytes) -> tuple[str, str]:
        t = self.transport
        t.write(tx)
        deadline = t.clock.monotonic() + t.timeout
        while True:
            raw = t.read_until(ETX, timeout=max(0.0, deadline - t.clock.monotonic()))
            start = raw.rfind(STX)
            m = FRAME.fullmatch(raw[start:]) if start >= 0 else None
            if m is None:
                raise MalformedReply(f"bad reply frame {raw!r} to {tx!r}", instrument=self.name)
            if int(m.group(1)) != self.address:
                continue  # another pump's (late) reply on the shared line: not ours
            return m.group(2).decode("ascii"), m.group(3).decode("ascii")

    # -- identity, state ------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the network (once for all its pumps) and read this pump's state.

        A pending reset alarm (`A?R`, the pump was powered up since the last session) is acknowledged and
        recorded in `alarms`; other alarms raise (they are acknowledged too, so a retry proceeds).
        """
        with self._net.lock:
            if not self._connected:
                self._net.users += 1
                self._connected = True
            self.transport.open()
            self._epoch = self._net.epoch
        try:
            self.status()
        except InstrumentReportedError as exc:
            if exc.code != "A?R":
                raise

    def close(self) -> None:
        """Release the network; the port closes when its last pump is closed."""
        with self._net.lock:
            if self._connected:
                self._net.users -= 1
                self._connected = False
            if self._net.users <= 0:
                self.transport.close()

    def identify(self) -> str:
        """Firmware, e.g. `NE1000V3.928`."""
        return self._exchange("VER")[1]

    @idempotent
    def status(self) -> str:
        """The pump's prompt letter: I W S P T U X (see `PROMPTS`)."""
        return self._exchange("")[0]

    def is_running(self) -> bool:
        return self.status() in RUNNING

    # -- configuration and pumping --------------------------------------------------------------------

    def configure(self, *, diameter: float) -> None:
        """Syringe inside diameter (m); read back to learn what the pump stored."""
        self.check("diameter", diameter)
        text = fmt4(diameter * 1e3)
        self._exchange(f"DIA {text}")
        stored = float(self._exchange("DIA")[1]) * 1e-3
        if not math.isclose(stored, float(text) * 1e-3, rel_tol=1e-9):
            raise InstrumentError(f"diameter read back {stored * 1e3:g} mm, sent {text} mm",
                                  instrument=self.name)
        self._diameter = stored

    @staticmethod
    def rate_range(diameter: float) -> tuple[float, float]:
        """(min, max) rate in m^3/s the pump accepts with a syringe of `diameter` m (the plan uses it too)."""
        area = math.pi / 4 * diameter ** 2
        return area * LINEAR_SPEED_M_S[0], area * LINEAR_SPEED_M_S[1]

    def dispense(self, volume: float, rate: float) -> None:
        """Infuse `volume` m^3 at `rate` m^3/s and return once the pump confirms it is infusing.

        RUN is not idempotent: if its reply is lost, the driver reads the pump's state instead of sending RUN
        again (a second RUN after a pause would dispense more) and raises unless the pump reports infusing.
        A paused pump is stopped first, since RUN would otherwise resume the old phase.
        """
        self.check("volume", volume)
        self.check("rate", rate)
        diameter = self._diameter
        if diameter is None:
            diameter = float(self._exchange("DIA")[1]) * 1e-3
            self._diameter = diameter
        low, high = self.rate_range(diameter)
        if not low <= rate <= high:
            raise LimitViolation(f"{self.name}: rate = {rate:g} m^3/s is outside [{low:g}, {high:g}] m^3/s "
                                 f"for a {diameter * 1e3:g} mm syringe")
        rate_text, rate_unit = encode_quantity(rate, rate_units())
        vol_text, vol_unit = encode_quantity(volume, VOLUME_UNITS)
        state = self.status()
        if state in RUNNING:
            raise InstrumentBusy(f"pump is {PROMPTS[state]}; stop it before a new dispense",
                                 instrument=self.name)
        if state == "P":
            self._exchange("STP")
        self._exchange("DIR INF")
        self._exchange(f"RAT {rate_text} {rate_unit}")
        self._exchange(f"VOL {vol_unit}")
        self._exchange(f"VOL {vol_text}")
        try:
            state = self._exchange("RUN")[0]
        except (InstrumentTimeout, MalformedReply) as exc:
            state = self.status()  # read, never re-send RUN
            if state != "I":
                raise InstrumentError(f"RUN not confirmed ({exc.detail}); the pump reports "
                                      f"{PROMPTS.get(state, state)} and RUN was not re-sent",
                                      instrument=self.name) from exc
        if state != "I":
            raise InstrumentError(f"RUN answered {PROMPTS.get(state, state)}, not infusing",
                                  instrument=self.name)

    @idempotent
    def dispensed(self) -> float:
        """Volume infused since the last clear (m^3), from `DIS`."""
        data = self._exchange("DIS")[1]
        m = re.fullmatch(r"I([\d.]+)W([\d.]+)(UL|ML)", data)
        if m is None:
            raise MalformedReply(f"DIS reply {data!r} does not parse", instrument=self.name)
        return float(m.group(1)) * VOLUME_UNITS[m.group(3)]

    def clear_dispensed(self) -> None:
        """Zero the infused and withdrawn volume counters."""
        self._exchange("CLD INF")
        self._exchange("CLD WDR")

    def stop(self) -> None:
        """`STP`: a pumping pump pauses (P); a paused one stops (S). Raises if it still reports pumping."""
        state = self._exchange("STP")[0]
        if state in RUNNING:
            raise InstrumentBusy(f"pump still {PROMPTS.get(state, state)} after STP", instrument=self.name)

    def safe_state(self) -> dict[str, Any]:
        """STP, then confirm by a status query that the pump is stopped (S) or paused (P).

        If the STP is answered with an alarm (which acknowledges it without executing STP), STP is sent once
        more. If its reply is lost, the status decides: STP is sent again only if the pump still reports
        pumping. Returns the confirmed prompt and the volume infused so far.
        """
        for attempt in range(2):
            try:
                self._exchange("STP")
                break
            except InstrumentReportedError as exc:
                if not str(exc.code).startswith("A?") or attempt:
                    raise SafeStateError(f"STP failed: {exc.detail}", instrument=self.name) from exc
            except (InstrumentTimeout, MalformedReply, Disconnected) as exc:
                if attempt:
                    raise SafeStateError(f"STP failed: {exc.detail}", instrument=self.name) from exc
                if self.status() not in RUNNING:  # STP's reply was lost, not STP: the pump has stopped
                    break
        state = self.status()
        if state not in ("S", "P"):
            raise SafeStateError(f"pump reports {PROMPTS.get(state, state)} after STP", instrument=self.name)
        return {"status": state, "state": PROMPTS[state], "dispensed_m3": self.dispensed()}
