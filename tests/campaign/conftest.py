"""Campaign fixtures: campaign files naming the repository's protocols and stations, isolated audit keys and
spools, and the store suite's databases (SQLite and its real PostgreSQL server, reused, not copied)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_spec = importlib.util.spec_from_file_location(
    "labctl_store_fixtures_campaign", Path(__file__).resolve().parent.parent / "store" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_store_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_store_fixtures)
pg_server = _store_fixtures.pg_server
db_url = _store_fixtures.db_url  # each backend: SQLite and (marked postgres) PostgreSQL

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "protocols" / "li-in-alloy-cycle.yaml"
STATION = ROOT / "stations" / "simulated.yaml"

HEAD = f"""labctl: 1
name: test campaign
protocols:
  test: {PROTOCOL}
station: {STATION}
"""


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    """Write a campaign file (the head naming the Li-In protocol and the simulated station, then `body`)."""

    def _write(body: str, name: str = "c.yaml") -> Path:
        p = tmp_path / name
        p.write_text(HEAD + body, encoding="utf-8")
        return p

    return _write


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test has its own audit key and spool, never the user's, and no $LABCTL_DB."""
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "keys" / "audit.key"))
    monkeypatch.setenv("LABCTL_SPOOL", str(tmp_path / "spool"))
    monkeypatch.delenv("LABCTL_DB", raising=False)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'labctl.db'}"


def labctl_cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m labctl ARGS` from the repository root, with this process's environment."""
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


def started_per_request(store: Any) -> dict[int, int]:
    """How many `request.started` events each run request has (exactly once is the promise)."""
    out: dict[int, int] = {}
    for e in store.events():
        if e["kind"] == "request.started":
            rid = json.loads(e["data"])["request_id"]
            out[rid] = out.get(rid, 0) + 1
    return out
