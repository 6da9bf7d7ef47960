"""Buffered ingest: measurement chunks and the instrument I/O log.

A chunk holds up to `CHUNK_POINTS` points of one stream: zlib-compressed little-endian float64 columns
concatenated column-wise, column names in JSON. Both writers commit at least every `FLUSH_EVERY` seconds of
wall time (checked on each append) and on flush/close.
"""

from __future__ import annotations

import hashlib
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from labctl.store.errors import StoreError
from labctl.store.models import IO, Blob, Chunk

CHUNK_POINTS = 50_000
FLUSH_EVERY = 1.0
BULK_BYTES = 4096
ZLIB_LEVEL = 1


def encode(columns: dict[str, np.ndarray]) -> bytes:
    return zlib.compress(
        b"".join(np.ascontiguousarray(c, dtype="<f8").tobytes() for c in columns.values()), ZLIB_LEVEL
    )


def decode(data: bytes, names: list[str], n: int) -> dict[str, np.ndarray]:
    flat = np.frombuffer(zlib.decompress(data), dtype="<f8")
    if flat.size != n * len(names):
        raise StoreError(f"corrupt chunk: {flat.size} values for {len(names)} columns x {n} points")
    return {name: flat[i * n : (i + 1) * n].astype(np.float64) for i, name in enumerate(names)}


class MeasurementWriter:
    """`append(**columns)` equal-length arrays (or scalars); chunks of <= 50 000 points; commits >= 1/s."""

    def __init__(self, engine: Engine, run_id: int, step_id: int | None, stream: str) -> None:
        self.engine, self.run_id, self.step_id, self.stream = engine, run_id, step_id, stream
        self.columns: list[str] | None = None
        self._buf: list[list[np.ndarray]] = []
        self._pending = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self.closed = False
        with engine.connect() as conn:
            conn = conn.execution_options(labctl_read=True)
            last = conn.execute(
                select(func.max(Chunk.seq)).where(Chunk.run_id == run_id, Chunk.stream == stream)
            ).scalar()
            conn.rollback()
        self._seq = 0 if last is None else last + 1

    def append(self, **columns: Any) -> None:
        if self.closed:
            raise StoreError(f"measurement writer for {self.stream!r} is closed")
        if not columns:
            return
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in columns.items()}
        if any(a.ndim != 1 for a in arrays.values()):
            raise StoreError(f"{self.stream}: columns must be 1-D")
        n = max(a.size for a in arrays.values())
        for k, a in arrays.items():
            if a.size != n:
                if a.size != 1:
                    raise StoreError(f"{self.stream}: column {k!r} has {a.size} points, others {n}")
                arrays[k] = np.full(n, a[0])
        with self._lock:
            if self.columns is None:
                self.columns = list(arrays)
            elif set(arrays) != set(self.columns):
                raise StoreError(f"{self.stream}: columns {sorted(arrays)} differ from {self.columns}")
            if n:
                self._buf.append([arrays[k] for k in self.columns])
                self._pending += n
            if self._pending >= CHUNK_POINTS or time.monotonic() - self._last >= FLUSH_EVERY:
                self._write(final=time.monotonic() - self._last >= FLUSH_EVERY)

    def flush(self) -> None:
        with self._lock:
            self._write(final=True)

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True

    def _write(self, *, final: bool) -> None:
        """Write full chunks (and, when `final`, the remainder) in one transaction."""
        self._last = time.monotonic()
        if not self._pending or self.columns is None:
            return
        cols = [np.concatenate([b[i] for b in self._buf]) for i in range(len(self.columns))]
        total = cols[0].size
        end = total if final else total - total % CHUNK_POINTS
        rows = []
        for start in range(0, end, CHUNK_POINTS):
            part = {
                k: c[start : min(start + CHUNK_POINTS, end)] for k, c in zip(self.columns, cols, strict=True)
            }
            n = next(iter(part.values())).size
            t = part.get("t")
            rows.append(
                {
                    "run_id": self.run_id,
                    "step_id": self.step_id,
                    "stream": self.stream,
                    "seq": self._seq,
                    "n": n,
                    "t_first": float(t[0]) if t is not None else None,
                    "t_last": float(t[-1]) if t is not None else None,
                    "columns": list(self.columns),
                    "data": encode(part),
                }
            )
            self._seq += 1
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(Chunk), rows)
        self._buf = [[c[end:] for c in cols]] if end < total else []
        self._pending = total - end


def read_measurements(conn: Any, run_id: int, stream: str, step_id: int | None) -> dict[str, np.ndarray]:
    q = select(Chunk.columns, Chunk.n, Chunk.data).where(Chunk.run_id == run_id, Chunk.stream == stream)
    if step_id is not None:
        q = q.where(Chunk.step_id == step_id)
    parts = [decode(data, names, n) for names, n, data in conn.execute(q.order_by(Chunk.seq, Chunk.id))]
    if not parts:
        return {}
    names = list(parts[0])
    for p in parts:
        if list(p) != names:
            raise StoreError(f"stream {stream!r} of run {run_id} changes columns between chunks")
    return {k: np.concatenate([p[k] for p in parts]) for k in names}


class IORecorder:
    """`Transport.recorder` for one run: buffered rows, bulk replies stored once in `blobs` by sha256."""

    def __init__(self, engine: Engine, run_id: int) -> None:
        self.engine, self.run_id = engine, run_id
        self._rows: list[dict[str, Any]] = []
        self._blobs: dict[str, bytes] = {}
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, rec: Any) -> None:
        data = bytes(rec.data)
        row = {
            "run_id": self.run_id,
            "t": float(rec.t),
            "instrument": rec.instrument,
            "direction": rec.direction,
            "length": len(data),
            "note": rec.note or "",
            "data": data,
            "sha256": None,
        }
        if len(data) > BULK_BYTES:
            digest = hashlib.sha256(data).hexdigest()
            row.update(data=None, sha256=digest)
        with self._lock:
            if row["sha256"]:
                self._blobs[row["sha256"]] = data
            self._rows.append(row)
            if time.monotonic() - self._last >= FLUSH_EVERY:
                self._write()

    def flush(self) -> None:
        with self._lock:
            self._write()

    close = flush

    def _write(self) -> None:
        self._last = time.monotonic()
        if not self._rows:
            return
        rows, blobs = self._rows, self._blobs
        with self.engine.begin() as conn:
            if blobs:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                stmt = dialect.insert(Blob).on_conflict_do_nothing(index_elements=["sha256"])
                conn.execute(stmt, [{"sha256": k, "length": len(v), "data": v} for k, v in blobs.items()])
            conn.execute(insert(IO), rows)
        self._rows, self._blobs = [], {}


def io_rows(conn: Any, run_id: int, instrument: str | None = None) -> list[dict[str, Any]]:
    q = (
        select(
            IO.t,
            IO.instrument,
            IO.direction,
            IO.length,
            IO.note,
            IO.sha256,
            func.coalesce(IO.data, Blob.data).label("bytes"),
        )
        .outerjoin(Blob, Blob.sha256 == IO.sha256)
        .where(IO.run_id == run_id)
    )
    if instrument:
        q = q.where(IO.instrument == instrument)
    return [dict(r._mapping) for r in conn.execute(q.order_by(IO.t, IO.id))]


Recorder = Callable[[Any], None]
