"""The run page's first plot on a 1000 h run (3.6 M points at 1 s): `GET /runs/N/series?width=1000` through
the web app (TestClient, in process), cold (the trace read from the store's chunks) and warm (the finished
run's trace cached), and a zoom on 10 % of the run. Issue 21's target: first plot <= 1 s.

The points are written through the store's measurement writer (as a run writes them), not by a dry run, so
the benchmark takes seconds. Also the live view's poll (the points after the last one sent).
Usage: python benchmarks/bench_web.py [--points 3600000] [--width 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=3_600_000)
    ap.add_argument("--width", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="labctl-bench-web-") as tmp:
        os.environ.setdefault("LABCTL_AUDIT_KEY", str(Path(tmp) / "audit.key"))
        from fastapi.testclient import TestClient

        import labctl
        from labctl.web import data, users
        from labctl.web.app import create_app

        db = str(Path(tmp) / "web.db")
        n = args.points
        t = np.arange(n, dtype=float)
        v = 0.02 * np.sign(np.sin(np.pi * t / 3600.0)) + 1e-4 * np.random.default_rng(1).standard_normal(n)
        with labctl.connect(db) as lab:
            rid = lab.store.create_run(protocol_name="bench 1000 h", protocol_path="", protocol_text="",
                                       parameters={}, station_name="", station_text="", operator="bench",
                                       mode="dry-run", seed=None, sample_id=None, steps=[])
            w = lab.store.measurement_writer(rid, None, "cycling")
            for k in range(0, n, 10_000):
                m = min(10_000, n - k)
                w.append(t=t[k:k + m], voltage=v[k:k + m], current=np.full(m, 1e-3))
            w.close()
            lab.store.set_run_state(rid, "preflight")
            lab.store.set_run_state(rid, "running")
            lab.store.set_run_state(rid, "completed", reason="bench")
            users.add_user(lab.store, "bench", "viewer", "bench-pass-123", actor="bench")
        app = create_app(db, secret=b"bench")
        with TestClient(app) as c:
            token = c.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
            c.post("/login", data={"username": "bench", "password": "bench-pass-123", "csrf": token})
            url = f"/runs/{rid}/series?width={args.width}"
            cold = []
            for _ in range(3):
                data._cache.clear()
                a = time.perf_counter()
                r = c.get(url)
                cold.append(time.perf_counter() - a)
            body = r.json()
            a = time.perf_counter()
            c.get(url)
            warm = time.perf_counter() - a
            a = time.perf_counter()
            z = c.get(url + f"&t0={0.45 * n}&t1={0.55 * n}").json()
            zoom = time.perf_counter() - a
            a = time.perf_counter()
            page = c.get(f"/runs/{rid}", headers={"accept": "text/html"})
            html = time.perf_counter() - a
            a = time.perf_counter()
            new_t, _ = data.voltage_since(app.state.lab, rid, float(n - 100))
            poll = time.perf_counter() - a
        app.state.lab.close()
    print(f"points: {n:,}; plot width {args.width} px")
    print(f"first plot, cold (read + downsample + JSON): median {statistics.median(cold):.3f} s "
          f"of {[round(x, 3) for x in cold]}; {body['shown']} of {body['total']:,} points sent, "
          f"{len(r.content) / 1e3:.0f} kB")
    print(f"same, warm (finished run cached): {warm:.3f} s")
    print(f"zoom on 10 % of the run: {zoom:.3f} s, {z['shown']} of {z['total']:,} points")
    print(f"run page HTML: {html:.3f} s ({page.status_code})")
    print(f"live poll for the last {new_t.size} points (chunks past the last sent): {poll * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
