"""The live display renders whatever it is told (issue 14.2): an infinite or NaN estimate, a NaN fraction,
markup-like text in a name or a reading. It once raised OverflowError on an infinite estimate, which skipped
the safe state; the engine now isolates it as well (tests/engine/test_safe_state_always.py)."""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import pytest
from rich.console import Console

from labctl.clock import VirtualClock
from labctl.engine.progress import LiveDisplay, hms

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (math.inf, "?"), (-math.inf, "?"), (math.nan, "?"), (1e300, "> 31 y"), (-1e300, "-> 31 y"),
     (0.0, "00:00:00"), (3661.4, "01:01:01"), (90000, "1d 01:00:00"), (-61, "-00:01:01")],
)
def test_hms(seconds, text):
    assert hms(seconds) == text


def test_live_display_renders_non_finite_estimates_and_markup():
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False, color_system=None)
    display = LiveDisplay(console, name="[/] bad [bold", clock=VirtualClock(),
                          estimates=[math.inf, 10.0, math.nan])
    with display:
        display("run.created", {"run_id": 7, "name": "x", "steps": 3})
        display("run.state", {"from": "created", "to": "running", "reason": "[/]", "actor": "me"})
        display("step.started", {"index": 0, "kind": "wait", "of": 3, "estimate_s": math.inf})
        for fraction in (math.nan, math.inf, -3, "half", None, 0.5):
            display("step.progress", {"fraction": fraction, "readings": {"[/]v": math.nan, "t": "[bold"}})
        assert display.fraction == 0.5
        assert display._remaining() is None
        display("step.finished", {"index": 0, "kind": "wait", "status": "done", "reason": "[/]", "points": 0,
                                  "duration_s": math.inf})
        display("step.started", {"index": 1, "kind": "wait", "of": 3, "estimate_s": 10.0})
        assert display._remaining() is None  # the NaN estimate still ahead
        display("step.started", {"index": 2, "kind": "wait", "of": 3, "estimate_s": 4.0})
        display("step.progress", {"fraction": 0.25})
        assert display._remaining() == pytest.approx(3.0)
    text = out.getvalue()
    assert "[/] bad [bold" in text and "remaining ~00:00:03" in text


def test_run_cli_with_an_infinite_estimate_completes_safe(tmp_path, monkeypatch, capsys):
    """`labctl run` with its live display, every step estimated at inf s (as a vanishing current density
    gives): the run completes, exit 0, the summary printed; it used to die with exit 70, the run `running`."""
    from labctl.cli import main
    from labctl.engine import protocol_adapter as pa

    real_plan = pa.plan_check

    def infinite(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        for step in plan.steps:
            step.duration = math.inf
        return plan

    monkeypatch.setattr(pa, "plan_check", infinite)
    protocol = tmp_path / "p.yaml"
    protocol.write_text("labctl: 1\nname: inf\nsteps:\n"
                        "  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.1 M,"
                        " volume: 20 mL, temperature: 30 degC}\n  - wait: {duration: 5 s}\n")
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "k"))
    monkeypatch.setattr(sys, "argv", ["labctl", "run", str(protocol), "--simulate", "--db",
                                      f"sqlite:///{tmp_path / 'r.db'}",
                                      "--station", str(ROOT / "stations" / "simulated.yaml")])
    with pytest.raises(SystemExit) as stop:
        main()
    out = capsys.readouterr()
    text = out.out + out.err
    assert (stop.value.code or 0) == 0, text
    assert "state completed" in text and "remaining ~?" in text
    assert "internal error" not in text and "Traceback" not in text
