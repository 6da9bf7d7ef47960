"""The campaign report's figures beyond the Kaplan–Meier curves: a life heatmap over two factors, main
effects on life, and overpotential / hysteresis against each factor.

Censoring is respected everywhere: the heatmap is the median life of a censored Weibull fit over the factors
(`survival.weibull_aft`, the model the censoring-aware planner uses), with every cell drawn on it (filled:
failed, open: alive at the end); a main effect is each level's censored Weibull median with its profile
interval (or, with fewer than two failures, a lower bound drawn as such), never a mean of censored hours.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from labctl.campaign import survival
from labctl.units import UnitError, quantity

METRIC_LABELS = {"overpotential_cycle10_mV": "overpotential, cycle 10 (mV)",
                 "hysteresis_cycle10_mV": "hysteresis, cycle 10 (mV)"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def numeric(values: Any) -> tuple[np.ndarray | None, str]:
    """A factor column as numbers in its first value's unit (None, "" when it is categorical)."""
    vals = [v for v in values if v is not None]
    try:
        qs = [quantity(v) for v in vals]
        unit = qs[0].units if qs else None
        return np.array([float(q.to(unit).magnitude) for q in qs]), (f"{unit:~}" if unit is not None
                                                                     and not qs[0].unitless else "")
    except (UnitError, ValueError, Exception):  # pint's DimensionalityError too: then it is categorical
        return None, ""


def _design(obs: Any, factors: list[str]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Features (1, scaled numeric factors, squares, products, one-hot categories) and each axis's spec."""
    axes, cols = [], []
    for f in factors:
        x, unit = numeric(obs[f])
        if x is not None and np.ptp(x) > 0:
            lo, hi = float(x.min()), float(x.max())
            axes.append({"name": f, "kind": "num", "lo": lo, "hi": hi, "unit": unit})
            cols.append(2 * (x - lo) / (hi - lo) - 1)
        else:
            cats = sorted({str(v) for v in obs[f]})
            axes.append({"name": f, "kind": "cat", "cats": cats})
    return np.column_stack(cols) if cols else np.zeros((len(obs), 0)), axes


def _features(u: np.ndarray, cats: list[np.ndarray]) -> np.ndarray:
    n = u.shape[0]
    parts = [np.ones((n, 1)), u, u**2]
    d = u.shape[1]
    parts += [(u[:, i] * u[:, j])[:, None] for i in range(d) for j in range(i + 1, d)]
    parts += cats
    return np.column_stack(parts)


def _encode(obs: Any, axes: list[dict[str, Any]]) -> tuple[np.ndarray, list[np.ndarray]]:
    us, cats = [], []
    for a in axes:
        if a["kind"] == "num":
            x, _ = numeric(obs[a["name"]])
            assert x is not None
            us.append(2 * (x - a["lo"]) / (a["hi"] - a["lo"]) - 1)
        else:
            v = obs[a["name"]].astype(str).to_numpy()
            cats += [(v == c).astype(float)[:, None] for c in a["cats"][1:]]
    return (np.column_stack(us) if us else np.zeros((len(obs), 0))), cats


def life_heatmap(obs: Any, factors: list[str], path: Path) -> Path | None:
    """Median life over the first two factors (others at their first level / mid-range); None with fewer
    than two factors or two usable cells."""
    used = obs[obs["status"].isin(["failed", "censored"])]
    if len(factors) < 2 or len(used) < 2:
        return None
    _, axes = _design(used, factors)
    u, cats = _encode(used, axes)
    failed = (used["status"] == "failed").to_numpy()
    model = survival.weibull_aft(_features(u, cats), used["hours"].to_numpy(float), failed)
    fx, fy = axes[0], axes[1]

    def grid(a: dict[str, Any]) -> tuple[np.ndarray, list[str] | None]:
        if a["kind"] == "num":
            return np.linspace(-1, 1, 80), None
        return np.arange(len(a["cats"]), dtype=float), a["cats"]

    gx, cx = grid(fx)
    gy, cy = grid(fy)
    xx, yy = np.meshgrid(gx, gy)
    flat = {fx["name"]: xx.ravel(), fy["name"]: yy.ravel()}
    us, cat_cols = [], []
    for a in axes:
        v = flat.get(a["name"])
        if a["kind"] == "num":
            us.append(v if v is not None else np.zeros(xx.size))
        else:
            idx = v.astype(int) if v is not None else np.zeros(xx.size, int)
            cat_cols += [(idx == k).astype(float)[:, None] for k in range(1, len(a["cats"]))]
    med = model.median(_features(np.column_stack(us) if us else np.zeros((xx.size, 0)), cat_cols))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))

    def real(a: dict[str, Any], g: np.ndarray) -> np.ndarray:
        return a["lo"] + (g + 1) / 2 * (a["hi"] - a["lo"]) if a["kind"] == "num" else g

    mesh = ax.pcolormesh(real(fx, gx), real(fy, gy), np.log10(med.reshape(xx.shape)), shading="nearest",
                         cmap="viridis")
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label("median life, log10(h) (censored Weibull fit)")

    def pos(a: dict[str, Any]) -> np.ndarray:
        if a["kind"] == "num":
            x, _ = numeric(used[a["name"]])
            return np.asarray(x)
        return np.array([a["cats"].index(str(v)) for v in used[a["name"]]], dtype=float)

    px, py = pos(fx), pos(fy)
    rng = np.random.default_rng(0)  # replicates at one condition spread a little so each shows
    jx = (np.ptp(real(fx, gx)) or 1) * 0.01 * rng.standard_normal(px.size)
    jy = (np.ptp(real(fy, gy)) or 1) * 0.01 * rng.standard_normal(py.size)
    ax.scatter(px[failed] + jx[failed], py[failed] + jy[failed], c="white", edgecolors="black", s=28,
               label="failed")
    ax.scatter(px[~failed] + jx[~failed], py[~failed] + jy[~failed], facecolors="none", edgecolors="red",
               marker="^", s=36, label="alive at the end (censored)")
    for a, setter, ticks, labels in ((fx, ax.set_xlabel, ax.set_xticks, cx),
                                     (fy, ax.set_ylabel, ax.set_yticks, cy)):
        setter(a["name"] + (f" ({a['unit']})" if a.get("unit") else ""))
        if labels is not None:
            ticks(range(len(labels)), labels)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _levels(obs: Any, factor: str) -> list[tuple[str, Any]]:
    """(label, rows) per level; a numeric factor with more than 5 values in 4 quantile bins."""
    x, unit = numeric(obs[factor])
    if x is None or len(set(x.tolist())) <= 5:
        keys = sorted({str(v) for v in obs[factor]}, key=lambda s: (x is None, _sort_key(s)))
        return [(k, obs[obs[factor].astype(str) == k]) for k in keys]
    edges = np.quantile(x, np.linspace(0, 1, 5))
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, 3)
    return [(f"{edges[b]:.3g}–{edges[b + 1]:.3g} {unit}".strip(), obs[idx == b]) for b in range(4)
            if (idx == b).any()]


