"""Binding the stored records to the audit chain, so editing them is caught like editing an event.

The chain (`labctl.store.audit`) protects the events. The records beside it are bound to them here:
- measurements: when a writer closes, its chunks' digest (sha256 over each chunk's seq, size, columns,
  codec and stored bytes, in order) goes into the chain as a `data.sealed` event;
- the instrument transcript: when a run ends (and after a recovery), the digest of its I/O rows so far
  (`io.sealed`: rows, last id, sha256 over each row with the hash of a bulk reply in place of its bytes);
  each bulk reply must still hash to the name it is stored under;
- steps: a step row must agree with its `step.finished` event (status, reason, achieved values);
- runs: the protocol text must hash to the `protocol_sha256` of `run.created` (and the station text to
  `station_sha256` where recorded), and the run's state must be the last `run.state` event's;
  everything else the run row holds (mode, operator, parameters, sample id, seed, host, pid, versions,
  protocol/station names, creation time) must equal `run.created`'s `record`, its steps' commanded
  values (index, kind, params) must hash to its `steps_sha256`, its start/end times and exit reason must be
  the `at`/`reason` of the `run.state` events that set them;
- steps: also their start/end times (`at` of `step.started`/`step.finished`, or of `run.recovered` for a
  step failed in doubt) and their summary (`summary_sha256`).
Runs recorded before a field was bound are checked on what their events did record.
`check_records` recomputes all of it. Chunks of a stream whose writer never closed (a killed run) are
reported as unsealed: they are kept, but nothing vouches for them.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from labctl.store.errors import StoreError
from labctl.store.models import IO, TERMINAL_STATES, Blob, Chunk, Event, Run, Step

RUN_RECORD = (
    "protocol_name",
    "protocol_path",
    "parameters",
    "station_name",
    "operator",
    "host",
    "pid",
    "proc_started",
    "boot_id",
    "versions",
    "seed",
    "mode",
    "sample_id",
    "created_at",
)
LEGACY_RECORD = ("protocol_name", "station_name", "operator", "mode", "seed", "sample_id")


def check_int(name: str, value: int | None, bits: int = 64) -> None:
    """Integers the store keeps must fit its columns (a clear error instead of the driver's)."""
    limit = 2 ** (bits - 1)
    if value is not None and not -limit <= int(value) < limit:
        raise StoreError(
            f"{name} {value} does not fit the store (a signed {bits}-bit integer: below 2**{bits - 1})"
        )


def run_record(values: dict[str, Any]) -> dict[str, Any]:
    """The fields of a run row bound by `run.created` (all but texts, state and times that change)."""
    return {k: values.get(k) for k in RUN_RECORD}


def json_digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def steps_digest(steps: list[dict[str, Any]]) -> str:
    """sha256 over the steps' (index, kind, params) in index order: what the run was told to do."""
    rows = sorted(([int(s["index"]), s["kind"], s.get("params") or {}] for s in steps), key=lambda r: r[0])
    return json_digest(rows)


class ChunkDigest:
    """Running digest of the chunks one writer stores."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.chunks = self.points = 0

    def update(self, seq: int, n: int, columns: list[str], codec: str, data: bytes) -> None:
        head = json.dumps([seq, n, columns, codec], separators=(",", ":")).encode()
        self._h.update(len(head).to_bytes(4, "little") + head + len(data).to_bytes(8, "little"))
        self._h.update(data)
        self.first_seq = seq if self.first_seq is None else self.first_seq
        self.last_seq, self.chunks, self.points = seq, self.chunks + 1, self.points + n

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def seal(stream: str, step_id: int | None, digest: ChunkDigest) -> dict[str, Any]:
    """The `data.sealed` event's data."""
    return {
        "stream": stream,
        "step_id": step_id,
        "first_seq": digest.first_seq,
        "last_seq": digest.last_seq,
        "chunks": digest.chunks,
        "points": digest.points,
        "sha256": digest.hexdigest(),
    }


def io_digest(conn: Connection, run_id: int, upto_id: int | None = None) -> dict[str, Any]:
    """`{rows, last_id, sha256}` of the run's I/O rows (up to `upto_id`), in id order."""
    h = hashlib.sha256()
    rows, last = 0, 0
    q = select(IO.id, IO.t, IO.instrument, IO.direction, IO.length, IO.note, IO.sha256, IO.data).where(
        IO.run_id == run_id
    )
    if upto_id is not None:
        q = q.where(IO.id <= upto_id)
    for rid, t, instrument, direction, length, note, sha, data in conn.execute(q.order_by(IO.id)):
        head = json.dumps([rid, repr(t), instrument, direction, length, note, sha], separators=(",", ":"))
        h.update(len(head).to_bytes(4, "little") + head.encode())
        body = bytes(data or b"")
        h.update(len(body).to_bytes(8, "little") + body)
        rows, last = rows + 1, rid
    return {"rows": rows, "last_id": last, "sha256": h.hexdigest()}


@dataclass
class Problem:
    run_id: int
    what: str

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.what}"


