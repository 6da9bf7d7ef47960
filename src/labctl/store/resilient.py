"""A run's store that rides out a short database outage (PostgreSQL restarted, the network to it cut, SQLite
busy): the run keeps acquiring while the store is away and fails, into its normal safe-state path, only when
the outage outlasts `OUTAGE_LIMIT_S`.

What a run writes is retried with backoff (tenacity) until the store answers again; its measurement writers
keep their points in memory meanwhile (the writer only drops a chunk from its buffer once the chunk's insert
committed, so a failed commit loses nothing and is written at the next flush); its heartbeat and its poll for
control commands are skipped while the store is away (a command posted during the outage is read once it is
back). The buffer is bounded by time: at most `OUTAGE_LIMIT_S` of data is held. Only connection-type errors
count as an outage (a lost or refused connection); any other store error is raised at once, as before.
PostgreSQL stores only (`resilient`): SQLite has its own busy timeout and no server to lose.

A write whose commit reached the database but whose acknowledgement was lost with the connection (the
link dropping between the commit and its reply) is written again: an event then appears twice in the chain
(both correctly chained), a data chunk twice under one seq (its stream's seal, which counts the chunk once,
then flags it at `labctl audit verify`).
"""

from __future__ import annotations

import os
import time
from typing import Any

from labctl.errors import ConfigError
from labctl.store.errors import StoreError

OUTAGE_LIMIT_S = 60.0
RETRIED = ("create_run", "set_run_state", "append_event", "start_step", "finish_step", "measurement_writer",
           "acquire_leases", "release_leases", "seal_io")
SKIPPED = {"heartbeat": None, "take_control": []}  # while the store is away: what the caller gets instead


def transient(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) is the database being away rather than a bad request."""
    import sqlalchemy.exc as sa

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, sa.OperationalError | sa.InterfaceError):
            return True
        if type(exc).__module__.startswith("psycopg") and type(exc).__name__ in ("OperationalError",
                                                                                  "InterfaceError"):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def resilient(store: Any, limit: float | None = None) -> Any:
    """`store` wrapped for a run when it is a PostgreSQL store; any other (SQLite, a test fake) as is. The
    limit: `limit`, else $LABCTL_STORE_OUTAGE_S, else OUTAGE_LIMIT_S."""
    dialect = getattr(getattr(getattr(store, "engine", None), "dialect", None), "name", None)
    if dialect != "postgresql":
        return store
    if limit is None:
        raw = os.environ.get("LABCTL_STORE_OUTAGE_S", "")
        try:
            limit = float(raw) if raw else OUTAGE_LIMIT_S
        except ValueError:
            raise ConfigError(f"LABCTL_STORE_OUTAGE_S must be a number of seconds, got {raw!r}") from None
    return ResilientStore(store, limit)


class Outage:
    """When the store went away (None: it answers); `check` raises once the outage is too long."""

    def __init__(self, limit: float = OUTAGE_LIMIT_S) -> None:
        self.limit, self.since, self.count = limit, None, 0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
            self.count += 1
        if now - self.since > self.limit:
            raise StoreError(f"the store has been unreachable for over {self.limit:g} s: {exc}") from exc

    def ok(self) -> None:
        self.since = None


class ResilientStore:
    """`store` for a run: the run's writes retried through an outage, everything else passed through."""

    def __init__(self, store: Any, limit: float = OUTAGE_LIMIT_S) -> None:
        self._store = store
        self.outage = Outage(limit)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name in RETRIED:
            return lambda *a, **k: self._retry(attr, *a, **k)
        if name in SKIPPED:
            return lambda *a, **k: self._or_skip(attr, SKIPPED[name], *a, **k)
        return attr

    def _retry(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        from tenacity import Retrying, retry_if_exception, stop_never, wait_exponential

        def give_up_or_wait(exc: BaseException) -> bool:
            if not transient(exc):
                return False
            self.outage.failed(exc)  # raises past the limit
            return True

        backoff = wait_exponential(0.1, max=5.0)
        for attempt in Retrying(retry=retry_if_exception(give_up_or_wait), wait=backoff, stop=stop_never,
                                reraise=True):
            with attempt:
                out = call(*args, **kwargs)
        self.outage.ok()
        if hasattr(out, "append") and hasattr(out, "flush"):  # a measurement writer
            return ResilientWriter(out, self)
        return out

    def _or_skip(self, call: Any, instead: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            out = call(*args, **kwargs)
        except Exception as exc:
            if not transient(exc):
                raise
            self.outage.failed(exc)
            return instead
        self.outage.ok()
        return out


class ResilientWriter:
    """A measurement writer that keeps acquiring through an outage: points stay in its buffer."""

    def __init__(self, writer: Any, store: ResilientStore) -> None:
        self._w, self._store = writer, store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._w, name)

    def append(self, **columns: Any) -> None:
        while True:  # ends: each turn takes the points, or consumes one error (the outage's limit raises)
            try:
                self._w.append(**columns)
            except StoreError as exc:  # a background commit's error, reported before these points were taken
                if not transient(exc):
                    raise
                self._store.outage.failed(exc)
                continue  # the error is consumed: take the points now
            except Exception as exc:  # this call's own commit failed after its points were buffered
                if not transient(exc):
                    raise
                self._store.outage.failed(exc)
                return
            return

    def flush(self) -> None:
        self._store._retry(self._w.flush)

    def close(self) -> None:
        self._store._retry(self._w.close)
