"""Records no protocol loader would accept (a store written by another client, or an older labctl): markup in
the sample id, the instrument's name, its replies and notes. The pages show them as text."""

from __future__ import annotations

import html
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from web_helpers import login

import labctl
from labctl.store.ingest import IORecorder
from labctl.web import users
from labctl.web.app import create_app

REPLY = b"<script>alert(1)</script>\r\n\x00\xff{{7*7}}"


@pytest.fixture
def hostile_store(tmp_path):
    db = str(tmp_path / "hostile.db")
    with labctl.connect(db) as lab:
        run_id = lab.store.create_run(
            protocol_name="</td><script>x()</script>", protocol_path="p<.yaml", protocol_text="labctl: 1\n",
            parameters={"<k>": "{{7*7}}"}, station_name="<station>", station_text="", operator="<op>",
            mode="dry-run", seed=1, sample_id="<b>1</b>{{7*7}}", steps=[])
        rec = IORecorder(lab.store.engine, run_id)
        rec(SimpleNamespace(t=1.0, instrument="<i>pot</i>", direction="read", data=REPLY, note="<img src=x>"))
        rec(SimpleNamespace(t=2.0, instrument="<i>pot</i>", direction="write", data=b"*IDN?\n", note=""))
        rec.close()
        users.add_user(lab.store, "otto", "operator", "operator-pass-123", actor="test")
    app = create_app(db, secret=b"h")
    yield app, run_id
    app.state.lab.close()


def test_hostile_records_render_as_text(hostile_store) -> None:
    app, run_id = hostile_store
    with TestClient(app) as c:
        csrf = login(c, "otto", "operator-pass-123")
        runs = c.get("/runs", headers={"accept": "text/html"}).text
        assert "&lt;/td&gt;&lt;script&gt;x()&lt;/script&gt;" in runs and "&lt;b&gt;1&lt;/b&gt;{{7*7}}" in runs
        page = c.get(f"/runs/{run_id}", headers={"accept": "text/html"}).text
        raws = ("<script>x()", "<b>1</b>", "<op>", "<station>", "<i>pot</i>", "<img src=x>", "<script>alert")
        for raw in raws:
            assert raw not in page, raw
        assert html.escape("<script>alert(1)</script>", quote=True) + "\\r\\n\\x00\\xff{{7*7}}" in page
        assert "&lt;i&gt;pot&lt;/i&gt;" in page and "&lt;img src=x&gt;" in page
        # the instrument filter round-trips a name with markup in it
        one = c.get(f"/runs/{run_id}/io", params={"instrument": "<i>pot</i>"}).text
        assert "2 exchanges" in one and "<i>pot</i>" not in one
        assert "1 exchanges" in c.get(f"/runs/{run_id}/io", params={"q": "IDN"}).text
        # a run not yet ended takes commands: posted through the store, audited with the web user's name
        r = c.post(f"/runs/{run_id}/control/ack", headers={"x-csrf-token": csrf})
        assert r.status_code == 200 and "as otto" in r.text
        posted = [e for e in app.state.lab.store.events(run_id) if e["kind"] == "control.posted"]
        assert [e["actor"] for e in posted] == ["otto"]
        assert c.get(f"/runs/{run_id}/series").json()["total"] == 0  # no points yet: an empty plot
