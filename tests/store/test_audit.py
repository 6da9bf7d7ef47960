"""The audit chain: append-only triggers, tamper scenarios, verifier mutations, keys, concurrency, CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from labctl.cli import app
from labctl.store import Store, StoreError, audit

MIDDLE = 5
EVENTS = 9


@pytest.fixture
def chain(store: Store, new_run) -> Store:
    """The key's fingerprint, two runs and 9 events in all; seq 5 is the one the attacker goes for."""
    a = new_run(store)  # seq 2 (seq 1: audit.key)
    b = new_run(store, sample_id="LIN-002")  # seq 3
    for i in range(4, EVENTS + 1):
        store.append_event(a if i % 2 else b, "operator.ack", {"i": i, "message": "ok"}, actor="ada")
    assert store.verify().ok
    return store


def raw(store: Store, sql: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(sql), params)


def drop_triggers(store: Store) -> None:
    """What an attacker with write access to the database does first."""
    if store.engine.dialect.name == "sqlite":
        raw(store, "DROP TRIGGER events_no_update")
        raw(store, "DROP TRIGGER events_no_delete")
    else:
        raw(store, "DROP TRIGGER events_no_update_delete ON events")
        raw(store, "DROP TRIGGER events_no_truncate ON events")


def rows(store: Store) -> list[dict]:
    return store.events()


def attacker_hash(key: bytes, e: dict) -> str:
    return audit.entry_hash(
        key, e["seq"], e["run_id"], e["kind"], e["actor"], e["t"], e["data"], e["prev_hash"]
    )


def assert_broken_at(store: Store, seq: int, **kw: object) -> audit.VerifyResult:
    result = store.verify(**kw)
    assert not result.ok
    assert result.first_bad_seq == seq, result
    return result


