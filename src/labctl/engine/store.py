"""The engine's store contract: what a run needs from a store, as a `typing.Protocol`.

`labctl.store.Store` implements it (structurally: no inheritance); engine tests use an in-memory fake. Keeping
the contract here keeps the arrow pointing from the store to the engine's needs, never the other way.
"""

from __future__ import annotations

from typing import Any, Protocol


class MeasurementWriter(Protocol):
    def append(self, **columns: Any) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class RunStore(Protocol):
    """Audited run records, data, leases and control commands, as a run writes and reads them."""

    def create_run(
        self,
        *,
        protocol_name: str,
        protocol_path: str,
        protocol_text: str,
        parameters: dict,
        station_name: str,
        station_text: str,
        operator: str,
        mode: str,
        seed: int | None,
        sample_id: str | None,
        steps: list[dict],
    ) -> int: ...
    def set_run_state(self, run_id: int, state: str, *, reason: str = "", actor: str = "labctl") -> None: ...
    def append_event(self, run_id: int | None, kind: str, data: dict, *, actor: str = "labctl") -> int: ...
    def start_step(self, run_id: int, index: int) -> int: ...
    def finish_step(
        self, step_id: int, status: str, *, achieved: dict, summary: dict | None = None, reason: str = ""
    ) -> None: ...
    def measurement_writer(self, run_id: int, step_id: int | None, stream: str) -> MeasurementWriter: ...
    def acquire_leases(self, run_id: int, instruments: list[str]) -> None: ...
    def heartbeat(self, run_id: int) -> None: ...
    def release_leases(self, run_id: int) -> None: ...
    def seal_io(self, run_id: int, *, actor: str = "labctl") -> dict[str, Any]: ...
    def take_control(self, run_id: int) -> list[dict[str, Any]]: ...
