"""`labctl.store.resilient`: a run's store through a database outage. Against a store whose calls fail as a
lost PostgreSQL connection does (sqlalchemy's OperationalError with the driver's error): writes retried until
the store answers, heartbeat and control polls skipped meanwhile, measurement points kept (never taken twice),
any other error raised at once, and past the limit a StoreError that the run's normal failure path takes."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy.exc as sa

from labctl.store.errors import StoreError
from labctl.store.resilient import ResilientStore, ResilientWriter, resilient, transient


def _lost() -> sa.OperationalError:
    return sa.OperationalError("INSERT ...", {}, Exception("server closed the connection unexpectedly"))


class Flaky:
    """A store that is away for its first `down` calls of each method, then answers."""

    def __init__(self, down: int) -> None:
        self.down, self.calls, self.events = down, {}, []

    def _maybe_fail(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.calls[name] <= self.down:
            raise _lost()

    def append_event(self, run_id: int, kind: str, data: dict, *, actor: str = "labctl") -> int:
        self._maybe_fail("append_event")
        self.events.append(kind)
        return len(self.events)

    def heartbeat(self, run_id: int) -> None:
        self._maybe_fail("heartbeat")

    def take_control(self, run_id: int) -> list[dict[str, Any]]:
        self._maybe_fail("take_control")
        return [{"command": "pause"}]

    def finish_step(self, step_id: int, status: str, **kw: Any) -> None:
        raise StoreError("step 9 is not running")  # a bad request, not an outage

    def runs(self) -> list:
        return ["passed through"]


class Writer:
    """The writer's contract (labctl.store.ingest): a background commit's error is reported by the next append
    before it takes that call's points; a commit inside append fails after the points were buffered."""

    def __init__(self) -> None:
        self.buffered: list[float] = []
        self.committed: list[float] = []
        self.pending_error: BaseException | None = None
        self.fail_commits = 0

    def append(self, **columns: Any) -> None:
        if self.pending_error is not None:
            err, self.pending_error = self.pending_error, None
            raise StoreError(f"a background commit failed: {err}") from err
        self.buffered.append(float(columns["t"]))
        if len(self.buffered) >= 3:
            self._commit()

    def _commit(self) -> None:
        if self.fail_commits:
            self.fail_commits -= 1
            raise _lost()
        self.committed += self.buffered
        self.buffered = []

    def flush(self) -> None:
        self._commit()

    def close(self) -> None:
        self._commit()


def test_connection_errors_are_an_outage_and_other_errors_are_not() -> None:
    assert transient(_lost())
    assert transient(StoreError("a background commit failed")) is False
    wrapped = StoreError("a background commit failed: lost")
    wrapped.__cause__ = _lost()
    assert transient(wrapped)
    assert not transient(sa.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not transient(ValueError("x"))


def test_writes_are_retried_until_the_store_answers() -> None:
    inner = Flaky(down=3)
    store = ResilientStore(inner, limit=30)
    t0 = time.monotonic()
    assert store.append_event(1, "step.note", {}) == 1
    assert inner.calls["append_event"] == 4 and inner.events == ["step.note"]  # once, after 3 failures
    assert time.monotonic() - t0 < 5  # the backoff starts short
    assert store.outage.since is None and store.runs() == ["passed through"]


def test_heartbeat_and_control_polls_are_skipped_while_the_store_is_away() -> None:
    store = ResilientStore(Flaky(down=1), limit=30)
    assert store.take_control(1) == [] and store.outage.since is not None  # skipped, not blocking
    assert store.take_control(1) == [{"command": "pause"}] and store.outage.since is None  # read once back
    assert store.heartbeat(1) is None


def test_a_bad_request_is_raised_at_once() -> None:
    store = ResilientStore(Flaky(down=0), limit=30)
    with pytest.raises(StoreError, match="not running"):
        store.finish_step(9, "done")


def test_past_the_limit_the_outage_is_a_store_error() -> None:
    store = ResilientStore(Flaky(down=10_000), limit=0.5)
    t0 = time.monotonic()
    with pytest.raises(StoreError, match=r"unreachable for over 0.5 s"):
        store.append_event(1, "step.note", {})
    assert 0.5 <= time.monotonic() - t0 < 10
    with pytest.raises(StoreError, match="unreachable"):
        store.take_control(1)  # the polls too, once the outage is past its limit


def test_points_are_kept_through_an_outage_and_never_taken_twice() -> None:
    inner = Writer()
    store = ResilientStore(Flaky(down=0), limit=30)
    w = ResilientWriter(inner, store)
    inner.fail_commits = 2  # the commits inside the 3rd and 4th appends fail: their points stay buffered
    for t in range(4):
        w.append(t=t)
    inner.pending_error = _lost()  # the background flusher failed too: reported by the next append
    w.append(t=4)
    w.append(t=5)
    w.close()
    assert inner.committed == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and inner.buffered == []


def test_only_postgresql_stores_are_wrapped(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.errors import ConfigError
    from labctl.store import Store

    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        assert resilient(store) is store  # SQLite: its own busy timeout, no server to lose
    fake = type("PG", (), {"engine": type("E", (), {"dialect": type("D", (), {"name": "postgresql"})()})()})()
    monkeypatch.setenv("LABCTL_STORE_OUTAGE_S", "7")
    assert resilient(fake).outage.limit == 7.0
    monkeypatch.setenv("LABCTL_STORE_OUTAGE_S", "soon")
    with pytest.raises(ConfigError, match="LABCTL_STORE_OUTAGE_S"):
        resilient(fake)
