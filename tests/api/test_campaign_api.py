"""`lab.start_campaign` / `lab.resume_campaign`: a campaign created and driven from Python, its own process
doing the driving; bad files refused with positions before anything is recorded (the happy path end to end
is examples/small-campaign.ipynb, executed by tests/examples)."""

from __future__ import annotations

from pathlib import Path

import pytest

import labctl
from labctl.campaign.loader import CampaignFileError
from labctl.store.errors import StoreError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "audit.key"))
    monkeypatch.setenv("LABCTL_SPOOL", str(tmp_path / "spool"))
    with labctl.connect(str(tmp_path / "lab.db")) as lab:
        yield lab


def test_a_bad_campaign_file_is_refused_with_its_position_and_nothing_is_recorded(lab, tmp_path) -> None:
    text = (ROOT / "campaigns" / "short-dry-run.yaml").read_text().replace(
        "concentration: {levels: [0.05 M, 0.1 M]}", "concentraton: {levels: [0.05 M, 0.1 M]}")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("../", f"{ROOT}/"))
    with pytest.raises(CampaignFileError) as err:
        lab.start_campaign(bad)
    assert "concentraton" in str(err.value) and f"{bad}:" in str(err.value)
    assert lab.store.events() == [] or all(not e["kind"].startswith("campaign.") for e in lab.store.events())
    with pytest.raises(StoreError):
        lab.resume_campaign(1)


def test_a_campaign_started_from_python_is_driven_by_its_own_process(lab, tmp_path) -> None:
    text = (ROOT / "campaigns" / "short-dry-run.yaml").read_text().replace("../", f"{ROOT}/")
    text = text.replace("immersion_time: {levels: [30 s, 90 s]}", "immersion_time: {levels: [30 s]}")
    (tmp_path / "c.yaml").write_text(text)
    camp = lab.start_campaign(tmp_path / "c.yaml", max_parallel=2)
    assert camp.process is not None and camp.process.pid != 0 and camp.log is not None
    progress = camp.wait(timeout=240)
    assert camp.state == "finished" and progress["points"] == 2 and progress["pending"] == 0
    assert camp.process.wait(timeout=60) == 0
    obs = camp.observations()
    assert list(obs["status"].unique()) and set(obs["status"]) <= {"failed", "censored"}
    assert obs["run_id"].notna().all()
