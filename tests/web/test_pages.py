"""The pages against a real store holding a real dry run whose protocol name, operator message and operator
carry markup and template syntax: everything shows as text, nothing is evaluated."""

from __future__ import annotations

import csv
import io
import re
import sqlite3

import numpy as np
from web_helpers import HOSTILE_MESSAGE, HOSTILE_NAME, login

from labctl.web.app import create_app
from labctl.web.data import show_bytes

HTML = {"accept": "text/html"}


def _no_live_markup(html: str) -> None:
    """No injected tag survived as markup and no template expression was evaluated."""
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>1</b>" not in html
    assert "<i>" not in html and "{{7*7}}" in html  # template syntax shown, not evaluated


def test_runs_page_lists_filters_sorts_and_escapes(as_role, web_db) -> None:
    c, _ = as_role("viewer")
    page = c.get("/runs", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt; {{7*7}}" in html
    assert "mallory&lt;i&gt;" in html
    _no_live_markup(html)
    assert f'href="/runs/{web_db[1]}"' in html
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]  # scripts from this server only
    # filters: state, operator, protocol substring, dates; an unknown state or sort column is a clear 400
    assert "No runs match" in c.get("/runs?state=failed", headers=HTML).text
    assert f'href="/runs/{web_db[1]}"' in c.get("/runs?state=completed&operator=mallory<i>").text
    assert "No runs match" in c.get("/runs?operator=someone").text
    assert f'href="/runs/{web_db[1]}"' in c.get("/runs?protocol=<script>").text
    assert "No runs match" in c.get("/runs?since=2999-01-01").text
    assert "No runs match" in c.get("/runs?until=2000-01-01").text
    r = c.get("/runs?state=exploded", headers=HTML)
    assert r.status_code == 400 and "one of created" in r.text
    assert c.get("/runs?sort=password").status_code == 400
    assert c.get("/runs?sort=protocol_name&desc=false").status_code == 200


def test_run_page_shows_provenance_steps_with_units_events_and_escapes(as_role, web_db) -> None:
    c, _ = as_role("operator")
    html = c.get(f"/runs/{web_db[1]}", headers=HTML).text
    _no_live_markup(html)
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt; {{7*7}}" in html
    assert "&lt;img src=x onerror=alert(1)&gt; {{7*7}} connect the cell" in html  # in the steps and events
    assert HOSTILE_MESSAGE not in html and HOSTILE_NAME not in html
    # commanded vs achieved with units (labctl.display, as `labctl runs show`)
    assert "cycle_symmetric" in html and "mA/cm" in html and "duration=2 min" in html
    assert "run.created" in html or "run.state" in html
    assert f'hx-post="/runs/{web_db[1]}/control/pause"' not in html  # a completed run takes no commands
    assert 'src="/static/vendor/uPlot.iife.min.js"' in html and "cdn" not in html.lower()
    assert c.get("/runs/999999", headers=HTML).status_code == 404


def test_series_is_downsampled_to_the_width_and_keeps_extremes(as_role, web_db) -> None:
    c, _ = as_role("viewer")
    full = c.get(f"/runs/{web_db[1]}/series?width=100000").json()
    assert full["total"] == 7222 and full["shown"] == full["total"]  # 22 OCV (EIS settle: 10) + 7200
    x, y = np.array(full["x"]), np.array(full["y"])
    assert np.all(np.diff(x) >= 0)
    small = c.get(f"/runs/{web_db[1]}/series?width=200").json()
    assert small["total"] == 7222 and small["shown"] <= 400
    assert max(small["y"]) == y.max() and min(small["y"]) == y.min()
    assert set(small["x"]) <= set(full["x"])  # points of the series, never averages
    # zoom: the window [t0, t1] at full resolution when it fits
    t0, t1 = x[3000], x[3300]
    win = c.get(f"/runs/{web_db[1]}/series?width=1000&t0={t0}&t1={t1}").json()
    assert win["x"] == full["x"][3000:3301] and win["total"] == 301
    assert c.get(f"/runs/{web_db[1]}/series?width=0").status_code == 422


