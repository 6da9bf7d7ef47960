"""The multi-channel cycler: a rack file of channel stations, each channel its own instruments and its own
one-slot dispatcher; a test run takes any free channel, leases decide, never two runs on one channel."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.campaign import drive, lineage
from labctl.campaign.channels import RackFileError, load_rack
from labctl.queue.dispatch import Dispatcher
from labctl.queue.runner import make_dispatcher
from labctl.station import load_station
from labctl.store import Store, requests

from .conftest import ROOT, _store_fixtures
from .test_linked import _fake_end, linked_file

CYCLER = ROOT / "stations" / "cycler-8ch.yaml"


def test_the_8_channel_cycler_is_8_stations_on_distinct_simulated_instruments() -> None:
    rack = load_rack(CYCLER)
    assert [c.name for c in rack.channels] == [f"ch{i}" for i in range(1, 9)]
    keys = []
    for ch in rack.channels:
        st = load_station(ch.path)
        assert set(st.instruments) == {"potentiostat", "eis"}
        assert st.instruments["potentiostat"].driver == "keithley2450"
        assert st.instruments["eis"].driver == "emstat4"
        assert all(s.link.lower().startswith(("labsim://", "asrllabsim://")) for s in st.instruments.values())
        keys += [s.lease_key for s in st.instruments.values()]
    assert len(set(keys)) == 16  # one simulated instrument per role per channel, none shared


def test_a_plain_station_is_a_one_channel_rack() -> None:
    rack = load_rack(ROOT / "stations" / "simulated.yaml")
    assert len(rack.channels) == 1 and rack.first == ROOT / "stations" / "simulated.yaml"


def test_a_rack_given_where_one_station_is_wanted_names_its_channel_files() -> None:
    import subprocess
    import sys

    from labctl.station import StationFileError

    with pytest.raises(StationFileError) as info:
        load_station(CYCLER)
    (problem,) = info.value.problems
    assert str(problem).startswith(f"{CYCLER}:6:1: labctl_rack: this is a rack of channel stations")
    assert str(CYCLER.parent / "cycler-8ch" / "ch8.yaml") in str(problem)
    cmd = [sys.executable, "-m", "labctl", "run", str(ROOT / "protocols" / "eis.yaml"), "--simulate",
           "--station", str(CYCLER)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not a station: give one channel's station file" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_a_rack_whose_channels_share_an_instrument_is_refused_with_its_line(tmp_path: Path) -> None:
    ch1 = ROOT / "stations" / "cycler-8ch" / "ch1.yaml"
    rack = tmp_path / "rack.yaml"
    rack.write_text(f"labctl_rack: 1\nname: r\nchannels:\n  a: {ch1}\n  b: {ch1}\n  c: nowhere.yaml\n"
                    "colour: red\n")
    with pytest.raises(RackFileError) as err:
        load_rack(rack)
    text = str(err.value)
    assert "colour" in text  # unknown field, with its line
    rack.write_text(f"labctl_rack: 1\nname: r\nchannels:\n  a: {ch1}\n  b: {ch1}\n  c: nowhere.yaml\n")
    with pytest.raises(RackFileError) as err:
        load_rack(rack)
    probs = {(p.line, p.field): p.message for p in err.value.problems if p.file == str(rack)}
    assert "shares ASRLlabsim://cycler-ch1-smu::INSTR, labsim://cycler-ch1-eis with `a`" in \
        probs[(5, "channels.b")]
    assert "channel `c`: station file `nowhere.yaml` has problems" in probs[(6, "channels.c")]


def test_a_campaign_names_a_bad_cycler_at_its_line(tmp_path: Path) -> None:
    from labctl.campaign import CampaignFileError, load_campaign

    rack = tmp_path / "rack.yaml"
    rack.write_text("labctl_rack: 1\nname: r\nchannels: {}\n")
    with pytest.raises(CampaignFileError) as err:
        load_campaign(linked_file(tmp_path, cycler=rack))
    assert any(p.field == "cycler" and p.line == 5 for p in err.value.problems), str(err.value)


def test_test_runs_take_any_free_channel_and_never_one_that_is_leased(
    sqlite_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three cells fabricated; channel 1 is driven by a run outside the campaign: the tests go to channels
    2 and 3, one each, and the third waits (no dispatcher starts two runs, none starts on a leased one)."""
    launched: list[tuple[str, int]] = []
    monkeypatch.setattr(Dispatcher, "_launch", lambda self, row: launched.append((self.name, row.id)))
    with Store.open(sqlite_db) as store:
        cid = drive.start(store, linked_file(tmp_path, levels="[30 s, 1 min, 5 min]"), simulate=True,
                          actor="ada")
        for c in lineage.cells(store, cid):
            _fake_end(store, c["fab_request_id"], ok=True, run_state="completed")
        assert lineage.advance(store, cid, actor="ada")["tests"] == 3
        rack = load_rack(CYCLER)
        ch1 = load_station(rack.channels[0].path)
        other = _store_fixtures.make_run(store, sample_id="someone-else")
        store.set_run_state(other, "running")
        store.acquire_leases(other, [s.lease_key for s in ch1.instruments.values()])
        fab = make_dispatcher(store, station=ROOT / "stations" / "simulated.yaml", simulate=True,
                              max_parallel=1, name="fab", kind="runner")
        tests = [make_dispatcher(store, station=ch.path, simulate=True, max_parallel=1, name=ch.name,
                                 kind="runner") for ch in rack.channels[:3]]
        assert drive._start_ours(lineage.cells(store, cid), fab, tests, max_parallel=8) == 2
        assert sorted(name for name, _ in launched) == ["ch2", "ch3"]
        # every free channel is busy now
        assert drive._start_ours(lineage.cells(store, cid), fab, tests, max_parallel=8) == 0
        cells = lineage.cells(store, cid)
        assert sorted(c["test_state"] for c in cells) == ["queued", "taken", "taken"]
        waiting = next(c for c in cells if c["test_state"] == "queued")
        why = tests[0].startable(requests.raw(store, waiting["test_request_id"]))
        assert why is not None and f"(run {other})" in why and "cycler-ch1-smu" in why
        # the budget: at most max_parallel test runs over all channels
        store.release_leases(other)
        assert drive._start_ours(lineage.cells(store, cid), fab, tests, max_parallel=2) == 0
        assert drive._start_ours(lineage.cells(store, cid), fab, tests, max_parallel=3) == 1
        assert sorted(name for name, _ in launched) == ["ch1", "ch2", "ch3"]


