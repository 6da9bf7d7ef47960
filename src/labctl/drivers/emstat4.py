"""PalmSens EmStat4 over MethodSCRIPT as the `eis` role: potentiostatic and galvanostatic EIS, OCP, CP.

Protocol facts: `reference/instruments.md` §1.2 (PalmSens MethodSCRIPT_Examples, MethodSCRIPT v1.8 loop
examples 009 CP, 011 OCP, 012 EIS, 013 GEIS). Serial 921600 8N1, lines end with `\\n` both ways. `t\\n` asks
the firmware version (two lines, the last ending `*`); `Z\\n` aborts a running script (`Z\\n`, or
`Z!0006\\n` when none runs); `e\\n` + script lines + an empty line executes a script: the device
acknowledges `e\\n`, then prints `M....` when a measurement loop starts, one data package
`P<var>;<var>...` per point (`methodscript.py` decodes them), `*` when the loop ends, and an empty line when
the script is over. `!XXXX` anywhere in a line is an error (`InstrumentReportedError`, code = the 4 hex
digits as an int).

Choices, documented:
- a measurement can last hours of simulated or real time: the driver reads the stream line by line, each line
  with its own deadline on the transport's clock, the transport timeout plus what the next point may take
  (EIS: `POINT_FACTOR` x max(3 periods, 0.1 s) of the next frequency; OCP/CP: the interval);
- after any failed exchange the next one first sends `Z` (abort whatever runs) and waits for the line to go
  quiet, so a late package is never taken for the next answer;
- galvanostatic EIS takes `amplitude` and `dc_potential` as currents (A), checked against the `current` limit;
- the current range of galvanostatic scripts is the decade above the largest current they apply;
- `safe_state()` aborts (`Z`), runs a `cell_off` script to completion and confirms the device answers the
  version query, which it does only when idle. MethodSCRIPT has no read-back of the cell switch that this
  driver knows of [verify in the MethodSCRIPT manual]: the confirmation is "cell_off executed, device idle".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from labctl.drivers.base import Driver
from labctl.drivers.limits import Limit
from labctl.drivers.methodscript import Variable, decode_package, error_code, literal
from labctl.drivers.transport import SerialSettings, Transport
from labctl.errors import (
    InstrumentError,
    InstrumentReportedError,
    LimitViolation,
    MalformedReply,
    SafeStateError,
)
from labctl.roles import Spectrum, Trace

EOL = b"\n"
LOOP_START = re.compile(rb"^[MLC][0-9A-Fa-f]{4}\n$")
LOOP_END = {b"*\n", b"+\n", b"-\n"}


def eis_frequencies(f_start: float, f_end: float, points_per_decade: int) -> np.ndarray:
    """The log-spaced frequencies a sweep visits: `points` = decades x points per decade + 1."""
    return np.geomspace(f_start, f_end, eis_points(f_start, f_end, points_per_decade))


def eis_points(f_start: float, f_end: float, points_per_decade: int) -> int:
    return max(2, round(abs(math.log10(f_end / f_start)) * points_per_decade) + 1)


def current_range(amperes: float) -> float:
    """The decade at or above |amperes| (at least 1 uA)."""
    return 10.0 ** math.ceil(math.log10(max(abs(amperes), 1e-6)))


class EmStat4(Driver):
    """One EmStat4 (channel 0); implements `ImpedanceAnalyzer`."""

    NAME = "emstat4"
    ROLE = "eis"
    SIMULATOR = "labctl.simulators.emstat4:EmStat4Sim"
    SERIAL = SerialSettings(921600)
    TIMEOUT = 1.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "frequency": Limit("frequency", "Hz", 1e-5, 2e5, "EmStat4 EIS 10 uHz - 200 kHz [data sheet; verify]"),
        "amplitude": Limit("amplitude", "V", 1e-4, 0.25, "EIS excitation"),
        "current": Limit("current", "A", -0.03, 0.03, "EmStat4 LR +-30 mA"),
        "potential": Limit("potential", "V", -3.0, 3.0, "EmStat4 LR +-3 V"),
        "points_per_decade": Limit("points_per_decade", "", 1, 100, "EIS sweep density"),
        "points": Limit("points", "", 1, 1_000_000, "per OCP/CP script: its packages are all kept in memory"),
    }
    @staticmethod
    def point_time(freq: float) -> float:
        """Nominal time of one EIS point (s): max(3 periods, 0.1 s) [MethodSCRIPT manual, meas_loop_eis]."""
        return max(3.0 / float(freq), 0.1)

    @classmethod
    def sweep_time(cls, f_start: float, f_end: float, points_per_decade: int) -> float:
        """Nominal time of a sweep (s), declared next to the command so `labctl plan` counts what runs."""
        return float(sum(cls.point_time(f) for f in eis_frequencies(f_start, f_end, points_per_decade)))

    RESYNC_QUIET = 0.5  # s of silence after `Z` before the next exchange (a trickling reply must end)
    POINT_FACTOR = 3.0  # x the nominal time of one EIS point, allowed for its package to arrive

    def __init__(
        self,
        transport: Transport,
        *,
        name: str = "",
        limits: dict[str, tuple[float | None, float | None]] | None = None,
    ) -> None:
        super().__init__(transport, name=name, limits=limits)

    # -- the exchange layer ---------------------------------------------------------------------------

    def _on_resync(self) -> None:
        self.transport.write(b"Z\n")  # stop whatever script still streams

    def _line(self, timeout: float) -> bytes:
        line = self.transport.read_until(EOL, timeout=max(0.0, timeout))
        code = error_code(line)
        if code is not None:
            text = line.decode("ascii", "replace").strip()
            raise InstrumentReportedError(
                f"device error 0x{code:04X}: {text}", instrument=self.name, code=code
            )
        return line

    def run_script(
        self,
        lines: list[str],
        allowance: Callable[[int], float] | None = None,
        on_package: Callable[[list[Variable]], None] | None = None,
    ) -> list[list[Variable]]:
        """Execute a script; return its data packages. `allowance(n)` = extra s to wait for package n;
        `on_package` gets each package as it arrives (to store it before the script ends)."""
        t = self.transport
        self._prepare_link()
        with self._link_guard():
            t.write(("e\n" + "".join(f"{line}\n" for line in lines) + "\n").encode("ascii"))
            ack = self._line(t.timeout)
            if ack != b"e\n":
                raise MalformedReply(
                    f"expected the execute acknowledge 'e', got {ack!r}", instrument=self.name
                )
            packages: list[list[Variable]] = []
            while True:
                extra = allowance(len(packages)) if allowance else 0.0
                line = self._line(t.timeout + extra)
                if line == EOL:
                    return packages
                if line.startswith(b"P"):
                    try:
                        packages.append(decode_package(line.decode("ascii")))
                    except (ValueError, UnicodeDecodeError) as exc:
                        raise MalformedReply(
                            f"bad data package {line!r}: {exc}", instrument=self.name
                        ) from exc
                    if on_package is not None:
                        on_package(packages[-1])
                elif not (LOOP_START.match(line) or line in LOOP_END):
                    raise MalformedReply(
                        f"unexpected line {line!r} in the script output", instrument=self.name
                    )

    # -- identity and control -------------------------------------------------------------------------

    def identify(self) -> str:
        """`t`: firmware version lines (device type first, e.g. `es4_lr ...`)."""
        t = self.transport
        self._prepare_link()
        with self._link_guard():
            t.write(b"t\n")
            deadline = t.clock.monotonic() + t.timeout
            first = self._line(deadline - t.clock.monotonic())
            parts = [first]
            while not parts[-1].endswith(b"*\n"):
                parts.append(self._line(deadline - t.clock.monotonic()))
        if not first.startswith(b"t"):
            self._resync = True
            raise MalformedReply(f"bad version answer {b''.join(parts)!r}", instrument=self.name)
        return " ".join(p.decode("ascii", "replace").strip() for p in parts)[1:].removesuffix("*").strip()

    def abort(self) -> None:
        """`Z`: stop a running script (its `on_finished:` part runs); fine when nothing runs."""
        t = self.transport
        self._prepare_link()
        with self._link_guard():
            t.write(b"Z\n")
            deadline = t.clock.monotonic() + t.timeout
            seen_z = False
            while True:
                line = t.read_until(EOL, timeout=max(0.0, deadline - t.clock.monotonic()))
                if line.startswith(b"Z") and error_code(line) == 6:
                    return  # nothing was running
                if line == b"Z\n":
                    seen_z = True
                elif line == EOL and seen_z:
                    return  # the aborted script has ended

    def safe_state(self) -> dict[str, Any]:
        """Abort, cell off, confirm idle by the version query (see the module docstring)."""
        try:
            self.abort()
            self.run_script(["cell_off"])
            firmware = self.identify()
        except InstrumentError as exc:
            raise SafeStateError(
                f"idle with the cell off not confirmed: {exc.detail}", instrument=self.name
            ) from exc
        return {"script_running": False, "cell_off": "commanded and executed", "firmware": firmware}

    # -- measurements ---------------------------------------------------------------------------------

    def eis(
        self,
        *,
        f_start: float,
        f_end: float,
        points_per_decade: int,
        amplitude: float,
        dc_potential: float = 0.0,
        galvanostatic: bool = False,
        on_points: Callable[[Spectrum], None] | None = None,
    ) -> Spectrum:
        """Impedance sweep `f_start` -> `f_end`; potentiostatic (amplitude, dc in V) or galvanostatic (A).
        `on_points` gets each point as it is measured."""
        self.check("frequency", f_start)
        self.check("frequency", f_end)
        if not isinstance(points_per_decade, int | np.integer):
            raise LimitViolation(f"{self.name}: points_per_decade must be whole, got {points_per_decade!r}")
        self.check("points_per_decade", points_per_decade)
        if galvanostatic:
            self.check("current", amplitude)
            self.check("current", dc_potential)
            if amplitude <= 0:
                raise LimitViolation(f"{self.name}: the current amplitude must be > 0, got {amplitude!r}")
            if abs(amplitude) + abs(dc_potential) > self.limits["current"].high:
                raise LimitViolation(
                    f"{self.name}: amplitude + dc current {amplitude + abs(dc_potential):g} A "
                    f"exceeds the current limit"
                )
        else:
            self.check("amplitude", amplitude)
            self.check("potential", dc_potential)
        freqs = eis_frequencies(f_start, f_end, points_per_decade)
        script = self._eis_script(f_start, f_end, len(freqs), amplitude, dc_potential, galvanostatic)

        def allowance(n: int) -> float:
            return self.POINT_FACTOR * self.point_time(freqs[min(n, len(freqs) - 1)])

        def point(package: list[Variable]) -> None:
            if on_points is not None:
                on_points(Spectrum(*self._columns([package], ("dc", "cc", "cd"))))

        packages = self.run_script(script, allowance, point)
        f, zr, zi = self._columns(packages, ("dc", "cc", "cd"))
        status = [v.status for p in packages for v in p]
        return Spectrum(
            freq=f,
            z_real=zr,
            z_imag=zi,
            meta={
                "galvanostatic": galvanostatic,
                "amplitude": amplitude,
                "dc": dc_potential,
                "points": len(f),
                "commanded_points": len(freqs),
                "status_flags": int(np.bitwise_or.reduce(status)) if status else 0,
            },
        )

    def ocp(
        self, duration: float, interval: float, on_points: Callable[[Trace], None] | None = None
    ) -> Trace:
        """Open-circuit potential every `interval` s for `duration` s (cell off); `on_points` gets each
        point as it is measured."""
        self._check_timing(duration, interval)
        script = [
            "var p",
            "set_pgstat_chan 0",
            "set_pgstat_mode 2",
            "cell_off",
            f"meas_loop_ocp p {literal(interval)} {literal(duration)}",
            "pck_start",
            "pck_add p",
            "pck_end",
            "endloop",
        ]
        seen = 0

        def point(package: list[Variable]) -> None:
            nonlocal seen
            seen += 1
            if on_points is not None:
                (v,) = self._columns([package], ("ab",))
                on_points(Trace(t=np.array([float(interval) * seen]), voltage=v, current=np.zeros_like(v)))

        packages = self.run_script(script, lambda n: interval, point)
        (v,) = self._columns(packages, ("ab",))
        t = float(interval) * np.arange(1, len(v) + 1, dtype=float)
        return Trace(t=t, voltage=v, current=np.zeros_like(v), meta={"technique": "ocp"})

    def chronopotentiometry(self, current: float, duration: float, interval: float) -> Trace:
        """Hold `current` (A) for `duration` s, sampling potential and current every `interval` s."""
        self.check("current", current)
        self._check_timing(duration, interval)
        script = [
            "var p",
            "var c",
            "set_pgstat_chan 0",
            "set_pgstat_mode 6",
            "set_range ab 3",
            f"set_range db {literal(current_range(current))}",
            "set_i 0",
            "cell_on",
            f"meas_loop_cp p c {literal(current)} {literal(interval)} {literal(duration)}",
            "pck_start",
            "pck_add p",
            "pck_add c",
            "pck_end",
            "endloop",
            "on_finished:",
            "cell_off",
        ]
        packages = self.run_script(script, lambda n: interval)
        v, i = self._columns(packages, ("ab", "ba"))
        t = float(interval) * np.arange(1, len(v) + 1, dtype=float)
        return Trace(t=t, voltage=v, current=i, meta={"technique": "cp", "current": current})

    # -- helpers --------------------------------------------------------------------------------------

    def _check_timing(self, duration: float, interval: float) -> None:
        if not (math.isfinite(duration) and math.isfinite(interval) and 0 < interval <= duration):
            raise LimitViolation(
                f"{self.name}: need 0 < interval <= duration, got interval {interval!r}, "
                f"duration {duration!r}"
            )
        self.check("points", duration / interval)

    @staticmethod
    def _eis_script(
        f_start: float, f_end: float, points: int, amplitude: float, dc: float, galvanostatic: bool
    ) -> list[str]:
        head = ["var f", "var r", "var j", "set_pgstat_chan 0"]
        bandwidth = literal(min(2 * max(f_start, f_end), 4e5))
        sweep = f"{literal(amplitude)} {literal(f_start)} {literal(f_end)} {points} {literal(dc)}"
        if galvanostatic:
            setup = [
                "set_pgstat_mode 6",
                f"set_max_bandwidth {bandwidth}",
                "set_range ab 3",
                f"set_range db {literal(current_range(abs(dc) + amplitude))}",
                f"set_i {literal(dc)}",
                "cell_on",
                f"meas_loop_geis f r j {sweep}",
            ]
        else:
            setup = [
                "set_pgstat_mode 3",
                f"set_max_bandwidth {bandwidth}",
                f"set_range_minmax da {literal(dc)} {literal(dc)}",
                "set_range ba 10m",
                "set_autoranging ba 1n 10m",
                f"set_e {literal(dc)}",
                "cell_on",
                f"meas_loop_eis f r j {sweep}",
            ]
        return (
            head
            + setup
            + [
                "pck_start",
                "pck_add f",
                "pck_add r",
                "pck_add j",
                "pck_end",
                "endloop",
                "on_finished:",
                "cell_off",
            ]
        )

    def _columns(self, packages: list[list[Variable]], types: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        cols: list[list[float]] = [[] for _ in types]
        for package in packages:
            found = {v.type_id: v.value for v in package}
            if any(t not in found for t in types):
                raise MalformedReply(
                    f"package {[v.type_id for v in package]} lacks one of {types}", instrument=self.name
                )
            for col, t in zip(cols, types, strict=True):
                col.append(found[t])
        return tuple(np.asarray(c, dtype=float) for c in cols)