def test_csv_export_downloads_the_stream_with_bdf_names(as_role, web_db) -> None:
    c, _ = as_role("viewer")
    r = c.get(f"/runs/{web_db[1]}/export.csv?stream=cycling")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f'filename="run{web_db[1]}-cycling.csv"' in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:3] == ["test_time_second", "voltage_volt", "current_ampere"]
    assert len(rows) == 7201
    assert c.get(f"/runs/{web_db[1]}/export.csv?stream=../../etc/passwd").status_code == 404


def test_transcript_pages_filters_and_shows_bytes_safely(as_role, web_db) -> None:
    c, _ = as_role("viewer")
    first = c.get(f"/runs/{web_db[1]}/io").text
    m = re.search(r"(\d+) exchanges, page 1 of (\d+)", first)
    assert m and int(m.group(1)) > 0
    pages = int(m.group(2))
    last = c.get(f"/runs/{web_db[1]}/io?page={pages}").text
    assert f"page {pages} of {pages}" in last
    names = re.findall(r'<option value="([^"]+)"', first)
    assert names
    one = c.get(f"/runs/{web_db[1]}/io", params={"instrument": names[0]}).text
    assert f'<option value="{names[0]}" selected>' in one
    assert show_bytes(b"<script>\r\n\x00\xff\\") == "<script>\\r\\n\\x00\\xff\\\\"


def test_verify_reports_ok_then_the_first_broken_entry(web_db, tmp_path) -> None:
    db = tmp_path / "copy.db"
    with sqlite3.connect(web_db[0]) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    app = create_app(str(db), secret=b"v")
    try:
        from fastapi.testclient import TestClient

        with TestClient(app) as c:
            csrf = login(c, "vera")
            ok = c.post(f"/runs/{web_db[1]}/verify", headers={"x-csrf-token": csrf}).text
            assert "Audit OK" in ok
            with sqlite3.connect(db) as con:  # edit an event's data behind the chain's back
                seq = con.execute("SELECT min(seq) FROM events WHERE run_id = ? AND kind LIKE 'step.%'",
                                  (web_db[1],)).fetchone()[0]
                con.execute("DROP TRIGGER IF EXISTS events_no_update")
                for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
                    con.execute(f"DROP TRIGGER {name}")
                con.execute("UPDATE events SET data = replace(data, '}', ',\"x\":1}') WHERE seq = ?", (seq,))
            bad = c.post(f"/runs/{web_db[1]}/verify", headers={"x-csrf-token": csrf}).text
            assert "Audit FAILED" in bad and f"First broken entry: seq {seq}" in bad
    finally:
        app.state.lab.close()


def test_live_reads_only_points_after_the_last_one_sent(app, web_db) -> None:
    from labctl.web.data import voltage_series, voltage_since

    lab = app.state.lab
    t, v = voltage_series(lab, lab.run(web_db[1]))
    for after in (-np.inf, t[0], t[5000], t[-2], t[-1]):
        nt, nv = voltage_since(lab, web_db[1], float(after))
        keep = t > after
        assert np.array_equal(nt, t[keep]) and np.array_equal(nv, v[keep])


def test_eis_sweeps_for_nyquist_and_bode_are_the_stored_spectrum(as_role, app, web_db) -> None:
    c, _ = as_role("viewer")
    html = c.get(f"/runs/{web_db[1]}", headers=HTML).text
    assert 'id="nyquist"' in html and 'src="/static/eis.js"' in html
    d = c.get(f"/runs/{web_db[1]}/eis").json()
    assert d["units"] == {"freq": "Hz", "z_real": "ohm", "z_imag": "ohm"}
    (sweep,) = d["sweeps"]
    stored = app.state.lab.run(web_db[1]).data("eis").sort_values("freq")
    assert sweep["step"] == 2 and sweep["freq"] == stored["freq"].tolist()
    assert sweep["z_real"] == stored["z_real"].tolist() and sweep["z_imag"] == stored["z_imag"].tolist()
    assert sweep["freq"][0] == 1.0 and sweep["freq"][-1] == 1e5  # 100 kHz..1 Hz as commanded
    assert c.get("/static/eis.js").status_code == 200


