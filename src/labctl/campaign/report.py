"""`labctl campaign report ID`: Kaplan–Meier curves per condition, a life heatmap over two factors, main
effects on life and overpotential/hysteresis against the factors (PNGs, `figures.py`), and the same tables in
`report.md` and `report.html` (Jinja2, autoescaped: a cell's reason or a factor value is text, never markup).
`write` returns every file it wrote by name, so the web app shows whatever is there."""

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
    else:  # an empty frame reads as "every curve at zero"; say what it is
        ax.text(0.5, 0.5, "no cell has a life yet\n(none failed or censored so far)", ha="center",
                va="center", transform=ax.transAxes, color="0.4")
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
    from labctl.campaign import figures

    paths: dict[str, Path] = {"km": fig}
    heat = figures.life_heatmap(obs, factors, out / "life_heatmap.png")
    eff_path, eff_rows = figures.effects(obs, factors, out / "effects.png")
    met = figures.metrics_figure(obs, factors, out / "metrics.png")
    extra = [("life_heatmap", heat, "Median life over the factors"),
             ("effects", eff_path, "Main effects on life"),
             ("metrics", met, "Overpotential and hysteresis against the factors")]
    lines += [""]
    for name, p, title in extra:
        if p is not None:
            paths[name] = p
            lines += [f"## {title}", "", f"![{title}]({p.name})", ""]
    if eff_rows:
        lines += ["| factor | level | cells | failed | Weibull median (h) | 95 % CI (h) | at least (h) |",
                  "|---|---|---|---|---|---|---|"]
        for r in eff_rows:
            ci = f"{_fmt(r['low_h'])} – {_fmt(r['high_h'])}" if r["median_h"] is not None else "–"
            lines.append(f"| {r['factor']} | {r['level']} | {r['cells']} | {r['failed']} | "
                         f"{_fmt(r['median_h'])} | {ci} | {_fmt(r['at_least_h'])} |")
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    paths["markdown"] = md
    paths["html"] = _html(camp, obs, factors, table, eff_rows, paths, out / "report.html")
    return paths


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Campaign {{ camp.id }}: {{ camp.name }}</title>
<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}
table{border-collapse:collapse;font-size:90%} td,th{border:1px solid #bbb;padding:2px 6px;text-align:left}
img{max-width:100%}</style></head><body>
<h1>Campaign {{ camp.id }}: {{ camp.name }}</h1>
<p>Design {{ camp.design_kind }}, seed {{ camp.seed }}, {{ "dry run" if camp.simulate else "bench" }},
state {{ camp.state }}; file <code>{{ camp.path }}</code> (sha256 {{ camp.sha256[:12] }}).</p>
<p>Hours count from each cell's first cycling sample. A cell alive at the end of its test (or the horizon) is
right-censored; a cell whose run failed, was aborted or interrupted is excluded, not counted as a short
life.</p>
{% for name, title in figures %}<h2>{{ title }}</h2><img src="{{ name }}" alt="{{ title }}">
{% endfor %}
<h2>Life per condition</h2>
<table><tr>{% for h in life_head %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in life_rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if effect_rows %}<h2>Main effects on life</h2>
<table><tr><th>factor</th><th>level</th><th>cells</th><th>failed</th><th>Weibull median (h)</th>
<th>95 % CI (h)</th><th>at least (h)</th></tr>
{% for row in effect_rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% endif %}
<h2>Cells</h2>
<table><tr>{% for h in cell_head %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in cell_rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
</body></html>
"""


def _html(camp: dict[str, Any], obs: Any, factors: list[str], table: Any, eff_rows: list[dict[str, Any]],
          paths: dict[str, Path], path: Path) -> Path:
    try:
        import jinja2
    except ImportError as exc:
        from labctl.errors import ConfigError

        raise ConfigError("the campaign's HTML report is written with jinja2: install labctl[web]") from exc
    titles = {"km": "Kaplan–Meier curves", "life_heatmap": "Median life over the factors",
              "effects": "Main effects on life",
              "metrics": "Overpotential and hysteresis against the factors"}
    life_head = [*factors, "cells", "failed", "censored", "excluded", "KM median (h)", "Weibull shape",
                 "Weibull median (h)", "95 % CI (h)", "note"]
    life_rows = [[*(str(r[f]) for f in factors), r["cells"], r["failed"], r["censored"], r["excluded"],
                  _fmt(r["km_median_h"]), _fmt(r["weibull_shape"], 3), _fmt(r["weibull_median_h"]),
                  f"{_fmt(r['median_low_h'])} – {_fmt(r['median_high_h'])}" if r["weibull_median_h"] else "–",
                  r["note"] or ""] for _, r in table.iterrows()]
    effect_rows = [[r["factor"], r["level"], r["cells"], r["failed"], _fmt(r["median_h"]),
                    f"{_fmt(r['low_h'])} – {_fmt(r['high_h'])}" if r["median_h"] is not None else "–",
                    _fmt(r["at_least_h"])] for r in eff_rows]
    cell_rows = [[seq, *(str(r[f]) for f in factors), _fmt(r["run_id"]), r["status"], _fmt(r["hours"]),
                  str(r["reason"] or "")] for seq, r in obs.iterrows()]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.from_string(_HTML).render(
        camp=camp, figures=[(p.name, titles[n]) for n, p in paths.items() if n in titles],
        life_head=life_head, life_rows=life_rows, effect_rows=effect_rows,
        cell_head=["#", *factors, "run", "status", "hours", "reason"], cell_rows=cell_rows)
    path.write_text(html, encoding="utf-8")
    return path
