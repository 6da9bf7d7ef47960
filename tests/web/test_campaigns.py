"""The campaign pages against a real dry-run campaign (2 x 2 short cells, run by `labctl campaign run`) and a
second, hostile-named one only started (its cells queued): the design matrix with each point's state and
outcome, the life table, every figure of `campaign.report.write`, and observe as an audited operator
action."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web_helpers import PASSWORDS, ROLES, login

import labctl
from labctl.web import users
from labctl.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
SHORT = ROOT / "campaigns" / "short-dry-run.yaml"
HTML = {"accept": "text/html"}
EVIL = "<script>alert('c')</script> {{7*7}}"


@pytest.fixture(scope="module")
def camp_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("campaigns")
    db = str(folder / "lab.db")
    r = subprocess.run([sys.executable, "-m", "labctl", "campaign", "run", str(SHORT), "--simulate",
                        "--max-parallel", "2", "--db", db], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=os.environ.copy())
    assert r.returncode == 0, r.stdout + r.stderr
    text = SHORT.read_text().replace("name: short cells, immersion time x concentration", f'name: "{EVIL}"')
    text = text.replace("../tests/", f"{ROOT}/tests/").replace("../stations/", f"{ROOT}/stations/")
    (folder / "evil.yaml").write_text(text)
    from labctl.campaign.drive import start

    with labctl.connect(db) as lab:
        start(lab.store, folder / "evil.yaml", simulate=True, actor="test")  # queued, never run
        for name, role in ROLES.items():
            users.add_user(lab.store, name, role, PASSWORDS[name], actor="test")
    app = create_app(db, secret=b"c")
    yield app
    app.state.lab.close()


def _client(app: Any, name: str) -> tuple[TestClient, str]:
    c = TestClient(app)
    return c, login(c, name)


def test_campaign_list_shows_both_with_progress_and_escapes(camp_app) -> None:
    c, _ = _client(camp_app, "vera")
    html = c.get("/campaigns", headers=HTML).text
    assert '<a href="/campaigns/1">short cells, immersion time x concentration</a>' in html
    assert "&lt;script&gt;alert(&#39;c&#39;)&lt;/script&gt; {{7*7}}" in html and "<script>alert" not in html
    row1 = re.search(r'<tr><td><a href="/campaigns/1">.*?</tr>', html, re.S).group(0)
    assert 'class="state finished">finished' in row1 and "<td>4</td>" in row1  # 4 points, 4 censored
    row2 = re.search(r'<tr><td><a href="/campaigns/2">.*?</tr>', html, re.S).group(0)
    assert 'class="state running">running' in row2


def test_finished_campaign_page_matrix_lives_and_every_report_figure(camp_app) -> None:
    c, _ = _client(camp_app, "vera")
    html = c.get("/campaigns/1", headers=HTML).text
    lab = camp_app.state.lab
    obs = lab.campaign(1).observations()
    cells = r"<tr><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>\s*<td>([^<]*)</td><td>([^<]*)</td>"
    rows = re.findall(cells, html)
    assert [(int(s), t, x) for s, _, _, t, x in rows] == [
        (seq, r["immersion_time"], r["concentration"]) for seq, r in obs.iterrows()]
    for _, r in obs.iterrows():
        assert f'<a href="/runs/{r["run_id"]}">{r["run_id"]}</a>' in html
        assert f"<td>{r['hours']:.4g}</td>" in html
    assert html.count('class="state censored">censored') == 4
    assert html.count('class="state finished">finished') == 1 + 4  # the campaign and each cell's request
    assert "no failures" in html  # the life table's note (survival.by_condition)
    names = re.findall(r'<img src="/campaigns/1/figures/([^"]+)"', html)
    assert names[0] == "km.png" and "life_heatmap.png" in names  # every PNG of campaign.report.write
    png = c.get("/campaigns/1/figures/km.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    for bad in ("report.md", "x.png", "..%2Fkm.png"):
        assert c.get(f"/campaigns/1/figures/{bad}").status_code == 404
    assert "Observe ended cells" not in html  # a viewer, and the campaign is finished
    assert c.get("/campaigns/99", headers=HTML).status_code == 404


def test_every_png_the_report_returns_is_shown(camp_app, monkeypatch) -> None:
    """A figure another engineer adds to campaign.report.write appears without a change in the web app."""
    from labctl.campaign import report

    real = report.write

    def more(camp, obs, factors, out):
        paths = real(camp, obs, factors, out)
        (out / "added-figure.png").write_bytes((out / "km.png").read_bytes())
        return {**paths, "added": out / "added-figure.png"}

    monkeypatch.setattr(report, "write", more)
    camp_app.state.figures._drawn.pop("campaign-1", None)
    c, _ = _client(camp_app, "vera")
    html = c.get("/campaigns/1", headers=HTML).text
    shown = re.findall(r'<img src="/campaigns/1/figures/([^"]+)"', html)
    assert shown[0] == "km.png" and shown[-1] == "added-figure.png"
    assert c.get("/campaigns/1/figures/added-figure.png").status_code == 200
    camp_app.state.figures._drawn.pop("campaign-1", None)


def test_started_campaign_shows_queued_points_and_observe_is_an_operator_action(camp_app) -> None:
    viewer, vcsrf = _client(camp_app, "vera")
    html = viewer.get("/campaigns/2", headers=HTML).text
    assert "&lt;script&gt;alert(&#39;c&#39;)&lt;/script&gt; {{7*7}}" in html and "<script>alert" not in html
    assert html.count('class="state queued">queued') == 4 and html.count(">pending</td>") == 4
    assert re.findall(r'<a href="/queue/(\d+)">', html)  # each point's request
    assert viewer.post("/campaigns/2/observe", headers={"x-csrf-token": vcsrf}).status_code == 403
    op, csrf = _client(camp_app, "otto")
    assert "Observe ended cells" in op.get("/campaigns/2", headers=HTML).text
    assert op.post("/campaigns/2/observe").status_code == 403  # no CSRF token
    r = op.post("/campaigns/2/observe", headers={"x-csrf-token": csrf})
    assert r.status_code == 200 and "0 cell(s) observed as otto" in r.text  # none has ended


PLANNED = f"""labctl: 1
name: "planned {EVIL}"
protocols:
  test: {ROOT}/protocols/li-in-alloy-cycle.yaml
