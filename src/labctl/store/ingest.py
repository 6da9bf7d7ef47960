"""Buffered ingest: measurement chunks and the instrument I/O log.

A chunk holds up to `CHUNK_POINTS` points of one stream: little-endian float64 columns concatenated
column-wise, byte-shuffled and zlib-compressed (codec "shuffle-zlib"; chunks written by revision 0001 are
plain "zlib"), column names in JSON. Both writers commit when their oldest buffered datum is `FLUSH_AGE`
seconds old — on the next append, or from the store's `Flusher` thread when no append comes — and on
flush/close, so a crash loses at most what arrived in the last 0.5 s (and what the instrument measured
but had not handed over: see `labctl.steps.streaming`).

Compression (and decompression) goes through ISA-L (`isal`, when installed) at level 1: it writes the same
zlib streams as the standard library (any reader, old ones included, decompresses them with `zlib`), 3-6x
faster on these data with the same ratio (benchmarks/RESULTS.md, issue 19); without it, the standard
library's zlib.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, insert, select

from labctl.store.errors import StoreError
from labctl.store.models import IO, Blob, Chunk
from labctl.store.seals import ChunkDigest, seal

try:  # ISA-L: zlib's stream format, several times faster both ways (see the module docstring)
    from isal.isal_zlib import compress as _deflate
    from isal.isal_zlib import decompress as _inflate
    from isal.isal_zlib import error as _InflateError
except ImportError:  # pragma: no cover - isal is a dependency; a bare install still reads and writes zlib
    from zlib import compress as _deflate
    from zlib import decompress as _inflate
    from zlib import error as _InflateError

if TYPE_CHECKING:  # numpy is imported where data is read or written: `labctl runs list` needs none of it
    import numpy as np

CHUNK_POINTS = 50_000
FLUSH_AGE = 0.4  # s: commit once the oldest buffered datum is this old ...
FLUSH_POLL = 0.1  # s: ... checked this often by the flusher thread: committed within 0.5 s of arriving
# (drivers that stream hand points over within 0.2 s of measuring them: within 1 s of wall time in all)
BULK_BYTES = 4096
ZLIB_LEVEL = 1
CODEC = "shuffle-zlib"


def encode(columns: dict[str, np.ndarray]) -> bytes:
    """Columns -> one shuffled, compressed block (bytes of equal significance grouped: packs floats well)."""
    import numpy as np

    cols = [np.ascontiguousarray(c, dtype="<f8").ravel() for c in columns.values()]
    planes = np.empty((8, sum(c.size for c in cols)), np.uint8)  # byte k of every value, for k = 0..7
    offset = 0
    for c in cols:  # each column's bytes moved straight into their planes (no concatenated copy first)
        planes[:, offset : offset + c.size] = c.view(np.uint8).reshape(-1, 8).T
        offset += c.size
    return _deflate(planes, ZLIB_LEVEL)


def decode(data: bytes, names: list[str], n: int, codec: str = CODEC) -> dict[str, np.ndarray]:
    import numpy as np

    out = {name: np.empty(n, dtype=np.float64) for name in names}
    decode_into(data, names, n, codec, out, 0)
    return out


def decode_into(data: bytes, names: list[str], n: int, codec: str, out: dict[str, np.ndarray],
                offset: int) -> None:
    """Decode one chunk straight into `out[name][offset:offset + n]` (float64 arrays, one per name): the
    bytes are unshuffled into place, with no intermediate copy of the chunk or of a column (a 1000 h series
    is 3.6 M points: every copy of it is 29 MB a column that a campaign's observer allocates and faults in
    again for each cell)."""
    import numpy as np

    try:
        raw = _inflate(data)
    except (zlib.error, _InflateError) as exc:
        raise StoreError(f"corrupt chunk: {exc}") from exc
    if len(raw) != 8 * n * len(names):
        raise StoreError(f"corrupt chunk: {len(raw) // 8} values for {len(names)} columns x {n} points")
    if codec not in ("shuffle-zlib", "zlib"):
        raise StoreError(f"chunk codec {codec!r} unknown to this labctl")
    b = np.frombuffer(raw, np.uint8)
    planes = b.reshape(8, -1) if codec == "shuffle-zlib" else None  # byte k of every value, then k + 1 ...
    for i, name in enumerate(names):
        dest = out[name][offset : offset + n]
        if planes is not None:
            dest.view(np.uint8).reshape(n, 8)[:] = planes[:, i * n : (i + 1) * n].T
        else:
            dest[:] = np.frombuffer(raw, "<f8", n, 8 * i * n)


class _Buffered:
    """Shared timing and error handling of the two writers (guarded by `_lock`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._oldest: float | None = None  # monotonic time of the oldest unflushed datum
        self._error: BaseException | None = None

    def _due(self) -> bool:
        return self._oldest is not None and time.monotonic() - self._oldest >= FLUSH_AGE

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise StoreError(f"a background commit failed: {err}") from err

    def flush_if_due(self) -> None:
        """Called by the flusher thread; errors are kept and raised on the next append or flush."""
        with self._lock:
            if not self._due():
                return
            try:
                self._write(final=True)
            except Exception as exc:  # reported to the owner on its next call
                self._error = exc

    def flush(self) -> None:
        with self._lock:
            self._write(final=True)
            self._raise_pending_error()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> _Buffered:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, *, final: bool) -> None:
        raise NotImplementedError


