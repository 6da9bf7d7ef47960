"""labctl.store: runs, audited events, measurements and instrument I/O in SQLAlchemy (SQLite or PostgreSQL).

`Store.open(url)` is the entry point; see `labctl.store.store.Store` for the API.
"""

from labctl.store.audit import VerifyResult
from labctl.store.errors import LeaseConflict, StoreError
from labctl.store.store import Store

__all__ = ["LeaseConflict", "Store", "StoreError", "VerifyResult"]
