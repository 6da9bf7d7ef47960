"""A planner closing the loop against a function instead of a bench: the synthetic censored problem of the
tests and the in-process world of `benchmarks/bench_planner.py`. The loop is the campaign's: batches of
`batch` suggestions, each cell a life drawn by `draw(values, rng)` and censored at the horizon, the planner
rebuilt from the observations at every batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labctl.campaign.planners import Planner, suggest
from labctl.campaign.planners.base import Observation


@dataclass
class Trace:
    observations: list[Observation]
    recommended: list[dict[str, str] | None]  # after each batch


def run(planner: Planner, draw: Callable[[dict[str, str], np.random.Generator], float], *, budget: int,
        batch: int, horizon_h: float, seed: int) -> Trace:
    """Run `budget` cells through `planner` in batches; `draw` gives a cell's true life (h)."""
    rng = np.random.default_rng(seed)
    obs: list[Observation] = []
    rec: list[dict[str, str] | None] = []
    while len(obs) < budget:
        pts = suggest(planner, min(batch, budget - len(obs)), obs, [])
        for p in pts:
            life = float(draw(p, rng))
            obs.append(Observation(p, "failed", life) if life <= horizon_h else
                       Observation(p, "censored", horizon_h))
        rec.append(planner.recommend(obs))
    return Trace(obs, rec)
