"""The audit chain: every event is HMAC-SHA256-linked to the one before it, with a key kept outside the DB.

hash = HMAC(key, f"{seq}|{run_id}|{kind}|{actor}|{t!r}|{data}|{prev_hash}"), `data` canonical JSON text.
Appends serialize across processes (SQLite `BEGIN IMMEDIATE`, PostgreSQL `pg_advisory_xact_lock`) so the
chain stays linear; triggers refuse UPDATE and DELETE. `verify` walks the chain and names the first bad
sequence number; a checkpoint (seq, hash, MAC) kept elsewhere also catches a truncated tail.

The key's identity is part of the chain: its fingerprint (HMAC of a fixed label, so it reveals nothing of
the key) is the first event of a new chain (`audit.key`), or is appended on the first write to a chain
started before fingerprints existed. A process holding another key is refused before it writes
(`check_key`), and `verify` names both fingerprints instead of a bare "hash does not match".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, text

from labctl.store.errors import StoreError
from labctl.store.models import Event

GENESIS = "0" * 64
KEY_EVENT = "audit.key"
FINGERPRINT_LABEL = b"labctl audit key fingerprint v1"
ADVISORY_LOCK_ID = 0x6C6162637431  # "labct1"


def key_path() -> Path:
    env = os.environ.get("LABCTL_AUDIT_KEY")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("labctl")) / "audit.key"


def load_key(*, create: bool) -> bytes:
    """The audit key (32 bytes); created 0600 on first use when `create`."""
    path = key_path()
    if path.is_dir():
        raise StoreError(f"audit key {path} is a directory, not a key file (LABCTL_AUDIT_KEY: the file)")
    if not path.exists():
        if not create:
            raise StoreError(f"audit key {path} not found (set LABCTL_AUDIT_KEY to the key file)")
        try:
            _create_key(path)
        except OSError as exc:
            raise StoreError(f"cannot create the audit key {path}: {exc.strerror or exc}") from exc
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"audit key {path} cannot be read: {exc.strerror or exc}") from exc
    if len(key) < 32:
        raise StoreError(f"audit key {path} is shorter than 32 bytes")
    return key


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(32))
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic: a racing process keeps the first key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def fingerprint(key: bytes) -> str:
    """The key's identity: HMAC-SHA256 of a fixed label (the key cannot be recovered from it)."""
    return hmac.new(key, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()


def recorded_fingerprint(conn: Connection) -> tuple[int, str] | None:
    """(seq, fingerprint) of the chain's first `audit.key` event, if any."""
    row = conn.execute(
        select(Event.seq, Event.data).where(Event.kind == KEY_EVENT).order_by(Event.seq).limit(1)
    ).first()
    if row is None:
        return None
    try:
        return int(row[0]), str(json.loads(row[1])["fingerprint"])
    except (ValueError, KeyError, TypeError):
        return int(row[0]), ""


def key_mismatch(path: Path, have: str, want: str, seq: int | None) -> str:
    where = f"recorded at seq {seq}" if seq is not None else "its chain head"
    return (
        f"audit key {path} (fingerprint {have[:16]}) is not the key this database's audit chain was written "
        f"with (it expects fingerprint {want[:16]}, {where}); set LABCTL_AUDIT_KEY to the key file whose "
        "fingerprint that is (`labctl audit key` prints the fingerprint of the key in use)"
    )


def check_key(conn: Connection, key: bytes, path: Path) -> bool:
    """Refuse (StoreError) a key other than the chain's. Returns whether the chain still lacks its
    `audit.key` event (a chain from before fingerprints, whose head this key does verify)."""
    have = fingerprint(key)
    rec = recorded_fingerprint(conn)
    if rec is not None:
        if not hmac.compare_digest(rec[1], have):
            raise StoreError(key_mismatch(path, have, rec[1], rec[0]))
        return False
    head = conn.execute(
        select(
            Event.seq, Event.run_id, Event.kind, Event.actor, Event.t, Event.data, Event.prev_hash, Event.hash
        ).order_by(Event.seq.desc()).limit(1)
    ).first()
    if head is None:
        return False  # a new chain: `append` starts it with the fingerprint
    seq, rid, kind, actor, t, data, prev, hash_ = head
    if not hmac.compare_digest(entry_hash(key, seq, rid, kind, actor, t, data, prev), hash_ or ""):
        raise StoreError(
            f"audit key {path} (fingerprint {have[:16]}) does not verify the last entry of this database's "
            f"audit chain (seq {seq}): it was written with another key; set LABCTL_AUDIT_KEY to that key file"
        )
    return True


def canonical(data: dict[str, Any]) -> str:
    try:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"event data is not plain JSON: {exc}") from exc


