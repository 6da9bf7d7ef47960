"""A running dry run (`--realtime`) watched and controlled through the web app: server-sent points arrive
every second, pause/resume/abort from an operator go through the store's audited control path with the
user's name, and the event stream ends when the run does."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_helpers import LONG, login

import labctl
from labctl.web import users
from labctl.web.app import create_app


def _events(lines):
    """(event, data) pairs from an SSE line iterator."""
    kind = None
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind:
            yield kind, json.loads(line[6:]), time.monotonic()
            kind = None


def _wait_state(lab, run_id: int, want: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if lab.run(run_id).state == want:
            return
        time.sleep(0.1)
    pytest.fail(f"run {run_id} did not become {want} (it is {lab.run(run_id).state})")


def test_live_points_and_control_as_operator(tmp_path: Path) -> None:
    proto = tmp_path / "live.yaml"
    proto.write_text(LONG)
    db = str(tmp_path / "live.db")
    app = create_app(db, secret=b"live")
    lab = labctl.connect(db)
    sub = None
    try:
        users.add_user(lab.store, "otto", "operator", "operator-pass-123", actor="test")
        sub = lab.submit(proto, seed=2, realtime=True)
        run_id = sub.wait_started(60)
        _wait_state(lab, run_id, "running")
        with TestClient(app) as watcher, TestClient(app) as op:
            login(watcher, "otto", "operator-pass-123")
            csrf = login(op, "otto", "operator-pass-123")
            page = op.get(f"/runs/{run_id}", headers={"accept": "text/html"}).text
            assert f'hx-post="/runs/{run_id}/control/pause"' in page and 'data-live="true"' in page

            ctl = {"x-csrf-token": csrf}
            with watcher.stream("GET", f"/runs/{run_id}/live") as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                events = _events(resp.iter_lines())
                points = []
                for kind, data, at in events:
                    if kind == "points":
                        points.append((data, at))
                        if len(points) == 3:
                            break
                # the backlog first, then what was stored since: new points within 2 s of each other
                assert points[1][0]["x"][0] > points[0][0]["x"][-1]
                assert points[2][0]["x"][0] > points[1][0]["x"][-1]
                assert points[2][1] - points[1][1] < 2.0
                # control at the run's safe points (the wait step): pause, resume, abort as `otto`
                _wait_state(lab, run_id, "running")
                while lab.run(run_id).steps.loc[0, "status"] == "running":
                    time.sleep(0.2)
                assert op.post(f"/runs/{run_id}/control/pause", headers=ctl).status_code == 200
                _wait_state(lab, run_id, "paused")
                r = op.post(f"/runs/{run_id}/control/resume", headers=ctl)
                assert r.status_code == 200 and "resume sent" in r.text
                _wait_state(lab, run_id, "running")
                assert op.post(f"/runs/{run_id}/control/abort", headers=ctl).status_code == 200
                seen = [(k, d) for k, d, _ in events]
            assert seen[-1] == ("end", {}) and ("state", "aborted") in seen
        sub.wait(60)
        posted = [e for e in lab.store.events(run_id) if e["kind"] == "control.posted"]
        assert [(json.loads(e["data"])["command"], e["actor"]) for e in posted] == [
            ("pause", "otto"), ("resume", "otto"), ("abort", "otto")]
        assert lab.run(run_id).state == "aborted"
    finally:
        if sub is not None and lab.run(sub.run_id).state not in ("completed", "aborted", "failed"):
            sub.abort()
            sub.wait(60)
        app.state.lab.close()
        lab.close()


def test_viewers_of_a_run_share_one_poll_and_get_the_same_points(app, web_db, monkeypatch) -> None:
    """Twenty viewers polling within the period cost one read of the store; each gets exactly the points
    past its own last one, also when that is before the feed began (read from the store once)."""
    import asyncio

    import numpy as np

    from labctl.web import data, live

    lab, run_id = app.state.lab, web_db[1]
    t_all, v_all = data.voltage_series(lab, lab.run(run_id))
    calls = []
    real = data.voltage_since
    monkeypatch.setattr(data, "voltage_since", lambda *a: calls.append(a[2]) or real(*a))

    async def go() -> None:
        hub = live.LiveFeeds(lab, period=60.0)
        feed = hub.join(run_id, float(t_all[100]))
        for _ in range(19):
            assert hub.join(run_id, float(t_all[100])) is feed
        for _ in range(20):
            await hub.poll(run_id, feed)
        assert calls == [float(t_all[100])] and feed.done and feed.state == "completed"
        for after in (t_all[100], t_all[5000], t_all[-1]):
            t, v = await hub.points_after(run_id, feed, float(after))
            keep = t_all > after
            assert np.array_equal(t, t_all[keep]) and np.array_equal(v, v_all[keep])
        t, _ = await hub.points_after(run_id, feed, float(t_all[10]))  # before the feed: from the store
        assert np.array_equal(t, t_all[11:]) and len(calls) == 2
        first, last = await hub.message(run_id, feed, float(t_all[100]), 2000)
        again, _ = await hub.message(run_id, feed, float(t_all[100]), 2000)
        assert again is first and last == t_all[-1] and first.startswith("event: points\ndata: ")
        assert len(json.loads(first.split("data: ")[1])["x"]) <= 4000  # cut to the width (min/max pairs)
        assert await hub.message(run_id, feed, float(t_all[-1]), 2000) == ("", float(t_all[-1]))
        for _ in range(20):
            hub.leave(run_id)
        assert hub.feeds == {}

    asyncio.run(go())