def _sort_key(s: str) -> float:
    try:
        return float(quantity(s).to_base_units().magnitude)
    except Exception:
        return math.inf


def effects(obs: Any, factors: list[str], path: Path) -> tuple[Path | None, list[dict[str, Any]]]:
    """Main effects on life: per factor, each level's censored Weibull median with its interval (pooled over
    the other factors); a level with fewer than two failures drawn as a lower bound (its longest follow-up
    when nothing failed). Returns the figure (None without usable cells) and the table it draws."""
    used = obs[obs["status"].isin(["failed", "censored"])]
    rows: list[dict[str, Any]] = []
    for f in factors:
        for label, grp in _levels(used, f):
            hours, failed = grp["hours"].to_numpy(float), (grp["status"] == "failed").to_numpy()
            fit = survival.weibull(hours, failed)
            bound = None if fit.median is not None else (float(hours.max()) if hours.size else None)
            rows.append({"factor": f, "level": label, "cells": len(grp), "failed": int(failed.sum()),
                         "median_h": fit.median, "low_h": fit.median_low, "high_h": fit.median_high,
                         "at_least_h": bound})
    if not rows:
        return None, rows
    plt = _plt()
    fig, axs = plt.subplots(1, len(factors), figsize=(3.2 * len(factors) + 0.8, 3.8), squeeze=False,
                            sharey=True)
    for ax, f in zip(axs[0], factors, strict=True):
        mine = [r for r in rows if r["factor"] == f]
        xs = np.arange(len(mine))
        for i, r in enumerate(mine):
            if r["median_h"] is not None:
                lo = r["median_h"] - (r["low_h"] if r["low_h"] is not None else r["median_h"])
                hi = (r["high_h"] if r["high_h"] is not None else r["median_h"] * 10) - r["median_h"]
                ax.errorbar([i], [r["median_h"]], yerr=[[lo], [hi]], fmt="o", color="C0", capsize=4)
            elif r["at_least_h"] is not None:
                ax.plot([i], [r["at_least_h"]], marker="^", color="C3", linestyle="none")
        ax.plot(xs, [r["median_h"] or r["at_least_h"] or np.nan for r in mine], color="0.6", lw=1, zorder=0)
        ax.set_xticks(xs, [r["level"] for r in mine], rotation=30, ha="right", fontsize=7)
        ax.set_title(f, fontsize=9)
        ax.set_yscale("log")
    axs[0][0].set_ylabel("median life (h): ● Weibull, 95 % CI; ▲ at least")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path, rows


def metrics_figure(obs: Any, factors: list[str], path: Path) -> Path | None:
    """Overpotential and hysteresis at cycle 10 against each factor, one point per cell that has them."""
    metrics = [m for m in METRIC_LABELS if m in obs and obs[m].notna().any()]
    if not metrics:
        return None
    plt = _plt()
    size = (3.2 * len(factors) + 0.8, 2.8 * len(metrics))
    fig, axs = plt.subplots(len(metrics), len(factors), figsize=size, squeeze=False)
    for i, m in enumerate(metrics):
        have = obs[obs[m].notna()]
        for j, f in enumerate(factors):
            ax = axs[i][j]
            x, unit = numeric(have[f])
            if x is None:
                cats = sorted({str(v) for v in have[f]})
                ax.scatter([cats.index(str(v)) for v in have[f]], have[m].astype(float), s=14)
                ax.set_xticks(range(len(cats)), cats, fontsize=7)
            else:
                ax.scatter(x, have[m].astype(float), s=14)
            ax.set_xlabel(f + (f" ({unit})" if unit else ""), fontsize=8)
            if j == 0:
                ax.set_ylabel(METRIC_LABELS[m], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
