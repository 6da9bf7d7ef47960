"""Protocol file models (pydantic v2). Values are held in labctl's internal units after parsing: SI floats
(s, m, m/s, m^3, m^3/s, A/m^2, C/m^2, A, V, W, W/s, Pa, Hz, m^2) except temperatures (degC), gas flow (sccm)
and stirring (rpm); concentrations are mol/m^3 ("0.1 M" -> 100.0), areal capacity C/m^2 (1 mAh/cm^2 = 36000).

In the file each step is a one-key mapping `- <kind>: {...}`; the loader turns it into `{kind: ..., ...}` so
`Protocol.steps` is a list discriminated by `kind`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from labctl.protocol.fields import STRICT, Chem, Count, Flag, Label, Name, Qty, Text


class Override(BaseModel):
    """Explicit permission for a hazard (AsCl3, a solvent that reacts with Li); the reason is recorded."""

    model_config = STRICT
    reason: Text

    @field_validator("reason")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if len(value.strip()) < 10:
            raise ValueError("`reason` must say why (at least 10 characters)")
        return value


class Sample(BaseModel):
    """The sample: `id` (may reach an instrument, so restricted), substrate, electrode area (m^2),
    optional Li thickness (m) used to check cycling capacity against the Li inventory."""

    model_config = STRICT
    id: Name
    substrate: Label = "Li foil"
    area: Qty("area") | None = None
    li_thickness: Qty("length") | None = None


class _Step(BaseModel):
    model_config = STRICT
    label: Label | None = None


class PrepareBath(_Step):
    """Fill `bath` with `volume` (m^3) of `salt` at `concentration` (mol/m^3) in `solvent`, from the station's
    stock and solvent pumps (C1V1 = C2V2); heat to `temperature` (degC), stir at `stir` (rpm), pump at
    `rate` (m^3/s), then settle for `settle` (s). `water` is the solvent's water content (fraction)."""

    kind: Literal["prepare_bath"] = "prepare_bath"
    bath: Name
    solvent: Chem
    salt: Chem | None = None
    concentration: Qty("concentration") | None = None
    volume: Qty("volume")
    temperature: Qty("temperature") | None = None
    stir: Qty("rotation") | None = None
    rate: Qty("volume_flow") = 5e-6 / 60
    settle: Qty("duration") = 60.0
    water: Qty("fraction") | None = None
    override: Override | None = None

    @model_validator(mode="after")
    def _salt_and_concentration(self) -> PrepareBath:
        if (self.salt is None) != (self.concentration is None):
            raise ValueError("give both `salt` and `concentration`, or neither for a neat solvent")
        return self


class Rinse(BaseModel):
    """Dip into `bath` for `time` (s) after the immersion."""

    model_config = STRICT
    bath: Name
    time: Qty("duration")


class Immerse(_Step):
    """Immersion alloying: lower the sample `depth` (m) below the surface of `bath` at `speed` (m/s), hold for
    `time` (s, timed from the stage's confirmation), withdraw, optionally rinse, then dry for `dry` (s)."""

    kind: Literal["immerse"] = "immerse"
    bath: Name
    depth: Qty("length")
    speed: Qty("speed")
    time: Qty("duration")
    rinse: Rinse | None = None
    dry: Qty("duration") = 0.0


class DipCoat(_Step):
    """Dip coating: into `bath` to `depth` (m) at `dip_speed` (m/s), `dwell` (s), withdraw at
    `withdrawal_speed` (m/s), dry `drying_time` (s); repeated `cycles` times. `polymer`/`solvent` describe the
    solution (the solvent is checked against Li)."""

    kind: Literal["dip_coat"] = "dip_coat"
    bath: Name
    depth: Qty("length")
    dip_speed: Qty("speed")
    dwell: Qty("duration")
    withdrawal_speed: Qty("speed")
    drying_time: Qty("duration")
    cycles: Count(ge=1, le=100) = 1
    polymer: Chem | None = None
    solvent: Chem | None = None
    drying_temperature: Qty("temperature") | None = None
    override: Override | None = None


PressureFault = Literal["fail", "pause", "abort", "end_step"]
"""What a chamber-pressure excursion does to a sputter or nitride step (RF goes off first in every case)."""


