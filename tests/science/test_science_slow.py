"""Slow tier: every row of seed-results.md in band and every ordering true over seeds 1-5 (the same runs and
verdicts as `benchmarks/bench_science.py`, which writes benchmarks/SCIENCE.md). About 10 min on 2 cores."""

from __future__ import annotations

from pathlib import Path

import bench_science as bs
import pytest


@pytest.mark.slow
def test_every_seed_results_row_in_band_and_every_ordering_true(tmp_path: Path) -> None:
    out = tmp_path / "SCIENCE.md"
    code = bs.main(["--seeds", "1", "2", "3", "4", "5", "--workers", "2", "--out", str(out)])
    text = out.read_text(encoding="utf-8")
    assert "**OUT**" not in text and "**FALSE**" not in text, text
    assert code == 0
