"""Rich markup in user data (`[/]`, `[bold]`) is shown as written and never crashes or restyles a command
(issue 14 item 10): a database holding such names must not break `runs list`/`runs show`, and `run`, `plan`,
`validate` print such a protocol as it is."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from cli_helpers import ROOT, record_run

from labctl.store import Store

HOSTILE = "[/] [bold]Li–In[/bold] [red]"


@pytest.fixture
def hostile_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'labctl.db'}"
    store = Store.open(url)
    try:
        rid = record_run(store, protocol_name=HOSTILE, operator="[bold]ada", sample_id="LIN-001",
                         state="failed", reason="potentiostat: reply '[/]' not understood")
        sid = store.start_step(rid, 0)
        store.finish_step(sid, "failed", achieved={"reply": "[/]"}, reason="reply [/] [bold]x")
        store.flush()
    finally:
        store.close()
    return url


def test_runs_list_and_show_print_markup_as_text(labctl, hostile_db: str) -> None:
    r = labctl("runs", "list", "--db", hostile_db, columns=200)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert HOSTILE in r.stdout and "[bold]ada" in r.stdout and "reply '[/]' not understood" in r.stdout

    r = labctl("runs", "show", "1", "--db", hostile_db, columns=200)
    assert r.returncode == 0, r.stderr
    assert HOSTILE in r.stdout  # the header line, markup shown as written
    assert "operator: [bold]ada" in r.stdout
    assert "-- reply [/] [bold]x" in r.stdout  # a step's reason
    assert "exit reason: potentiostat: reply '[/]' not understood" in r.stdout


def test_runs_list_machine_output_keeps_the_text(labctl, hostile_db: str) -> None:
    r = labctl("runs", "list", "--db", hostile_db, "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows[0]["protocol_name"] == HOSTILE and rows[0]["operator"] == "[bold]ada"
    r = labctl("runs", "list", "--db", hostile_db, "--csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows[0]["protocol_name"] == HOSTILE and rows[0]["state"] == "failed"


def test_validate_plan_and_run_show_a_markup_name(labctl, tmp_path: Path) -> None:
    text = (ROOT / "protocols" / "eis.yaml").read_text()
    lines = ["name: \"[/] [bold]EIS\"" if ln.startswith("name:") else ln for ln in text.splitlines()]
    proto = tmp_path / "[bold]eis.yaml"
    proto.write_text("\n".join(lines) + "\n")
    r = labctl("validate", str(proto))
    assert r.returncode == 0 and f"{proto}: ok" in r.stdout, r.stderr
    r = labctl("plan", str(proto), "--station", "stations/simulated.yaml", columns=200)
    assert r.returncode == 0, r.stderr
    assert "[/] [bold]EIS" in r.stdout.splitlines()[0]
    db = f"sqlite:///{tmp_path / 'run.db'}"
    r = labctl("run", str(proto), "--simulate", "--seed", "1", "--db", db, "--operator", "[bold]ada [/]")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    r = labctl("runs", "list", "--db", db, "--json")
    (row,) = json.loads(r.stdout)
    assert row["protocol_name"] == "[/] [bold]EIS" and row["operator"] == "[bold]ada [/]"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--sample", "[/]x", "`--sample` must be a name of letters, digits"),
        ("--sample", "LIN 041", "U+0020 SPACE at column 4 of the value is not allowed"),
        ("--operator", "ada\nOUTP ON", "U+000A LINE FEED at column 4"),
        ("--operator", "ada\u202egol", "U+202E RIGHT-TO-LEFT OVERRIDE at column 4"),
    ],
)
def test_sample_and_operator_are_checked_like_the_file(
    labctl, tmp_path: Path, option: str, value: str, message: str
) -> None:
    db = f"sqlite:///{tmp_path / 'run.db'}"
    r = labctl("run", "protocols/eis.yaml", "--simulate", "--db", db, option, value)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run.db").exists()  # refused before anything was recorded


def test_operator_accepts_unicode(labctl, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'run.db'}"
    r = labctl("run", "protocols/eis.yaml", "--simulate", "--db", db, "--operator", "Zoë Ødegård", "--json")
    assert r.returncode == 0, r.stderr
    r = labctl("runs", "list", "--db", db, "--json")
    assert json.loads(r.stdout)[0]["operator"] == "Zoë Ødegård"


def test_run_errors_are_whole_lines_on_stderr(labctl) -> None:
    """Piped, an error line is never wrapped at 80 columns: `file:line:col:` stays with its message."""
    bad = "tests/protocol/bad/many-problems.yaml"
    r = labctl("run", bad, "--simulate", columns=80)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = [ln for ln in r.stderr.splitlines() if ":7:47:" in ln]
    message = "steps[2].immerse.speed: `speed` must be a speed, got `1 mm` (e.g. `5 mm/s`)"
    assert lines and lines[0].endswith(message)
    assert all(ln.startswith((bad, "error:")) for ln in r.stderr.splitlines())  # no continuation lines


def test_control_characters_in_data_cannot_steer_the_terminal(labctl, tmp_path: Path) -> None:
    """An ESC sequence or a bidi override in stored data or in a bad file's value is shown, not obeyed."""
    url = f"sqlite:///{tmp_path / 'labctl.db'}"
    store = Store.open(url)
    try:
        record_run(store, protocol_name="EIS", operator="ada", state="failed",
                   reason="stage: reply b'\x1b[2J' \u202eevil\r")
        store.flush()
    finally:
        store.close()
    for args in (("runs", "list"), ("runs", "show", "1")):
        r = labctl(*args, "--db", url, columns=200)
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout and "\u202e" not in r.stdout and "\r" not in r.stdout
        assert "\\x1b[2J" in r.stdout and "\\u202eevil" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text('labctl: 1\nname: x\nsteps: [{cycle_symmetric: {current_density: 1 mA/cm^2, '
                   'capacity: 1 mAh/cm^2, cycles: "\\e[31m7"}}]\n')
    r = labctl("validate", str(bad))
    assert r.returncode == 2 and "\x1b" not in r.stderr and "\\x1b[31m7" in r.stderr, r.stderr


def test_control_commands_check_the_operator(labctl, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'run.db'}"
    r = labctl("abort", "1", "--db", db, "--operator", "ada\x1b[2J")
    assert r.returncode == 2 and "U+001B ESCAPE at column 4" in r.stderr, r.stderr
    assert not (tmp_path / "run.db").exists()
