"""The web app's figures from issue 21.

`plot`: the run page's first plot on a 1000 h run (3.6 M points at 1 s): `GET /runs/N/series?width=1000`
through the web app (TestClient, in process), cold (the trace read from the store's chunks) and warm (the
finished run's trace cached), and a zoom on 10 % of the run (target: first plot <= 1 s). The points are
written through the store's measurement writer (as a run writes them), not by a dry run, so it takes seconds.
Also the live view's poll (the points after the last one sent).

`live`: a dry run (its own `labctl run` process, virtual clock) timed unwatched and watched by 20 viewers of
`labctl serve` (its own process), alternately, `--repeats` times each. Each viewer has its own login and
does what the run page does: the page, the first plot, the report fragment, then the live SSE stream until
the run ends. The live latency is measured at the same time: the bench polls the store every 20 ms for the
newest stored point (the chunks' t_last; in both modes, so its cost is the same) and each viewer notes when an
SSE message first carries a point at or past it (targets: the watched run within 10 % of the unwatched;
latency <= 2 s). The viewers run on this machine too (httpx, the newest x read without decoding the JSON).
Usage: python benchmarks/bench_web.py [plot|live|all] [--points 3600000] [--width 1000] [--viewers 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", nargs="?", choices=("plot", "live", "all"), default="all")
    ap.add_argument("--points", type=int, default=3_600_000)
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cycles", type=int, default=400, help="cycles of the dry run (its length)")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    if args.part in ("plot", "all"):
        plot(args)
    if args.part in ("live", "all"):
        live(args)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def plot(args: argparse.Namespace) -> None:
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



LIVE_PROTOCOL = """\
labctl: 1
name: bench web live
sample: {{id: WEB-BENCH, substrate: Li foil 450 um, area: 1.13 cm^2, li_thickness: 450 um}}
steps:
  - ocv: {{duration: 2 min, sample_every: 1 s}}
  - cycle_symmetric: {{current_density: 1 mA/cm^2, capacity: 0.05 mAh/cm^2, cycles: {cycles},
                      sample_every: 1 s, voltage_limit: 0.5 V}}
"""


def _serve(db: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LABCTL_WEB_SECRET": "bench-web-secret"}
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "serve", "--db", db, "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise SystemExit(f"labctl serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("labctl serve did not start")


async def _login(base: str, name: str, password: str) -> Any:
    import httpx

    c = httpx.AsyncClient(base_url=base, timeout=120)
    page = (await c.get("/login")).text
    token = page.split('name="csrf" value="')[1].split('"')[0]
    r = await c.post("/login", data={"username": name, "password": password, "csrf": token})
    assert r.status_code in (200, 303), r.text
    return c


async def _viewer(c: Any, run_id: int, seen: list[tuple[float, float]], opened: list[float]) -> int:
    """What the run page does; records (monotonic time, newest t) of each SSE points message, and when the
    stream opened (points stored before it are the first plot's, not the live view's)."""
    await c.get(f"/runs/{run_id}", headers={"accept": "text/html"})
    first = (await c.get(f"/runs/{run_id}/series", params={"width": 1000})).json()
    await c.get(f"/runs/{run_id}/report", headers={"hx-request": "true"})
    after = first["x"][-1] if first["x"] else -1e308
    n = 0
    async with c.stream("GET", f"/runs/{run_id}/live", params={"after": after}) as r:
        opened.append(time.monotonic())
        event = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "points":
                # the newest x without decoding the message: a browser on another PC parses it, not this CPU
                xs = line[line.index('"x": [') + 6: line.index("]")]
                if xs:
                    seen.append((time.monotonic(), float(xs[xs.rfind(",") + 1:])))
                    n += 1
            elif line.startswith("data: ") and event == "end":
                break
    return n


def _newest_stored(db: str, run_id: int, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    """Poll the store (read-only) for the newest stored point's time; note when each value first appears."""
    last = None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    while not stop.is_set():
        try:
            t = con.execute("SELECT max(t_last) FROM chunks WHERE run_id = ? AND stream IN "
                            "('ocv', 'cycling')", (run_id,)).fetchone()[0]
            if t is not None and t != last:
                out.append((time.monotonic(), float(t)))
                last = t
        except sqlite3.OperationalError:
            pass
        time.sleep(0.02)
    con.close()