def test_report_fragment_shows_every_figure_of_the_run_report_and_its_metrics(as_role, web_db) -> None:
    c, _ = as_role("viewer")
    html = c.get(f"/runs/{web_db[1]}/report").text
    names = re.findall(r'<img src="/runs/\d+/figures/([^"]+)"', html)
    assert names == ["step02-eis-nyquist.png", "step02-eis-bode.png", "step03-cycle_symmetric-voltage.png",
                     "step03-cycle_symmetric-overpotential.png"]
    for name in names:
        r = c.get(f"/runs/{web_db[1]}/figures/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert "step 3 cycle_symmetric: overpotential_cycle10_mV" in html and "step 2 eis: r_film" in html
    # only names the report returned are served: nothing else from the folder or the disk
    for bad in ("metrics.json", "summary.html", "..%2F..%2Fetc%2Fpasswd", "x.png"):
        assert c.get(f"/runs/{web_db[1]}/figures/{bad}").status_code == 404


def test_parquet_export_carries_the_data_and_the_provenance(as_role, web_db) -> None:
    import json

    import pyarrow.parquet as pq

    c, _ = as_role("viewer")
    assert f'/runs/{web_db[1]}/export.parquet?stream=cycling' in c.get(f"/runs/{web_db[1]}").text
    r = c.get(f"/runs/{web_db[1]}/export.parquet?stream=cycling")
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apache.parquet"
    assert f'filename="run{web_db[1]}-cycling.parquet"' in r.headers["content-disposition"]
    table = pq.read_table(io.BytesIO(r.content))
    assert table.num_rows == 7200 and table.column_names[:3] == ["test_time_second", "voltage_volt",
                                                                 "current_ampere"]
    meta = json.loads(table.schema.metadata[b"labctl"])
    assert meta["run"]["id"] == web_db[1] and meta["steps"][3]["kind"] == "cycle_symmetric"
    eis = pq.read_table(io.BytesIO(c.get(f"/runs/{web_db[1]}/export.parquet?stream=eis").content))
    assert eis.num_rows == 26 and {"freq", "z_real", "z_imag"} <= set(eis.column_names)
    assert c.get(f"/runs/{web_db[1]}/export.xlsx?stream=cycling").status_code == 404


def test_parquet_without_pyarrow_is_a_clear_message(as_role, web_db, monkeypatch) -> None:
    from labctl.web import pages

    monkeypatch.setattr(pages, "parquet_available", lambda: False)
    c, _ = as_role("viewer")
    html = c.get(f"/runs/{web_db[1]}").text
    assert "export.parquet" not in html and "Parquet export needs pyarrow" in html
    r = c.get(f"/runs/{web_db[1]}/export.parquet?stream=cycling")
    assert r.status_code == 501 and "pip install &#39;labctl[parquet]&#39;" not in r.text
    assert "pip install 'labctl[parquet]'" in r.text


def test_transcript_pages_read_only_their_rows_and_equal_the_full_transcript(app, web_db) -> None:
    """The paged read (no search) gives exactly the rows of `Store.io` in its order, page by page."""
    from labctl.web.data import PAGE, transcript_page

    lab = app.state.lab
    full = lab.store.io(web_db[1])
    first = transcript_page(lab, web_db[1], None, 1)
    assert first["total"] == len(full) and first["pages"] == -(-len(full) // PAGE)
    got = []
    for page in range(1, first["pages"] + 1):
        got += transcript_page(lab, web_db[1], None, page)["rows"]
    assert [(r["t"], r["instrument"], r["text"]) for r in got] == \
        [(r["t"], r["instrument"], show_bytes(r["bytes"])) for r in full]
    name = first["instruments"][0]
    one = transcript_page(lab, web_db[1], name, 1)
    assert one["total"] == sum(r["instrument"] == name for r in full)
    assert all(r["instrument"] == name for r in one["rows"])
    found = transcript_page(lab, web_db[1], None, 1, search=first["rows"][0]["text"][:6])
    assert 0 < found["total"] <= len(full)
