"""Simulated Inficon SQM-160 with a 6 MHz AT-cut crystal in the shared chamber, byte for byte.

Framing, CRC and commands as `labctl.drivers.sqm160` (instruments.md §4.4). The crystal frequency follows
Sauerbrey, f = f_q - C_f * m with C_f = 2 f_q^2 / sqrt(rho_q mu_q) and m the areal mass (kg/m^2) the world has
put on the crystal since it was installed (`world.qcm_areal_mass`). The instrument turns frequency back into
thickness as a real one does, with the Z-match equation of the active film:

    T = N_q rho_q / (pi rho_f f Z) * atan(Z tan(pi (f_q - f) / f_q)) * tooling

(N_q = 1668 Hz m, rho_q = 2648 kg/m^3, mu_q = 2.947e10 Pa), so a wrong density or Z-ratio gives a wrong
thickness, as on the bench. Rate is the thickness change between successive internal readings (one per
time base, `PERIOD` s by default) divided by their time apart.

Where the sources are silent this core chooses, and says so:
- `U1`/`U0`/`U?` drive and read the source-shutter relay (see the driver's docstring for the source); the
  shutter state goes to the world (`world.shutter`), which deposits only while it is open;
- crystal life (`R`) is the percent of the usable frequency drop that is *left*: 100 at the system's max
  frequency (default 6 MHz), 0 at its min frequency (default 5 MHz, the SQM-160's) [verify on hardware];
- answers: rate (A/s) as `f"{x: .2f} "` and thickness (A) as `f"{x: .3f} "`, trailing space included, as
  in pymeasure's SQM-160 transcripts (`tests/instruments/inficon/test_sqm160.py`: `L1?` -> ` 0.00 `, `M` ->
  ` 0.01 `, `O` -> ` 0.000 `, CRCs consistent, so apparently captured from an instrument; the SQC-310
  manual's ` 0.00` / ` 0.000` have none); frequency `f"{x:.3f}"` (their `5875830.230`); `@` -> `MON Ver 4.13`
  (pymeasure's test); `J` -> `2` (a 2-channel unit; theirs answers 6);
- `W` (all readings): the time since `T` (or power-up) as `MM.SS`, then rate, thickness and frequency of
  each channel, space-separated, in the `L`/`N`/`P` formats. pymeasure drops its first 5 characters
  (`00.00`), lapkindm/sqm160 and a Java SCADA driver (narl.itrc `DevSQM160.java`, which splits the status
  letter and the answer on whitespace and skips the first token, so that field follows the status letter
  without a space) its first field; all read triplets per sensor after it. That the field is a `MM.SS`
  timer (the SQC-310's `K2` starts with the time) is this core's guess [verify on hardware];
- a packet with a bad CRC, an unknown command: `C`; a bad number or film index: `D`; changing the active
  film's parameters while the shutter is open: `E` (wrong mode);
- film (`A`) and system (`B`, `C`) parameters are kept in non-volatile memory, `Z` restores their defaults;
  the shutter relay survives nothing: power-up gives shutter closed, and the next answer has status `B` (ok,
  instrument reset) once; `Y` answers 1 once after power-up;
- system 1 (`B`): the time base is the interval of internal readings, the rate filter the number of
  reading-to-reading rates averaged, the crystal tooling multiplies sensor 1's thickness with the film's;
  display mode and rate resolution change the front panel only (answers stay in A and A/s), and the
  instrument's own crystal simulator (`simulate` 1) is not modelled: readings come from the world either way;
- system 2 (`C`): min/max frequency (MHz) bound the crystal life (`R`); etch mode counts removed material as
  positive thickness; the rate/thickness alarm limits are kept and reported, no alarm output is modelled;
- a half-received packet is dropped after 50 ms of silence; bytes before a `!` are line noise and dropped;
- `stuck busy` models a shutter relay that no longer switches: `U0`/`U1` are accepted, nothing moves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from labctl.clock import Clock
from labctl.drivers.sqm160 import FILM_FIELDS, crc14, response
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore
from labctl.simulators.world import SimpleWorld

F_Q = 6.0e6            # Hz, uncoated AT-cut crystal
F_MIN = 5.0e6          # Hz, crystal life 0 %
RHO_Q = 2648.0         # kg/m^3
MU_Q = 2.947e10        # Pa
N_Q = 1668.0           # Hz m, AT-cut frequency constant (sqrt(mu_q / rho_q) / 2)
C_F = 2 * F_Q**2 / math.sqrt(RHO_Q * MU_Q)   # Hz per kg/m^2
PERIOD = 0.25          # s between internal readings
GAP_S = 0.05


@dataclass
class Film:
    name: str = "FILM"
    density: float = 1.0        # g/cc
    tooling: int = 100          # %
    z_ratio: float = 1.0
    final: float = 0.0          # kA
    setpoint: float = 0.0       # kA
    time: int = 0               # s
    sensors: int = 1

    def message(self) -> bytes:
        return (f"{self.name[:8]:<8} {self.density:.2f} {self.tooling} {self.z_ratio:.3f} {self.final:.3f} "
                f"{self.setpoint:.3f} {self.time} {self.sensors}").encode("ascii")


@dataclass
class System:
    """System 1 (`B`) and System 2 (`C`) parameters, in the order the commands carry them."""

    time_base: float = PERIOD   # s between internal readings (0.10 .. 2.00)
    simulate: int = 0           # 1: the front panel's crystal simulator (not modelled: see module docstring)
    display: int = 0            # 0 A, 1 nm, 2 Hz, 3 ng/cm^2 (front panel only)
    high_resolution: int = 0    # rate shown with 2 decimals instead of 1 (front panel only)
    rate_filter: int = 1        # internal readings averaged into the rate (1 .. 20)
    crystal_tooling: tuple[int, ...] = (100,) * 6   # % per sensor
    min_mhz: float = F_MIN / 1e6
    max_mhz: float = F_Q / 1e6
    min_rate: float = 0.0       # A/s, rate alarm limits
    max_rate: float = 999.0
    min_thick: float = 0.0      # kA
    max_thick: float = 999.0
    etch: int = 0               # 1: material removed counts as positive thickness

    def system1(self) -> str:
        head = [f"{self.time_base:.2f}", self.simulate, self.display, self.high_resolution, self.rate_filter]
        return " ".join(str(f) for f in (*head, *self.crystal_tooling))

    def system2(self) -> str:
        return (f"{self.min_mhz:.3f} {self.max_mhz:.3f} {self.min_rate:.3f} {self.max_rate:.3f} "
                f"{self.min_thick:.3f} {self.max_thick:.3f} {self.etch}")


def zmatch_thickness_m(f: float, density_kg_m3: float, z_ratio: float) -> float:
    """Film thickness (m) that loads an f_q crystal down to `f` (Z-match; Sauerbrey-Lu)."""
    if f >= F_Q:
        return (F_Q - f) * N_Q * RHO_Q / (density_kg_m3 * F_Q * F_Q)
    x = math.pi * (F_Q - f) / F_Q
    return N_Q * RHO_Q / (math.pi * density_kg_m3 * f * z_ratio) * math.atan(z_ratio * math.tan(x))


class Sqm160Sim(DeviceCore):
    """One SQM-160 with a crystal on sensor 1 (sensor 2 has none: frequency 0)."""

    SERIAL = SerialSettings(19200)

    def __init__(self, name: str = "sqm160", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0) -> None:
        self._last_rx = 0.0
        self.films = {n: Film(name=f"FILM {n}") for n in range(1, 100)}   # non-volatile
        self.system = System()                                              # non-volatile
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)
        self.crystal_mass0 = self._mass()   # a fresh crystal is installed when the simulator starts

    def reset(self) -> None:
        self.active = 1
        self.shutter_open = False
        self.reset_flag = True
        self.status_b = False
        self._zero_f: float | None = None   # crystal frequency at the last zero (None: never zeroed -> f_q)
        self._sample: tuple[float, float] | None = None   # last internal reading (t, A)
        self._rate = 0.0
        self._rates: list[float] = []        # the last `rate_filter` reading-to-reading rates
        self._time0 = self.now()
        self.world.shutter(self.now(), False)  # type: ignore[union-attr]

    def power_cycle(self) -> None:
        super().power_cycle()
        self.status_b = True

    # -- physics ----------------------------------------------------------------------------------------

    def _mass(self) -> float:
        return float(self.world.qcm_areal_mass(self.now()))  # type: ignore[union-attr]

    def frequency(self) -> float:
        return F_Q - C_F * (self._mass() - self.crystal_mass0)

    def thickness_angstrom(self) -> float:
        """Film thickness since the last zero: Z-match at the active film, times its tooling."""
        film = self.films[self.active]
        rho, z = film.density * 1000, film.z_ratio
        t_m = zmatch_thickness_m(self.frequency(), rho, z)
        if self._zero_f is not None:
            t_m -= zmatch_thickness_m(self._zero_f, rho, z)
        sign = -1.0 if self.system.etch else 1.0
        return sign * t_m * film.tooling / 100 * self.system.crystal_tooling[0] / 100 * 1e10

    def rate_angstrom_s(self) -> float:
        """Thickness change between internal readings (one per time base), averaged over the rate filter."""
        now, thick = self.now(), self.thickness_angstrom()
        if self._sample is None:
            self._sample = (now, thick)
        elif now - self._sample[0] >= self.system.time_base:
            self._rates = [*self._rates, (thick - self._sample[1]) / (now - self._sample[0])]
            self._rates = self._rates[-self.system.rate_filter:]
            self._rate = sum(self._rates) / len(self._rates)
            self._sample = (now, thick)
        return self._rate

    def crystal_life(self) -> float:
        lo, hi = self.system.min_mhz * 1e6, self.system.max_mhz * 1e6
        return max(0.0, min(100.0, 100.0 * (self.frequency() - lo) / (hi - lo)))

    # -- framing ----------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        with self.lock:
            if self._inbuf and self.now() - self._last_rx > GAP_S:
                self._inbuf.clear()
            self._last_rx = self.now()
        super().write(data)

    def split(self) -> Iterator[bytes]:
        while self._inbuf:
            sync = self._inbuf.find(b"!")
            if sync < 0:
                self._inbuf.clear()
                return
            del self._inbuf[:sync]
            if len(self._inbuf) < 2:
                return
            end = 2 + max(1, self._inbuf[1] - 34) + 2
            if len(self._inbuf) < end:
                return
            msg = bytes(self._inbuf[:end])
            del self._inbuf[:end]
            yield msg

    # -- behaviour --------------------------------------------------------------------------------------

    def _answer(self, status: str, message: str = "") -> bytes:
        if status in "AB" and self.status_b:
            status, self.status_b = "B", False
        return response(status, message.encode("ascii"))

    def handle(self, message: bytes) -> bytes | None:
        body, crc = message[1:-2], message[-2:]
        if crc != crc14(body) and crc != b"\x00\x00":
            return self._answer("C")
        try:
            text = body[1:].decode("ascii")
        except UnicodeDecodeError:
            return self._answer("C")
        return self._answer(*self._execute(text))

    def error_reply(self, message: bytes) -> bytes | None:
        """INSTRUMENT_ERROR: the monitor refuses the command as in the wrong mode (status E)."""
        return self._answer("E")

    def _execute(self, text: str) -> tuple[str, str]:
        cmd, arg = text[:1], text[1:]
        if cmd == "@" and not arg:
            return "A", "MON Ver 4.13"
        if cmd == "J" and not arg:
            return "A", "2"
        if cmd == "Y" and not arg:
            flag, self.reset_flag = self.reset_flag, False
            return "A", "1" if flag else "0"
        if cmd in "LNPRMO" and cmd:
            return self._reading(cmd, arg.removesuffix("?"))
        if cmd == "S" and not arg:
            self._zero_f = self.frequency()
            self._sample, self._rate, self._rates = None, 0.0, []
            return "A", ""
        if cmd == "T" and not arg:
            self._time0 = self.now()
            return "A", ""
        if cmd == "W" and not arg:
            return "A", self._all_readings()
        if cmd == "Z" and not arg:
            self.films = {n: Film(name=f"FILM {n}") for n in range(1, 100)}
            self.system = System()
            return "A", ""
        if cmd == "B":
            return ("A", self.system.system1()) if arg == "?" else self._system1(arg)
        if cmd == "C":
            return ("A", self.system.system2()) if arg == "?" else self._system2(arg)
        if cmd == "D":
            if not arg.isdigit() or not 1 <= int(arg) <= 99:
                return "D", ""
            self.active = int(arg)
            return "A", ""
        if cmd == "A":
            return self._film(arg)
        if cmd == "U":
            return self._shutter(arg)
        return "C", ""

    def _reading(self, cmd: str, arg: str) -> tuple[str, str]:
        if cmd in "MO" and arg in ("", "1"):
            arg = "1"
        if arg not in ("1", "2"):
            return "D", ""
        crystal = arg == "1"
        if cmd in "LM":
            return "A", f"{self.rate_angstrom_s() if crystal else 0.0: .2f} "
        if cmd in "NO":
            return "A", f"{self.thickness_angstrom() if crystal else 0.0: .3f} "
        if cmd == "P":
            return "A", f"{self.frequency() if crystal else 0.0:.3f}"
        return "A", f"{self.crystal_life() if crystal else 0.0:.2f}"

    def _all_readings(self) -> str:
        minutes, seconds = divmod(int(self.now() - self._time0), 60)
        fields = [f"{min(minutes, 99):02d}.{seconds:02d}"]
        for sensor in ("1", "2"):
            fields += [self._reading(cmd, sensor)[1].strip() for cmd in "LNP"]
        return " ".join(fields)

    def _film(self, arg: str) -> tuple[str, str]:
        digits = len(arg) - len(arg.lstrip("0123456789"))
        if digits == 0 or not 1 <= int(arg[:digits]) <= 99:
            return "D", ""
        n, rest = int(arg[:digits]), arg[digits:]
        if rest == "?":
            return "A", self.films[n].message().decode("ascii")
        fields = rest[8:].split()
        if len(rest) < 9 or len(fields) != FILM_FIELDS:
            return "D", ""
        try:
            film = Film(rest[:8].rstrip(), float(fields[0]), int(fields[1]), float(fields[2]),
                        float(fields[3]), float(fields[4]), int(fields[5]), int(fields[6]))
        except ValueError:
            return "D", ""
        if not (0.5 <= film.density <= 99.99 and 10 <= film.tooling <= 399 and 0.1 <= film.z_ratio <= 9.999):
            return "D", ""
        if n == self.active and self.shutter_open:
            return "E", ""
        self.films[n] = film
        return "A", ""

    def _system1(self, arg: str) -> tuple[str, str]:
        """`B <time base> <simulate> <display> <resolution> <filter> <tooling 1..6>`."""
        fields = arg.split()
        try:
            base, flags = float(fields[0]), [int(f) for f in fields[1:5]]
            tooling = [int(f) for f in fields[5:]]
        except (ValueError, IndexError):
            return "D", ""
        ok = (len(fields) == 11 and 0.10 <= base <= 2.00 and flags[0] in (0, 1) and 0 <= flags[1] <= 3
              and flags[2] in (0, 1) and 1 <= flags[3] <= 20 and all(10 <= t <= 399 for t in tooling))
        if not ok:
            return "D", ""
        self.system.time_base = round(base, 2)
        sysp = self.system
        sysp.simulate, sysp.display, sysp.high_resolution, sysp.rate_filter = flags
        self.system.crystal_tooling = tuple(tooling)
        self._rates = []
        return "A", ""

    def _system2(self, arg: str) -> tuple[str, str]:
        """`C <min MHz> <max MHz> <min rate> <max rate> <min kA> <max kA> <etch>`."""
        fields = arg.split()
        try:
            values, etch = [float(f) for f in fields[:6]], int(fields[6])
        except (ValueError, IndexError):
            return "D", ""
        lo, hi, rlo, rhi, tlo, thi = values if len(values) == 6 else (0.0,) * 6
        ok = (len(fields) == 7 and 0.5 <= lo < hi <= 6.5 and 0 <= rlo <= rhi <= 999.0
              and 0 <= tlo <= thi <= 999.999 and etch in (0, 1))
        if not ok:
            return "D", ""
        sysp = self.system
        sysp.min_mhz, sysp.max_mhz, sysp.min_rate, sysp.max_rate, sysp.min_thick, sysp.max_thick = values
        sysp.etch = etch
        return "A", ""

    def _shutter(self, arg: str) -> tuple[str, str]:
        if arg == "?":
            return "A", "1" if self.shutter_open else "0"
        if arg not in ("0", "1"):
            return "D", ""
        if not self.stuck_busy:
            self.shutter_open = arg == "1"
            self.world.shutter(self.now(), self.shutter_open)  # type: ignore[union-attr]
        return "A", ""

    def rejects(self, reply: bytes) -> bool:
        """True when any response in `reply` has status `C` (invalid command or bad CRC), and for silence."""
        statuses, i = [], 0
        while i + 3 <= len(reply) and reply[i:i + 1] == b"!":
            statuses.append(reply[i + 2:i + 3])
            i += 2 + (reply[i + 1] - 35) + 2
        return not statuses or i != len(reply) or b"C" in statuses
