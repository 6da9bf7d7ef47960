"""`submit`: the one way a run request is made (the CLI's `labctl submit` and the API's `lab.submit` call it).

The protocol is loaded and checked here, with the parameter overrides, so a request that could never run (a
syntax error, an unknown parameter) is refused with file/line/field before it is queued. The request keeps the
protocol's text, so what runs is what was submitted, whatever happens to the file afterwards.
"""

from __future__ import annotations

import getpass
import hashlib
from pathlib import Path
from typing import Any

from labctl.errors import ConfigError
from labctl.queue.matching import requirements_of


def submit(
    protocol: str | Path,
    *,
    parameters: dict[str, str] | None = None,
    sample: str | None = None,
    priority: int = 0,
    not_before: float | None = None,
    simulate: bool = False,
    realtime: bool = False,
    instruments: list[str] | None = None,
    requested_by: str | None = None,
    text: str | None = None,
    store: Any = None,
    db: str | None = None,
) -> int:
    """Queue a run of `protocol` (a file path; or, with `text`, the protocol's text and `protocol` its name)
    and return the request id. `parameters` are `-p name=value` overrides (strings with units), `instruments`
    named instruments the run must use (station role names or lease keys), `not_before` a unix time.
    Pass an open `store` (the API keeps one) or a `db` URL (None: $LABCTL_DB, then ./labctl.db)."""
    from labctl.protocol.loader import load_protocol, parse_protocol
    from labctl.store import requests

    overrides = {str(k): str(v) for k, v in (parameters or {}).items()}
    if text is None:
        path = Path(protocol)
        if not path.is_file():
            raise ConfigError(f"{path}: no such protocol file")
        loaded = load_protocol(path, overrides)
    else:
        loaded = parse_protocol(text, str(protocol), overrides)
    if realtime and not simulate:
        raise ConfigError("realtime is for dry runs (simulate): a bench run is always on the wall clock")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ConfigError(f"priority must be an integer, got {priority!r}")
    reqs = requirements_of([s.kind for s in loaded.steps], instruments or [])
    sample_id = sample or (loaded.model.sample.id if loaded.model.sample is not None else None)
    own = store is None
    if own:
        from labctl.store import Store

        store = Store.open(db)
    try:
        store.check_audit_key()
        rid = requests.submit(
            store,
            protocol_name=loaded.model.name,
            protocol_path=str(protocol),
            protocol_text=loaded.text,
            protocol_sha256=hashlib.sha256(loaded.text.encode()).hexdigest(),
            parameters=overrides,
            requirements=reqs,
            simulate=simulate,
            realtime=realtime,
            sample_id=sample_id,
            requested_by=requested_by or getpass.getuser(),
            priority=priority,
            not_before=not_before,
        )
        if store.engine.dialect.name == "postgresql":
            from labctl.queue.jobs import announce

            announce(store, rid)
    finally:
        if own:
            store.close()
    return rid
