"""Censored lifetime statistics against known Weibull lives: the fit recovers shape and median, the median's
interval covers the truth about as often as it says, Kaplan–Meier follows the true survival, and treating
censored cells as failures (the naive way) is visibly biased where the censored fit is not."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labctl.campaign.survival import by_condition, kaplan_meier, km_median, weibull

SHAPE, SCALE = 2.0, 500.0
MEDIAN = SCALE * math.log(2) ** (1 / SHAPE)  # 416.3 h


def _sample(rng: np.random.Generator, n: int, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    life = SCALE * rng.weibull(SHAPE, n)
    return np.minimum(life, horizon), life <= horizon


def test_weibull_fit_recovers_a_known_censored_weibull() -> None:
    hours, failed = _sample(np.random.default_rng(1), 400, horizon=600.0)
    assert 0.6 < failed.mean() < 0.9  # a real share is censored
    fit = weibull(hours, failed)
    assert fit.n == 400 and fit.failures == int(failed.sum())
    assert fit.shape == pytest.approx(SHAPE, rel=0.12)
    assert fit.scale == pytest.approx(SCALE, rel=0.06)
    assert fit.median_low < MEDIAN < fit.median_high
    assert fit.median_high - fit.median_low < 0.2 * MEDIAN


def test_naive_treatment_of_censored_cells_is_biased_short() -> None:
    hours, failed = _sample(np.random.default_rng(5), 200, horizon=400.0)  # about half still alive
    fit = weibull(hours, failed)
    naive = weibull(hours, np.ones_like(failed))  # censored cells taken as failures at the horizon
    assert fit.median_low < MEDIAN < fit.median_high
    assert naive.median_high < MEDIAN and naive.median_high < fit.median_low


@pytest.mark.timeout(900)  # 120 censored fits: ~15 s of CPU, minutes of wall on a loaded 2-core machine
def test_median_interval_covers_the_truth_at_its_level() -> None:
    rng = np.random.default_rng(2)
    covered = 0
    reps = 120
    for _ in range(reps):
        hours, failed = _sample(rng, 20, horizon=500.0)
        fit = weibull(hours, failed)
        if fit.median is not None:
            lo = fit.median_low or 0.0
            hi = fit.median_high or math.inf
            covered += lo <= MEDIAN <= hi
    assert 0.88 <= covered / reps <= 0.995, covered / reps


def test_kaplan_meier_follows_the_true_survival() -> None:
    hours, failed = _sample(np.random.default_rng(3), 600, horizon=700.0)
    km = kaplan_meier(hours, failed)
    assert np.all(np.diff(km["survival"]) <= 1e-12)  # non-increasing
    assert np.all(km["lower"] <= km["survival"] + 1e-12) and np.all(km["survival"] <= km["upper"] + 1e-12)
    for t in (100.0, 300.0, 500.0):
        k = np.searchsorted(km["time"], t, side="right") - 1
        assert km["survival"][k] == pytest.approx(math.exp(-((t / SCALE) ** SHAPE)), abs=0.05)
    assert km_median(km) == pytest.approx(MEDIAN, rel=0.08)


def test_no_or_one_failure_gives_no_fit_and_says_why() -> None:
    fit = weibull([100.0, 100.0, 100.0], [False, False, False])
    assert fit.median is None and "no failures" in fit.note and "at least 100 h" in fit.note
    km = kaplan_meier([100.0, 100.0], [False, False])
    assert km_median(km) is None and km["survival"].tolist() == [1.0]
    assert weibull([50.0, 100.0], [True, False]).median is None
    with pytest.raises(ValueError, match="finite and positive"):
        weibull([0.0, 10.0], [True, True])


def test_by_condition_excludes_hardware_failures() -> None:
    rng = np.random.default_rng(4)
    rows = []
    for conc, scale in (("0.05 M", 300.0), ("0.1 M", 900.0)):
        life = scale * rng.weibull(SHAPE, 30)
        for x in life:
            rows.append({"concentration": conc, "status": "failed" if x <= 1000 else "censored",
                         "hours": min(x, 1000.0)})
        rows.append({"concentration": conc, "status": "excluded", "hours": 0.5})  # a potentiostat fault
    table = by_condition(pd.DataFrame(rows), ["concentration"]).set_index("concentration")
    assert table.loc["0.05 M", "excluded"] == 1 and table.loc["0.05 M", "cells"] == 31
    assert table.loc["0.05 M", "failed"] + table.loc["0.05 M", "censored"] == 30
    low, high = table.loc["0.05 M", "weibull_median_h"], table.loc["0.1 M", "weibull_median_h"]
    assert low == pytest.approx(300 * math.log(2) ** 0.5, rel=0.25)
    assert high == pytest.approx(900 * math.log(2) ** 0.5, rel=0.25)
    assert table.loc["0.05 M", "median_high_h"] < table.loc["0.1 M", "median_low_h"]


def test_report_writes_km_curves_and_weibull_table(tmp_path: Path) -> None:
    from labctl.campaign import report

    rng = np.random.default_rng(6)
    rows = []
    for seq, (conc, scale) in enumerate([("0.05 M", 200.0)] * 12 + [("0.1 M", 800.0)] * 12):
        life = scale * rng.weibull(SHAPE)
        rows.append({"seq": seq + 1, "concentration": conc, "run_id": seq + 1,
                     "status": "failed" if life <= 1000 else "censored", "hours": min(life, 1000.0),
                     "reason": "hard_short | at t" if life <= 1000 else "alive at the end of its test"})
    rows.append({"seq": 25, "concentration": "0.1 M", "run_id": 25, "status": "excluded", "hours": None,
                 "reason": "run failed: potentiostat: no reply"})
    obs = pd.DataFrame(rows).set_index("seq")
    camp = {"id": 3, "name": "t", "design_kind": "full_factorial", "seed": 9, "simulate": True,
            "state": "finished", "path": "c.yaml", "sha256": "ab" * 32}
    paths = report.write(camp, obs, ["concentration"], tmp_path)
    assert paths["km"].read_bytes()[:4] == b"\x89PNG" and paths["km"].stat().st_size > 10_000
    md = paths["markdown"].read_text()
    table = by_condition(obs, ["concentration"]).set_index("concentration")
    row = table.loc["0.1 M"]
    assert f"| 0.1 M | 13 | {row['failed']} | {row['censored']} | 1 |" in md
    assert f"{row['weibull_median_h']:.4g}" in md and f"{row['median_low_h']:.4g} – " in md
    assert "hard_short / at t" in md  # a cell's reason cannot break the Markdown table
    assert "run failed: potentiostat: no reply" in md


def test_the_written_out_log_likelihood_equals_scipys() -> None:
    from scipy import stats

    from labctl.campaign.survival import LN2, _loglik

    t_f, t_c = np.array([120.0, 340.0, 560.0]), np.array([700.0, 700.0])
    for median, shape in ((300.0, 1.5), (900.0, 0.7), (50.0, 4.0)):
        scale = median / LN2 ** (1.0 / shape)
        want = (stats.weibull_min.logpdf(t_f, shape, scale=scale).sum()
                + stats.weibull_min.logsf(t_c, shape, scale=scale).sum())
        assert _loglik(t_f, t_c, median, shape) == pytest.approx(want, rel=1e-12)


def test_a_km_figure_with_no_life_yet_says_so_instead_of_an_empty_frame(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    from labctl.campaign import report

    obs = pd.DataFrame([{"seq": 1, "concentration": "0.1 M", "run_id": 1, "status": "excluded", "hours": None,
                         "reason": "request cancelled"}]).set_index("seq")
    path = report.km_figure(obs, ["concentration"], tmp_path / "km.png")
    img = mpimg.imread(path)[..., :3]
    h, w = img.shape[:2]
    middle = img[int(h * 0.4):int(h * 0.6), int(w * 0.35):int(w * 0.75)]
    assert (middle.mean(axis=-1) < 0.6).sum() > 200  # the message's grey letters inside the empty axes
