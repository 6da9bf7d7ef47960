"""CLI fixtures: a private audit key, and `labctl` run as a user runs it (a subprocess, stdout piped, a given
terminal width)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import ROOT


@pytest.fixture(autouse=True)
def audit_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test has its own audit key, never the user's."""
    path = tmp_path / "keys" / "audit.key"
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(path))
    monkeypatch.delenv("LABCTL_DB", raising=False)
    return path


@pytest.fixture
def labctl(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`labctl(*args, columns=80)`: the CLI in a subprocess, stdout and stderr piped (not a terminal)."""

    def run(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
        key = str(tmp_path / "keys" / "audit.key")
        env = {**os.environ, "COLUMNS": str(columns), "LABCTL_AUDIT_KEY": key}
        env.pop("LABCTL_DB", None)
        return subprocess.run(
            [sys.executable, "-m", "labctl", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
        )

    return run
