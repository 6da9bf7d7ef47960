"""Live run display (rich) and the end-of-run summary. The engine reports through `progress(kind, data)`;
only this module and the CLI turn that into terminal output."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from labctl.engine.run import RunResult

#: longer than this is not a duration a display can promise (an estimate from a vanishing current density)
HMS_MAX_S = 1e9


def hms(seconds: float | None) -> str:
    """`[Nd ]HH:MM:SS`; "?" for an unknown, infinite or NaN duration, "> 31 y" past `HMS_MAX_S`."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if abs(seconds) > HMS_MAX_S:
        return ("-" if seconds < 0 else "") + "> 31 y"
    if seconds < 0:
        return "-" + hms(-seconds)
    s = round(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


class LiveDisplay:
    """Rich Live panel: run, state, step i/n, step progress, elapsed/remaining (run clock), readings."""

    def __init__(
        self,
        console: Console,
        *,
        name: str,
        clock: Any,
        estimates: list[float | None],
        refresh_s: float = 0.2,
    ) -> None:
        self.console, self.name, self.clock = console, name, clock
        self.estimates = estimates
        self.state, self.run_id = "created", 0
        self.step: dict[str, Any] = {}
        self.fraction = 0.0
        self.readings: dict[str, Any] = {}
        self.messages: list[str] = []
        self.t0 = clock.monotonic()
        self.refresh_s = refresh_s
        self._last = 0.0
        self.live = Live(self._render(), console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        with contextlib.suppress(Exception):  # the last frame is a courtesy: the summary says what happened
            self.live.update(self._render(), refresh=True)
        self.live.__exit__(*exc)

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "run.created":
            self.run_id = data["run_id"]
        elif kind == "run.state":
            self.state = data["to"]
            if data.get("reason"):
                self.messages.append(f"{data['to']}: {data['reason']}")
        elif kind == "step.started":
            self.step, self.fraction, self.readings = data, 0.0, {}
        elif kind == "step.progress":
            self.fraction = _fraction(data.get("fraction"), self.fraction)
            self.readings.update(data.get("readings") or {})
        elif kind == "step.finished":
            self.fraction = 1.0
            self.messages.append(
                f"step {data['index'] + 1} {data['kind']}: {data['status']}"
                + (f" ({data['reason']})" if data.get("reason") else "")
            )
        elif kind == "operator.prompt":
            self.messages.append(f"OPERATOR: {data['message']}")
        elif kind in ("run.pause_requested", "run.error"):
            self.messages.append(f"{kind}: {data}")
        now = time.monotonic()
        if now - self._last >= self.refresh_s or kind != "step.progress":
            self._last = now
            self.live.update(self._render(), refresh=True)

    def _remaining(self) -> float | None:
        """Seconds left by the estimates; None when one of them is not a finite number of seconds."""
        i = self.step.get("index")
        later = self.estimates if i is None else self.estimates[i + 1 :]
        parts = [_seconds(e) for e in later]
        if i is not None:
            current = _seconds(self.step.get("estimate_s"))
            parts.append(None if current is None else current * (1 - self.fraction))
        if any(p is None for p in parts):
            return None
        return sum(p for p in parts if p is not None)

    def _render(self) -> Panel:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("run", Text(f"{self.run_id}  {self.name}"))  # Text: a name is data, never markup
        grid.add_row("state", self.state)
        n = len(self.estimates)
        if self.step:
            grid.add_row("step", f"{self.step['index'] + 1}/{n}  {self.step['kind']}")
            grid.add_row(
                "",
                _bar(self.fraction),
            )
        grid.add_row(
            "elapsed",
            hms(self.clock.monotonic() - self.t0) + ("  (virtual clock)" if self.clock.is_virtual else ""),
        )
        grid.add_row("remaining", "~" + hms(self._remaining()))
        if self.readings:
            grid.add_row("readings", Text(", ".join(f"{k}={_fmt(v)}" for k, v in self.readings.items())))
        for m in self.messages[-4:]:
            grid.add_row("", Text(m, style="dim"))
        return Panel(grid, title="labctl run", expand=False)


def _seconds(value: Any) -> float | None:
    """An estimate as finite seconds; a missing one counts 0 s, a non-finite or non-numeric one is None."""
    if value is None:
        return 0.0
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fraction(value: Any, previous: float) -> float:
    """A step's reported fraction, clamped to [0, 1]; a missing or non-finite one keeps the previous."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return previous
    return min(1.0, max(0.0, v)) if math.isfinite(v) else previous


def _bar(fraction: float) -> Table:
    row = Table.grid(padding=(0, 1))
    row.add_row(ProgressBar(total=1.0, completed=fraction, width=40), Text(f"{fraction:.0%}"))
    return row


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


KEY_ACHIEVED = (
    "concentration",
    "immersion_time_s",
    "thickness_m",
    "deposition_s",
    "cycles",
    "ended_by",
    "ended_at_s",
    "mean_ce",
    "points",
    "r_high_freq_ohm",
    "temperature_c",
    "time_s",
    "acknowledged_by",
)
KEY_COMMANDED = {
    "immersion_time_s": "commanded_time_s",
    "thickness_m": "commanded_thickness_m",
    "cycles": "commanded_cycles",
    "concentration": "commanded_concentration",
    "temperature_c": "commanded_temperature_c",
    "time_s": "commanded_time_s",
}


def summary_table(result: RunResult, units: list[dict[str, str]] | None = None) -> Table:
    """The run's steps with their key commanded and achieved values, each with its unit: the unit the protocol
    wrote (`units`, per step: field -> unit, see `labctl.display.protocol_units`) or a display unit."""
    from labctl.display import StepValues, split_key

    t = Table(title=f"run {result.run_id}: {result.state.value}", title_justify="left")
    for col in ("#", "step", "status", "duration", "commanded → achieved", "points"):
        t.add_column(col, min_width=22 if col.startswith("commanded") else None)
    for s in result.steps:
        values = StepValues(s.kind, units[s.index] if units and s.index < len(units) else {})
        shown = values.texts({k: v for k, v in s.achieved.items() if isinstance(v, (int, float, str))})
        pairs = []
        for key in KEY_ACHIEVED:
            if key in shown:
                cmd = shown.get(KEY_COMMANDED.get(key, ""))
                label = split_key(key)[0]
                # the label on its own line, so a value and its unit are never split at 80 columns
                pairs.append(f"{label}:\n  {cmd + ' → ' if cmd is not None else ''}{shown[key]}")
        style = {"done": "green", "deviated": "yellow", "failed": "red"}.get(s.status, "")
        t.add_row(
            str(s.index + 1),
            s.kind,
            Text(s.status, style=style),
            hms(s.duration_s),
            "\n".join(pairs[:4]) + (f"\n{s.reason}" if s.reason else ""),
            str(s.points),
        )
    return t


def summary_json(result: RunResult, *, db: str, name: str) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "name": name,
        "state": result.state.value,
        "reason": result.reason,
        "mode": result.mode,
        "seed": result.seed,
        "duration_s": result.duration_s,
        "points": result.points,
        "db": db,
        "steps": [
            {
                "index": s.index,
                "kind": s.kind,
                "status": s.status,
                "duration_s": s.duration_s,
                "points": s.points,
                "reason": s.reason,
                "commanded": s.commanded,
                "achieved": s.achieved,
            }
            for s in result.steps
        ],
        "safe_state": [
            {"role": r.role, "ok": r.ok, "confirmed": r.confirmed, "error": r.error} for r in result.safe
        ],
    }
