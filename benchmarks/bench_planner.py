"""Does the censoring-aware Optuna planner find a long-lived condition with fewer cells than a grid?

The world is the dry-run simulators' physics, evaluated in-process (`labctl.campaign.planners.world`: the
immersion layer's Deal–Grove growth, the cell build with its scatter, the Weibull short clock): a cell at
(immersion time, InCl3 concentration) lives one draw of it, censored at the horizon. The truth is each
condition's median life over many draws; the best is found on a dense grid of the same evaluation.

Each planner runs the campaign loop (`planners.loop.run`: batches, rebuilt from the observations each time)
over 5 seeds with the same budget: `optuna` (censoring-aware, the default), `optuna` with censored = failed
(`naive`), `grid` (a full factorial of the budget's size, seeded order) and `random`. Measured per batch:
the regret (1 − true median / best) of the best condition *tried so far* and of the condition the planner
*recommends*; and the cells each needed to try a condition within 10 % of the best.

Usage: python benchmarks/bench_planner.py [--seeds 1 2 3 4 5] [--budget 30] [--batch 3] [--dense 31]
Writes benchmarks/planner_regret.png and prints the Markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from functools import cache
from pathlib import Path

import numpy as np

from labctl.campaign.planners import Axis, Objective, Space, make
from labctl.campaign.planners.loop import run
from labctl.campaign.planners.world import cell_life_h, median_life_h

HERE = Path(__file__).resolve().parent
SPACE = Space((Axis("immersion_time", 15.0, 3600.0, "s"), Axis("concentration", 0.02, 0.24, "M")))
HORIZON_H = 1000.0
PLANNERS = {"optuna": ("optuna", {}), "optuna naive": ("optuna", {"censoring": "naive"}),
            "grid": ("grid", {}), "random": ("random", {})}


def _xy(values: dict[str, str]) -> tuple[float, float]:
    return SPACE.axis("immersion_time").number(values["immersion_time"]), \
        SPACE.axis("concentration").number(values["concentration"])


@cache
def truth(t_s: float, c_m: float) -> float:
    return median_life_h(t_s, c_m, cells=401)


def dense_best(n: int) -> tuple[float, float, float]:
    """The best median life on an n x n grid (61 cells per point), then refined on the best point's cell."""
    ts, cs = np.linspace(15, 3600, n), np.linspace(0.02, 0.24, n)
    coarse = [(median_life_h(t, c, cells=61), t, c) for t in ts for c in cs]
    _, t0, c0 = max(coarse)
    dt, dc = (ts[1] - ts[0]), (cs[1] - cs[0])
    fine = [(truth(float(t), float(c)), float(t), float(c))
            for t in np.linspace(max(15, t0 - dt), min(3600, t0 + dt), 5)
            for c in np.linspace(max(0.02, c0 - dc), min(0.24, c0 + dc), 5)]
    return max(fine)


def draw(values: dict[str, str], rng: np.random.Generator) -> float:
    t, c = _xy(values)
    return cell_life_h(t, c, rng)


def one(name: str, seed: int, budget: int, batch: int, best: float) -> dict[str, list[float]]:
    kind, options = PLANNERS[name]
    planner = make(kind, SPACE, [Objective("hours_to_failure", "maximise")], seed=seed, options=options,
                   horizon_h=HORIZON_H, budget=budget)
    trace = run(planner, draw, budget=budget, batch=batch, horizon_h=HORIZON_H, seed=10_000 + seed)
    tried = [truth(*_xy(o.values)) for o in trace.observations]
    reached = np.maximum.accumulate(tried)
    per_batch = [1 - reached[min(len(tried), (k + 1) * batch) - 1] / best
                 for k in range(len(trace.recommended))]
    rec = [1 - truth(*_xy(r)) / best if r else 1.0 for r in trace.recommended]
    within = next((i + 1 for i, v in enumerate(tried) if v >= 0.9 * best), None)
    within5 = next((i + 1 for i, v in enumerate(tried) if v >= 0.95 * best), None)
    return {"tried": per_batch, "recommended": rec, "within10": [float(within or np.nan)],
            "within5": [float(within5 or np.nan)],
            "censored": [sum(o.status == "censored" for o in trace.observations) / len(trace.observations)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--dense", type=int, default=31)
    ap.add_argument("--out", type=Path, default=HERE / "planner_regret.png")
    a = ap.parse_args()
    t0 = time.perf_counter()
    best, bt, bc = dense_best(a.dense)
    print(f"world best median life {best:.0f} h at immersion {bt:.0f} s, {bc:.3f} M "
          f"(dense {a.dense}x{a.dense} grid + refinement, {time.perf_counter() - t0:.1f} s)")
    results: dict[str, list[dict[str, list[float]]]] = {}
    for name in PLANNERS:
        t1 = time.perf_counter()
        results[name] = [one(name, s, a.budget, a.batch, best) for s in a.seeds]
        print(f"{name}: {time.perf_counter() - t1:.1f} s for {len(a.seeds)} seeds")
    print()
    print("| planner | cells to a condition within 10 % of the best (per seed) | seeds that got there | "
          "cells to within 5 % | final regret, best tried (mean) | "
          "final regret, recommended (mean, per seed) | censored cells |")
    print("|---|---|---|---|---|---|---|")
    for name, rs in results.items():
        w = [r["within10"][0] for r in rs]
        recs = [r["recommended"][-1] for r in rs]
        w5 = [r["within5"][0] for r in rs]
        print(f"| {name} | {', '.join('–' if np.isnan(x) else str(int(x)) for x in w)} | "
              f"{sum(not np.isnan(x) for x in w)}/{len(w)} | "
              f"{', '.join('–' if np.isnan(x) else str(int(x)) for x in w5)} | "
              f"{np.mean([r['tried'][-1] for r in rs]):.3f} | "
              f"{np.mean(recs):.3f} ({', '.join(f'{x:.2f}' for x in recs)}) | "
              f"{np.mean([r['censored'][0] for r in rs]):.0%} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, title in ((axs[0], "tried", "best condition tried so far"),
                           (axs[1], "recommended", "condition the planner recommends")):
        for i, (name, rs) in enumerate(results.items()):
            m = np.array([r[key] for r in rs])
            x = (np.arange(m.shape[1]) + 1) * a.batch
            ax.plot(x, m.mean(axis=0), color=f"C{i}", label=name, lw=2)
            for row in m:
                ax.plot(x, row, color=f"C{i}", lw=0.6, alpha=0.35)
        ax.axhline(0.1, color="0.4", ls="--", lw=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("cells run")
        ax.set_ylim(-0.02, 1.0)
    axs[0].set_ylabel("regret: 1 − median life / world's best")
    axs[0].legend(fontsize=8)
    fig.suptitle(f"Planners on the simulated world: immersion 15 s–60 min × InCl3 0.02–0.24 M, horizon "
                 f"{HORIZON_H:.0f} h, best {best:.0f} h; {len(a.seeds)} seeds (thin), mean (thick)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(a.out, dpi=130)
    print(f"\nwrote {a.out}; total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
