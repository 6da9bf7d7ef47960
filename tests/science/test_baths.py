"""Baths are fed by what was pumped into them (issue 16 item 1): a pump that feeds several baths has a
selector valve; `prepare_bath` opens it to the bath it fills; the world's bath concentration after every
`prepare_bath` of every shipped protocol equals the concentration the run recorded from the pumps'
read-back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labctl.simulators.physics import BathSpec, PhysicalWorld, StockSpec, WorldConfig
from labctl.simulators.physics.world import WorldConfigError

ROOT = Path(__file__).resolve().parents[2]
WITH_BATHS = sorted(p for p in (ROOT / "protocols").glob("*.yaml") if "prepare_bath" in p.read_text())


def two_baths() -> PhysicalWorld:
    cfg = WorldConfig(
        baths={"alloy": BathSpec(0.05, -0.04, pumps=("pump.stock", "pump.solvent")),
               "rinse": BathSpec(0.10, -0.04, pumps=("pump.solvent",))},
        stocks={"pump.stock": StockSpec("pump.stock", "THF", "InCl3", 500.0),
                "pump.solvent": StockSpec("pump.solvent", "THF")})
    return PhysicalWorld(cfg, seed=1)


def test_the_valve_sends_each_dispense_to_the_selected_bath() -> None:
    w = two_baths()
    rate = 1e-6 / 6  # 10 mL/min
    w.select_bath("pump.stock", "alloy")
    w.select_bath("pump.solvent", "alloy")
    w.pump_flow("pump.stock", 0.0, rate, 4e-6 / rate)
    w.pump_flow("pump.solvent", 0.0, rate, 16e-6 / rate)
    w.advance(200.0)
    w.select_bath("pump.solvent", "rinse", 200.0)
    w.pump_flow("pump.solvent", 200.0, rate, 200.0 + 20e-6 / rate)
    w.advance(400.0)
    alloy, rinse = w.bath_state("alloy"), w.bath_state("rinse")
    assert alloy["volume_m3"] == pytest.approx(20e-6)
    assert alloy["concentration_mol_m3"] == pytest.approx(100.0)
    assert rinse["volume_m3"] == pytest.approx(20e-6) and rinse["concentration_mol_m3"] == 0.0


def test_switching_mid_flow_splits_the_volume_at_the_switch() -> None:
    w = two_baths()
    rate = 1e-7
    w.pump_flow("pump.solvent", 0.0, rate, 100.0)  # valve at its first bath (alloy)
    w.select_bath("pump.solvent", "rinse", 30.0)
    w.advance(200.0)
    assert w.bath_state("alloy")["volume_m3"] == pytest.approx(3e-6)
    assert w.bath_state("rinse")["volume_m3"] == pytest.approx(7e-6)
    assert w.bath_of_pump("pump.solvent") == "rinse"


def test_a_bath_the_pump_is_not_plumbed_to_is_refused_by_name() -> None:
    w = two_baths()
    with pytest.raises(WorldConfigError, match=r"pump\.stock is not plumbed to bath 'rinse'"):
        w.select_bath("pump.stock", "rinse")
    with pytest.raises(WorldConfigError, match="no bath 'sink'"):
        w.select_bath("pump.stock", "sink")


@pytest.mark.parametrize("path", WITH_BATHS, ids=lambda p: p.stem)
def test_world_bath_equals_recorded_concentration_after_every_prepare_bath(path: Path) -> None:
    import bench_science as bs

    from labctl.protocol.loader import parse_protocol

    text = path.read_text(encoding="utf-8")
    kinds = [s.kind for s in parse_protocol(text, path.name).model.steps]
    last = max(k for k, kind in enumerate(kinds) if kind == "prepare_bath")
    seen: list[tuple[str, float, dict[str, Any]]] = []

    def on_step(run: Any, world: Any, data: dict[str, Any]) -> None:
        r = run.results[-1]
        if r.kind == "prepare_bath":
            bath = r.commanded["bath"]
            seen.append((bath, r.achieved["concentration"], world.bath_state(bath)))

    run = bs.dry_run(text, 1, name=path.name, upto=last + 1, on_step=on_step)
    try:
        assert run.result.ok, run.result.reason
    finally:
        run.close()
    assert len(seen) == kinds.count("prepare_bath")
    for bath, recorded, state in seen:
        assert state["concentration_mol_m3"] == pytest.approx(recorded, rel=1e-9, abs=1e-12), bath
        assert state["volume_m3"] > 0, f"{bath} is empty after its prepare_bath"
