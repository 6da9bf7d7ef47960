"""Dip-coating solutions from a recipe's names: the `dip_coat` step's `polymer` and `solvent` (and, for PVDF,
its drying temperature) decide the solution's viscosity, surface tension, density, solids fraction, drying
rate and the film it leaves (constants.POLYMERS, SOLVENTS, LAYERS; physics.md §1.2)."""

from __future__ import annotations

import re

from labctl.simulators.physics import constants as c
from labctl.simulators.physics.bath import PolymerSolution

_GREEK = {"β": "beta", "α": "alpha", "ß": "beta"}


class RecipeError(ValueError):
    """A polymer or solvent the world has no properties for."""


def _key(name: str) -> str:
    s = name.strip().lower()
    for g, word in _GREEK.items():
        s = s.replace(g, word)
    s = re.sub(r"[\s_]+", "-", s)
    m = re.fullmatch(r"(beta|alpha)-?(pvdf)", s)
    return f"{m.group(2)}-{m.group(1)}" if m else s


def polymer_key(polymer: str, drying_temperature_c: float | None = None) -> str:
    """The `constants.POLYMERS` key of a recipe's polymer name: 'PEO-UPy', 'β-PVDF', 'alpha PVDF', 'PDMS'.
    Plain 'PVDF' takes its phase from the drying: β below 70 °C (slow, low-temperature solvent removal,
    room temperature included), α at or above."""
    key = _key(polymer)
    if key == "pvdf":
        hot = drying_temperature_c is not None and drying_temperature_c >= c.PVDF_BETA_MAX_DRYING_C
        key = "pvdf-alpha" if hot else "pvdf-beta"
    if key not in c.POLYMERS:
        raise RecipeError(f"polymer {polymer!r} is not simulated (PEO-UPy, PVDF, β-PVDF, α-PVDF, PDMS)")
    return key


def polymer_solution(polymer: str, solvent: str | None = None, *,
                     drying_temperature_c: float | None = None) -> PolymerSolution:
    """The dip-coating solution a recipe names (`solvent` None: the polymer's usual solvent)."""
    pkey = polymer_key(polymer, drying_temperature_c)
    poly = c.POLYMERS[pkey]
    skey = _key(solvent) if solvent else poly.solvent
    if skey not in c.SOLVENTS:
        raise RecipeError(f"solvent {solvent!r} is not simulated (one of {', '.join(c.SOLVENTS)})")
    solv = c.SOLVENTS[skey]
    layer = c.LAYERS[poly.layer]
    return PolymerSolution(viscosity=poly.viscosity, surface_tension=solv.surface_tension,
                           density=solv.density, solids_fraction=poly.solids_fraction,
                           evaporation=solv.evaporation,
                           sigma_eff=layer.sigma_eff, name=f"{polymer} in {solvent or poly.solvent}",
                           layer=poly.layer)
