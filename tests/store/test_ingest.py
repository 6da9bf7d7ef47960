"""Measurement chunks and the I/O transcript: round trips, timely commits, crash safety."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from sqlalchemy import insert, text

from labctl.drivers.transport import IORecord
from labctl.store import Store, StoreError, ingest
from labctl.store.models import Chunk


def test_round_trip_across_chunk_boundaries(store: Store, new_run) -> None:
    rid = new_run(store)
    sid = store.start_step(rid, 0)
    rng = np.random.default_rng(1)
    sizes = [1, 7, 49_999, 3, 60_000, 12_345, 1]
    total = sum(sizes)
    t = np.arange(total) * 0.1
    v = rng.standard_normal(total)
    w = store.measurement_writer(rid, sid, "cycling")
    start = 0
    for n in sizes:
        sl = slice(start, start + n)
        w.append(t=t[sl], voltage=v[sl], current=2e-3, cycle=np.floor(t[sl] / 100))
        start += n
    w.close()
    got = store.measurements(rid, "cycling")
    assert list(got) == ["t", "voltage", "current", "cycle"]
    np.testing.assert_array_equal(got["t"], t)
    np.testing.assert_array_equal(got["voltage"], v)  # bit-exact
    np.testing.assert_array_equal(got["current"], np.full(total, 2e-3))
    assert store.measurements(rid, "cycling", step_id=sid)["t"].size == total
    assert store.measurements(rid, "cycling", step_id=sid + 1) == {}
    assert store.measurements(rid, "eis") == {}
    with store.engine.connect() as conn:
        chunks = conn.execute(text("SELECT n, t_first, t_last, codec FROM chunks ORDER BY seq")).all()
    assert max(c[0] for c in chunks) <= ingest.CHUNK_POINTS and sum(c[0] for c in chunks) == total
    assert chunks[0][1] == 0.0 and chunks[-1][2] == t[-1]
    assert {c[3] for c in chunks} == {"shuffle-zlib"}


def test_special_values_survive(store: Store, new_run) -> None:
    rid = new_run(store)
    vals = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1.7976931348623157e308])
    with store.measurement_writer(rid, None, "qcm") as w:
        w.append(t=np.arange(vals.size, dtype=float), thickness=vals)
    got = store.measurements(rid, "qcm")["thickness"]
    assert got.tobytes() == vals.tobytes()


def test_writer_rejects_bad_columns(store: Store, new_run) -> None:
    rid = new_run(store)
    w = store.measurement_writer(rid, None, "eis")
    w.append(frequency=[1e6, 1e5], z_re=[1.0, 2.0])
    with pytest.raises(StoreError, match=r"different lengths \(frequency 2, z_re 3\)"):
        w.append(frequency=[1.0, 2.0], z_re=[1.0, 2.0, 3.0])
    with pytest.raises(StoreError, match="differ"):
        w.append(frequency=[1.0], z_im=[1.0])
    with pytest.raises(StoreError, match="1-D"):
        w.append(frequency=[[1.0]], z_re=[[1.0]])
    with pytest.raises(StoreError, match="numbers"):
        w.append(frequency=["high"], z_re=[1.0])
    w.close()
    with pytest.raises(StoreError, match="closed"):
        w.append(frequency=[1.0], z_re=[1.0])
    assert store.measurements(rid, "eis")["frequency"].tolist() == [1e6, 1e5]


def test_a_second_writer_continues_the_stream(store: Store, new_run) -> None:
    rid = new_run(store)
    for k in range(3):
        w = store.measurement_writer(rid, None, "bath_temperature")
        w.append(t=[float(k)], temperature=[25.0 + k])
        w.close()
    assert store.measurements(rid, "bath_temperature")["temperature"].tolist() == [25.0, 26.0, 27.0]


def test_chunks_of_revision_0001_still_read(store: Store, new_run) -> None:
    rid = new_run(store)
    cols = {"t": np.array([1.0, 2.0]), "voltage": np.array([0.01, 0.02])}
    old = zlib.compress(b"".join(c.astype("<f8").tobytes() for c in cols.values()))
    with store.engine.begin() as conn:
        conn.execute(
            insert(Chunk).values(run_id=rid, stream="cycling", seq=0, n=2, columns=list(cols), data=old)
        )
        assert conn.execute(text("SELECT codec FROM chunks")).scalar() == "zlib"  # the column default
    assert store.measurements(rid, "cycling")["voltage"].tolist() == [0.01, 0.02]


def test_buffered_points_are_committed_within_a_second_without_more_appends(
    db_url: str, store: Store, new_run
) -> None:
    rid = new_run(store)
    w = store.measurement_writer(rid, None, "cycling")
    w.append(t=[0.0, 1.0], voltage=[0.1, 0.2])
    rec = store.io_recorder(rid)
    rec(IORecord(0.5, "potentiostat", "tx", b"*IDN?\n"))
    with Store.open(db_url) as other:
        assert other.measurements(rid, "cycling") == {}  # still buffered
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and not other.measurements(rid, "cycling"):
            time.sleep(0.05)
        assert time.monotonic() < deadline, "not committed within 1.5 s"
        assert other.measurements(rid, "cycling")["voltage"].tolist() == [0.1, 0.2]
        time.sleep(0.3)
        assert [r["bytes"] for r in other.io(rid)] == [b"*IDN?\n"]


def test_io_transcript_with_bulk_replies_stored_once(store: Store, new_run) -> None:
    rid = new_run(store)
    rec = store.io_recorder(rid)
    bulk = b"1.0,2.0," * 1000
    rec(IORecord(1.0, "potentiostat", "tx", b":TRAC:DATA? 1, 1000\n"))
    rec(IORecord(1.1, "potentiostat", "rx", bulk))
    rec(IORecord(1.2, "potentiostat", "rx", bulk, note="again"))
    rec(IORecord(1.3, "stage", "tx", b"?"))
    rec(IORecord(1.4, "stage", "event", b"", note="timeout"))
    rec.close()
    got = store.io(rid)
    assert [(r["t"], r["instrument"], r["direction"], r["bytes"], r["note"]) for r in got] == [
        (1.0, "potentiostat", "tx", b":TRAC:DATA? 1, 1000\n", ""),
        (1.1, "potentiostat", "rx", bulk, ""),
        (1.2, "potentiostat", "rx", bulk, "again"),
        (1.3, "stage", "tx", b"?", ""),
        (1.4, "stage", "event", b"", "timeout"),
    ]
    assert got[1]["length"] == len(bulk) and got[1]["sha256"] and got[0]["sha256"] is None
    assert [r["t"] for r in store.io(rid, "stage")] == [1.3, 1.4]
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*), SUM(length), MIN(codec) FROM blobs")).one() == (
            1,
            len(bulk),
            "zlib",
        )
        stored = conn.execute(text("SELECT data FROM blobs")).scalar()
        assert len(stored) < len(bulk) / 10
        assert conn.execute(text("SELECT COUNT(*) FROM io WHERE data IS NULL")).scalar() == 2


# -- crash safety -----------------------------------------------------------------------------------

WRITER = """
import sys, time
import numpy as np
from labctl.store import Store
url, run_id = sys.argv[1], int(sys.argv[2])
s = Store.open(url)
w = s.measurement_writer(run_id, None, "cycling")
k = 0
end = time.monotonic() + 1.0
while time.monotonic() < end:        # appends every 20 ms ...
    w.append(t=np.arange(k, k + 100, dtype=float), voltage=np.full(100, 0.01))
    k += 100
    print(k, time.time(), flush=True)
    time.sleep(0.02)
