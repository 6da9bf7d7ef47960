"""What every planner is: built from the campaign's space, objectives, seed and options; `suggest(n,
observations, pending)` returns n points; `describe()` says what it is. A planner keeps nothing between
calls: the campaign rebuilds it from the rows at every suggestion, so a resumed campaign suggests exactly
what an uninterrupted one would have.

Observations are what the rows say about finished cells: a cell that failed lived `hours`; a cell alive at
the end of its test (`censored`) lived *at least* `hours`. Excluded cells (a hardware fault) tell nothing
about life and never reach a planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from labctl.campaign.planners.space import Space
from labctl.errors import ConfigError


class PlannerError(ConfigError):
    """A planner that cannot be built, or whose suggestion failed or is not a point of the space."""


@dataclass(frozen=True)
class Observation:
    """One finished cell: its factor values, `failed` (at `hours`) or `censored` (alive at `hours`), and the
    run's metrics (overpotentials ...; None where the analysis had none)."""

    values: dict[str, str]
    status: str
    hours: float | None
    metrics: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> float | None:
        if name == "hours_to_failure":
            return self.hours
        v = self.metrics.get(name)
        return None if v is None else float(v)


@dataclass(frozen=True)
class Objective:
    metric: str
    sense: str  # "maximise" or "minimise"


class Planner:
    """Base of the built-in planners and the contract of plug-ins (`labctl.planners` entry points name a
    subclass, with `LABCTL_PLUGIN_API = 1`). `OPTIONS` lists the option names it accepts with a one-line
    meaning; anything else in `planner.options` is refused before a campaign starts."""

    name: ClassVar[str] = "?"
    OPTIONS: ClassVar[dict[str, str]] = {}

    def __init__(self, space: Space, objectives: list[Objective], *, seed: int, options: dict[str, Any],
                 horizon_h: float | None = None, budget: int | None = None) -> None:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            known = ", ".join(sorted(self.OPTIONS)) or "none"
            raise PlannerError(f"planner `{self.name}`: unknown option(s) {', '.join(unknown)} "
                               f"(options: {known})")
        if not objectives:
            objectives = [Objective("hours_to_failure", "maximise")]
        self.space, self.objectives, self.seed = space, objectives, int(seed)
        self.options, self.horizon_h, self.budget = dict(options), horizon_h, budget

    def suggest(self, n: int, observations: list[Observation], pending: list[dict[str, str]]
                ) -> list[dict[str, str]]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "options": self.options,
                "objectives": [f"{o.sense} {o.metric}" for o in self.objectives]}

    def recommend(self, observations: list[Observation]) -> dict[str, str] | None:
        """The condition this planner believes best so far (by the first objective): here the best observed
        value, a censored life counted as it was seen. Censoring-aware planners override this."""
        o = self.objectives[0]
        seen = [(ob.metric(o.metric), i) for i, ob in enumerate(observations)
                if ob.metric(o.metric) is not None]
        if not seen:
            return None
        sign = 1.0 if o.sense == "maximise" else -1.0
        best = max(seen, key=lambda vi: (sign * float(vi[0]), -vi[1]))  # ties: the first seen
        return dict(observations[best[1]].values)