# -- append-only ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE events SET actor = 'eve' WHERE seq = 5",
        "DELETE FROM events WHERE seq = 5",
        "DELETE FROM events",
    ],
)
def test_triggers_refuse_update_and_delete(chain: Store, sql: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        raw(chain, sql)
    assert len(rows(chain)) == EVENTS and chain.verify().ok


def test_postgres_refuses_truncate(chain: Store) -> None:
    if chain.engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    with pytest.raises(DBAPIError, match="append-only"):
        raw(chain, "TRUNCATE events CASCADE")


# -- tamper scenarios -------------------------------------------------------------------------------


def test_flipped_byte_in_a_past_event(chain: Store) -> None:
    drop_triggers(chain)
    data = bytearray(rows(chain)[MIDDLE - 1]["data"].encode())
    data[len(data) // 2] ^= 0x01
    raw(chain, "UPDATE events SET data = :d WHERE seq = :s", d=data.decode(), s=MIDDLE)
    assert "altered" in assert_broken_at(chain, MIDDLE).reason


def test_deleted_middle_event(chain: Store) -> None:
    drop_triggers(chain)
    raw(chain, "DELETE FROM events WHERE seq = :s", s=MIDDLE)
    assert "gap" in assert_broken_at(chain, MIDDLE).reason


def test_deleted_middle_event_with_renumbering(chain: Store) -> None:
    drop_triggers(chain)
    raw(chain, "DELETE FROM events WHERE seq = :s", s=MIDDLE)
    for seq in range(MIDDLE + 1, EVENTS + 1):
        raw(chain, "UPDATE events SET seq = :n WHERE seq = :s", n=seq - 1, s=seq)
    assert_broken_at(chain, MIDDLE)


def test_inserted_middle_event(chain: Store) -> None:
    drop_triggers(chain)
    before = rows(chain)
    for seq in range(EVENTS, MIDDLE - 1, -1):
        raw(chain, "UPDATE events SET seq = :n WHERE seq = :s", n=seq + 1, s=seq)
    forged = {
        "seq": MIDDLE,
        "run_id": None,
        "kind": "operator.ack",
        "actor": "eve",
        "t": before[MIDDLE - 1]["t"] - 0.001,
        "data": '{"message":"all fine"}',
        "prev_hash": before[MIDDLE - 2]["hash"],
    }
    forged["hash"] = attacker_hash(b"e" * 32, forged)
    raw(
        chain,
        "INSERT INTO events (seq, run_id, kind, actor, t, data, prev_hash, hash) "
        "VALUES (:seq, :run_id, :kind, :actor, :t, :data, :prev_hash, :hash)",
        **forged,
    )
    assert_broken_at(chain, MIDDLE)


def test_replayed_copy_of_a_valid_event(chain: Store) -> None:
    drop_triggers(chain)
    e = rows(chain)[2]  # a genuine entry (valid hash for its own place)
    raw(
        chain,
        "INSERT INTO events (seq, run_id, kind, actor, t, data, prev_hash, hash) "
        "VALUES (:seq, :run_id, :kind, :actor, :t, :data, :prev_hash, :hash)",
        **{**e, "seq": EVENTS + 1},
    )
    assert_broken_at(chain, EVENTS + 1)


def test_reordered_middle_events(chain: Store) -> None:
    drop_triggers(chain)
    a, b = rows(chain)[MIDDLE - 1], rows(chain)[MIDDLE]
    cols = ("run_id", "kind", "actor", "t", "data", "prev_hash", "hash")
    sets = ", ".join(f"{c} = :{c}" for c in cols)
    raw(chain, f"UPDATE events SET {sets} WHERE seq = :seq", **{**b, "seq": a["seq"]})
    raw(chain, f"UPDATE events SET {sets} WHERE seq = :seq", **{**a, "seq": b["seq"]})
    assert_broken_at(chain, MIDDLE)


def test_truncated_tail_is_caught_by_the_checkpoint(chain: Store) -> None:
    cp = chain.checkpoint()
    assert cp["seq"] == EVENTS
    assert chain.verify(checkpoint=cp).ok
    drop_triggers(chain)
    raw(chain, "DELETE FROM events WHERE seq > :s", s=EVENTS - 2)
    assert chain.verify().ok  # a cut tail leaves a valid shorter chain: only the checkpoint knows
    result = assert_broken_at(chain, EVENTS - 1, checkpoint=cp)
    assert "truncated" in result.reason


def test_checkpoint_of_a_replaced_head_and_a_forged_checkpoint(chain: Store) -> None:
    cp = chain.checkpoint()
    forged = {**cp, "seq": 3}
    assert "MAC" in assert_broken_at(chain, 3, checkpoint=forged).reason
    other = {**cp, "hash": "0" * 64}
    other["mac"] = audit.checkpoint_mac(chain._audit_key(), other["seq"], other["hash"])
    assert_broken_at(chain, EVENTS, checkpoint=other)


def test_chain_recomputed_without_the_key(chain: Store) -> None:
    """The attacker edits seq 5 and re-links everything after it with a key of their own."""
    drop_triggers(chain)
    evs = rows(chain)
    evs[MIDDLE - 1]["data"] = json.dumps({"i": MIDDLE, "message": "edited"})
    prev = evs[MIDDLE - 2]["hash"]
    for e in evs[MIDDLE - 1 :]:
        e["prev_hash"] = prev
        e["hash"] = prev = attacker_hash(b"not the key".ljust(32, b"!"), e)
        raw(
            chain,
            "UPDATE events SET data = :data, prev_hash = :prev_hash, hash = :hash WHERE seq = :seq",
            **e,
        )
    assert_broken_at(chain, MIDDLE)


def test_whole_chain_recomputed_with_plain_sha256(chain: Store) -> None:
    drop_triggers(chain)
    prev = audit.GENESIS
    for e in rows(chain):
        msg = f"{e['seq']}|{e['run_id']}|{e['kind']}|{e['actor']}|{e['t']!r}|{e['data']}|{prev}"
        h = hashlib.sha256(msg.encode()).hexdigest()
        raw(chain, "UPDATE events SET prev_hash = :p, hash = :h WHERE seq = :s", p=prev, h=h, s=e["seq"])
        prev = h
    assert_broken_at(chain, 1)


# -- mutation tests of the verifier: each field of one entry changed must be caught ------------------

MUTATIONS = {
    "seq": "UPDATE events SET seq = 500 WHERE seq = 5",
    "run_id_other": "UPDATE events SET run_id = CASE WHEN run_id = 1 THEN 2 ELSE 1 END WHERE seq = 5",
    "run_id_null": "UPDATE events SET run_id = NULL WHERE seq = 5",
    "kind": "UPDATE events SET kind = 'operator.acK' WHERE seq = 5",
    "actor": "UPDATE events SET actor = 'adb' WHERE seq = 5",
    "t": "UPDATE events SET t = t + 0.000001 WHERE seq = 5",
    "data": "UPDATE events SET data = REPLACE(data, '\"i\"\\:5', '\"i\"\\:6') WHERE seq = 5",
    "data_whitespace": "UPDATE events SET data = REPLACE(data, ',', ', ') WHERE seq = 5",
    "prev_hash": "UPDATE events SET prev_hash = 'x' || SUBSTR(prev_hash, 2) WHERE seq = 5",
    "hash": "UPDATE events SET hash = 'x' || SUBSTR(hash, 2) WHERE seq = 5",
}


@pytest.mark.parametrize("field", sorted(MUTATIONS))
def test_every_field_is_covered(chain: Store, field: str) -> None:
    drop_triggers(chain)
    before = rows(chain)[MIDDLE - 1]
    raw(chain, MUTATIONS[field])
    after = next(e for e in rows(chain) if e["seq"] in (MIDDLE, 500))
    assert after != before, "the mutation must change the entry"
    assert_broken_at(chain, MIDDLE)


def test_hash_message_binds_every_field() -> None:
    key = b"k" * 32
    base = {"seq": 5, "run_id": 1, "kind": "k", "actor": "a", "t": 1.5, "data": "{}", "prev_hash": "0" * 64}
    h0 = audit.entry_hash(key, **base)
    variants = {
        "seq": 6,
        "run_id": None,
        "kind": "K",
        "actor": "b",
        "t": 1.5000000001,
        "data": "{ }",
        "prev_hash": "1" * 64,
    }
    for field, value in variants.items():
        assert audit.entry_hash(key, **{**base, field: value}) != h0, field
    assert audit.entry_hash(b"j" * 32, **base) != h0
    expected = hmac.new(key, b"5|1|k|a|1.5|{}|" + b"0" * 64, hashlib.sha256).hexdigest()
    assert h0 == expected


# -- the key ----------------------------------------------------------------------------------------


def test_key_created_0600_outside_the_database(store: Store, new_run, audit_key: Path) -> None:
    assert not audit_key.exists()
    new_run(store)
    assert audit_key.exists() and len(audit_key.read_bytes()) == 32
    assert stat.S_IMODE(audit_key.stat().st_mode) == 0o600


def test_a_key_another_process_creates_between_the_two_looks_is_used(
    db_url: str, chain: Store, audit_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes start on a new store at once: the first creates the key (atomically) and then its first
    event; the second saw no key, then counts that event. It must use the key now there, not refuse."""
    chain.close()
    real = audit.key_path
    looks = iter([False])  # the second process's first look: the key is not there yet

    class FirstLookMissing(type(real())):  # type: ignore[misc]
        def exists(self, *args: object, **kwargs: object) -> bool:
            return next(looks, True) and super().exists()

    monkeypatch.setattr(audit, "key_path", lambda: FirstLookMissing(real()))
    with Store.open(db_url) as s:
        s.append_event(None, "x", {})  # no "missing but the store has events"
        assert len(s.events()) == EVENTS + 1 and s.verify().ok


def test_default_key_path_is_the_user_config_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LABCTL_AUDIT_KEY")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert audit.key_path() == tmp_path / "cfg" / "labctl" / "audit.key"


def test_missing_or_other_key(
    db_url: str, chain: Store, audit_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain.close()
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "elsewhere.key"))
    with Store.open(db_url) as s:
        with pytest.raises(StoreError, match="not found"):
            s.verify()
        with pytest.raises(StoreError, match="missing but the store has events"):
            s.append_event(None, "x", {})
    other = tmp_path / "elsewhere.key"
    other.write_bytes(os.urandom(32))
    want = audit.fingerprint(audit_key.read_bytes())[:16]
    have = audit.fingerprint(other.read_bytes())[:16]
    with Store.open(db_url) as s:
        result = s.verify()
        assert not result.ok and result.first_bad_seq == 1
        for part in (str(other), f"fingerprint {have}", f"expects fingerprint {want}", "LABCTL_AUDIT_KEY"):
            assert part in result.reason
        # a writer with the other key is refused before it writes anything
        for write in (s.check_audit_key, lambda: s.append_event(None, "x", {})):
            with pytest.raises(StoreError, match=f"expects fingerprint {want}"):
                write()
        assert len(s.events()) == EVENTS


# -- two processes appending concurrently -----------------------------------------------------------

APPENDER = """
import sys, time
from pathlib import Path
from labctl.store import Store
url, name, n, go = sys.argv[1:5]
s = Store.open(url)
while not Path(go).exists():
    time.sleep(0.002)
for i in range(int(n)):
    s.append_event(None, "test.concurrent", {"i": i}, actor=name)
s.close()
"""


def test_two_processes_append_one_linear_chain(db_url: str, chain: Store, tmp_path: Path) -> None:
    n = 150
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, db_url, name, str(n), str(go)], stderr=subprocess.PIPE
        )
        for name in ("p1", "p2")
    ]
    time.sleep(1.0)  # both have opened the store
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=90)
        assert p.returncode == 0, err.decode()
    result = chain.verify()
    assert result.ok and result.checked == EVENTS + 2 * n
    evs = [e for e in rows(chain) if e["kind"] == "test.concurrent"]
    assert [e["seq"] for e in rows(chain)] == list(range(1, EVENTS + 2 * n + 1))
    for name in ("p1", "p2"):
        assert [json.loads(e["data"])["i"] for e in evs if e["actor"] == name] == list(range(n))


# -- CLI --------------------------------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        code = getattr(result.exception, "exit_code", 99)
        return code, result.output + str(result.exception)
    return result.exit_code, result.output


def test_cli_verify_names_the_first_broken_entry(db_url: str, chain: Store) -> None:
    code, out = invoke("audit", "verify", "--db", db_url)
    assert code == 0 and f"{EVENTS} entries verified" in out
    code, out = invoke("audit", "verify", "1", "--db", db_url)
    assert code == 0
    drop_triggers(chain)
    raw(chain, "UPDATE events SET actor = 'eve' WHERE seq = :s", s=MIDDLE)
    code, out = invoke("audit", "verify", "--all", "--db", db_url)
    assert code == 1
    assert f"BROKEN at seq {MIDDLE}" in out and '"actor": "eve"' in out


def test_cli_checkpoint_catches_a_deleted_tail(db_url: str, chain: Store, tmp_path: Path) -> None:
    cp = tmp_path / "head.json"
    code, out = invoke("audit", "checkpoint", "--out", str(cp), "--db", db_url)
    assert code == 0 and json.loads(cp.read_text())["seq"] == EVENTS
    assert invoke("audit", "verify", "--checkpoint", str(cp), "--db", db_url)[0] == 0
    drop_triggers(chain)
    raw(chain, "DELETE FROM events WHERE seq = :s", s=EVENTS)
    assert invoke("audit", "verify", "--db", db_url)[0] == 0
    code, out = invoke("audit", "verify", "--checkpoint", str(cp), "--db", db_url)
    assert code == 1 and "tail truncated" in out and f"seq {EVENTS}" in out
    cp.write_text("{not json")
    code, out = invoke("audit", "verify", "--checkpoint", str(cp), "--db", db_url)
    assert code == 2 and "not a labctl checkpoint" in out


def _relink(store: Store, key: bytes) -> None:
    """Re-hash the whole chain with `key` in seq order (how a chain from before fingerprints looks)."""
    prev = audit.GENESIS
    for e in rows(store):
        h = audit.entry_hash(key, e["seq"], e["run_id"], e["kind"], e["actor"], e["t"], e["data"], prev)
        raw(store, "UPDATE events SET prev_hash = :p, hash = :h WHERE seq = :s", p=prev, h=h, s=e["seq"])
        prev = h


def test_a_chain_from_before_fingerprints_gets_one_on_first_write(
    db_url: str, chain: Store, audit_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = chain._audit_key()
    drop_triggers(chain)
    raw(chain, "DELETE FROM events WHERE kind = 'audit.key'")
    for e in rows(chain):
        raw(chain, "UPDATE events SET seq = :n WHERE seq = :s", n=e["seq"] - 1, s=e["seq"])
    _relink(chain, key)
    chain.close()
    # another key is refused on a chain without a fingerprint too: it does not verify the chain's head
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(other))
    with Store.open(db_url) as s:
        with pytest.raises(StoreError, match=r"does not verify the last entry .*\(seq 8\)"):
            s.check_audit_key()
        assert len(s.events()) == EVENTS - 1
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(audit_key))
    with Store.open(db_url) as s:
        assert s.verify().ok and len(s.events()) == EVENTS - 1
        s.append_event(None, "x", {})
        tail = rows(s)[-2:]
        assert [e["kind"] for e in tail] == ["audit.key", "x"]
        assert json.loads(tail[0]["data"]) == {"fingerprint": audit.fingerprint(key)}
        assert s.verify().ok
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(other))
    want = f"expects fingerprint {audit.fingerprint(key)[:16]}, recorded at seq 9"
    with Store.open(db_url) as s, pytest.raises(StoreError, match=want):  # now named by fingerprint
        s.check_audit_key()
