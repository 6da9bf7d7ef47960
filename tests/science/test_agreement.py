"""Run and report agree (issue 16 item 4): the short the engine stopped at is the failure the report finds
(one criterion, same parameters); CE integrated from the exported trace equals the run's own CE (the 2450 in
compliance stores the current that flowed); σ from the report's EIS fit is the world's σ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bench_science as bs
import numpy as np
import pytest

from labctl.analysis import eis
from labctl.drivers.emstat4 import eis_frequencies
from labctl.simulators.physics.cell import Cell
from labctl.simulators.physics.cellparams import build_params
from labctl.simulators.physics.sample import Layer, Sample

ROOT = Path(__file__).resolve().parents[2]
BARE = """labctl: 1
name: bare Li|Li at {j} mA/cm2
sample: {{id: AGREE, substrate: Li foil 450 um, area: 1.13 cm^2, li_thickness: 450 um}}
steps:
  - operator: {{message: Assemble., cell: {{kind: symmetric, electrolyte: carbonate, separator: celgard,
                                         coated: none}}}}
  - eis: {{frequencies: 200 kHz..1 Hz, points_per_decade: 5, amplitude: 10 mV}}
  - cycle_symmetric: {{current_density: {j} mA/cm^2, capacity: {q} mAh/cm^2, cycles: {n}, sample_every: 20 s,
                      voltage_limit: 1 V{rule}}}
"""


def failure_of(run: bs.DryRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the cycling step's achieved record, the report's cycling metrics of it)."""
    step = next(s for s in run.result.steps if s.kind in ("cycle_symmetric", "rate_test"))
    entry = next(s for s in run.report()["steps"] if s["index"] == step.index)
    return step.achieved, entry["cycling"]


RULE = ", short_detection: {threshold: 6 mV, window: 30 min}"


@pytest.mark.parametrize(("seed", "rule"), [(1, ""), (2, ""), (3, ""), (4, RULE)])
def test_report_fails_the_cell_when_and_how_the_run_stopped_it(seed: int, rule: str) -> None:
    run = bs.dry_run(BARE.format(j=5, q=5, n=60, rule=rule), seed)
    try:
        achieved, metrics = failure_of(run)
    finally:
        run.close()
    assert achieved.get("ended_by") == "short_circuit", achieved  # a bare cell at 5 mA/cm2 shorts in ~16 h
    assert metrics["failure_mode"] in ("hard_short", "soft_short")
    assert metrics["failure_at_s"] == achieved["short_at_s"]
    assert achieved["short_detail"] in metrics["failure_detail"]


def test_a_rate_test_keeps_every_stage_and_labels_by_its_own_logic() -> None:
    text = (ROOT / "protocols" / "rate-test.yaml").read_text(encoding="utf-8")
    run = bs.dry_run(text, 1)
    try:
        m = run.report()
        steps = {s.index: s for s in run.result.steps}
    finally:
        run.close()
    rate = next(s for s in m["steps"] if s["kind"] == "rate_test")
    achieved = steps[rate["index"]].achieved
    done = achieved["current_densities_done"]
    j = rate["rate"]["current_density_mA_cm2"]
    assert j[0] == pytest.approx(1.0, rel=1e-3)  # the 1 mA/cm2 stage is kept next to 60 mA/cm2
    assert len(j) == len(done) or rate["cycling"]["failure_mode"] is not None
    assert rate["cycling"]["failure_mode"] != "overpotential_runaway"
    if achieved.get("ended_by") == "short_circuit":
        assert rate["cycling"]["failure_at_s"] == achieved["short_at_s"]
        assert "ended by" in rate["rate"]["outcome"]
    else:
        assert rate["rate"]["outcome"] == "all stages completed"


def test_no_metric_uses_data_after_the_failure() -> None:
    run = bs.dry_run(BARE.format(j=2, q=1, n=400, rule=", short_detection: {stop_after: 100 h}"), 2)
    try:
        achieved, metrics = failure_of(run)
    finally:
        run.close()
    assert achieved.get("ended_by") == "short_circuit"
    t_fail = (metrics["failure_at_s"] - 0.0) / 3600
    assert metrics["duration_h"] > metrics["hours_to_failure"] + 50  # it kept cycling the shorted cell
    if metrics["hours_to_failure"] < 100:
        assert metrics["overpotential_100h_mV"] is None  # the 100 h value would be a shorted one
    assert metrics["overpotential_last_mV"] > 5  # the last value is from before the short, not ~2 mV
    assert t_fail > 0


def test_ce_from_the_export_equals_the_runs_ce() -> None:
    run = bs.dry_run((ROOT / "protocols" / "li-cu-ce.yaml").read_text(encoding="utf-8"), 1)
    try:
        m = run.report()
    finally:
        run.close()
    ce = next(s["ce"] for s in m["steps"] if "ce" in s)
    assert 0.85 < ce["ce_avg_run"] < 0.97
    # the only difference left is the integration convention of one sample interval per half-cycle
    # (the engine integrates by trapezoids, the analysis each point's interval): < 0.1 percentage point
    assert ce["ce_avg"] == pytest.approx(ce["ce_avg_run"], abs=1e-3)


def _sigma_from_fit(kind: str, thickness_um: float, *, noise: bool,
                    seed: int = 3) -> tuple[float, float, float]:
    """(σ from the fit, the cell's own σ, R_film Ω) of a world cell with one film, EIS 200 kHz..0.1 Hz."""
    sample = Sample(li_um=450.0)
    sample.add_layer(Layer(kind, thickness_um))
    p = build_params(sample, np.random.default_rng(seed), area_cm2=1.13)
    cell = Cell(p, events=np.random.default_rng(1), noise=np.random.default_rng(2), measurement_noise=noise)
    f = eis_frequencies(2e5, 0.1, 10)
    fit = eis.fit(f, cell.impedance(3600.0, f))
    sigma, _ = eis.conductivity(thickness_um * 1e-6, fit["r_film"], 1.13e-4, n_coated=2)
    assert p.sigma_cell is not None
    return sigma / 100, p.sigma_cell, fit["r_film"]


SWEEP = [("li_in", 2.0), ("li_in", 5.0), ("li_in", 10.0), ("li_al", 0.6), ("li_al", 1.0), ("li3n", 0.9),
         ("peo_upy", 2.0), ("pvdf_beta", 1.5)]


@pytest.mark.parametrize(("kind", "thickness"), SWEEP)
def test_sigma_from_the_fit_is_the_worlds_sigma(kind: str, thickness: float) -> None:
    exact, world, _ = _sigma_from_fit(kind, thickness, noise=False)
    assert exact == pytest.approx(world, rel=0.10)
    noisy, world, _ = _sigma_from_fit(kind, thickness, noise=True)
    assert noisy == pytest.approx(world, rel=0.25)


def test_r_film_grows_linearly_with_thickness_at_the_slope_of_sigma() -> None:
    """Thickness series (physics §3.3): R_film(L) = R_0 + n_c·L/(σ·A); σ from the slope within 10 %."""
    thick = np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    r = np.array([_sigma_from_fit("li_in", x, noise=True)[2] for x in thick])
    slope = np.polyfit(thick * 1e-4, r, 1)[0]  # ohm per cm
    sigma = 2 / (slope * 1.13)
    world = _sigma_from_fit("li_in", 2.0, noise=False)[1]
    assert sigma == pytest.approx(world, rel=0.10)
