"""labctl.store: runs, audited events, measurements and instrument I/O in SQLAlchemy (SQLite or PostgreSQL).

`Store.open(url)` is the entry point; see `labctl.store.store.Store` for the API. `Store` and `VerifyResult`
are imported on first use, so that `labctl.store.readonly` (the sqlite3 reader of `labctl runs list`) and
`labctl.store.errors` come without SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labctl.store.errors import LeaseConflict, StoreError

if TYPE_CHECKING:
    from labctl.store.audit import VerifyResult
    from labctl.store.store import Store

__all__ = ["LeaseConflict", "Store", "StoreError", "VerifyResult"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from labctl.store.store import Store

        return Store
    if name == "VerifyResult":
        from labctl.store.audit import VerifyResult

        return VerifyResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