class MeasurementWriter(_Buffered):
    """`append(**columns)`: equal-length arrays (or scalars); chunks of <= 50 000 points; commits in ~1 s."""

    def __init__(
        self,
        engine: Engine,
        run_id: int,
        step_id: int | None,
        stream: str,
        on_close: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(engine)
        self.run_id, self.step_id, self.stream = run_id, step_id, stream
        self.digest = ChunkDigest()  # of every chunk this writer committed: sealed in the chain on close
        self._on_close = on_close
        self.columns: list[str] | None = None
        self._buf: list[list[np.ndarray]] = []
        self._pending = 0
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
        import numpy as np

        try:
            arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in columns.items()}
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{self.stream}: columns must be numbers ({exc})") from exc
        if any(a.ndim != 1 for a in arrays.values()):
            raise StoreError(f"{self.stream}: columns must be 1-D")
        n = max(a.size for a in arrays.values())
        if any(a.size not in (1, n) for a in arrays.values()):
            sizes = ", ".join(f"{k} {a.size}" for k, a in arrays.items())
            raise StoreError(f"{self.stream}: columns of different lengths ({sizes})")
        arrays = {k: a if a.size == n else np.full(n, a[0]) for k, a in arrays.items()}
        with self._lock:
            self._raise_pending_error()
            if self.columns is None:
                self.columns = list(arrays)
            elif set(arrays) != set(self.columns):
                raise StoreError(f"{self.stream}: columns {sorted(arrays)} differ from {self.columns}")
            if n:
                self._buf.append([arrays[k] for k in self.columns])
                self._pending += n
                if self._oldest is None:
                    self._oldest = time.monotonic()
            due = self._due()
            if self._pending >= CHUNK_POINTS or due:
                self._write(final=due)

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True
            if self._on_close is not None and self.digest.chunks:
                self._on_close(seal(self.stream, self.step_id, self.digest))

    def _write(self, *, final: bool) -> None:
        """Write full chunks (and, when `final`, the remainder) in one transaction."""
        if not self._pending or self.columns is None:
            self._oldest = None
            return
        import numpy as np

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
                    "seq": self._seq + len(rows),
                    "n": n,
                    "t_first": float(t[0]) if t is not None else None,
                    "t_last": float(t[-1]) if t is not None else None,
                    "columns": list(self.columns),
                    "codec": CODEC,
                    "data": encode(part),
                }
            )
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(Chunk), rows)
            for r in rows:
                self.digest.update(r["seq"], r["n"], r["columns"], r["codec"], r["data"])
            self._seq += len(rows)
        self._buf = [[c[end:] for c in cols]] if end < total else []
        self._pending = total - end
        if not self._pending:
            self._oldest = None


def read_measurements(conn: Any, run_id: int, stream: str, step_id: int | None) -> dict[str, np.ndarray]:
    q = select(Chunk.columns, Chunk.n, Chunk.data, Chunk.codec).where(
        Chunk.run_id == run_id, Chunk.stream == stream
    )
    if step_id is not None:
        q = q.where(Chunk.step_id == step_id)
    rows = conn.execute(q.order_by(Chunk.seq)).all()
    if not rows:
        return {}
    names = list(rows[0].columns)
    if any(list(r.columns) != names for r in rows):
        raise StoreError(f"stream {stream!r} of run {run_id} changes columns between chunks")
    import numpy as np

    # one array per column of the whole stream, each chunk decoded into its place (no concatenation)
    out = {k: np.empty(sum(r.n for r in rows), dtype=np.float64) for k in names}
    offset = 0
    for r in rows:
        decode_into(r.data, names, r.n, r.codec, out, offset)
        offset += r.n
    return out