station: {ROOT}/stations/simulated.yaml
factors:
  immersion_time: {{range: [30 s, 120 s]}}
  concentration: {{levels: [0.05 M, 0.1 M]}}
planner: {{name: random, budget: 4, batch: 3, seed: 5}}
objectives: [{{maximise: hours_to_failure}}]
horizon: 1000 h
"""


def test_pending_suggestions_are_approved_edited_or_rejected_by_an_operator(camp_app, tmp_path) -> None:
    from labctl.campaign import state, suggestions
    from labctl.campaign.drive import start

    lab = camp_app.state.lab
    (tmp_path / "planned.yaml").write_text(PLANNED)
    cid = start(lab.store, tmp_path / "planned.yaml", simulate=True, actor="test")
    ids = suggestions.top_up(lab.store, cid, actor="test")
    assert len(ids) == 3
    viewer, vcsrf = _client(camp_app, "vera")
    html = viewer.get(f"/campaigns/{cid}", headers=HTML).text
    assert "Suggestions awaiting a decision" in html and "<script>alert" not in html
    assert all(f'<tr id="suggestion-{i}">' in html for i in ids) and "Approve" not in html  # a viewer reads
    first = f"/campaigns/{cid}/suggestions/{ids[0]}"
    assert viewer.post(f"{first}/approve", headers={"x-csrf-token": vcsrf}).status_code == 403

    op, csrf = _client(camp_app, "otto")
    html = op.get(f"/campaigns/{cid}", headers=HTML).text
    assert f'hx-post="{first}/approve"' in html and 'name="value.concentration"' in html
    assert op.post(f"{first}/approve", data={"value.concentration": "0.1 M"}).status_code == 403  # no CSRF
    bad = op.post(f"{first}/approve", headers={"x-csrf-token": csrf},
                  data={"value.immersion_time": "1 h", "value.concentration": "0.1 M"})
    assert bad.status_code == 400 and f"suggestion {ids[0]}" in bad.text  # outside the factor's range
    ok = op.post(f"{first}/approve", headers={"x-csrf-token": csrf},
                 data={"value.immersion_time": "60 s", "value.concentration": "0.1 M"})
    assert ok.status_code == 200 and "approved by otto: queued as request" in ok.text, ok.text
    pt = state.points(lab.store, cid)[0]
    assert pt["values"] == {"immersion_time": "60 s", "concentration": "0.1 M"} and pt["request_id"]
    r = op.post(f"/campaigns/{cid}/suggestions/{ids[1]}/reject", headers={"x-csrf-token": csrf},
                data={"reason": "<b>too close</b>"})
    assert r.status_code == 200 and "rejected by otto" in r.text
    again = op.post(f"{first}/approve", headers={"x-csrf-token": csrf}, data={})
    assert again.status_code == 400 and "already decided" in again.text
    left = suggestions.pending(lab.store, cid)
    assert [s["id"] for s in left] == [ids[2]]
    kinds = [(e["kind"], e["actor"]) for e in lab.store.events()]
    assert ("campaign.suggestion.approved", "otto") in kinds
    assert ("campaign.suggestion.rejected", "otto") in kinds
    html = op.get(f"/campaigns/{cid}", headers=HTML).text
    assert f'<tr id="suggestion-{ids[0]}">' not in html and f'<tr id="suggestion-{ids[2]}">' in html


@pytest.mark.parametrize("closed", ["finished", "cancelled"])
def test_a_finished_or_cancelled_campaign_refuses_approve_and_edit(camp_app, tmp_path, closed) -> None:
    from sqlalchemy import update

    from labctl.campaign import state, suggestions
    from labctl.campaign.drive import start
    from labctl.store.models import Campaign

    lab = camp_app.state.lab
    (tmp_path / "planned.yaml").write_text(PLANNED)
    cid = start(lab.store, tmp_path / "planned.yaml", simulate=True, actor="test")
    ids = suggestions.top_up(lab.store, cid, actor="test")
    with lab.store.engine.begin() as conn:  # as `campaign.finished` or a cancel would leave it
        conn.execute(update(Campaign).where(Campaign.id == cid).values(state=closed))
    op, csrf = _client(camp_app, "otto")
    html = op.get(f"/campaigns/{cid}", headers=HTML).text  # the page offers no approval, only rejection
    assert f'<tr id="suggestion-{ids[0]}">' in html
    assert f"is {closed}: these suggestions can no longer" in html
    assert "/approve" not in html and 'name="value.concentration"' not in html and "/reject" in html
    url = f"/campaigns/{cid}/suggestions/{ids[0]}/approve"
    as_is = op.post(url, headers={"x-csrf-token": csrf}, data={})
    edited = op.post(url, headers={"x-csrf-token": csrf},
                     data={"value.immersion_time": "60 s", "value.concentration": "0.1 M"})
    for r in (as_is, edited):
        assert r.status_code == 400, r.text
        assert f"campaign {cid} is {closed}: its suggestions can no longer be approved" in r.text
    assert state.points(lab.store, cid) == [] and len(suggestions.pending(lab.store, cid)) == len(ids)


def test_an_operator_cancels_a_running_campaign_from_its_page(camp_app, tmp_path) -> None:
    from labctl.campaign import state
    from labctl.campaign.drive import start

    lab = camp_app.state.lab
    (tmp_path / "planned.yaml").write_text(PLANNED)
    cid = start(lab.store, tmp_path / "planned.yaml", simulate=True, actor="test")
    url = f"/campaigns/{cid}/cancel"
    viewer, vcsrf = _client(camp_app, "vera")
    assert "Cancel campaign" not in viewer.get(f"/campaigns/{cid}", headers=HTML).text
    assert viewer.post(url, headers={"x-csrf-token": vcsrf}).status_code == 403
    op, csrf = _client(camp_app, "otto")
    assert f'hx-post="{url}"' in op.get(f"/campaigns/{cid}", headers=HTML).text
    assert op.post(url, data={"reason": "x"}).status_code == 403                     # no CSRF token
    r = op.post(url, headers={"x-csrf-token": csrf}, data={"reason": "<i>bath</i> spilt"})
    assert r.status_code == 200 and "cancelled by otto" in r.text and "<i>" not in r.text
    assert state.get(lab.store, cid)["state"] == "cancelled"
    (event,) = [e for e in lab.store.events() if e["kind"] == "campaign.cancelled"]
    assert event["actor"] == "otto" and "<i>bath</i> spilt" in event["data"]
    again = op.post(url, headers={"x-csrf-token": csrf}, data={})
    assert again.status_code == 400 and f"campaign {cid} is cancelled" in again.text
    assert f'hx-post="{url}"' not in op.get(f"/campaigns/{cid}", headers=HTML).text
