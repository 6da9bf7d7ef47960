"""Baselines: `grid` (a full factorial of the budget's size, in a seeded random order) and `random`
(uniform points). Both ignore the observations; they are what a planner has to beat. Both space a log axis
(`Axis.logscale`) evenly in its logarithm, as the planner searches it."""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np

from labctl.campaign.planners.base import Observation, Planner, PlannerError


def _key(values: dict[str, str]) -> tuple[str, ...]:
    return tuple(sorted(values.items()))  # type: ignore[arg-type]


class GridPlanner(Planner):
    """A grid with `count` values per continuous factor (default: the most that fits the budget), every
    combination once, in a random order fixed by the seed; points already run or pending are skipped."""

    name: ClassVar[str] = "grid"
    OPTIONS: ClassVar[dict[str, str]] = {"count": "values per continuous factor (default: fits the budget)"}

    def _count(self) -> int:
        if "count" in self.options:
            c = self.options["count"]
            if isinstance(c, bool) or not isinstance(c, int) or c < 2:
                raise PlannerError(f"planner `grid`: option count must be a whole number >= 2, got {c!r}")
            return c
        cont = [a for a in self.space.axes if a.continuous]
        fixed = math.prod(len(a.choices) for a in self.space.axes if not a.continuous)
        if not cont:
            return 2
        per = (self.budget or 9) / fixed
        return max(2, math.floor(per ** (1.0 / len(cont)) + 1e-9))

    def points(self) -> list[dict[str, str]]:
        c = self._count()
        axes = [[a.text(x) for x in a.from_unit(np.linspace(0.0, 1.0, c))] if a.continuous
                else list(a.choices) for a in self.space.axes]
        grid = [dict(zip(self.space.names, combo, strict=True)) for combo in itertools.product(*axes)]
        order = np.random.default_rng(self.seed).permutation(len(grid))
        return [grid[k] for k in order]

    def suggest(self, n: int, observations: list[Observation], pending: list[dict[str, str]]
                ) -> list[dict[str, str]]:
        used: dict[tuple[str, ...], int] = {}
        for v in [o.values for o in observations] + pending:
            used[_key(v)] = used.get(_key(v), 0) + 1
        out = []
        grid = self.points()
        for rnd in itertools.count():  # past the grid's end: a second pass (replicates), and so on
            for p in grid:
                if used.get(_key(p), 0) > rnd:
                    continue
                used[_key(p)] = used.get(_key(p), 0) + 1
                out.append(p)
                if len(out) == n:
                    return out
            if not grid:
                return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "count": self._count()}


class RandomPlanner(Planner):
    """Uniform random points, the generator seeded by the seed and how many points came before (so a
    resumed campaign draws the same points)."""

    name: ClassVar[str] = "random"

    def suggest(self, n: int, observations: list[Observation], pending: list[dict[str, str]]
                ) -> list[dict[str, str]]:
        rng = np.random.default_rng([self.seed, len(observations) + len(pending)])
        out = []
        for _ in range(n):
            p = {}
            for a in self.space.axes:
                if a.continuous:
                    p[a.name] = a.text(float(a.from_unit(rng.uniform(0.0, 1.0))))
                else:
                    p[a.name] = a.choices[int(rng.integers(len(a.choices)))]
            out.append(p)
        return out
