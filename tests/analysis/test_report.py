"""Report and compare over synthetic runs (the store is not involved here)."""

from __future__ import annotations

import json

import numpy as np

from labctl.analysis import eis, report

HOUR = 3600.0


def synthetic_run(square_wave, li_in, run_id: int, over_v: float, short_h: float | None,
                  r_film: float) -> report.RunData:
    t, v, i = square_wave(150, dt=20.0, over_v=over_v, peak_v=2 * over_v)
    if short_h is not None:
        v[t >= short_h * HOUR] = i[t >= short_h * HOUR] * 1.2
    freq = np.logspace(6, -2, 61)
    z = eis.circuit(freq, **{**li_in, "r_film": r_film})
    steps = [
        report.StepData(0, "immerse", "done", {"time": 60.0}, {"time": 60.004,
                                                               "overlayer": {"thickness_m": 1.5e-6}}),
        report.StepData(1, "cycle_symmetric", "done", {"voltage_limit": 1.0},
                        {}, cycling={"t": t, "voltage": v, "current": i}),
        report.StepData(2, "eis", "done", {}, {}, eis={"freq": freq, "z_real": z.real, "z_imag": z.imag}),
    ]
    data = report.RunData(run={"id": run_id, "protocol_name": "synthetic", "state": "completed",
                               "sample_id": f"S-{run_id}"}, steps=steps, area_m2=1e-4)
    data.overlayer = {"thickness_m": 1.5e-6}
    return data


def test_report_writes_figures_and_summary(tmp_path, square_wave, li_in):
    m = report.write_report(synthetic_run(square_wave, li_in, 1, 0.07, 120.0, 40.0), tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"summary.md", "summary.html", "metrics.json"} <= names
    assert {"step01-cycle_symmetric-voltage.png", "step01-cycle_symmetric-overpotential.png",
            "step02-eis-nyquist.png"} <= names
    c = report.first_cycling(m)
    assert c["failure_mode"] == "hard_short" and abs(c["hours_to_failure"] - 120) < 1.5
    assert abs(c["overpotential_cycle10_mV"] - 70) < 2
    assert abs(c["current_density_mA_cm2"] - 1.13) < 0.01
    fit = report.first_eis(m)["params"]
    assert abs(fit["r_film"] - 40) / 40 < 0.03
    sigma = m["conductivity"]["sigma_S_cm"]
    assert abs(sigma - 2 * 1.5e-6 / (fit["r_film"] * 1e-4) / 100) < 1e-12
    assert json.loads((tmp_path / "metrics.json").read_text())["run"]["id"] == 1
    assert "median |V| over the middle 50 %" in (tmp_path / "summary.md").read_text()


def test_compare_rows_show_the_difference(square_wave, li_in):
    rows = report.compare_rows([synthetic_run(square_wave, li_in, 1, 0.07, 120.0, 40.0),
                                synthetic_run(square_wave, li_in, 2, 0.03, None, 5.0)])
    bare, coated = rows
    assert bare["failure_mode"] == "hard_short" and coated["failure_mode"] is None
    assert coated["eta_c10_mV"] < bare["eta_c10_mV"]
    assert set(report.COMPARE_COLUMNS) <= set(bare)
