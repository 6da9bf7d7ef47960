"""Report figures for the web pages: the PNGs `labctl runs report` and `labctl campaign report` write, drawn
by the same functions (`RunHandle.report(out)`, `labctl.campaign.report.write`) into a folder the app owns.

A finished run's report cannot change, so it is drawn once per app; a campaign's figures are drawn again
when its observations change (keyed by a hash of them). Figures are served by name from that folder, and only
names the report itself returned are served (no path from the request reaches the file system).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

from labctl.errors import ConfigError


class FigureCache:
    """Drawn reports by key (`run-7`, `campaign-3`): the folder, the figure names and what else came back."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="labctl-web-figures-"))
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._drawn: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (fingerprint, result)
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.root, True)  # also at exit

    def close(self) -> None:
        self._finalizer()

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: str, fingerprint: str, draw: Any) -> dict[str, Any]:
        """The result of `draw(folder)` for `key`, drawn again only when `fingerprint` changed. The result
        is {"figures": [PNG names], ...}; `draw` raising ConfigError (no matplotlib) gives {"error": ...}."""
        with self._key_lock(key):
            have = self._drawn.get(key)
            if have is not None and have[0] == fingerprint:
                return have[1]
            folder = self.root / key / hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            try:
                result = draw(folder)
            except ConfigError as exc:
                result = {"figures": [], "error": str(exc)}
            result["folder"] = folder
            if have is not None:
                shutil.rmtree(have[1]["folder"], ignore_errors=True)
            self._drawn[key] = (fingerprint, result)
            return result

    def path(self, key: str, name: str) -> Path | None:
        """The PNG `name` of the drawn report `key`, if the report listed it."""
        have = self._drawn.get(key)
        if have is None or name not in have[1]["figures"]:
            return None
        return Path(have[1]["folder"]) / name


def run_report(run: Any, folder: Path) -> dict[str, Any]:
    """`labctl runs report` into `folder`: figure names and the metrics rows (name, value, unit) to show."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ConfigError("the run report draws with matplotlib: pip install 'labctl[plot]'") from exc
    metrics = run.report(folder)
    figures = [n for n in metrics.get("figures", []) if n.endswith(".png") and (folder / n).is_file()]
    return {"figures": figures, "metrics": metric_rows(metrics)}


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, unit) rows, as the Markdown summary of `labctl runs report` lists them."""
    from labctl.analysis.report import _metric_rows

    return _metric_rows(metrics)


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()
