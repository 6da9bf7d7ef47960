"""Campaign files written beside a copy-free reference to the repository's protocols and stations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

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
