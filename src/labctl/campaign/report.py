"""`labctl campaign report ID`: Kaplan–Meier curves per condition (PNG) and a Markdown summary of the cells
and the per-condition life statistics (`labctl.campaign.survival`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from labctl.campaign import survival


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def km_figure(obs: Any, factors: list[str], path: Path) -> Path:
    try:
        import matplotlib
    except ImportError as exc:
        from labctl.errors import ConfigError

        raise ConfigError("the campaign report draws with matplotlib: install labctl[plot]") from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    used = obs[obs["status"].isin(["failed", "censored"])]
    for key, group in used.groupby(factors, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        hours, failed = group["hours"].to_numpy(float), (group["status"] == "failed").to_numpy()
        km = survival.kaplan_meier(hours, failed)
        t = [0.0, *km["time"].tolist()]
        s = [1.0, *km["survival"].tolist()]
        end = float(hours.max())
        if end > t[-1]:
            t.append(end)
            s.append(s[-1])
        label = ", ".join(f"{f}={v}" for f, v in zip(factors, key, strict=True))
        (line,) = ax.step(t, s, where="post", label=label)
        cens = group[group["status"] == "censored"]["hours"].to_numpy(float)
        if cens.size:  # censored cells as ticks on their curve
            import numpy as np

            idx = np.searchsorted(np.asarray(t), cens, side="right") - 1
            ax.plot(cens, np.asarray(s)[idx], "|", color=line.get_color(), markersize=10)
    ax.set_xlabel("hours of cycling")
    ax.set_ylabel("fraction of cells alive (Kaplan–Meier)")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(left=0)
    if len(used):
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def write(camp: dict[str, Any], obs: Any, factors: list[str], out: Path) -> dict[str, Path]:
    """The KM figure and `report.md` in `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    fig = km_figure(obs, factors, out / "km.png")
    table = survival.by_condition(obs, factors)
    lines = [f"# Campaign {camp['id']}: {camp['name']}", "",
             f"Design {camp['design_kind']}, seed {camp['seed']}, "
             f"{'dry run' if camp['simulate'] else 'bench'}, state {camp['state']}; file `{camp['path']}` "
             f"(sha256 {camp['sha256'][:12]}).", "",
             "Hours count from each cell's first cycling sample. A cell alive at the end of its test (or the "
             "horizon) is right-censored; a cell whose run failed, was aborted or interrupted is excluded, "
             "not counted as a short life.", "", "![Kaplan–Meier curves](km.png)", "",
             "## Life per condition", "",
             "| " + " | ".join([*factors, "cells", "failed", "censored", "excluded", "KM median (h)",
                                "Weibull shape", "Weibull median (h)", "95 % CI (h)", "note"]) + " |",
             "|" + "---|" * (len(factors) + 9)]
    for _, r in table.iterrows():
        ci = f"{_fmt(r['median_low_h'])} – {_fmt(r['median_high_h'])}" if r["weibull_median_h"] else "–"
        lines.append("| " + " | ".join([*(str(r[f]) for f in factors), str(r["cells"]), str(r["failed"]),
                                        str(r["censored"]), str(r["excluded"]), _fmt(r["km_median_h"]),
                                        _fmt(r["weibull_shape"], 3), _fmt(r["weibull_median_h"]), ci,
                                        r["note"] or ""]) + " |")
    lines += ["", "## Cells", "", "| # | " + " | ".join(factors) + " | run | status | hours | reason |",
              "|---|" + "---|" * (len(factors) + 4)]
    for seq, r in obs.iterrows():
        reason = str(r["reason"] or "").replace("|", "/")
        lines.append(f"| {seq} | " + " | ".join(str(r[f]) for f in factors)
                     + f" | {_fmt(r['run_id'])} | {r['status']} | {_fmt(r['hours'])} | {reason} |")
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"km": fig, "markdown": md}