class Sputter(_Step):
    """RF magnetron sputtering of `target` (LiF) in `gas` at `flow` (sccm) and `pressure` (Pa), `power` (W)
    ramped at `ramp_rate` (W/s), after pumping to `base_pressure` (Pa) and `presputter` (s) with the shutter
    closed; deposit until the QCM reads `thickness` (m) or `max_time` (s) has passed."""

    kind: Literal["sputter"] = "sputter"
    target: Chem = "LiF"
    gas: Chem = "Ar"
    flow: Qty("gas_flow")
    pressure: Qty("pressure")
    power: Qty("power")
    ramp_rate: Qty("power_rate")
    base_pressure: Qty("pressure")
    presputter: Qty("duration") = 300.0
    thickness: Qty("length")
    max_time: Qty("duration")
    tooling: Qty("fraction") = 1.0
    density: Qty("density") = 2640.0
    z_ratio: float = Field(0.778, gt=0, le=10)
    max_reflected: Qty("fraction") = 0.05
    max_substrate_temperature: Qty("temperature") = 60.0
    on_pressure_fault: PressureFault = "fail"


class Nitride(_Step):
    """N2-plasma nitridation (Li3N): `gas` (N2, `purity` as impurity fraction O2+H2O) at `flow` (sccm) and
    `pressure` (Pa), plasma `power` (W, ramped at `ramp_rate` W/s) for `time` (s)
    after `base_pressure` (Pa)."""

    kind: Literal["nitride"] = "nitride"
    gas: Chem = "N2"
    impurity: Qty("fraction") = 1e-6
    flow: Qty("gas_flow")
    pressure: Qty("pressure")
    power: Qty("power")
    ramp_rate: Qty("power_rate")
    base_pressure: Qty("pressure")
    time: Qty("duration")
    max_substrate_temperature: Qty("temperature") = 60.0
    on_pressure_fault: PressureFault = "fail"


class ShortDetection(BaseModel):
    """A short is flagged when |V| stays below `threshold` (V) for `window` (s); `stop_after` (s) ends the
    step that long after a short (None: continue, the data is valuable)."""

    model_config = STRICT
    threshold: Qty("voltage") = 0.002
    window: Qty("duration") = 600.0
    stop_after: Qty("duration") | None = None


class _Cycling(_Step):
    temperature: Qty("temperature") | None = None
    time_cap: float = Field(1.2, ge=1.0, le=10.0, description="step-time cap as a multiple of Q/j")


class CycleSymmetric(_Cycling):
    """Galvanostatic Li|Li cycling at `current_density` (A/m^2) for `capacity` (C/m^2) per half-cycle (or
    `half_cycle` s), `cycles` times, sampling every `sample_every` (s), compliance `voltage_limit` (V),
    `rest` (s) between half-cycles."""

    kind: Literal["cycle_symmetric"] = "cycle_symmetric"
    current_density: Qty("current_density")
    capacity: Qty("areal_capacity") | None = None
    half_cycle: Qty("duration") | None = None
    cycles: Count(ge=1, le=1_000_000)
    sample_every: Qty("duration") = 1.0
    voltage_limit: Qty("voltage")
    rest: Qty("duration") = 0.0
    short_detection: ShortDetection = Field(default_factory=ShortDetection)

    @model_validator(mode="after")
    def _capacity_or_time(self) -> CycleSymmetric:
        if (self.capacity is None) == (self.half_cycle is None):
            raise ValueError("give exactly one of `capacity` or `half_cycle`")
        return self


class RateStage(BaseModel):
    """One stage of a rate test: `current_density` (A/m^2) for `cycles`."""

    model_config = STRICT
    current_density: Qty("current_density")
    cycles: Count(ge=1, le=100_000)


class RateTest(_Cycling):
    """Symmetric cycling through `stages` of increasing current density at fixed `capacity` (C/m^2)."""

    kind: Literal["rate_test"] = "rate_test"
    stages: list[RateStage] = Field(min_length=1, max_length=100)
    capacity: Qty("areal_capacity")
    sample_every: Qty("duration") = 1.0
    voltage_limit: Qty("voltage")
    rest: Qty("duration") = 0.0


class CoulombicEfficiency(_Cycling):
    """Li|Cu Coulombic efficiency: plate `capacity` (C/m^2) at `current_density` (A/m^2), strip to
    `cutoff_voltage` (V), `cycles` times. `method: aurbach` (Adams et al. 2018): form (plate
    `formation_capacity`, strip), plate reservoir `reservoir_capacity`, `cycles` of `capacity`, strip all."""

    kind: Literal["coulombic_efficiency"] = "coulombic_efficiency"
    method: Literal["cycling", "aurbach"] = "cycling"
    current_density: Qty("current_density")
    capacity: Qty("areal_capacity")
    cutoff_voltage: Qty("voltage")
    cycles: Count(ge=1, le=100_000)
    plating_voltage_limit: Qty("voltage") = -1.0
    formation_capacity: Qty("areal_capacity") = 5 * 36000.0
    reservoir_capacity: Qty("areal_capacity") = 5 * 36000.0
    sample_every: Qty("duration") = 1.0
    rest: Qty("duration") = 0.0