def _latencies(stored: list[tuple[float, float]], seen: list[tuple[float, float]],
               opened: float) -> list[float]:
    """For each newest point stored once the viewer's stream was open, the delay until the viewer first
    received a point at or past it."""
    seen = sorted(seen)
    out = []
    for at, t in stored:
        if at < opened:
            continue
        got = next((when for when, x in seen if x >= t and when >= at - 5), None)
        if got is not None:
            out.append(max(0.0, got - at))
    return out


def live(args: argparse.Namespace) -> None:
    import asyncio

    with tempfile.TemporaryDirectory(prefix="labctl-bench-web-live-") as tmp:
        os.environ.setdefault("LABCTL_AUDIT_KEY", str(Path(tmp) / "audit.key"))
        import labctl
        from labctl.web import users

        db = str(Path(tmp) / "live.db")
        proto = Path(tmp) / "live.yaml"
        proto.write_text(LIVE_PROTOCOL.format(cycles=args.cycles))
        with labctl.connect(db) as lab:
            for k in range(args.viewers):
                users.add_user(lab.store, f"viewer{k}", "viewer", "viewer-pass-123", actor="bench")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = _serve(db, port)
        base = f"http://127.0.0.1:{port}"
        try:
            times, all_lat = asyncio.run(_runs(args, base, db, proto))
        finally:
            server.terminate()
            server.wait(20)
    u, w = statistics.median(times["unwatched"]), statistics.median(times["watched"])
    print(f"dry run ({args.cycles} cycles, 1 s samples), wall time from submit to completed:")
    print(f"  unwatched: median {u:.2f} s of {[round(x, 2) for x in times['unwatched']]}")
    watched = [round(x, 2) for x in times["watched"]]
    print(f"  watched by {args.viewers} viewers: median {w:.2f} s of {watched} ({100 * (w - u) / u:+.1f} %)")
    if all_lat:
        lat = np.array(all_lat)
        print(f"live latency (point stored -> SSE message at a viewer), {lat.size} samples: median "
              f"{np.median(lat):.2f} s, p95 {np.percentile(lat, 95):.2f} s, max {lat.max():.2f} s")


async def _runs(args: argparse.Namespace, base: str, db: str,
                proto: Path) -> tuple[dict[str, list[float]], list[float]]:
    """Unwatched and watched runs, alternately; returns their wall times and every latency measured."""
    import labctl

    clients = [await _login(base, f"viewer{k}", "viewer-pass-123") for k in range(args.viewers)]
    for c in clients:  # a served app, warm (templates compiled, modules imported), as in use
        await c.get("/runs", headers={"accept": "text/html"})
    times: dict[str, list[float]] = {"unwatched": [], "watched": []}
    all_lat: list[float] = []
    with labctl.connect(db) as lab:
        for k in range(args.repeats):
            for mode in ("unwatched", "watched"):
                watchers = clients if mode == "watched" else []
                wall, lat, points = await _one_run(lab, db, proto, k, watchers)
                times[mode].append(wall)
                all_lat += lat
                extra = (f"; {points} SSE messages, latency median {statistics.median(lat):.2f} s"
                         f" max {max(lat):.2f} s" if lat else "")
                print(f"  {mode:9s} run {k + 1}: {wall:.2f} s{extra}", flush=True)
    for c in clients:
        await c.aclose()
    return times, all_lat


async def _one_run(lab: Any, db: str, proto: Path, k: int,
                   clients: list[Any]) -> tuple[float, list[float], int]:
    """One dry run, timed from submit to its end; with `clients`, each watches it live."""
    import asyncio

    a = time.monotonic()
    sub = lab.submit(proto, seed=k + 1)
    run_id = await asyncio.to_thread(sub.wait_started, 120)
    stored: list[tuple[float, float]] = []
    stop = threading.Event()
    poller = threading.Thread(target=_newest_stored, args=(db, run_id, stop, stored), daemon=True)
    seen: list[list[tuple[float, float]]] = [[] for _ in clients]
    opened: list[list[float]] = [[] for _ in clients]
    poller.start()  # in both modes: its cost on the run is the same watched or not
    if clients:
        tasks = [asyncio.create_task(_viewer(c, run_id, s, o)) for c, s, o in zip(clients, seen, opened,
                                                                                  strict=True)]
    run = await asyncio.to_thread(sub.wait, 600)
    wall = time.monotonic() - a
    assert run.state == "completed", run.provenance["exit_reason"]
    points = 0
    stop.set()
    poller.join(5)
    if clients:
        points = sum(await asyncio.gather(*tasks))
    lat = [x for s, o in zip(seen, opened, strict=True) if o for x in _latencies(stored, s, o[0])]
    return wall, lat, points


if __name__ == "__main__":
    main()
