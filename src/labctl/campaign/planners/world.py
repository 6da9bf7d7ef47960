"""The simulated world's life of an immersion-coated Li|Li cell, evaluated in-process: the same physics the
dry-run simulators run (`simulators.physics`), without the bench around it, so a planner benchmark can afford
thousands of cells and a dense grid for the true optimum.

A cell is made as the world makes it: the immersion layer grows by Deal–Grove (§1.1) with the run's k_B drawn
log-normally (CV 0.2) and the crack threshold drawn as the world draws them (`PhysicalWorld._grow`); the cell
is built by `cellparams.build_params` (with its per-cell scatter and its Weibull short-clock draw u_crit);
cycling at constant current density j and half-cycle capacity q runs the short clock at 1/life_s(j, q) per
second of current, so the cell shorts at u_crit·life_s. Only the short clock is modelled here: a voltage-limit
trip from resistance growth and the Sand regime (j ≥ j_lim) are not (at 1 mA/cm² on a carbonate/Celgard
cell neither comes first in the dry runs). `tests/campaign/test_planner_world.py` checks a dry run against it.
"""

from __future__ import annotations

import math

import numpy as np

from labctl.simulators.physics import constants as c
from labctl.simulators.physics.cellparams import build_params
from labctl.simulators.physics.fabrication import deal_grove_um, immersion_b_um2_s
from labctl.simulators.physics.sample import Layer, Sample


def overlayer(immersion_s: float, conc_molar: float, rng: np.random.Generator, *, salt: str = "InCl3",
              temp_c: float = 25.0, li_um: float = 450.0) -> Sample:
    """The sample after immersion, with the world's fabrication draws (k_B, thickness CV, crack threshold)."""
    key = c.salt_key(salt)
    kb = c.SALTS[key].k_b * math.exp(rng.normal(0.0, math.sqrt(math.log(1 + 0.2**2))))
    cv, crack, r = float(rng.uniform(0.15, 0.25)), float(rng.uniform(10, 20)), float(rng.random())
    g = immersion_b_um2_s(salt, conc_molar, temp_c, k_b=kb) * max(0.0, immersion_s - c.IMMERSION_T_IND_S)
    thick = deal_grove_um(g)
    layer = Layer(c.SALTS[key].layer, thick, cv=cv, source=f"immersion {salt}")
    layer.cracked = thick > crack and (thick - crack) / crack >= r
    return Sample(li_um=li_um, li_consumed_um=c.LI_PER_LAYER * thick, layers=[layer])


def cell_life_h(immersion_s: float, conc_molar: float, rng: np.random.Generator, *, j: float = 1.0,
                q: float = 1.0, area_cm2: float = 1.13) -> float:
    """Hours of cycling (j mA/cm², q mAh/cm² half-cycles) until the cell shorts: one draw of the world."""
    sample = overlayer(immersion_s, conc_molar, rng)
    p = build_params(sample, rng, area_cm2=area_cm2, kind="symmetric", electrolyte="carbonate",
                     separator="celgard", coated="both", temp_c=25.0)
    return float(p.u_crit * p.life_s(np.array([j]), q)[0]) / 3600.0


def median_life_h(immersion_s: float, conc_molar: float, *, cells: int = 401, seed: int = 0, **kw: float
                  ) -> float:
    """The world's median life at a condition over `cells` draws (the truth a planner is scored against).
    Every condition uses the same random numbers (common random numbers), so the surface is smooth: the
    differences between conditions are the physics, not the sampling."""
    rng = np.random.default_rng(seed)
    return float(np.median([cell_life_h(immersion_s, conc_molar, rng, **kw) for _ in range(cells)]))