def _events(conn: Connection, run_id: int | None) -> dict[int, list[tuple[str, dict[str, Any]]]]:
    q = select(Event.run_id, Event.kind, Event.data).where(Event.run_id.is_not(None)).order_by(Event.seq)
    if run_id is not None:
        q = q.where(Event.run_id == run_id)
    out: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for rid, kind, data in conn.execute(q):
        out.setdefault(rid, []).append((kind, json.loads(data)))
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as stored JSON (both sides went through the same encoder)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def check_records(conn: Connection, run_id: int | None = None) -> tuple[list[Problem], int, int]:
    """(problems, sealed streams verified, unsealed chunks) for one run or all."""
    problems: list[Problem] = []
    sealed = 0
    events = _events(conn, run_id)
    runs = select(*Run.__table__.c)
    if run_id is not None:
        runs = runs.where(Run.id == run_id)
    covered: dict[int, set[tuple[str, int]]] = {}
    for row in conn.execute(runs):
        rid, evs = row.id, events.get(row.id, [])
        problems += _check_run(rid, evs, row._mapping)
        problems += _check_run_record(conn, rid, evs, row._mapping)
        problems += _check_steps(conn, rid, evs)
        ok, bad, seqs = _check_seals(conn, rid, evs)
        sealed += ok
        problems += bad + _check_io(conn, rid, evs)
        covered[rid] = seqs
    unsealed = 0
    q = select(Chunk.run_id, Chunk.stream, Chunk.seq)
    if run_id is not None:
        q = q.where(Chunk.run_id == run_id)
    for rid, stream, seq in conn.execute(q):
        unsealed += (stream, seq) not in covered.get(rid, set())
    return problems, sealed, unsealed


def _check_run(rid: int, evs: list, row: Any) -> list[Problem]:
    protocol_text, protocol_sha = row["protocol_text"], row["protocol_sha256"]
    station_text, state = row["station_text"], row["state"]
    out: list[Problem] = []
    created = next((d for k, d in evs if k == "run.created"), None)
    if created is None:
        return [Problem(rid, "no run.created event")]
    text_sha = hashlib.sha256((protocol_text or "").encode()).hexdigest()
    if text_sha != protocol_sha or created.get("protocol_sha256") != protocol_sha:
        out.append(Problem(rid, "protocol text differs from the one recorded when the run was created"))
    want_station = created.get("station_sha256")
    if want_station and hashlib.sha256((station_text or "").encode()).hexdigest() != want_station:
        out.append(Problem(rid, "station text differs from the one recorded when the run was created"))
    states = [d.get("state") or d.get("to") for k, d in evs if k == "run.state"]
    if states and states[-1] != state:
        out.append(Problem(rid, f"state {state!r} is not the last recorded state change ({states[-1]!r})"))
    return out


def _check_run_record(conn: Connection, rid: int, evs: list, row: Any) -> list[Problem]:
    """Run fields against `run.created`'s record, steps' commands against its digest, times and exit reason
    against the state changes that set them."""
    created = next((d for k, d in evs if k == "run.created"), None)
    if created is None:
        return []  # reported by _check_run
    out: list[Problem] = []
    record = created.get("record") or {k: created[k] for k in LEGACY_RECORD if k in created}
    for field, value in record.items():
        if not _same(value, row[field]):
            out.append(Problem(rid, f"{field} differs from the one recorded when the run was created"))
    if "steps_sha256" in created:
        steps = conn.execute(
            select(Step.index, Step.kind, Step.params).where(Step.run_id == rid).order_by(Step.index)
        )
        got = steps_digest([{"index": i, "kind": k, "params": p} for i, k, p in steps])
        if got != created["steps_sha256"]:
            what = "steps' commanded values differ from those recorded when the run was created"
            out.append(Problem(rid, what))
    changes = [d for k, d in evs if k == "run.state" and "at" in d]
    started = next((d["at"] for d in changes if d.get("to") == "running"), None)
    if changes and not _same(started, row["started_at"]):
        out.append(Problem(rid, "start time differs from the recorded start of the run"))
    ended = [d for d in changes if d.get("to") in TERMINAL_STATES]
    if changes:
        end = ended[-1] if ended else {}
        if not _same(end.get("at"), row["ended_at"]):
            out.append(Problem(rid, "end time differs from the recorded end of the run"))
        if ended and not _same(end.get("reason"), row["exit_reason"]):
            out.append(Problem(rid, "exit reason differs from the recorded end of the run"))
    return out


