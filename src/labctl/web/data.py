"""What the run page shows, read through `labctl.api` (the CLI's functions): the voltage trace, the transcript
as safe text, the steps with units.

A finished run's voltage trace is kept in a small cache (a finished run's data cannot change; a zoom on a
3.6 M-point run then costs a slice and a downsample, not a re-read of 30 MB of chunks); a running run is read
again each time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from labctl.store.errors import StoreError

if TYPE_CHECKING:
    from labctl.api import Lab, RunHandle

VOLTAGE_STREAMS = ("ocv", "cycling")  # streams with t [s] and voltage [V] (api.STREAM_UNITS)
PAGE = 50  # transcript rows per page

_cache: OrderedDict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_RUNS = 4


def voltage_series(lab: Lab, run: RunHandle) -> tuple[np.ndarray, np.ndarray]:
    """(t [s], voltage [V]) of every voltage stream of the run, in time order; empty when it has none yet."""
    key = (lab.url, run.id)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    done = run.done  # read before the data: a run that ends while we read is not cached half-read
    have = {s for s in run.streams["stream"]}
    ts, vs = [], []
    for stream in VOLTAGE_STREAMS:
        if stream in have:
            df = run.data(stream)
            ts.append(df["t"].to_numpy(np.float64))
            vs.append(df["voltage"].to_numpy(np.float64))
    t = np.concatenate(ts) if ts else np.empty(0)
    v = np.concatenate(vs) if vs else np.empty(0)
    if t.size > 1 and not np.all(t[1:] >= t[:-1]):
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
    if done:
        with _cache_lock:
            _cache[key] = (t, v)
            while len(_cache) > CACHE_RUNS:
                _cache.popitem(last=False)
    return t, v


def voltage_since(lab: Lab, run_id: int, after: float) -> tuple[np.ndarray, np.ndarray]:
    """(t, voltage) of the points stored with t > `after`, in time order: the live view's poll. Only the
    chunks whose last time is past `after` are read and decoded (chunks carry t_first/t_last), so a viewer of
    a 1000 h run costs its new chunk each second, not the run's 3.6 M points."""
    from sqlalchemy import or_, select

    from labctl.store.db import reading
    from labctl.store.ingest import decode
    from labctl.store.models import Chunk

    q = (select(Chunk.stream, Chunk.columns, Chunk.n, Chunk.data, Chunk.codec)
         .where(Chunk.run_id == run_id, Chunk.stream.in_(VOLTAGE_STREAMS),
                or_(Chunk.t_last.is_(None), Chunk.t_last > after))
         .order_by(Chunk.id))
    ts, vs = [], []
    with reading(lab.store.engine) as conn:
        for _stream, names, n, blob, codec in conn.execute(q):
            cols = decode(blob, names, n, codec)
            if "t" in cols and "voltage" in cols:
                keep = cols["t"] > after
                ts.append(cols["t"][keep])
                vs.append(cols["voltage"][keep])
    if not ts:
        return np.empty(0), np.empty(0)
    t, v = np.concatenate(ts), np.concatenate(vs)
    order = np.argsort(t, kind="stable")
    return t[order], v[order]


