"""The campaign file as pydantic models: protocols, factors, a design, objectives and a cap.

Quantities stay as the strings the file gives (`30 s`, `0.1 M`): a factor value becomes a `-p name=value`
override of a protocol parameter, so the protocol loader checks it exactly as it checks a command-line
override. What needs more than one field (a factor's unit against its parameter, a design against its cap)
is checked by `labctl.campaign.loader` with the file's positions.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: metrics an objective may name: the per-run cycling metrics of `labctl.analysis.report.cycling_metrics`
METRICS = (
    "hours_to_failure",
    "overpotential_cycle1_mV",
    "overpotential_cycle10_mV",
    "overpotential_100h_mV",
    "overpotential_last_mV",
    "hysteresis_cycle10_mV",
    "growth_mV_per_100h",
)
DESIGN_KINDS = ("full_factorial", "sobol", "latin_hypercube")
DEFAULT_CAP = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Protocols(_Strict):
    """A fabrication protocol and a test protocol, or one that does both (paths relative to the file)."""

    fabrication: str | None = Field(None, description="protocol file making the sample")
    test: str | None = Field(None, description="protocol file testing the cell (or doing both)")

    @model_validator(mode="after")
    def _one(self) -> Protocols:
        if not self.fabrication and not self.test:
            raise ValueError("`protocols` needs `test` (and optionally `fabrication`)")
        return self

    def items(self) -> list[tuple[str, str]]:
        pairs = (("fabrication", self.fabrication), ("test", self.test))
        return [(role, path) for role, path in pairs if path]


class Factor(_Strict):
    """One protocol parameter varied: exactly one of `range` (continuous), `levels` (discrete) or
    `categories` (categorical, e.g. a salt or a coating)."""

    range: list[str | float | int] | None = Field(
        None, min_length=2, max_length=2, description="[low, high] with units, e.g. [30 s, 120 s]"
    )
    count: int | None = Field(
        None, ge=2, le=100, description="values of a range in a full factorial design (evenly spaced)"
    )
    levels: list[str | float | int] | None = Field(None, min_length=1, description="discrete values")
    categories: list[str] | None = Field(None, min_length=1, description="categorical values")
    scale: Literal["auto", "linear", "log"] = Field(
        "auto", description="how a range is spaced: `log` evenly in its logarithm (a design's values, a "
        "planner's search and model); `linear`; `auto`: a planner uses log for a positive range spanning a "
        "decade or more, a design linear")

    @model_validator(mode="after")
    def _exactly_one(self) -> Factor:
        given = [n for n in ("range", "levels", "categories") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("a factor needs exactly one of `range`, `levels` or `categories`"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.count is not None and self.range is None:
            raise ValueError("`count` applies to a `range` factor only")
        if self.scale != "auto" and self.range is None:
            raise ValueError("`scale` applies to a `range` factor only")
        if self.scale == "log" and self.range is not None and _magnitude(self.range[0]) <= 0:
            raise ValueError("a `log` scale needs a range whose low end is above zero")
        return self

    @property
    def kind(self) -> str:
        if self.range is not None:
            return "continuous"
        return "discrete" if self.levels is not None else "categorical"


def _magnitude(value: str | float | int) -> float:
    """The number of a range end (inf when it does not parse: the loader reports its units)."""
    from labctl.units import UnitError, quantity

    try:
        return float(quantity(value).magnitude)
    except (UnitError, ValueError, TypeError):
        return float("inf")


class Design(_Strict):
    """How the points are chosen and ordered. Sobol and Latin hypercube use `scipy.stats.qmc` with `seed`;
    the order is shuffled with `seed` too (drawn and recorded when the file gives none)."""

    kind: Literal["full_factorial", "sobol", "latin_hypercube"] = "full_factorial"
    points: int | None = Field(None, ge=1, le=100_000, description="points drawn by sobol/latin_hypercube")
    replicates: int = Field(1, ge=1, le=1000, description="cells per design point")
    randomise: bool = Field(True, description="run the points in a random order (seeded)")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="seed of the sampler and the order")
    block_by: str | None = Field(None, description="a factor whose levels are run as blocks (e.g. a bath)")
    max_runs: int = Field(DEFAULT_CAP, ge=1, le=100_000, description="cap on points x replicates")

    @model_validator(mode="after")
    def _points(self) -> Design:
        if self.kind != "full_factorial" and self.points is None:
            raise ValueError(f"a `{self.kind}` design needs `points`")
        if self.kind == "full_factorial" and self.points is not None:
            raise ValueError("`points` applies to sobol and latin_hypercube designs (a full factorial has "
                             "every combination)")
        return self


class PlannerSpec(_Strict):
    """Points chosen by a planner from the observations so far, instead of a fixed design: `name` (optuna,
    grid, random or a `labctl.planners` plug-in), `budget` cells in all, `batch` queued at a time."""

    name: str = Field("optuna", min_length=1, max_length=100, description="planner (default optuna)")
    budget: int = Field(ge=1, le=100_000, description="cells in all (suggestions queued)")
    batch: int = Field(1, ge=1, le=1000, description="cells in flight at a time")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="planner seed (drawn if none)")
    options: dict[str, Any] = Field(default_factory=dict, description="the planner's own options")


class Objective(_Strict):
    """`{maximise: hours_to_failure}` or `{minimise: overpotential_cycle10_mV}`."""

    maximise: Literal[METRICS] | None = None  # type: ignore[valid-type]
    minimise: Literal[METRICS] | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _one(self) -> Objective:
        if (self.maximise is None) == (self.minimise is None):
            raise ValueError("an objective is `{maximise: METRIC}` or `{minimise: METRIC}`; metrics: "
                             + ", ".join(METRICS))
        return self

    @property
    def metric(self) -> str:
        return str(self.maximise or self.minimise)

    @property
    def sense(self) -> str:
        return "maximise" if self.maximise else "minimise"


class Campaign(_Strict):
    """A designed experiment over protocol parameters."""

    labctl: Literal[1] = Field(description="format version")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    protocols: Protocols
    station: str | None = Field(None, description="station file the points are planned against (with "
                                "`protocols.fabrication`: the fabrication bench)")
    cycler: str | None = Field(None, description="with `protocols.fabrication`: the station or multi-channel "
                               "cycler (a rack file) the test runs take channels on; default: `station`")
    factors: dict[str, Factor] = Field(min_length=1)
    design: Design = Field(default_factory=Design)
    planner: PlannerSpec | None = Field(None, description="a planner instead of a fixed design")
    objectives: list[Objective] = Field(default_factory=list)
    horizon: str | None = Field(
        None, description="test length after which a cell still alive is censored, e.g. 1000 h"
    )