def _check_steps(conn: Connection, rid: int, evs: list) -> list[Problem]:
    finished = {d.get("step_id"): d for k, d in evs if k == "step.finished"}
    started = {d.get("step_id"): d for k, d in evs if k == "step.started"}  # the last start of each step
    recovered = [d for k, d in evs if k == "run.recovered" and "at" in d]
    in_doubt = {i: d["at"] for d in recovered for i in d.get("steps_in_doubt") or []}
    out: list[Problem] = []
    rows = conn.execute(
        select(
            Step.id, Step.index, Step.status, Step.reason, Step.achieved, Step.summary, Step.started_at,
            Step.ended_at,
        ).where(Step.run_id == rid)
    )
    for sid, index, status, reason, achieved, summary, started_at, ended_at in rows:
        st = started.get(sid)
        if st is not None and "at" in st and not _same(st["at"], started_at):
            out.append(Problem(rid, f"step {index} start time differs from its step.started record"))
        if st is None and started_at is not None and any("at" in d for d in started.values()):
            out.append(Problem(rid, f"step {index} has a start time but never started"))
        ev = finished.get(sid)
        if ev is None:
            if index in in_doubt and not _same(in_doubt[index], ended_at):
                out.append(Problem(rid, f"step {index} end time differs from its run.recovered record"))
            continue  # not finished by the run (pending, or failed in doubt by recover)
        fields = [("status", status), ("reason", reason), ("achieved", achieved)]
        if "at" in ev:
            fields.append(("at", ended_at))
        for field, value in fields:
            if not _same(ev.get(field), value):
                name = "end time" if field == "at" else field
                out.append(Problem(rid, f"step {index} {name} differs from its step.finished record"))
        if "summary_sha256" in ev and json_digest(summary) != ev["summary_sha256"]:
            out.append(Problem(rid, f"step {index} summary differs from its step.finished record"))
    return out


def _check_seals(conn: Connection, rid: int, evs: list) -> tuple[int, list[Problem], set[tuple[str, int]]]:
    ok, out, seqs = 0, [], set()
    for kind, d in evs:
        if kind != "data.sealed" or d.get("first_seq") is None:
            continue
        stream, first, last = d["stream"], int(d["first_seq"]), int(d["last_seq"])
        digest = ChunkDigest()
        rows = conn.execute(
            select(Chunk.seq, Chunk.n, Chunk.columns, Chunk.codec, Chunk.data, Chunk.step_id)
            .where(Chunk.run_id == rid, Chunk.stream == stream, Chunk.seq >= first, Chunk.seq <= last)
            .order_by(Chunk.seq)
        )
        moved = False
        for seq, n, columns, codec, data, step_id in rows:
            digest.update(seq, n, list(columns), codec, bytes(data))
            moved |= step_id != d.get("step_id")
            seqs.add((stream, seq))
        if digest.hexdigest() != d["sha256"] or digest.points != d["points"] or moved:
            out.append(Problem(rid, f"measurements {stream!r} chunks {first}..{last} differ from their seal"))
        else:
            ok += 1
    return ok, out, seqs


def _check_io(conn: Connection, rid: int, evs: list) -> list[Problem]:
    seals = [d for k, d in evs if k == "io.sealed"]
    out: list[Problem] = []
    if seals:
        last = seals[-1]
        if io_digest(conn, rid, int(last["last_id"])) != {k: last[k] for k in ("rows", "last_id", "sha256")}:
            what = f"instrument transcript (rows up to id {last['last_id']}) differs from its seal"
            out.append(Problem(rid, what))
    names = select(IO.sha256).where(IO.run_id == rid, IO.sha256.is_not(None)).distinct().subquery()
    blobs = conn.execute(select(Blob.sha256, Blob.codec, Blob.data).where(Blob.sha256.in_(select(names))))
    for name, codec, data in blobs:
        try:
            body = zlib.decompress(data) if codec == "zlib" else bytes(data)
        except zlib.error:
            body = b""
        if hashlib.sha256(body).hexdigest() != name:
            out.append(Problem(rid, f"bulk reply {name[:12]}... no longer hashes to its name"))
    return out
