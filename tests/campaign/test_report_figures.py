"""The campaign report beyond the KM curves: a life heatmap over two factors, main effects with censoring
respected, overpotential/hysteresis against the factors, and the HTML report (autoescaped), all named in
what `report.write` returns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from labctl.campaign import figures, report

CAMP = {"id": 4, "name": "<b>grid</b>", "design_kind": "full_factorial", "seed": 9, "simulate": True,
        "state": "finished", "path": "c.yaml", "sha256": "cd" * 32}


def _obs(seed: int = 2) -> pd.DataFrame:
    """3 immersion times x 2 concentrations x 6 cells; life grows with both, horizon 1000 h, one excluded
    cell with markup in its reason."""
    rng = np.random.default_rng(seed)
    rows, seq = [], 0
    for t in (30, 75, 120):
        for c in (0.05, 0.1):
            median = 150.0 * (t / 30) ** 0.6 * (c / 0.05) ** 1.0
            for _ in range(6):
                seq += 1
                life = median / math.log(2) ** 0.5 * rng.weibull(2.0)
                rows.append({"seq": seq, "immersion_time": f"{t} s", "concentration": f"{c} M", "run_id": seq,
                             "status": "failed" if life <= 1000 else "censored", "hours": min(life, 1000.0),
                             "reason": "hard_short", "overpotential_cycle10_mV": 40 - 0.1 * t + rng.normal(),
                             "hysteresis_cycle10_mV": 80 - 0.2 * t + rng.normal()})
    rows.append({"seq": seq + 1, "immersion_time": "30 s", "concentration": "0.1 M", "run_id": seq + 1,
                 "status": "excluded", "hours": None, "reason": "<script>alert(1)</script> no reply",
                 "overpotential_cycle10_mV": None, "hysteresis_cycle10_mV": None})
    return pd.DataFrame(rows).set_index("seq")


def test_report_writes_every_figure_and_an_escaped_html(tmp_path: Path) -> None:
    obs = _obs()
    paths = report.write(CAMP, obs, ["immersion_time", "concentration"], tmp_path)
    assert set(paths) == {"km", "life_heatmap", "effects", "metrics", "markdown", "html"}
    for name in ("km", "life_heatmap", "effects", "metrics"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[name].stat().st_size > 10_000
    html = paths["html"].read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;grid&lt;/b&gt;" in html
    for p in ("km.png", "life_heatmap.png", "effects.png", "metrics.png"):
        assert f'src="{p}"' in html
    md = paths["markdown"].read_text()
    assert "![Main effects on life](effects.png)" in md and "| immersion_time | 120 s |" in md


def test_main_effects_follow_the_truth_and_respect_censoring(tmp_path: Path) -> None:
    obs = _obs()
    _, rows = figures.effects(obs, ["immersion_time", "concentration"], tmp_path / "e.png")
    by = {(r["factor"], r["level"]): r for r in rows}
    assert [r["level"] for r in rows if r["factor"] == "immersion_time"] == ["30 s", "75 s", "120 s"]
    conc = [by[("concentration", "0.05 M")], by[("concentration", "0.1 M")]]
    assert conc[0]["cells"] == 18 and conc[1]["cells"] == 18  # the excluded cell is not a life
    assert conc[1]["median_h"] > 1.4 * conc[0]["median_h"]  # truth: x2
    t = [by[("immersion_time", lv)]["median_h"] for lv in ("30 s", "75 s", "120 s")]
    assert t[0] < t[1] < t[2]
    # all censored at one level: no median claimed, a lower bound at the longest follow-up
    alive = obs.copy()
    alive.loc[alive["concentration"] == "0.1 M", ["status", "hours"]] = ["censored", 1000.0]
    _, rows = figures.effects(alive, ["concentration"], tmp_path / "e2.png")
    high = next(r for r in rows if r["level"] == "0.1 M")
    assert high["median_h"] is None and high["at_least_h"] == 1000.0


def test_heatmap_needs_two_factors_and_metrics_need_values(tmp_path: Path) -> None:
    obs = _obs()
    assert figures.life_heatmap(obs, ["concentration"], tmp_path / "h.png") is None
    none = obs.assign(overpotential_cycle10_mV=None, hysteresis_cycle10_mV=None)
    assert figures.metrics_figure(none, ["concentration"], tmp_path / "m.png") is None
    scattered = obs.assign(immersion_time=[f"{v:.4g} s" for v in np.linspace(15, 300, len(obs))])
    assert figures.life_heatmap(scattered, ["immersion_time", "concentration"], tmp_path / "s.png")
