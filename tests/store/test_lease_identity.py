"""Leases name the instrument, not the spelling of its link (issue 14.7): canonical link keys, and the
identity lease a run takes once a serial-numbered instrument has identified."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from labctl.clock import VirtualClock
from labctl.compose import step_from_fields
from labctl.engine.run import Run, RunSpec
from labctl.station import parse_station
from labctl.store import LeaseConflict, Store
from labctl.store.lease_keys import identity_key, lease_key, link_key

SAME_SOCKET = [
    "socket://127.0.0.1:5025",
    "socket://localhost:5025",
    "SOCKET://LocalHost:5025",
    "socket://[::1]:5025",
    "socket://localhost:5025?logging=debug",
    "TCPIP::localhost::5025::SOCKET",
    "TCPIP0::127.0.0.1::5025::SOCKET",
]


@pytest.mark.parametrize("link", SAME_SOCKET)
def test_every_spelling_of_one_socket_is_one_key(link: str) -> None:
    assert link_key(link) == "socket://127.0.0.1:5025"


def test_other_addresses_stay_apart_and_odd_links_keep_their_spelling() -> None:
    assert link_key("socket://localhost:5026") != link_key("socket://localhost:5025")
    assert link_key("socket://127.0.0.2:5025") == "socket://127.0.0.2:5025"  # another loopback address
    assert link_key("rfc2217://localhost:7000") == "rfc2217://127.0.0.1:7000"
    assert link_key("TCPIP::localhost::INSTR") == link_key("TCPIP0::127.0.0.1::inst0::INSTR")
    assert link_key("socket://no-such-host.invalid:5025") == "socket://no-such-host.invalid:5025"
    assert link_key("labsim://stage") == "labsim://stage"  # in-process simulators: as spelt
    assert link_key("ASRLlabsim://potentiostat::INSTR") == "ASRLlabsim://potentiostat::INSTR"


def test_a_device_and_a_symlink_to_it_are_one_key(tmp_path: Path) -> None:
    dev = tmp_path / "ttyUSB0"
    dev.touch()
    (tmp_path / "by-id").mkdir()
    alias = tmp_path / "by-id" / "usb-FTDI_FT232R-if00-port0"
    alias.symlink_to(dev)
    assert link_key(str(alias)) == link_key(str(dev)) == str(dev)
    assert link_key(f"ASRL{alias}::INSTR") == str(dev)
    assert lease_key(str(alias), 2, "pump.stock") == f"{dev}#2"
    assert lease_key("", None, "stage") == "stage"


def test_station_roles_lease_the_canonical_key_and_remember_the_spelt_one() -> None:
    spec = _station("socket://localhost:5025").roles["potentiostat"]
    assert spec.lease_key == "socket://127.0.0.1:5025" and spec.spelt_lease_key == "socket://localhost:5025"


def test_two_spellings_cannot_lease_one_instrument(store: Store, new_run) -> None:
    a, b = new_run(store), new_run(store)
    store.acquire_leases(a, [lease_key("socket://127.0.0.1:5025", None, "potentiostat")])
    with pytest.raises(LeaseConflict, match=f"leased by run {a}"):
        store.acquire_leases(b, [lease_key("TCPIP::localhost::5025::SOCKET", None, "potentiostat")])


# -- the identity lease ---------------------------------------------------------------------------------

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b"


class Unit:
    """A serial-numbered instrument as the engine sees it (connect, identify, safe state)."""

    IDENTITY_IS_UNIQUE = True

    def __init__(self) -> None:
        self.name, self.calls = "potentiostat", []

    def connect(self) -> None:
        self.calls.append("connect")

    def identify(self) -> str:
        self.calls.append("identify")
        return IDN

    def safe_state(self) -> dict[str, Any]:
        self.calls.append("safe_state")
        return {"output": False}

    def close(self) -> None:
        self.calls.append("close")


def _station(link: str) -> Any:
    entry = f"  potentiostat: {{driver: keithley2450, port: '{link}'}}\n"
    return parse_station(f"labctl_station: 1\nname: bench\ninstruments:\n{entry}")


def _run(store: Store, link: str, unit: Unit) -> Run:
    station = _station(link)
    spec = RunSpec("identity", [step_from_fields(0, "rest", {"duration": "1 s"})])
    run = Run(
        spec,
        store=store,
        instruments={"potentiostat": unit},
        station=station,
        clock=VirtualClock(),
        handle_signals=False,
        lease_keys=[station.roles["potentiostat"].lease_key],
    )
    run.create()
    return run


def test_the_same_unit_on_another_link_is_refused_once_it_identifies(store: Store) -> None:
    """Run A holds the unit (by its identification); run B reaches the same unit through another address:
    B fails in preflight naming A, and never commands the unit's safe state (A is using it)."""
    first = _run(store, "socket://127.0.0.1:5025", Unit())
    store.acquire_leases(first.run_id, [first.lease_keys[0], f"identity:{IDN}"])
    unit = Unit()
    second = _run(store, "socket://127.0.0.2:5025", unit)
    result = second.execute()
    assert result.state.value == "failed", result
    assert f"leased by run {first.run_id}" in result.reason and IDN in result.reason, result.reason
    assert unit.calls[:2] == ["connect", "identify"] and "safe_state" not in unit.calls, unit.calls
    assert store.run(second.run_id)["leases"] == []  # nothing kept by the refused run


def test_a_run_leases_its_units_identity_and_releases_it(store: Store) -> None:
    run = _run(store, "socket://127.0.0.1:5025", Unit())
    assert run.execute().state.value == "completed"
    events = [e for e in store.events(run.run_id) if e["kind"] == "lease.acquired"]
    assert any(f"identity:{IDN}" in e["data"] for e in events), events
    assert store.run(run.run_id)["leases"] == []
    assert identity_key(object(), IDN, "socket://x:1") is None  # no serial number: no identity lease
    assert identity_key(Unit(), IDN, "labsim://potentiostat") is None  # simulated in this process
    assert os.getpid()  # the holder checks above ran against this live process
