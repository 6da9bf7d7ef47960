"""The dip film a dry run records is the one its recipe names: `dip_coat` announces its polymer, solvent and
drying temperature, the dry-run observer fills the world's bath with that solution, and the overlayer the run
records (labelled simulated) is that polymer's layer (plain PVDF: β dried cool, α dried at or above 70 °C)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("recipe", "hot", "layer"),
    [
        ("peo-dip-coat", None, "peo_upy"),
        ("pvdf-dip-coat", None, "pvdf_beta"),
        ("pvdf-dip-coat", "80 degC", "pvdf_alpha"),
        ("pvdf-alpha-dip-coat", None, "pvdf_alpha"),
        ("pdms-dip-coat", None, "pdms"),
    ],
)
def test_the_recorded_dip_film_is_the_recipes(recipe: str, hot: str | None, layer: str) -> None:
    import bench_science as bs

    text = (ROOT / "protocols" / f"{recipe}.yaml").read_text(encoding="utf-8")
    if hot is not None:
        assert "drying_temperature: 50 degC" in text
        text = text.replace("drying_temperature: 50 degC", f"drying_temperature: {hot}")
    run = bs.dry_run(text, 1, name=f"{recipe}.yaml", transcript=False)
    try:
        assert run.result.ok, run.result.reason
        dip = next(s for s in run.result.steps if s.kind == "dip_coat")
        observed = dip.achieved["observed"][0]
        assert observed["source"] == "simulated world (dry run)"
        assert observed["solution"].split(" in ")[0] == dip.achieved["solution"]["polymer"]
        assert dip.achieved["overlayer"]["layer"] == layer
        assert dip.achieved["overlayer"]["source"] == "simulated world (dry run)"
        assert dip.achieved["overlayer"]["thickness_m"] > 0
    finally:
        run.close()
