"""Keithley 2450 SourceMeter in native SCPI mode as the `potentiostat` role (galvanostatic cycling).

Protocol facts: `reference/instruments.md` §1.1. LF-terminated SCPI over VISA (LAN raw socket
`TCPIP::<ip>::5025::SOCKET`, USB-TMC) or a serial URL. The driver refuses an instrument whose `*LANG?` is not
`SCPI` (2400 emulation or TSP): the command set differs and the buffers would not be there.

Choices, documented:
- every setting command is followed by one `:SYST:ERR?` drain, so a refused command raises
  `InstrumentReportedError` at once (the 2450 answers nothing to a refused command);
- `acquire` runs the instrument's own `DurationLoop` trigger model into a private buffer `labctl`, sleeps on
  the transport's clock for the duration, polls `:TRIG:STAT?` until IDLE (bounded), then fetches the buffer
  in chunks of at most `CHUNK` points (`REL, READ, SOUR`);
- readings travel in binary by default (`data_format="REAL"`): `:FORM:DATA REAL` and `:FORM:BORD SWAP` are
  sent with the configuration (and before the first reading if none was), so `:READ?` and `:TRAC:DATA?` answer
  `#0` + little-endian float64 values + LF (2450 manual p. 6-30: binary replies start with "#0" and end with a
  new line). The driver knows how many values it asked for, reads exactly that many bytes (`read_exact`) and
  takes them with `np.frombuffer`; a cut block is a `PartialReply`. `data_format="ASCII"` keeps the text
  transfer (`:FORM:DATA ASC`, comma-separated numbers);
- the compliance flag of a `Trace` is the instrument's `:SOUR:CURR:VLIM:TRIP?` after the acquisition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from labctl.drivers.base import Driver, idempotent
from labctl.drivers.limits import Limit
from labctl.drivers.transport import Transport
from labctl.errors import (
    ConfigError,
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    InstrumentTimeout,
    LimitViolation,
    MalformedReply,
    PartialReply,
    SafeStateError,
)
from labctl.roles import Trace

LF = b"\n"
BUFFER = "labctl"


def _num(value: float) -> str:
    """A number as sent on the wire: shortest exact repr (`0.001`, `1e-05`, `2`)."""
    return repr(float(value)).removesuffix(".0")


class Keithley2450(Driver):
    """One 2450 SMU sourcing current and measuring voltage; implements `Potentiostat`."""

    NAME = "keithley2450"
    ROLE = "potentiostat"
    SIMULATOR = "labctl.simulators.keithley2450:Keithley2450Sim"
    IDENTITY_IS_UNIQUE = True  # the identification names the serial number: leased as the unit
    TIMEOUT = 2.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "current": Limit("current", "A", -1.05, 1.05, "2450 source range +-1.05 A"),
        "voltage_limit": Limit("voltage_limit", "V", 0.02, 210.0, "2450 voltage limit 20 mV..210 V"),
        "nplc": Limit("nplc", "PLC", 0.01, 10.0, "2450 integration time 0.01..10 power-line cycles"),
        "interval": Limit("interval", "s", 1e-3, math.inf, "points >= 1 ms apart (DurationLoop)"),
        "points": Limit("points", "", 1, 4_000_000, "the largest reading buffer the 2450 makes"),
    }
    CHUNK = 20_000  # points per :TRAC:DATA? query
    DATA_FORMATS: ClassVar[dict[str, tuple[str, ...]]] = {
        "REAL": (":FORM:DATA REAL", ":FORM:BORD SWAP"),
        "ASCII": (":FORM:DATA ASC",),
    }
    ERROR_DRAIN = 32  # :SYST:ERR? queries at most per drain
    POLL = 0.05  # s between :TRIG:STAT? polls
    IDLE_GRACE = 5.0  # s past the duration for the trigger model to report IDLE
    STREAM_EVERY = 0.2  # s between buffer reads while acquiring for an `on_points` caller (real clock)
    BYTES_PER_POINT_S = 2e-5  # extra read deadline per fetched point (a slow link)

    def __init__(
        self,
        transport: Transport,
        *,
        name: str = "",
        limits: dict[str, tuple[float | None, float | None]] | None = None,
        data_format: str = "REAL",
    ) -> None:
        super().__init__(transport, name=name, limits=limits)
        if data_format not in self.DATA_FORMATS:
            raise ConfigError(
                f"{name or self.NAME}: data_format {data_format!r} is not one of "
                + ", ".join(self.DATA_FORMATS)
            )
        self.data_format = data_format
        self._format_set = False  # the instrument was told `data_format` (unset again by a bad reply)
        self._buffer_size = 0  # capacity of the instrument's `labctl` buffer (0: not made yet)
        self._output_on: bool | None = None
        self._galvanostatic = False  # told to source current and sense voltage since the link opened

    # -- the exchange layer ---------------------------------------------------------------------------

    def _write(self, command: str) -> None:
        self._prepare_link()
        with self._link_guard():
            self.transport.write(command.encode("ascii") + LF)

    def _exchange(self, command: str, read: Callable[[], bytes]) -> bytes:
        """Send a query and `read()` its reply; a silent refusal is explained from the event log."""
        self._prepare_link()
        try:
            with self._link_guard():
                self.transport.write(command.encode("ascii") + LF)
                return read()
        except InstrumentTimeout as exc:
            if type(exc) is not InstrumentTimeout or command.startswith(":SYST:ERR"):
                raise
            errors = self.errors()  # a refused query is silent; the event log says why
            if errors:
                raise InstrumentReportedError(
                    f"{command!r} refused: {errors[0][0]} {errors[0][1]}",
                    instrument=self.name,
                    code=errors[0][0],
                ) from exc
            raise

    def _query(self, command: str, timeout: float | None = None) -> str:
        raw = self._exchange(command, lambda: self.transport.read_until(LF, timeout))
        body = raw[:-1]
        if not body.isascii() or b"\r" in body or b"\x00" in body:
            self._resync = True
            raise MalformedReply(f"bad reply {raw[:60]!r} to {command!r}", instrument=self.name)
        return body.decode("ascii").strip()

    def _float(self, command: str) -> float:
        text = self._query(command)
        try:
            return float(text)
        except ValueError:
            self._resync = True
            raise MalformedReply(
                f"{command!r} answered {text!r}, not a number", instrument=self.name
            ) from None

    def _flag(self, command: str) -> bool:
        text = self._query(command)
        if text not in ("0", "1"):
            self._resync = True
            raise MalformedReply(f"{command!r} answered {text!r}, not 0/1", instrument=self.name)
        return text == "1"

    def _values(self, command: str, count: int, timeout: float | None = None) -> np.ndarray:
        """The `count` numbers a reading query answers, in the data format the instrument was told."""
        try:
            return self._parse_values(command, count, timeout)
        except MalformedReply:
            self._format_set = False  # a power cycle or another client may have changed the format
            raise

    def _parse_values(self, command: str, count: int, timeout: float | None) -> np.ndarray:
        if self.data_format == "ASCII":
            text = self._query(command, timeout)
            try:
                values = np.array(text.split(","), dtype=float) if text else np.zeros(0)
            except ValueError:
                self._resync = True
                raise MalformedReply(f"{command!r}: reply is not numbers", instrument=self.name) from None
        else:
            size = 2 + 8 * count + 1  # "#0", float64 values, LF
            raw = self._exchange(command, lambda: self.transport.read_exact(size, timeout))
            if raw[:2] != b"#0" or raw[-1:] != LF:
                self._resync = True
                raise MalformedReply(
                    f"{command!r}: expected a #0 block of {count} float64 values + LF, got {raw[:12]!r}...",
                    instrument=self.name,
                )
            values = np.frombuffer(raw, "<f8", count, 2).astype(np.float64)
        if len(values) != count:
            raise MalformedReply(
                f"{command!r}: asked {count} values, got {len(values)}", instrument=self.name
            )
        return values

    def _format_commands(self) -> list[str]:
        """The data-format commands, if the instrument has not been told yet or an exchange failed since (a
        power cycle resets the format to ASCII without a word)."""
        if self._format_set and not (self._resync or self._reopen):
            return []
        return list(self.DATA_FORMATS[self.data_format])

    def _source_commands(self) -> list[str]:
        """Source current, sense voltage, unless configured so since the link (re)opened: the 2450 powers on
        (and `*RST`s) sourcing voltage and sensing current, so a bare `acquire(current=0)` (an OCV) would hold
        0 V across the cell and read currents."""
        if self._galvanostatic and not (self._resync or self._reopen):
            return []
        return [":SOUR:FUNC CURR", ':SENS:FUNC "VOLT:DC"']

    def _on_resync(self) -> None:
        self._format_set = False
        self._galvanostatic = False

    def errors(self) -> list[tuple[int, str]]:
        """Drain the event log (`:SYST:ERR?` until code 0, at most `ERROR_DRAIN` queries)."""
        found: list[tuple[int, str]] = []
        for _ in range(self.ERROR_DRAIN):
            text = self._query(":SYST:ERR?")
            code_text, _, message = text.partition(",")
            try:
                code = int(code_text)
            except ValueError:
                self._resync = True
                raise MalformedReply(f":SYST:ERR? answered {text!r}", instrument=self.name) from None
            if code == 0:
                return found
            found.append((code, message.strip('"').split(";", 1)[0]))
        return found

    def _command(self, *commands: str) -> None:
        """Send setting commands, then drain the event log; any error raises `InstrumentReportedError`."""
        for command in commands:
            self._write(command)
        errors = self.errors()
        if errors:
            code, message = errors[0]
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InstrumentReportedError(
                f"{'; '.join(commands)!r} refused: {code} {message}{more}", instrument=self.name, code=code
            )

    # -- operations -----------------------------------------------------------------------------------

    def identify(self) -> str:
        """`*IDN?`, after checking the instrument speaks native SCPI (`*LANG?`)."""
        idn = self._query("*IDN?")
        lang = self._query("*LANG?")
        if lang.upper() != "SCPI":
            raise InstrumentError(
                f"the 2450 is in {lang!r} command mode; labctl needs native SCPI: send "
                "'*LANG SCPI' (or use the front panel) and power-cycle it",
                instrument=self.name,
            )
        return idn

    def configure_galvanostatic(
        self, *, voltage_limit: float, four_wire: bool = True, nplc: float = 1.0
    ) -> None:
        """Source current, measure voltage, with the voltage limit (compliance) `voltage_limit` V."""
        self.check("voltage_limit", voltage_limit)
        self.check("nplc", nplc)
        self._command(
            ":SOUR:FUNC CURR",
            f":SOUR:CURR:VLIM {_num(voltage_limit)}",
            ':SENS:FUNC "VOLT:DC"',
            f":SENS:VOLT:RSEN {1 if four_wire else 0}",
            f":SENS:VOLT:NPLC {_num(nplc)}",
            *self.DATA_FORMATS[self.data_format],
        )
        self._format_set = True
        self._galvanostatic = True

    def set_current(self, amperes: float) -> None:
        self.check("current", amperes)
        self._command(f":SOUR:CURR {_num(amperes)}")

    def output(self, on: bool) -> None:
        self._command(f":OUTP {1 if on else 0}")
        self._output_on = on

    @idempotent
    def read(self) -> tuple[float, float]:
        """One reading into `defbuffer1`: (voltage, source current)."""
        if fmt := self._format_commands():
            self._command(*fmt)
            self._format_set = True
        v, i = self._values(':READ? "defbuffer1", READ, SOUR', 2)
        return float(v), float(i)

    @idempotent
    def limit_tripped(self) -> bool:
        return self._flag(":SOUR:CURR:VLIM:TRIP?")

    def abort(self) -> None:
        self._write(":ABOR")

    def acquire(
        self,
        *,
        current: float,
        duration: float,
        interval: float,
        on_points: Callable[[Trace], None] | None = None,
    ) -> Trace:
        """Hold `current` for `duration` s sampled every `interval` s by the instrument's trigger model.

        With `on_points` on a real clock the buffer is read every `STREAM_EVERY` s while the trigger model
        runs and each batch of new points is handed over at once (so a crash loses at most the last
        fraction of a second, not the whole acquisition); every point goes to `on_points` exactly once
        and the returned Trace holds them all."""
        self.check("current", current)
        if not (math.isfinite(duration) and duration > 0):
            raise LimitViolation(f"{self.name}: duration must be > 0 s, got {duration!r}")
        self.check("interval", interval)
        points = max(1, math.ceil(duration / interval - 1e-9))
        self.check("points", points)
        setup = [*self._format_commands(), *self._source_commands(), f":SOUR:CURR {_num(current)}"]
        if not self._output_on:
            setup.append(":OUTP 1")
        size = max(points, 10)
        if self._buffer_size == 0:
            setup.append(f':TRAC:MAKE "{BUFFER}", {size}')
        elif self._buffer_size < size:
            setup.append(f':TRAC:POIN {size}, "{BUFFER}"')
        else:
            setup.append(f':TRAC:CLE "{BUFFER}"')
        setup += [f':TRIG:LOAD "DurationLoop", {_num(duration)}, {_num(interval)}, "{BUFFER}"', ":INIT"]
        self._command(*setup)
        self._format_set = True
        self._galvanostatic = True
        self._output_on = True
        self._buffer_size = max(self._buffer_size, size)
        clock = self.transport.clock
        delivered, parts = 0, []
        if on_points is not None and not clock.is_virtual:
            end = clock.monotonic() + duration
            while (left := end - clock.monotonic()) > 0:
                clock.sleep(min(self.STREAM_EVERY, left))
                delivered = self._deliver(delivered, on_points, parts)
        else:
            clock.sleep(duration)
        deadline = clock.monotonic() + self.IDLE_GRACE
        while True:
            state = self._trigger_state()
            if state.split(";", 1)[0] == "IDLE":
                break
            if clock.monotonic() >= deadline:
                self._write(":ABOR")
                raise InstrumentBusy(
                    f"trigger model still {state!r} {self.IDLE_GRACE:g} s after its {duration:g} s; aborted",
                    instrument=self.name,
                )
            clock.sleep(self.POLL)
        if on_points is not None:
            self._deliver(delivered, on_points, parts)
            data = np.concatenate(parts) if parts else np.zeros((0, 3))
        else:
            data = self._fetch(self._buffer_count())
        tripped = self.limit_tripped()
        meta = {"points": len(data), "instrument": self.name}
        return Trace(data[:, 0], data[:, 1], data[:, 2], tripped, meta)

    def _deliver(self, delivered: int, on_points: Callable[[Trace], None], parts: list[np.ndarray]) -> int:
        """Hand the buffer's points after the first `delivered` to `on_points`; the new count."""
        n = self._buffer_count()
        if n > delivered:
            data = self._fetch(n, start=delivered + 1)
            parts.append(data)
            on_points(Trace(data[:, 0], data[:, 1], data[:, 2]))
        return max(n, delivered)

    @idempotent
    def _trigger_state(self) -> str:
        return self._query(":TRIG:STAT?")

    @idempotent
    def _buffer_count(self) -> int:
        return int(self._float(f':TRAC:ACT? "{BUFFER}"'))

    @idempotent
    def _buffer_values(self, command: str, count: int, timeout: float) -> np.ndarray:
        """Reading buffer points leaves them in the buffer: a lost or cut block is read again."""
        return self._values(command, count, timeout)

    def _fetch(self, n: int, start: int = 1) -> np.ndarray:
        parts = []
        for lo in range(start, n + 1, self.CHUNK):
            hi = min(n, lo + self.CHUNK - 1)
            timeout = self.transport.timeout + self.BYTES_PER_POINT_S * (hi - lo + 1)
            command = f':TRAC:DATA? {lo}, {hi}, "{BUFFER}", REL, READ, SOUR'
            try:
                values = self._buffer_values(command, 3 * (hi - lo + 1), timeout)
            except PartialReply:
                raise
            except MalformedReply as exc:
                raise MalformedReply(f"buffer points {lo}..{hi}: {exc.detail}", instrument=self.name) from exc
            parts.append(values.reshape(-1, 3))
        return np.concatenate(parts) if parts else np.zeros((0, 3))

    def safe_state(self) -> dict[str, Any]:
        """Abort the trigger model, source 0 A, output off; confirm `:OUTP?` = 0 and `:SOUR:CURR?` = 0."""
        try:
            for command in (":ABOR", ":SOUR:CURR 0", ":OUTP 0"):
                self._write(command)
            output = self._flag(":OUTP?")
            level = self._float(":SOUR:CURR?")
        except InstrumentError as exc:
            raise SafeStateError(f"could not confirm output off: {exc.detail}", instrument=self.name) from exc
        if output or level != 0.0:
            raise SafeStateError(
                f"read back output {'on' if output else 'off'}, level {level:g} A", instrument=self.name
            )
        self._output_on = False
        return {"output": False, "current_a": level}