def entry_hash(
    key: bytes, seq: int, run_id: int | None, kind: str, actor: str, t: float, data: str, prev_hash: str
) -> str:
    msg = f"{seq}|{run_id}|{kind}|{actor}|{t!r}|{data}|{prev_hash}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def checkpoint_mac(key: bytes, seq: int, hash_: str) -> str:
    return hmac.new(key, f"checkpoint|{seq}|{hash_}".encode(), hashlib.sha256).hexdigest()


def lock_chain(conn: Connection) -> None:
    """Serialize appends (SQLite already holds the write lock from BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_ID})


def append(
    conn: Connection, key: bytes, run_id: int | None, kind: str, data: dict[str, Any], actor: str
) -> int:
    """Append one event inside the caller's write transaction; returns its seq."""
    lock_chain(conn)
    body = canonical(data)
    head = conn.execute(select(Event.seq, Event.hash).order_by(Event.seq.desc()).limit(1)).first()
    if head is None and kind != KEY_EVENT:  # a new chain starts with the key's identity
        append(conn, key, None, KEY_EVENT, {"fingerprint": fingerprint(key)}, "labctl")
        head = conn.execute(select(Event.seq, Event.hash).order_by(Event.seq.desc()).limit(1)).first()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    t = time.time()
    conn.execute(
        insert(Event).values(
            seq=seq,
            run_id=run_id,
            kind=kind,
            actor=actor,
            t=t,
            data=body,
            prev_hash=prev,
            hash=entry_hash(key, seq, run_id, kind, actor, t, body, prev),
        )
    )
    return seq


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def verify(
    conn: Connection, key: bytes, run_id: int | None = None, checkpoint: dict[str, Any] | None = None
) -> VerifyResult:
    """Walk the whole chain (it is global, so a run's entries are only as good as all before them); with
    `run_id`, also require that run to have events. `checked` counts the entries verified."""
    checked, prev, expect = 0, GENESIS, 1
    have, key_seen = fingerprint(key), False
    last_hash: dict[int, str] = {}
    want_seqs = {checkpoint["seq"]} if checkpoint else set()
    rows = conn.execute(
        select(
            Event.seq, Event.run_id, Event.kind, Event.actor, Event.t, Event.data, Event.prev_hash, Event.hash
        ).order_by(Event.seq)
    )
    for seq, rid, kind, actor, t, data, prev_hash, hash_ in rows:
        if seq != expect:
            return VerifyResult(
                False,
                checked,
                expect if seq > expect else seq,
                f"sequence gap: expected {expect}, found {seq} (event deleted or inserted)",
            )
        if prev_hash != prev:
            return VerifyResult(False, checked, seq, "prev_hash does not match the previous entry's hash")
        if not isinstance(t, float) or not math.isfinite(t):
            return VerifyResult(False, checked, seq, "time is not a finite float")
        if kind == KEY_EVENT and not key_seen:
            key_seen = True
            want_fp = _fingerprint_of(data)
            if not hmac.compare_digest(want_fp, have):
                return VerifyResult(False, checked, seq, key_mismatch(key_path(), have, want_fp, seq))
        want = entry_hash(key, seq, rid, kind, actor, t, data, prev_hash)
        if not hmac.compare_digest(want, hash_ or ""):
            return VerifyResult(
                False, checked, seq, "hash does not match the entry (altered, or another key)"
            )
        if seq in want_seqs:
            last_hash[seq] = hash_
        prev, expect, checked = hash_, seq + 1, checked + 1
    if checkpoint is not None:
        cseq, chash = int(checkpoint["seq"]), str(checkpoint["hash"])
        if not hmac.compare_digest(checkpoint_mac(key, cseq, chash), str(checkpoint.get("mac", ""))):
            return VerifyResult(
                False, checked, cseq, "checkpoint MAC does not verify (not made with this key)"
            )
        if cseq not in last_hash:
            return VerifyResult(
                False,
                checked,
                min(cseq, expect),
                f"chain ends at seq {expect - 1}, before the checkpoint at seq {cseq} (tail truncated)",
            )
        if last_hash[cseq] != chash:
            return VerifyResult(False, checked, cseq, "entry differs from the checkpoint")
    if run_id is not None:
        n = conn.execute(select(func.count()).select_from(Event).where(Event.run_id == run_id)).scalar()
        if not n:
            return VerifyResult(False, checked, None, f"no audit events for run {run_id}")
    return VerifyResult(True, checked)


def _fingerprint_of(data: str) -> str:
    try:
        return str(json.loads(data)["fingerprint"])
    except (ValueError, KeyError, TypeError):
        return ""


def make_checkpoint(conn: Connection, key: bytes) -> dict[str, Any]:
    head = conn.execute(select(Event.seq, Event.hash).order_by(Event.seq.desc()).limit(1)).first()
    if head is None:
        raise StoreError("no audit events yet: nothing to checkpoint")
    return {"seq": head[0], "hash": head[1], "mac": checkpoint_mac(key, head[0], head[1]), "t": time.time()}
