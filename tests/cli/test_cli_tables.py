"""Tables that read at 80 columns (issue 18 item 4): piped or in an 80-column terminal, no id, state, time or
duration is split across lines; long text is cut with an ellipsis; nothing is wider than the terminal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import record_run

from labctl.cli.output import Col, table, widths
from labctl.store import Store

LONG = "Li-In alloy overlayer by immersion in InCl3/THF, Li|Li symmetric cycling at 1 mA/cm² and EIS"
STATES = ["completed", "failed", "awaiting_operator", "interrupted", "aborted"]


@pytest.fixture
def many_runs(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'labctl.db'}"
    store = Store.open(url)
    try:
        for i, state in enumerate(STATES):
            record_run(store, protocol_name=LONG if i % 2 == 0 else "EIS", sample_id=f"LIN-{1000 + i}",
                       operator="a.very.long.operator.name", state=state,
                       reason="potentiostat: no reply within 2 s to :READ? (link dropped)" if i else "")
        store.flush()
    finally:
        store.close()
    return url


def _lines(out: str) -> list[str]:
    assert all(len(line) <= 80 for line in out.splitlines()), max(out.splitlines(), key=len)
    return out.splitlines()


def test_runs_list_at_80_columns(labctl, many_runs: str) -> None:
    r = labctl("runs", "list", "--db", many_runs, columns=80)
    assert r.returncode == 0, r.stderr
    lines = _lines(r.stdout)
    date = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")
    for rid, state in enumerate(STATES, 1):
        row = next(line for line in lines[1:] if re.match(rf"\s*{rid}\s", line))
        assert f" {state} " in row and date.search(row), row
        assert f"LIN-{999 + rid}" in row
    assert any("…" in line for line in lines)  # the long protocol name cut, not wrapped
    assert len(lines) == 2 + len(STATES)  # title, header, one line per run


def test_runs_show_events_at_80_columns(labctl, many_runs: str) -> None:
    r = labctl("runs", "show", "2", "--db", many_runs, columns=80)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("audit events"))
    table = _lines("\n".join(lines[start:]))
    stamp = re.compile(r"^\s*\d+\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\s+\S+")
    rows = [line for line in table[2:] if line.strip() and not line.startswith(" " * 10)]
    assert rows and all(stamp.match(line) for line in rows), rows


def test_plan_at_80_columns(labctl) -> None:
    r = labctl("plan", "protocols/li-in-alloy-cycle.yaml", "--station", "stations/simulated.yaml", columns=80)
    assert r.returncode == 0, r.stderr
    lines = _lines(r.stdout)
    kinds = "prepare_bath|immerse|operator|ocv|eis|cycle_symmetric"
    steps = [line for line in lines if re.match(rf"^\s*\d+\s+\d+\s+({kinds})\s", line)]
    assert len(steps) == 8  # one row start per step, the kind whole
    # the duration whole, on the step's first line (the values follow the plan's model and the recipes)
    duration = re.compile(r"\s{2}(\d+ d \d+ h|\d+ h \d+ min|\d+ min( \d+ s)?|\d+ s)\s{2}")
    for line in steps:
        assert duration.search(line), line
    total = next(line for line in lines if " total " in line)
    assert re.search(r"\d+ d \d+ h", total), total


def test_compare_at_80_columns_turns_the_table(labctl, many_runs: str) -> None:
    r = labctl("runs", "compare", "1", "2", "3", "--db", many_runs, columns=80)
    assert r.returncode == 0, r.stderr
    lines = _lines(r.stdout)
    assert re.search(r"metric\s+run 1\s+run 2\s+run 3", lines[1]), lines[:3]
    assert any(re.match(r"state\s+completed\s+failed\s+awaiting_operator", line) for line in lines)


def test_layout_keeps_keys_whole_and_drops_optional_columns() -> None:
    cols = [Col("id", key=True), Col("state", key=True), Col("name"), Col("note", drop=1)]
    rows = [["123456", "awaiting_operator", "x" * 50, "y" * 50]]
    w = widths(cols, rows, 40)
    assert w[0] == 6 and w[1] == 17 and 3 not in w  # the note left out, keys whole
    assert sum(w.values()) + 2 * (len(w) - 1) <= 40
    w = widths(cols, rows, 200)
    assert w == {0: 6, 1: 17, 2: 50, 3: 50}
    t = table(cols, rows, width=40, title="[bold]not markup[/]")
    assert t.title == "\\[bold]not markup\\[/]"


def test_queue_list_and_workers_tables_show_data_as_text_and_fit(labctl, tmp_path: Path) -> None:
    """`queue list` and `workers` share the runs table's layout: user data never read as markup, nothing
    wider than the terminal."""
    from labctl.store import requests

    hostile = "[/] [bold]Li–In[/bold] " + LONG
    url = f"sqlite:///{tmp_path / 'labctl.db'}"
    store = Store.open(url)
    try:
        for i in range(3):
            requests.submit(store, protocol_name=hostile, protocol_path="p.yaml", protocol_text="labctl: 1",
                            protocol_sha256="0" * 64, parameters={}, requirements={}, simulate=True,
                            sample_id=f"[red]LIN-{i}" if i else None, requested_by="[bold]ada", priority=i)
        requests.register_worker(store, "[/]w1", kind="worker", station_name="[red]bench", station={})
    finally:
        store.close()
    wide = labctl("queue", "list", "--db", url, columns=300)
    assert wide.returncode == 0, wide.stderr
    assert wide.stdout.count(hostile) == 3 and "[red]LIN-1" in wide.stdout and "[bold]ada" in wide.stdout
    narrow = labctl("queue", "list", "--db", url, columns=80)
    assert narrow.returncode == 0, narrow.stderr
    lines = _lines(narrow.stdout)
    assert lines[0].strip() == "3 run requests" and len(lines) == 5  # title, header, one line per request
    assert all(" queued " in line for line in lines[2:])
    workers = labctl("workers", "--db", url, columns=80)
    assert workers.returncode == 0, workers.stderr
    lines = _lines(workers.stdout)
    assert lines[0].strip() == "1 workers" and lines[2].startswith("[/]w1") and "[red]bench" in lines[2]
