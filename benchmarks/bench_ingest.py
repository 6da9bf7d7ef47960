"""Measurement ingest: the store's chunked writer against raw `sqlite3.executemany`, same rows, same run.

Rows are (t, v, i, cycle) float64, like a 1 s-sampled Li|Li cycling trace (3.6 M points = 1000 h). The
baseline inserts them with plain `sqlite3.executemany` into a plain on-disk table in one transaction (the
Python tuples are built before the clock starts, which favours the baseline). The writer is timed from
its first `append` to the return of `close()` (everything committed), on disk, appending in batches as the
engine does (one Keithley buffer fetch per batch). Goal (issue 6): writer rows/s >= 0.5 x raw.

Usage: python benchmarks/bench_ingest.py [--points 3600000] [--batch 10000 1000] [--db URL]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from labctl.store import Store


def make_rows(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    v = 0.02 * np.sign(np.sin(np.pi * t / 3600.0)) + 1e-4 * rng.standard_normal(n)
    i = np.where(v > 0, 1.13e-3, -1.13e-3)
    cycle = np.floor(t / 7200.0)
    return {"t": t, "voltage": v, "current": i, "cycle": cycle}


def raw_rate(cols: dict[str, np.ndarray], path: Path) -> float:
    rows = list(zip(*(c.tolist() for c in cols.values()), strict=True))
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE m (t REAL, v REAL, i REAL, cycle REAL)")
    start = time.perf_counter()
    con.executemany("INSERT INTO m VALUES (?, ?, ?, ?)", rows)
    con.commit()
    dt = time.perf_counter() - start
    con.close()
    return len(rows) / dt


def writer_rate(cols: dict[str, np.ndarray], url: str, batch: int) -> tuple[float, int]:
    n = len(cols["t"])
    with Store.open(url) as store:
        rid = store.create_run(
            protocol_name="bench",
            protocol_path="",
            protocol_text="",
            parameters={},
            station_name="",
            station_text="",
            operator="bench",
            mode="dry-run",
            seed=None,
            sample_id=None,
            steps=[],
        )
        start = time.perf_counter()
        w = store.measurement_writer(rid, None, "cycling")
        for k in range(0, n, batch):
            w.append(**{name: c[k : k + batch] for name, c in cols.items()})
        w.close()
        dt = time.perf_counter() - start
        got = store.measurements(rid, "cycling")
    if got["t"].size != n or not np.array_equal(got["voltage"], cols["voltage"]):
        raise SystemExit("read-back differs from what was written")
    return n / dt, n


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=3_600_000)
    ap.add_argument("--batch", type=int, nargs="+", default=[10_000, 1_000])
    ap.add_argument("--db", help="also time the writer on this database URL (e.g. PostgreSQL)")
    args = ap.parse_args()
    cols = make_rows(args.points)
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
        os.environ.setdefault("LABCTL_AUDIT_KEY", str(Path(tmp) / "audit.key"))
        raw_db = Path(tmp) / "raw.db"
        raw = raw_rate(cols, raw_db)
        print(f"points: {args.points:,} rows of (t, v, i, cycle) float64")
        mb = size(raw_db) / 1e6
        print(f"baseline: raw sqlite3.executemany, one transaction: {raw:,.0f} rows/s  ({mb:.0f} MB)")
        for batch in args.batch:
            db = Path(tmp) / f"store-{batch}.db"
            rate, _ = writer_rate(cols, f"sqlite:///{db}", batch)
            print(
                f"store writer (SQLite, appends of {batch:,}): {rate:,.0f} rows/s  ({size(db) / 1e6:.0f} MB)"
                f"  ratio to raw: {rate / raw:.2f}"
            )
        if args.db:
            rate, _ = writer_rate(cols, args.db, args.batch[0])
            print(
                f"store writer ({args.db.split(':', 1)[0]}, appends of {args.batch[0]:,}): {rate:,.0f} rows/s"
                f"  ratio to raw SQLite: {rate / raw:.2f}"
            )


if __name__ == "__main__":
    main()
