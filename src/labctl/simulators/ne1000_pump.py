"""One simulated NE-1000 pump: its non-volatile data, its Pumping Program and the volume it moves in simulated
time (manual §10.4; the wire protocol and the network are `labctl.simulators.ne1000`).

A program is 41 phases; rate phases (`RAT`, `INC`, `DEC`) pump their volume at their rate and direction, the
others take no time (`JMP`, loops `LPS`/`LOP`, `CLD`, `OUT`, `BEP`, and `IF`/event traps, which never fire
because nothing is wired to the TTL inputs) except `PAS n` (pause phase, prompt `T`; `PAS 0` waits for a
trigger, prompt `U`) and `STP`, which ends the program. A rate phase that cannot run (rate 0 or beyond the
plunger's speed) raises the program-error alarm `A?E`; running past phase 41 raises `A?O`. The plunger speed
range 0.0421 .. 3060 mm/h is derived from the NE-1000 specification (1699 mL/h with a 26.59 mm syringe,
0.73 uL/h with a 4.699 mm syringe) [verify on hardware]. Where the syringe's plunger travel is given
(`travel_mm`, `position_mm`), running into either end of it stalls the motor: the pump stops with the
manual's stall alarm `A?S`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

DIAMETER_MM = (0.1, 50.0)
LINEAR_MM_H = (0.0421, 3060.0)         # plunger speed range (see module docstring)
RATE_UNITS = {"UM": (1e-9, 60.0), "MM": (1e-6, 60.0), "UH": (1e-9, 3600.0), "MH": (1e-6, 3600.0)}  # m^3, s
VOLUME_UNITS = {"UL": 1e-9, "ML": 1e-6}
PHASES = 41
MOVING, RUNNING = "IWX", "IWXTU"       # motor turning; program running (incl. pause phase, user wait)
RATE_FUNCTIONS = ("RAT", "INC", "DEC")
#: phase functions and the range of their data (None: no data)
FUNCTIONS: dict[str, tuple[int, int] | None] = {
    "RAT": None, "INC": None, "DEC": None, "STP": None, "JMP": (1, PHASES), "PRI": None, "LPS": None,
    "LOP": (1, 99), "LPE": None, "PAS": (0, 99), "IF": (1, PHASES), "EVN": (1, PHASES), "EVS": (1, PHASES),
    "EVR": None, "CLD": None, "OUT": (0, 1), "BEP": None}
#: on/off settings and their power-on defaults
FLAGS = {"LOC": 0, "ALA": 0, "PF": 0, "DIN": 0, "ROM": 0, "BP": 1}
TRIGGERS = ("FT", "FH", "F2", "LE", "ST", "T2")


@dataclass
class Phase:
    """One Pumping Program phase: its function and, for rate phases, rate, volume and direction."""

    function: str = "RAT"
    data: int = 0                  # JMP/IF/EVN/EVS phase, LOP count, PAS seconds, OUT level
    rate: float = 0.0              # value in rate_units
    rate_units: str = "MM"
    direction: str = "INF"
    target: float = 0.0            # volume to be dispensed, in the pump's volume units (0 = continuous)

    def describe(self) -> str:
        if FUNCTIONS[self.function] is None:
            return self.function
        return f"{self.function}{self.data}" if self.function == "OUT" else f"{self.function}{self.data:02d}"


@dataclass
class Pump:
    """One pump's state (non-volatile data and what it is doing). Rate data is the selected phase's."""

    name: str
    address: int
    diameter_mm: float = 0.0
    volume_units: str = "ML"
    phases: list[Phase] = field(default_factory=lambda: [Phase("RAT" if i == 0 else "STP")
                                                         for i in range(PHASES)])
    phase_no: int = 1              # selected phase (PHN), the running one while the program runs
    infused_m3: float = 0.0
    withdrawn_m3: float = 0.0
    prompt: str = "S"              # S stopped, I/W pumping, P paused, X purging, T pause phase, U user wait
    alarm: str | None = "R"
    run_t0: float = 0.0
    run_rate_m3_s: float = 0.0     # signed by direction of the running phase; magnitude used for volumes
    phase_done_m3: float = 0.0     # volume pumped in the current phase before the current run segment
    run_until: float | None = None  # end of the running rate phase or pause phase
    loops: dict[int, int] = field(default_factory=dict)   # LOP phase -> repeats left
    loop_start: int = 1
    flags: dict[str, int] = field(default_factory=lambda: dict(FLAGS))
    trigger: str = "FT"
    out_level: int = 0
    buzzer: int = 0
    safe_timeout: int = 0          # SAF: 0 = basic mode
    safe_deadline: float | None = None
    #: plunger travel (mm) of the syringe on the pump, None = not modelled; position = how far the plunger
    #: is withdrawn from empty (mm). Infusing to 0 or withdrawing to `travel_mm` stalls the motor (`A?S`).
    travel_mm: float | None = None
    position_mm: float = 0.0
    stalling: bool = False         # the running segment ends at the end of travel, not at its volume
    #: where the pump reports its flow: (name, from t, m^3/s signed, until t or None) -> world.pump_flow
    flow: Callable[[str, float, float, float | None], None] = field(default=lambda *_: None, repr=False)

    @property
    def phase(self) -> Phase:
        return self.phases[self.phase_no - 1]

    @property
    def rate(self) -> float:
        return self.phase.rate

    @property
    def rate_units(self) -> str:
        return self.phase.rate_units

    @property
    def direction(self) -> str:
        return self.phase.direction

    @property
    def target(self) -> float:
        return self.phase.target

    def rate_m3_s(self) -> float:
        unit, seconds = RATE_UNITS[self.rate_units]
        return self.rate * unit / seconds

    def target_m3(self) -> float:
        return self.target * VOLUME_UNITS[self.volume_units]

    # -- the Pumping Program in simulated time --------------------------------------------------------

    def settle(self, t: float) -> None:
        """Account the volume pumped up to t, moving through the program's phases as they end."""
        for _ in range(10_000):
            if self.prompt not in RUNNING:
                return
            end = t if self.run_until is None else min(t, self.run_until)
            if self.prompt in MOVING:
                moved = abs(self.run_rate_m3_s) * max(0.0, end - self.run_t0)
                if self.run_rate_m3_s < 0:
                    self.withdrawn_m3 += moved
                else:
                    self.infused_m3 += moved
                self.phase_done_m3 += moved
                if self.travel_mm is not None and self.area_mm2() > 0:
                    step = moved * 1e9 / self.area_mm2()
                    self.position_mm += step if self.run_rate_m3_s < 0 else -step
                    self.position_mm = min(max(self.position_mm, 0.0), self.travel_mm)
            self.run_t0 = end
            if self.run_until is None or t < self.run_until:
                return
            if self.stalling:                 # end of travel: the motor stalls (the world knows it stopped)
                self.prompt, self.stalling = "S", False
                self.program_error(self.run_until, "S")
                return
            if self.prompt == "X":
                return
            self.next_phase(self.run_until)
        self.program_error(t, "E")

    def next_phase(self, t: float) -> None:
        """The running phase ended at t: go on with the next one."""
        previous = abs(self.run_rate_m3_s)
        if self.prompt in MOVING:
            self.prompt = "S"          # the world was told the flow ends here: no halt to send
        if self.phase_no >= PHASES:
            self.program_error(t, "O")
            return
        self.phase_no += 1
        self.enter_phase(t, previous)

    def enter_phase(self, t: float, previous_rate: float = 0.0) -> None:
        """Run the phase `self.phase_no` from time t; non-pumping functions take no time."""
        for _ in range(1000):
            phase = self.phase
            fun, jump = phase.function, None
            self.phase_done_m3, self.run_until = 0.0, None
            if fun in RATE_FUNCTIONS:
                rate = self.rate_m3_s()
                rate = {"RAT": rate, "INC": previous_rate + rate, "DEC": previous_rate - rate}[fun]
                if rate <= 0 or rate > self.max_rate():
                    self.program_error(t, "E")
                else:
                    self.start(t, rate)
                return
            if fun == "STP":
                self.stop_motor(t)
                self.end_program()
                return
            if fun == "PAS":
                self.stop_motor(t)
                self.prompt, self.run_t0 = ("U", t) if phase.data == 0 else ("T", t)
                self.run_until = None if phase.data == 0 else t + phase.data
                return
            if fun == "JMP":
                jump = phase.data
            elif fun == "LPS":
                self.loop_start = self.phase_no
            elif fun == "LOP":
                left = self.loops.get(self.phase_no, phase.data)
                if left > 0:
                    self.loops[self.phase_no], jump = left - 1, self.loop_start
                else:
                    self.loops.pop(self.phase_no, None)
            elif fun == "CLD":
                self.infused_m3 = self.withdrawn_m3 = 0.0
            elif fun == "OUT":
                self.out_level = phase.data
            # IF (inputs read high), EVN/EVS/EVR (no events), PRI, LPE and BEP go on to the next phase
            if jump is not None:
                self.phase_no = jump
            elif self.phase_no >= PHASES:
                self.program_error(t, "O")
                return
            else:
                self.phase_no += 1
        self.program_error(t, "E")

    def program_error(self, t: float, alarm: str) -> None:
        """Stop at t with `alarm` pending (E program error, O phase out of range, T safe-mode time out)."""
        self.stop_motor(t)
        self.end_program()
        self.alarm = alarm

    def stop_motor(self, t: float) -> None:
        if self.prompt in MOVING:
            self.halt(t)

    def end_program(self) -> None:
        """Program stopped: prompt S, phase 1 selected again, loop counters cleared."""
        self.prompt, self.phase_no, self.phase_done_m3, self.run_until = "S", 1, 0.0, None
        self.loops.clear()
        self.loop_start, self.stalling = 1, False

    def start(self, t: float, rate: float | None = None, purge: bool = False) -> None:
        """Pump the selected phase from t (at `rate` m^3/s, its own by default; purge: flat out, no end)."""
        rate = self.max_rate() if purge else (self.rate_m3_s() if rate is None else rate)
        withdraw = self.direction == "WDR"
        self.prompt = "X" if purge else ("W" if withdraw else "I")
        self.run_t0 = t
        self.run_rate_m3_s = -rate if withdraw else rate
        left = self.target_m3() - self.phase_done_m3
        self.run_until = None if purge or self.target <= 0 else t + max(0.0, left) / rate
        self.stalling = False
        if self.travel_mm is not None:
            room_mm = self.travel_mm - self.position_mm if withdraw else self.position_mm
            t_stall = t + room_mm * self.area_mm2() * 1e-9 / rate
            if self.run_until is None or t_stall < self.run_until:
                self.run_until, self.stalling = t_stall, True
        self.flow(self.name, t, self.run_rate_m3_s, self.run_until)

    def halt(self, t: float) -> None:
        self.flow(self.name, t, 0.0, None)

    def area_mm2(self) -> float:
        return math.pi / 4 * self.diameter_mm ** 2

    def max_rate(self) -> float:
        return self.area_mm2() * LINEAR_MM_H[1] * 1e-9 / 3600 * (1 + 1e-9)

    def rate_ok(self, value: float, units: str) -> bool:
        """Whether `value` `units` is within the plunger's speed range for this syringe."""
        unit, seconds = RATE_UNITS[units]
        area = self.area_mm2()
        if area <= 0:
            return False
        speed_mm_h = value * unit / seconds * 1e9 * 3600 / area
        return LINEAR_MM_H[0] <= speed_mm_h <= LINEAR_MM_H[1]