def show_bytes(data: bytes | None) -> str:
    """Instrument bytes as text a person can read and no browser can execute: printable ASCII as is (the
    template escapes `<` and `&`), CR/LF/TAB as `\\r` `\\n` `\\t`, everything else as `\\xNN`."""
    if data is None:
        return ""
    out = []
    for b in data:
        if b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def transcript_page(lab: Lab, run_id: int, instrument: str | None, page: int,
                    search: str = "") -> dict[str, Any]:
    """One page of the transcript (all instruments or one), `search` matching the shown text or the note.
    Without a search only the page's rows are read (a long run has millions of exchanges); a search reads
    the run's (or the instrument's) whole transcript once, as `labctl runs io` does."""
    if search:
        rows = lab.store.io(run_id, instrument or None)
        total, shown = None, []
        needle = search.lower()
        for r in rows:
            text = show_bytes(r["bytes"])
            if needle in text.lower() or needle in (r["note"] or "").lower():
                shown.append(_io_row(r, text))
        total = len(shown)
        pages = max(1, -(-total // PAGE))
        page = min(max(1, page), pages)
        page_rows = shown[(page - 1) * PAGE: page * PAGE]
    else:
        total = io_count(lab, run_id, instrument)
        pages = max(1, -(-total // PAGE))
        page = min(max(1, page), pages)
        page_rows = [_io_row(r, show_bytes(r["bytes"]))
                     for r in io_slice(lab, run_id, instrument, (page - 1) * PAGE, PAGE)]
    return {"rows": page_rows, "page": page, "pages": pages, "total": total, "instrument": instrument or "",
            "instruments": io_instruments(lab, run_id), "search": search}


def _io_row(r: dict[str, Any], text: str) -> dict[str, Any]:
    return {"t": r["t"], "instrument": r["instrument"], "direction": r["direction"], "length": r["length"],
            "text": text, "note": r["note"]}


def _io_where(q: Any, run_id: int, instrument: str | None) -> Any:
    from labctl.store.models import IO

    q = q.where(IO.run_id == run_id)
    return q.where(IO.instrument == instrument) if instrument else q


def io_count(lab: Lab, run_id: int, instrument: str | None) -> int:
    from sqlalchemy import func, select

    from labctl.store.db import reading
    from labctl.store.models import IO

    lab.store.flush()
    with reading(lab.store.engine) as conn:
        return int(conn.execute(_io_where(select(func.count(IO.id)), run_id, instrument)).scalar() or 0)


def io_instruments(lab: Lab, run_id: int) -> list[str]:
    from sqlalchemy import select

    from labctl.store.db import reading
    from labctl.store.models import IO

    with reading(lab.store.engine) as conn:
        return sorted(conn.execute(select(IO.instrument).where(IO.run_id == run_id).distinct()).scalars())


def io_slice(lab: Lab, run_id: int, instrument: str | None, offset: int, limit: int) -> list[dict[str, Any]]:
    """Rows `offset`..`offset + limit` of the transcript in the order `Store.io` gives (time, then id), with
    their bytes (inline or from the shared blobs)."""
    from sqlalchemy import select

    from labctl.store.db import reading
    from labctl.store.ingest import _unblob
    from labctl.store.models import IO, Blob

    q = (select(IO.t, IO.instrument, IO.direction, IO.length, IO.note, IO.sha256, IO.data, Blob.codec,
                Blob.data.label("blob"))
         .outerjoin(Blob, Blob.sha256 == IO.sha256))
    q = _io_where(q, run_id, instrument).order_by(IO.t, IO.id).offset(offset).limit(limit)
    out = []
    with reading(lab.store.engine) as conn:
        for r in conn.execute(q):
            row = {k: v for k, v in r._mapping.items() if k not in ("data", "codec", "blob")}
            row["bytes"] = r.data if r.sha256 is None else _unblob(r.codec, r.blob)
            out.append(row)
    return out


def steps_with_units(run: RunHandle) -> list[dict[str, Any]]:
    """Each step's commanded and achieved values as `labctl runs show` prints them (labctl.display)."""
    from labctl.display import run_steps

    info = run.refresh()
    out = []
    for s, values in zip(info["steps"], run_steps(info), strict=True):
        out.append({"index": s["index"], "kind": s["kind"], "status": s["status"], "reason": s["reason"],
                    "started_at": s["started_at"], "ended_at": s["ended_at"],
                    "commanded": values.text(s["params"] or {}),
                    "achieved": values.text(s["achieved"] or {})})
    return out


def open_run(lab: Lab, run_id: int) -> RunHandle:
    from fastapi import HTTPException

    try:
        return lab.run(run_id)
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from exc


def eis_sweeps(run: RunHandle) -> list[dict[str, Any]]:
    """Each EIS sweep of the run (one per `eis` step), frequency ascending: step, freq [Hz], z_real and
    z_imag [Ω], as stored (the Nyquist and Bode plots draw these; no fit, no unit guessed)."""
    if "eis" not in set(run.streams["stream"]):
        return []
    df = run.data("eis")
    out = []
    for step, part in df.groupby("step", sort=True):
        part = part.sort_values("freq", kind="stable")
        out.append({"step": int(step), "freq": part["freq"].tolist(), "z_real": part["z_real"].tolist(),
                    "z_imag": part["z_imag"].tolist()})
    return out
