"""The censoring-aware planner against the naive one on a synthetic censored problem.

A known life surface over two factors (log-median quadratic, best 3000 h at x = 0.95, y = 0.5: near the
edge of the range, where optima often are), Weibull draws of shape 2 around it, and a 700 h horizon that
censors every cell near the best. The same planner (Sobol start, TPE, the life surrogate), seeds and draws
for both; only the treatment of censoring differs. The naive reading (a censored cell failed at 700 h)
makes the surrogate's top a plateau at the horizon whose middle lies inside the range, away from the edge;
the censored fit extrapolates the surface from the failures around it. Regret is the relative shortfall of
the true median life at the condition each planner recommends after 24 cells.

With the best in the middle of the range (x = 0.75, y = 0.3) the plateau is centred on it and the naive
surrogate finds it as well (30 seeds: mean regret 0.12 aware vs 0.10 naive, no significant difference);
before the planner had a surrogate, naive meant TPE alone with the best seen recommended (0.38 there)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from labctl.campaign.planners import Axis, Objective, Space, make
from labctl.campaign.planners.loop import run

SPACE = Space((Axis("x", 0.0, 1.0), Axis("y", 0.0, 1.0)))
BEST, SHAPE, HORIZON = 3000.0, 2.0, 700.0
OPTIMUM = (0.95, 0.5)


def true_median(p: dict[str, str]) -> float:
    x, y = float(p["x"]), float(p["y"])
    return BEST * math.exp(-((x - OPTIMUM[0]) ** 2 + (y - OPTIMUM[1]) ** 2) / 0.3)


def draw(p: dict[str, str], rng: np.random.Generator) -> float:
    scale = true_median(p) / math.log(2) ** (1 / SHAPE)
    return scale * (-math.log1p(-rng.random())) ** (1 / SHAPE)


def regrets(censoring: str, seeds: range) -> np.ndarray:
    out = []
    for s in seeds:
        planner = make("optuna", SPACE, [Objective("hours_to_failure", "maximise")], seed=s,
                       options={"censoring": censoring})
        trace = run(planner, draw, budget=24, batch=4, horizon_h=HORIZON, seed=1000 + s)
        assert sum(o.status == "censored" for o in trace.observations) >= 3  # the best region is censored
        rec = trace.recommended[-1]
        assert rec is not None
        out.append(1.0 - true_median(rec) / BEST)
    return np.array(out)


@pytest.mark.timeout(900)  # ~30 s of CPU: minutes of wall on a loaded 2-core machine
def test_censoring_aware_planner_beats_naive_over_seeds() -> None:
    # 20 seeds: mean regret 0.16 aware vs 0.30 naive, aware lower in 16 (30 seeds: 0.14 vs 0.25, 23);
    # 10 seeds are too few to separate them reliably (0.19 vs 0.24 on seeds 0-9)
    seeds = range(20)
    aware, naive = regrets("weibull", seeds), regrets("naive", seeds)
    assert aware.mean() < 0.75 * naive.mean(), (aware, naive)
    # paired over the same seeds and draws: the aware planner's regret is lower more often than not, and the
    # difference is significant (one-sided Wilcoxon signed-rank)
    assert (aware < naive).sum() >= 12, (aware, naive)
    assert stats.wilcoxon(aware, naive, alternative="less").pvalue < 0.05, (aware, naive)


def test_naive_reading_ties_every_censored_cell() -> None:
    """What the naive planner sees: censored cells all equal the horizon; the aware one ranks them (each at
    least the horizon, larger where the fitted surface is higher)."""
    naive = make("optuna", SPACE, [Objective("hours_to_failure", "maximise")], seed=0,
                 options={"censoring": "naive"})
    aware = make("optuna", SPACE, [Objective("hours_to_failure", "maximise")], seed=0)
    trace = run(aware, draw, budget=24, batch=4, horizon_h=HORIZON, seed=7)
    cens = [i for i, o in enumerate(trace.observations) if o.status == "censored"]
    assert len(cens) >= 2
    nv = [v[0] for v in naive.objective_values(trace.observations) if v is not None]
    av = [v[0] for v in aware.objective_values(trace.observations) if v is not None]
    assert {nv[i] for i in cens} == {HORIZON}
    conditions = {tuple(sorted(trace.observations[i].values.items())) for i in cens}  # replicates: one each
    assert all(av[i] >= HORIZON for i in cens) and len({round(av[i], 6) for i in cens}) == len(conditions)
    failed = [i for i, o in enumerate(trace.observations) if o.status == "failed"]
    assert all(av[i] == nv[i] for i in failed)  # a failure is what it is
