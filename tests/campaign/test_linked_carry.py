"""A dry run's test world starts from the sample its fabrication run's world made (fabrication and test are
separate runs, each with its own world): the layers carried are the ones recorded, the cell built from them
is the fabricated one, and a bench sample's record (no simulated overlayer) is never carried."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.clock import VirtualClock
from labctl.simulators.dryrun import DryRunBench
from labctl.simulators.physics.sample import Layer
from labctl.simulators.physics.world import PhysicalWorld, WorldConfig
from labctl.station import load_station

from .conftest import ROOT

CH1 = ROOT / "stations" / "cycler-8ch" / "ch1.yaml"


def _made() -> PhysicalWorld:
    w = PhysicalWorld(WorldConfig(), seed=4)
    w.sample.add_layer(Layer("li_in", 4.2, cv=0.18, source="immersion InCl3"))
    w.sample.li_consumed_um = 2.5
    return w


def test_load_sample_keeps_every_recorded_layer_and_drops_the_old_cell() -> None:
    made = _made()
    rec = made.sample_record()
    w = PhysicalWorld(WorldConfig(), seed=9)
    w.assemble_cell()  # a bare-Li cell built before the sample arrived is not the cell of this sample
    w.load_sample(rec)
    assert w.cell is None
    got = w.sample_record()
    for key in ("layer", "thickness_um", "sd_um", "coverage", "sigma_eff_s_cm", "cracked", "film_asr_ohm_cm2",
                "li_consumed_um"):
        assert got[key] == pytest.approx(rec[key]), key
    assert w.assemble_cell().p.layer == "li_in"


def test_the_carried_sample_protects_the_cell_as_the_fabricated_one_does() -> None:
    """Same sample, same seed: the test world's cell is the fabrication world's cell (a bare one differs)."""
    made = _made()
    rec = made.sample_record()
    carried = PhysicalWorld(WorldConfig(), seed=4)
    carried.load_sample(rec)
    bare = PhysicalWorld(WorldConfig(), seed=4)
    t, i = np.linspace(1.0, 3600.0, 50), np.full(50, 1.13e-3)
    same = made.cell_voltage(t, i)
    assert np.allclose(carried.cell_voltage(t, i), same)
    assert not np.allclose(bare.cell_voltage(t, i), same)


def test_only_a_simulated_overlayer_is_carried() -> None:
    clock = VirtualClock()
    with DryRunBench(load_station(CH1), clock=clock, seed=1, roles=["potentiostat"]) as bench:
        assert bench.carry_sample(None) is None
        bench_row = {"id": "S", "run_id": 3, "overlayer": {"layer": "li_in", "thickness_m": 4e-6}}
        assert bench.carry_sample(bench_row) is None  # a bench record: the real sample is on the bench
        assert bench.world.sample_record()["layer"] == "bare"
        made = _made().sample_record()
        row = {"id": "S", "run_id": 3, "overlayer": {
            "source": "simulated world (dry run)", "layer": "li_in", "thickness_m": made["thickness_m"],
            "layers": made["layers"], "li_consumed_m": made["li_consumed_um"] * 1e-6}}
        note = bench.carry_sample(row)
        assert note is not None and note["from_run"] == 3 and note["layer"] == "li_in"
        assert note["thickness_m"] == pytest.approx(4.2e-6)
        assert bench.world.sample_record()["li_consumed_um"] == pytest.approx(2.5)