_packer: ThreadPoolExecutor | None = None
_packer_lock = threading.Lock()


def _pack(data: bytes) -> tuple[str, int, bytes]:
    """(sha256, length, zlib-compressed bytes) of a bulk reply."""
    return hashlib.sha256(data).hexdigest(), len(data), _deflate(data, ZLIB_LEVEL)


def _packer_pool() -> ThreadPoolExecutor:
    global _packer
    with _packer_lock:
        if _packer is None:
            _packer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labctl-blob")
        return _packer


class IORecorder(_Buffered):
    """`Transport.recorder` for one run: buffered rows, bulk replies stored once in `blobs` by sha256.

    A bulk reply is hashed and compressed on a worker thread as soon as it is recorded (hashlib and zlib
    release the GIL, so this overlaps the run); its row waits for the result only when it is written.
    """

    def __init__(self, engine: Engine, run_id: int) -> None:
        super().__init__(engine)
        self.run_id = run_id
        self._rows: list[dict[str, Any]] = []
        self._bulk: list[tuple[dict[str, Any], Future[tuple[str, int, bytes]]]] = []

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
        packed = _packer_pool().submit(_pack, data) if len(data) > BULK_BYTES else None
        if packed is not None:
            row["data"] = None
        with self._lock:
            self._raise_pending_error()
            if packed is not None:
                self._bulk.append((row, packed))
            self._rows.append(row)
            if self._oldest is None:
                self._oldest = time.monotonic()
            if self._due():
                self._write(final=True)

    def _write(self, *, final: bool = True) -> None:
        self._oldest = None
        if not self._rows:
            return
        rows = self._rows
        blobs: dict[str, tuple[int, bytes]] = {}
        for row, packed in self._bulk:
            sha, length, compressed = packed.result()
            row["sha256"] = sha
            blobs.setdefault(sha, (length, compressed))
        with self.engine.begin() as conn:
            if blobs:
                from sqlalchemy.dialects import postgresql, sqlite

                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                stmt = dialect.insert(Blob).on_conflict_do_nothing(index_elements=["sha256"])
                conn.execute(
                    stmt,
                    [{"sha256": k, "length": n, "codec": "zlib", "data": z} for k, (n, z) in blobs.items()],
                )
            if conn.dialect.name == "sqlite":  # one executemany of plain tuples: SQLAlchemy's per-row
                # parameter processing was ~6 % of a dry run's CPU (15 000 rows for a 1000 h test, issue 19)
                conn.exec_driver_sql(_IO_INSERT, [tuple(r[k] for k in _IO_COLUMNS) for r in rows])
            else:
                conn.execute(insert(IO), rows)
        self._rows, self._bulk = [], []


_IO_COLUMNS = ("run_id", "t", "instrument", "direction", "length", "note", "data", "sha256")
_IO_INSERT = f"INSERT INTO io ({', '.join(_IO_COLUMNS)}) VALUES ({', '.join('?' * len(_IO_COLUMNS))})"


def io_rows(conn: Any, run_id: int, instrument: str | None = None) -> list[dict[str, Any]]:
    q = (
        select(
            IO.t,
            IO.instrument,
            IO.direction,
            IO.length,
            IO.note,
            IO.sha256,
            IO.data,
            Blob.codec,
            Blob.data.label("blob"),
        )
        .outerjoin(Blob, Blob.sha256 == IO.sha256)
        .where(IO.run_id == run_id)
    )
    if instrument:
        q = q.where(IO.instrument == instrument)
    out = []
    for r in conn.execute(q.order_by(IO.t, IO.id)):
        row = {k: v for k, v in r._mapping.items() if k not in ("data", "codec", "blob")}
        row["bytes"] = r.data if r.sha256 is None else _unblob(r.codec, r.blob)
        out.append(row)
    return out


def _unblob(codec: str | None, data: bytes | None) -> bytes | None:
    if data is None:
        return None
    if codec == "zlib":
        return _inflate(data)
    if codec == "raw":
        return data
    raise StoreError(f"blob codec {codec!r} unknown to this labctl")


class Flusher:
    """One daemon thread per store: commits writers whose oldest datum is due even when no append comes."""

    def __init__(self) -> None:
        self.writers: weakref.WeakSet[_Buffered] = weakref.WeakSet()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, writer: _Buffered) -> None:
        self.writers.add(writer)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="labctl-store-flusher", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_POLL):
            for w in list(self.writers):
                w.flush_if_due()

    def flush(self) -> None:
        for w in list(self.writers):
            w.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


Recorder = Callable[[Any], None]