time.sleep(1.3)                      # ... then none (only the flusher thread can commit the last ones)
print("done", flush=True)
time.sleep(60)
"""


def test_sigkill_loses_at_most_the_last_second(db_url: str, store: Store, new_run) -> None:
    rid = new_run(store)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_url, str(rid)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    appended: list[tuple[int, float]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("done"):
            break
        k, t = line.split()
        appended.append((int(k), float(t)))
    # every append is >= 1.3 s old now: all must be in the database though no append came after them
    proc.send_signal(signal.SIGKILL)
    killed = time.time()
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert all(t < killed - 1.0 for _, t in appended)
    got = store.measurements(rid, "cycling")
    assert got["t"].size == appended[-1][0]
    np.testing.assert_array_equal(got["t"], np.arange(got["t"].size, dtype=float))


WRITER_BUSY = """
import sys, time
import numpy as np
from labctl.store import Store
s = Store.open(sys.argv[1])
w = s.measurement_writer(int(sys.argv[2]), None, "cycling")
k = 0
while True:
    w.append(t=np.arange(k, k + 1000, dtype=float), v=np.zeros(1000))
    k += 1000
    print(k, time.time(), flush=True)
    time.sleep(0.005)
"""


def test_sigkill_while_appending(db_url: str, store: Store, new_run) -> None:
    """kill -9 of a busy writer: every append it followed with at least 1 s of its own activity is stored.

    Measured on the writer's clock (the time it printed with each append), not on a fixed window of ours:
    on a loaded machine the writer may be descheduled for a while, and then so is its flusher thread."""
    rid = new_run(store)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_BUSY, db_url, str(rid)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    appended: list[tuple[int, float]] = []
    deadline = time.monotonic() + 120
    try:
        for line in proc.stdout:
            k, t = line.split()
            appended.append((int(k), float(t)))
            if appended[-1][1] - appended[0][1] >= 2.0 or time.monotonic() > deadline:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    last = appended[-1][1]
    assert last - appended[0][1] >= 2.0, f"the writer ran only {last - appended[0][1]:.2f} s in 120 s"
    must_have = max(k for k, t in appended if t <= last - 1.0)
    got = store.measurements(rid, "cycling")["t"]
    assert got.size >= must_have
    np.testing.assert_array_equal(got, np.arange(got.size, dtype=float))


def test_codec_layout() -> None:
    """The codec is documented: shuffled bytes of little-endian float64 columns, zlib."""
    cols = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    blob = ingest.encode(cols)
    raw = zlib.decompress(blob)
    unshuffled = bytes(np.frombuffer(raw, np.uint8).reshape(8, -1).T.tobytes())
    assert np.frombuffer(unshuffled, "<f8").tolist() == [1.0, 2.0, 3.0, 4.0]
    assert json.dumps(list(ingest.decode(blob, ["a", "b"], 2))) == '["a", "b"]'
    with pytest.raises(StoreError, match="corrupt chunk"):
        ingest.decode(blob, ["a", "b", "c"], 2)
    with pytest.raises(StoreError, match="corrupt chunk"):
        ingest.decode(b"garbage", ["a"], 1)


def test_isal_writes_zlib_streams_any_reader_decodes() -> None:
    """Chunks and bulk replies are deflated by ISA-L (issue 19): the bytes differ from the standard library's
    but are zlib streams, so readers that only know `zlib` (older labctl, `labctl audit verify`) decode
    them to the same content; a 50 000-point chunk of cycling-like data round-trips exactly."""
    pytest.importorskip("isal")
    assert ingest._deflate.__module__.startswith("isal")
    rng = np.random.default_rng(7)
    n = ingest.CHUNK_POINTS
    cols = {"t": np.arange(n) + 3600.0, "voltage": rng.normal(0.02, 1e-3, n), "current": np.full(n, -1.13e-3),
            "cycle": np.full(n, 3.0), "half_cycle": np.full(n, 4.0)}
    blob = ingest.encode(cols)
    raw = zlib.decompress(blob)
    flat = np.frombuffer(bytes(np.frombuffer(raw, np.uint8).reshape(8, -1).T.tobytes()), "<f8")
    assert np.array_equal(flat, np.concatenate(list(cols.values())))
    back = ingest.decode(blob, list(cols), n)
    assert all(np.array_equal(back[k], v) for k, v in cols.items())
    reply = b"#0" + rng.normal(size=3 * 3600).astype("<f8").tobytes() + b"\n"
    sha, length, packed = ingest._pack(reply)
    assert sha == hashlib.sha256(reply).hexdigest()
    assert (length, zlib.decompress(packed), ingest._unblob("zlib", packed)) == (len(reply), reply, reply)