_RANGE = re.compile(r"^\s*(.+?)\s*\.\.\s*(.+?)\s*$")


class Eis(_Step):
    """Impedance spectrum from `f_start` to `f_end` (Hz), written `frequencies: 1 MHz..0.1 Hz`,
    `points_per_decade`, `amplitude` (V rms) around `dc` (V; `ocv: true` = at open-circuit potential)."""

    kind: Literal["eis"] = "eis"
    frequencies: str = Field(json_schema_extra={"examples": ["1 MHz..0.1 Hz"]})
    points_per_decade: Count(ge=1, le=100) = 10
    amplitude: Qty("voltage")
    dc: Qty("voltage") = 0.0
    ocv: Flag = True
    settle: Qty("duration") = 0.0

    @field_validator("frequencies")
    @classmethod
    def _range(cls, value: str) -> str:
        from labctl.units import UnitError, parse

        match = _RANGE.match(value)
        if not match:
            raise ValueError(f"`frequencies` must be a range such as `1 MHz..0.1 Hz`, got `{value[:40]}`")
        try:
            a, b = parse(match.group(1), "frequency"), parse(match.group(2), "frequency")
        except UnitError as exc:
            raise ValueError(f"`frequencies` {exc}") from None
        if a <= 0 or b <= 0 or a == b:
            raise ValueError("`frequencies` must be two different positive frequencies")
        return value

    @property
    def f_start(self) -> float:
        from labctl.units import parse

        return parse(_RANGE.match(self.frequencies).group(1), "frequency")  # type: ignore[union-attr]

    @property
    def f_end(self) -> float:
        from labctl.units import parse

        return parse(_RANGE.match(self.frequencies).group(2), "frequency")  # type: ignore[union-attr]


class Ocv(_Step):
    """Open-circuit voltage for `duration` (s), sampled every `sample_every` (s)."""

    kind: Literal["ocv"] = "ocv"
    duration: Qty("duration")
    sample_every: Qty("duration") = 10.0


class Rest(_Step):
    """Rest at open circuit for `duration` (s), optionally sampling the voltage every `sample_every` (s)."""

    kind: Literal["rest"] = "rest"
    duration: Qty("duration")
    sample_every: Qty("duration") | None = None


class Wait(_Step):
    """Do nothing for `duration` (s)."""

    kind: Literal["wait"] = "wait"
    duration: Qty("duration")


class CellBuild(BaseModel):
    """The cell an operator step assembles: recorded with the run, and built by the simulated world."""

    model_config = STRICT
    kind: Literal["symmetric", "li_cu"] = "symmetric"
    electrolyte: Literal["carbonate", "ether"] = "carbonate"
    separator: Literal["celgard", "gf"] = "celgard"
    coated: Literal["both", "one", "none"] = "both"


class Operator(_Step):
    """Show `message` and wait for the operator's confirmation, at most `timeout` (s) if given; `cell`
    describes the cell assembled at this step, if any."""

    kind: Literal["operator"] = "operator"
    message: Text
    timeout: Qty("duration") | None = None
    cell: CellBuild | None = None


Step = Annotated[
    PrepareBath
    | Immerse
    | DipCoat
    | Sputter
    | Nitride
    | CycleSymmetric
    | RateTest
    | CoulombicEfficiency
    | Eis
    | Ocv
    | Rest
    | Wait
    | Operator,
    Field(discriminator="kind"),
]

STEP_KINDS: tuple[str, ...] = (
    "prepare_bath",
    "immerse",
    "dip_coat",
    "sputter",
    "nitride",
    "cycle_symmetric",
    "rate_test",
    "coulombic_efficiency",
    "eis",
    "ocv",
    "rest",
    "operator",
    "wait",
)


class Protocol(BaseModel):
    """A protocol file after `${param}` substitution: format `labctl: 1`, name, sample, steps."""

    model_config = STRICT
    labctl: Literal[1]
    name: Label
    description: Text | None = None
    sample: Sample | None = None
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    override: Override | None = None
    steps: list[Step] = Field(min_length=1, max_length=10_000)
