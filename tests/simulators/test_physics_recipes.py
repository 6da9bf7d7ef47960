"""Recipe-level physics (issue 16 item 2): dip-coating solutions looked up by the step's polymer/solvent
names, the film they leave, and the coating effects that fade continuously into bare Li as a film thins."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.simulators.physics import BathSpec, PhysicalWorld, WorldConfig
from labctl.simulators.physics.cellparams import build_params
from labctl.simulators.physics.recipes import RecipeError, polymer_key, polymer_solution
from labctl.simulators.physics.sample import Layer, Sample
from labctl.simulators.physics.world import WorldConfigError


@pytest.mark.parametrize(
    ("name", "drying", "key"),
    [
        ("PEO-UPy", None, "peo-upy"),
        ("β-PVDF", None, "pvdf-beta"),
        ("alpha PVDF", None, "pvdf-alpha"),
        ("PVDF", 50.0, "pvdf-beta"),
        ("PVDF", None, "pvdf-beta"),
        ("PVDF", 80.0, "pvdf-alpha"),
        ("PDMS", None, "pdms"),
    ],
)
def test_polymer_names_and_the_pvdf_phase_from_the_drying(name: str, drying: float | None, key: str) -> None:
    assert polymer_key(name, drying) == key


def test_unknown_polymer_or_solvent_is_refused_by_name() -> None:
    with pytest.raises(RecipeError, match="'Nylon'"):
        polymer_solution("Nylon")
    with pytest.raises(RecipeError, match="'acetone'"):
        polymer_solution("PDMS", "acetone")


def test_the_solution_follows_the_names() -> None:
    peo, pvdf = polymer_solution("PEO-UPy", "THF"), polymer_solution("PVDF", "DMF", drying_temperature_c=50.0)
    assert peo.layer == "peo_upy" and pvdf.layer == "pvdf_beta"
    assert pvdf.evaporation < peo.evaporation  # DMF dries ~30x slower than THF (§1.2)
    assert pvdf.sigma_eff > polymer_solution("alpha-PVDF", "DMF").sigma_eff


def test_set_dip_recipe_fills_the_bath_and_names_unknown_baths() -> None:
    w = PhysicalWorld(WorldConfig(baths={"polymer": BathSpec(0.15, -0.04)}), seed=1)
    sol = w.set_dip_recipe("polymer", "β-PVDF", "DMF")
    assert w.baths["polymer"].spec.polymer == sol and w.baths["polymer"].volume > 0
    with pytest.raises(WorldConfigError, match="no bath 'dip'"):
        w.set_dip_recipe("dip", "PDMS")
    assert w.polymer_solution("PEO-UPy", "THF").layer == "peo_upy"  # what a dry run's observer asks for
    with pytest.raises(WorldConfigError, match="'Nylon'"):
        w.polymer_solution("Nylon")


def _params(kind: str | None, thickness_um: float = 0.0, sigma: float | None = None):
    sample = Sample(li_um=450.0)
    if kind:
        sample.add_layer(Layer(kind, thickness_um, sigma_eff=sigma))
    return build_params(
        sample, np.random.default_rng(1), area_cm2=1.13, coated="both" if kind else "none", scatter=False
    )


def test_coating_effects_fade_continuously_into_bare_li() -> None:
    bare = _params(None)
    for kind in ("li_in", "lif", "peo_upy"):
        thin = _params(kind, 1e-4)
        assert thin.j0a == pytest.approx(bare.j0a, rel=0.01)
        assert thin.ce == pytest.approx(bare.ce, abs=1e-4)
        assert thin.f_layer == pytest.approx(1.0, abs=0.01)
        assert thin.r_dc_small(0.0, 10) == pytest.approx(bare.r_dc_small(0.0, 10), rel=0.01)


def test_higher_sigma_lives_longer_at_equal_thickness_and_coverage() -> None:
    lives = [
        float(_params("polymer", 1.5, sigma).life_s(np.array([5.0]), 5.0)[0]) for sigma in (5e-6, 2e-5, 1e-4)
    ]
    assert lives[0] < lives[1] < lives[2]