def test_a_dry_run_campaign_refuses_a_channel_on_a_real_port_before_any_run(
    sqlite_db: str, tmp_path: Path
) -> None:
    from labctl.errors import ConfigError

    ch1 = ROOT / "stations" / "cycler-8ch" / "ch1.yaml"
    real = tmp_path / "real.yaml"
    real.write_text(ch1.read_text().replace("labsim://cycler-ch1-eis", "/dev/ttyUSB7").replace(
        "ASRLlabsim://cycler-ch1-smu::INSTR", "TCPIP0::10.0.0.9::5025::SOCKET"))
    rack = tmp_path / "rack.yaml"
    rack.write_text(f"labctl_rack: 1\nname: r\nchannels:\n  a: {ch1}\n  b: {real}\n")
    with Store.open(sqlite_db) as store:
        cid = drive.start(store, linked_file(tmp_path), simulate=True, actor="ada")
        with pytest.raises(ConfigError, match="--simulate refused") as err:
            drive.run_linked(store, cid, station=None, cycler=rack, max_parallel=2)
        assert str(real) in str(err.value) and "/dev/ttyUSB7" in str(err.value)
        assert {q["state"] for q in requests.listing(store)} == {"queued"}  # nothing taken, nothing run


def test_a_slot_whose_request_someone_else_ended_is_freed_once_its_process_is_gone(
    sqlite_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that took this process for dead (a wall-clock step moves psutil's start times) or `labctl
    cancel` may end a request this dispatcher launched; its slot is freed when the run process has gone, so
    the campaign goes on (it stopped starting runs before), and not earlier (the channel is in use)."""

    class Proc:
        def __init__(self) -> None:
            self.code: int | None = None

        def poll(self) -> int | None:
            return self.code

    procs: dict[int, Proc] = {}

    def launch(self: Dispatcher, row: object) -> None:
        procs[row.id] = self.children[row.id] = Proc()  # type: ignore[attr-defined]

    monkeypatch.setattr(Dispatcher, "_launch", launch)
    with Store.open(sqlite_db) as store:
        cid = drive.start(store, linked_file(tmp_path), simulate=True, actor="ada")
        fab = make_dispatcher(store, station=ROOT / "stations" / "simulated.yaml", simulate=True,
                              max_parallel=1, name="fab", kind="runner")
        assert drive._start_ours(lineage.cells(store, cid), fab, [], max_parallel=1) == 1
        (rid,) = fab.own_keys
        requests.finish(store, rid, ok=False, reason="ended by a peer", actor="peer")
        drive._forget_ended(store, [fab])
        assert fab.busy() and drive._start_ours(lineage.cells(store, cid), fab, [], max_parallel=1) == 0
        procs[rid].code = -9
        drive._forget_ended(store, [fab])
        assert not fab.busy() and not fab.children
        assert drive._start_ours(lineage.cells(store, cid), fab, [], max_parallel=1) == 1
