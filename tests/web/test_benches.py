"""The benches and queue page on a copy of the test store: a registered runner (this process, so alive), its
station's instruments with a lease held by a run, queued requests with why each waits (the sentence of
`labctl queue show`), and hostile names as text."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_helpers import login

from labctl.web.app import create_app

HTML = {"accept": "text/html"}


@pytest.fixture
def bench(web_db, tmp_path: Path) -> Iterator[tuple[TestClient, dict]]:
    from labctl.api.submit import find_station
    from labctl.cli.queue_cmds import parse_not_before
    from labctl.queue import submit
    from labctl.queue.matching import capability
    from labctl.station import load_station
    from labctl.store import requests

    db = tmp_path / "bench.db"
    with sqlite3.connect(web_db[0]) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    app = create_app(str(db), secret=b"b")
    store = app.state.lab.store
    station = find_station(None, True)
    info = load_station(station)
    cap = capability(info, True)
    requests.register_worker(store, "runner@<b>lab</b>", kind="runner", station_name=info.name, station=cap)
    key = sorted(cap["roles"].items())[0][1]
    store.acquire_leases(web_db[1], [key])
    proto = tmp_path / "wait.yaml"
    proto.write_text("labctl: 1\nname: wait a bit\nsteps:\n  - wait: {duration: 1 min}\n")
    ids = {
        "now": submit(proto, simulate=True, requested_by="otto", store=store),
        "later": submit(proto, simulate=True, not_before=parse_not_before("+2h"), store=store),
        "bench": submit(proto, simulate=False, sample="S-9", store=store),
    }
    try:
        with TestClient(app) as c:
            login(c, "vera")
            yield c, {"ids": ids, "key": key, "station": info.name, "roles": cap["roles"]}
    finally:
        app.state.lab.close()


def test_benches_page_shows_workers_stations_leases_and_why_requests_wait(bench, web_db) -> None:
    c, ctx = bench
    page = c.get("/benches", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert "runner@&lt;b&gt;lab&lt;/b&gt;" in html and "<b>lab" not in html  # the name as text
    row = re.search(r"<tr><td>runner@.*?</tr>", html, re.S)
    assert row and ">yes<" in row.group(0)  # this process registered it: alive
    assert f"<h3>{ctx['station']}" in html and "(dry-run bench)" in html
    for role, key in ctx["roles"].items():
        assert f"<td>{role}</td><td>{key}</td>" in html
    lease_row = re.search(rf"<td>{re.escape(ctx['key'])}</td>.*?</tr>", html, re.S)
    assert lease_row and f'run <a href="/runs/{web_db[1]}">{web_db[1]}</a>' in lease_row.group(0)
    assert html.count('class="ok">free</td>') == len(ctx["roles"]) - 1
    ids = ctx["ids"]

    def req_row(rid: int) -> str:
        m = re.search(rf'<tr><td><a href="/queue/{rid}">{rid}</a></td>.*?</tr>', html, re.S)
        assert m, rid
        return m.group(0)

    free_slot = "can be served by runner@&lt;b&gt;lab&lt;/b&gt;; waiting for a free slot there"
    assert free_slot in req_row(ids["now"])
    assert "not before" in req_row(ids["later"])
    assert "it is a dry-run bench" in req_row(ids["bench"])


def test_request_page_and_the_all_filter(bench) -> None:
    c, ctx = bench
    rid = ctx["ids"]["bench"]
    html = c.get(f"/queue/{rid}", headers=HTML).text
    assert "Waiting: no station can serve it" in html and "S-9" in html
    assert c.get("/queue/999999", headers=HTML).status_code == 404
    from labctl.store import requests

    requests.cancel(c.app.state.lab.store, rid, actor="otto", reason="<i>not needed</i>")
    assert f'href="/queue/{rid}"' not in c.get("/benches").text  # ended: only with all=true
    every = c.get("/benches?all=true").text
    assert f'href="/queue/{rid}"' in every and "&lt;i&gt;not needed&lt;/i&gt;" in every
