"""The planner benchmark's in-process world agrees with a dry run: the Li-In layer a dry run grows at
(60 s, 0.1 M InCl3) lies within the in-process evaluation's spread at the same point, and the in-process
life follows the short clock the cell model runs (u_crit · life_s)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from sqlalchemy import select

from labctl.campaign.planners import world
from labctl.simulators.physics import constants as c
from labctl.simulators.physics.cellparams import build_params
from labctl.store import Store
from labctl.store.models import Step

from .conftest import ROOT

CELL = ROOT / "tests" / "campaign" / "data" / "short-cell.yaml"


def test_dry_run_layer_within_the_in_process_spread(sqlite_db: str) -> None:
    thick = []
    for seed in (1, 2):
        args = ["run", str(CELL), "--simulate", "--seed", str(seed), "-p", "immersion_time=60 s", "-p",
                "concentration=0.1 M", "--sample", f"W-{seed}", "--db", sqlite_db]
        r = subprocess.run([sys.executable, "-m", "labctl", *args], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env=os.environ.copy())
        assert r.returncode == 0, r.stdout + r.stderr
    store = Store.open(sqlite_db)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(Step.achieved).where(Step.kind == "immerse")).all()
    finally:
        store.close()
    for (achieved,) in rows:  # the overlayer the world made, as the immerse step recorded it
        ov = achieved["overlayer"]
        (layer,) = ov["layers"]
        assert layer["kind"] == c.SALTS[c.salt_key("InCl3")].layer
        thick.append(float(ov["thickness_m"]) * 1e6)
    assert len(thick) == 2
    rng = np.random.default_rng(0)
    spread = np.array([world.overlayer(60.0, 0.1, rng).layers[0].thickness_um for _ in range(4000)])
    lo, hi = np.quantile(spread, [0.005, 0.995])
    # the dry run's stage also holds the foil in the bath while it descends and rises (12 mm at 5 mm/s)
    # and its bath warms towards 25 degC: a few percent, well inside the k_B scatter
    assert all(lo <= t <= hi * 1.1 for t in thick), (thick, lo, hi)
    assert abs(np.log(np.mean(thick) / np.median(spread))) < 0.5


def test_in_process_life_is_the_cell_models_short_clock() -> None:
    sample = world.overlayer(120.0, 0.1, np.random.default_rng(3))
    p = build_params(sample, np.random.default_rng(4), area_cm2=1.13, kind="symmetric",
                     electrolyte="carbonate", separator="celgard", coated="both", temp_c=25.0)
    life = world.cell_life_h(120.0, 0.1, _Replay(np.random.default_rng(3), np.random.default_rng(4), sample))
    assert abs(life - p.u_crit * float(p.life_s(np.array([1.0]), 1.0)[0]) / 3600) < 1e-9
    # the median over draws is smooth in the factors (common random numbers) and rises with the layer
    assert world.median_life_h(30, 0.1, cells=101) < world.median_life_h(120, 0.1, cells=101)


class _Replay:
    """A generator that hands the fabrication draws to one stream and the cell's to another, so the test can
    rebuild the same cell with `build_params` directly."""

    def __init__(self, fab: np.random.Generator, cell: np.random.Generator, sample: object) -> None:
        self.fab, self.cell, self.calls = fab, cell, 0

    def __getattr__(self, name: str) -> object:
        self.calls += 1
        return getattr(self.fab if self.calls <= 4 else self.cell, name)
