"""Dry runs at scale: a Li|Li cycling protocol (1 mA/cm², 1 mAh/cm², 1 s sampling) through the CLI.

For 10 h, 100 h and 1000 h it prints wall time, points stored, points/s, peak RSS of the labctl process and
database size; the baseline is raw `sqlite3.executemany` of the same number of (t, V, I, cycle) rows into a
plain on-disk table, measured in the same run. Goals (issue 8): 1000 h in ≤ 15 s wall and ≤ 300 MB peak RSS,
points/s ≥ 0.2 × the raw rate; time linear in the duration, memory flat.

Usage: python benchmarks/bench_dryrun.py [--hours 10 100 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = """\
labctl: 1
name: benchmark Li|Li {hours} h
sample: {{id: BENCH-{hours}, substrate: Li foil 450 um, area: 1.13 cm^2, li_thickness: 450 um}}
steps:
  - operator: {{message: Assemble the Li|Li coin cell., cell: {{coated: none}}}}
  - cycle_symmetric: {{current_density: 1 mA/cm^2, capacity: 1 mAh/cm^2, cycles: {cycles}, sample_every: 1 s,
                      voltage_limit: 0.5 V, short_detection: {{stop_after: 2000 h}}}}
"""


def labctl() -> str:
    exe = Path(sys.executable).with_name("labctl")
    return str(exe) if exe.exists() else shutil.which("labctl") or "labctl"


def dry_run(hours: int, folder: Path, seed: int) -> dict[str, float]:
    protocol = folder / f"bench-{hours}h.yaml"
    protocol.write_text(PROTOCOL.format(hours=hours, cycles=max(1, hours // 2)), encoding="utf-8")
    db = folder / f"bench-{hours}h.db"
    cmd = [labctl(), "run", str(protocol), "--simulate", "--seed", str(seed), "--db", str(db), "--json"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=folder)
    peak = 0
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, watched.memory_info().rss)
        time.sleep(0.02)
    wall = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"labctl run failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    summary = json.loads(out)
    size = sum(p.stat().st_size for p in folder.glob(f"bench-{hours}h.db*"))
    points = int(summary["points"])
    return {
        "hours": hours,
        "wall_s": wall,
        "points": points,
        "points_per_s": points / wall,
        "peak_rss_mb": peak / 2**20,
        "db_mb": size / 2**20,
        "state": summary["state"],
    }


def raw_sqlite(n: int, folder: Path) -> float:
    """Rows/s of plain sqlite3.executemany of n (t, v, i, cycle) rows, committed, on disk."""
    t = np.arange(n, dtype=float)
    rows = list(
        zip(
            t.tolist(),
            (np.sin(t) * 0.05).tolist(),
            np.full(n, 1.13e-3).tolist(),
            (t // 7200).astype(int).tolist(),
            strict=True,
        )
    )
    path = folder / "raw.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE m (t REAL, v REAL, i REAL, cycle INTEGER)")
    start = time.perf_counter()
    con.executemany("INSERT INTO m VALUES (?, ?, ?, ?)", rows)
    con.commit()
    elapsed = time.perf_counter() - start
    con.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
        folder = Path(tmp)
        results = [dry_run(h, folder, args.seed) for h in args.hours]
        raw = raw_sqlite(results[-1]["points"], folder)
    print(
        f"{'hours':>6} {'wall s':>8} {'points':>10} {'points/s':>10} {'peak RSS MB':>12} {'DB MB':>8}  state"
    )
    for r in results:
        print(
            f"{r['hours']:>6} {r['wall_s']:>8.2f} {r['points']:>10} {r['points_per_s']:>10.0f} "
            f"{r['peak_rss_mb']:>12.1f} {r['db_mb']:>8.1f}  {r['state']}"
        )
    big = results[-1]
    print(f"baseline: raw sqlite3.executemany of {big['points']} rows: {raw:,.0f} rows/s (same run)")
    print(f"ratio points/s / raw rows/s: {big['points_per_s'] / raw:.2f} (goal >= 0.2)")
    print(
        f"goals for {big['hours']} h: wall {big['wall_s']:.1f} s (<= 15), "
        f"peak RSS {big['peak_rss_mb']:.0f} MB (<= 300)"
    )
    if len(results) > 1:
        first = results[0]
        scale = (big["wall_s"] / first["wall_s"]) / (big["hours"] / first["hours"])
        print(
            f"scaling {first['hours']} h -> {big['hours']} h: "
            f"wall grows {big['wall_s'] / first['wall_s']:.1f}x "
            f"for {big['hours'] / first['hours']:.0f}x the duration (per-hour cost ratio {scale:.2f}); "
            f"peak RSS {first['peak_rss_mb']:.0f} -> {big['peak_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
