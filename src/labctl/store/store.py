"""`Store`: the one API the engine, the CLI and the analysis use to record and read runs."""

from __future__ import annotations

import hashlib
import json
import time
from importlib import metadata
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, insert, select, update

from labctl.store import audit, control, leases, queries, seals
from labctl.store.db import (
    check_sqlite_settings,
    make_engine,
    reading,
    require_labctl,
    require_labctl_file,
    resolve_url,
)
from labctl.store.errors import StoreError
from labctl.store.ingest import Flusher, IORecorder, MeasurementWriter, io_rows, read_measurements
from labctl.store.models import (
    IO,
    RUN_STATES,
    STEP_STATUSES,
    TERMINAL_STATES,
    Event,
    Lease,
    Run,
    Sample,
    Step,
)

if TYPE_CHECKING:  # numpy only in annotations here; ingest imports it where data is read or written
    import numpy as np

VERSIONED = (
    "labctl",
    "numpy",
    "scipy",
    "sqlalchemy",
    "pydantic",
    "pint",
    "transitions",
    "pyserial",
    "pyvisa",
    "pyvisa-py",
)


def _versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    from labctl.plugins import versions as plugin_versions

    out.update(plugin_versions())  # installed labctl plug-ins, "plugin:<distribution>": version
    return out


class Store:
    """Runs, steps, audited events, measurements, instrument I/O, samples, leases and control commands."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine, self.url = engine, url
        self._key: bytes | None = None
        self._key_path = audit.key_path()
        self._key_checked = False
        self._flusher = Flusher()

    @classmethod
    def open(cls, url: str | None = None, *, read_only: bool = False) -> Store:
        """url None -> $LABCTL_DB -> ./labctl.db; migrate to head; check SQLite's settings.

        `read_only` (for commands that only read): the database must exist and be labctl's; a missing
        SQLite file or another application's database is refused rather than created or given our tables.
        """
        from labctl.store.migrate import upgrade

        full = resolve_url(url)
        if read_only:
            require_labctl_file(full)
        engine = make_engine(full)
        try:
            if read_only:
                require_labctl(engine)
            if engine.dialect.name == "sqlite":
                check_sqlite_settings(engine)
            upgrade(engine)
        except StoreError:
            engine.dispose()
            raise
        except Exception as exc:
            engine.dispose()
            raise StoreError(f"cannot open the store at {engine.url.render_as_string()}: {exc}") from exc
        return cls(engine, engine.url.render_as_string(hide_password=True))

    def _check_id(self, run_id: int | None) -> None:
        """Run ids are 64-bit on SQLite, 32-bit on PostgreSQL (`Integer`)."""
        seals.check_int("run id", run_id, 32 if self.engine.dialect.name == "postgresql" else 64)

    def flush(self) -> None:
        """Commit everything buffered by this store's writers and I/O recorders."""
        self._flusher.flush()

    def close(self) -> None:
        """Flush, stop the flusher thread and release the connections (idempotent)."""
        self._flusher.stop()
        self.flush()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- audit --------------------------------------------------------------------------------------

    def _audit_key(self, *, create: bool = True) -> bytes:
        """The key; for writing (`create`), checked once against the chain's recorded fingerprint (the key
        of a Store never changes, so every later append uses a checked key)."""
        if self._key is None:
            if create and not audit.key_path().exists():
                with reading(self.engine) as conn:
                    events = conn.execute(select(func.count()).select_from(Event)).scalar()
                # Another process may have created the key (atomically, before its first event) between the
                # two looks: only a key still missing beside recorded events is lost. A wrong key is refused
                # by the fingerprint check below either way.
                if events and not audit.key_path().exists():
                    raise StoreError(
                        f"audit key {audit.key_path()} is missing but the store has events; "
                        "restore the key (LABCTL_AUDIT_KEY) before recording more"
                    )
            self._key = audit.load_key(create=create)
            self._key_path = audit.key_path()
        if create and not self._key_checked:
            self._check_key(self._key)
        return self._key

    def _check_key(self, key: bytes) -> None:
        with reading(self.engine) as conn:
            unrecorded = audit.check_key(conn, key, self._key_path)
        if unrecorded:  # a chain from before fingerprints: record this key's, once
            with self.engine.begin() as conn:
                audit.lock_chain(conn)
                if audit.check_key(conn, key, self._key_path):
                    fp = {"fingerprint": audit.fingerprint(key)}
                    audit.append(conn, key, None, audit.KEY_EVENT, fp, "labctl")
        self._key_checked = True

    def check_audit_key(self) -> str:
        """Before a run starts: the audit key exists (or is created for a new store) and is the chain's;
        StoreError naming the key file and both fingerprints otherwise. Returns the fingerprint."""
        return audit.fingerprint(self._audit_key(create=True))

    def append_event(self, run_id: int | None, kind: str, data: dict, *, actor: str = "labctl") -> int:
        key = self._audit_key()
        with self.engine.begin() as conn:
            return audit.append(conn, key, run_id, kind, data, actor)

    def verify(self, run_id: int | None = None, checkpoint: dict | None = None) -> audit.VerifyResult:
        self._check_id(run_id)
        key = self._audit_key(create=False)
        with reading(self.engine) as conn:
            return audit.verify(conn, key, run_id, checkpoint)

    def seal_io(self, run_id: int, *, actor: str = "labctl") -> dict[str, Any]:
        """Put the digest of the run's instrument transcript so far into the chain (`io.sealed`)."""
        self._check_id(run_id)
        self.flush()
        with reading(self.engine) as conn:
            digest = seals.io_digest(conn, run_id)
        self.append_event(run_id, "io.sealed", digest, actor=actor)
        return digest

    def verify_records(self, run_id: int | None = None) -> tuple[list[seals.Problem], int, int]:
        """Records against the chain: (problems, sealed streams verified, unsealed chunks)."""
        self._check_id(run_id)
        self.flush()
        with reading(self.engine) as conn:
            return seals.check_records(conn, run_id)

    def checkpoint(self) -> dict[str, Any]:
        key = self._audit_key(create=False)
        with reading(self.engine) as conn:
            return audit.make_checkpoint(conn, key)

    def events(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """Audit events (of one run, or all), in chain order."""
        self._check_id(run_id)
        with reading(self.engine) as conn:
            return queries.events(conn, run_id)

    # -- runs ---------------------------------------------------------------------------------------

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
    ) -> int:
        key = self._audit_key()
        sha = hashlib.sha256(protocol_text.encode()).hexdigest()
        now = time.time()
        values: dict[str, Any] = {
            "protocol_name": protocol_name,
            "protocol_path": protocol_path,
            "protocol_text": protocol_text,
            "protocol_sha256": sha,
            "parameters": parameters,
            "station_name": station_name,
            "station_text": station_text,
            "operator": operator,
            "host": leases.HOST,
            **leases.me(),  # pid, process start time, boot id: which process, even after pid reuse
            "versions": _versions(),
            "seed": seed,
            "mode": mode,
            "state": "created",
            "created_at": now,
            "heartbeat_at": now,
            "exit_reason": "",
            "sample_id": sample_id,
        }
        seals.check_int("seed", seed)
        step_rows = [
            {
                "index": int(s["index"]),
                "kind": s["kind"],
                "params": s.get("params") or {},
                "status": "pending",
                "reason": "",
            }
            for s in steps
        ]
        with self.engine.begin() as conn:
            run_id = conn.execute(insert(Run).values(**values)).inserted_primary_key[0]
            if step_rows:
                conn.execute(insert(Step), [{"run_id": run_id, **r} for r in step_rows])
            audit.append(
                conn,
                key,
                run_id,
                "run.created",
                {
                    "protocol_name": protocol_name,
                    "protocol_sha256": sha,
                    "station_name": station_name,
                    "station_sha256": hashlib.sha256((station_text or "").encode()).hexdigest(),
                    "operator": operator,
                    "mode": mode,
                    "seed": seed,
                    "sample_id": sample_id,
                    "steps": len(steps),
                    "record": seals.run_record(values),
                    "steps_sha256": seals.steps_digest(step_rows),
                },
                operator or "labctl",
            )
        return int(run_id)

    def set_run_state(self, run_id: int, state: str, *, reason: str = "", actor: str = "labctl") -> None:
        self._check_id(run_id)
        if state not in RUN_STATES:
            raise StoreError(f"unknown run state {state!r} (one of {', '.join(RUN_STATES)})")
        key = self._audit_key()
        with self.engine.begin() as conn:
            self._set_state(conn, key, run_id, state, reason, actor)

    def _set_state(self, conn: Any, key: bytes, run_id: int, state: str, reason: str, actor: str) -> None:
        row = conn.execute(select(Run.state, Run.started_at).where(Run.id == run_id)).first()
        if row is None:
            raise StoreError(f"no run {run_id}")
        now = time.time()
        values: dict[str, Any] = {"state": state}
        if state == "running" and row.started_at is None:
            values["started_at"] = now
        if state in TERMINAL_STATES:
            values.update(ended_at=now, exit_reason=reason)
        conn.execute(update(Run).where(Run.id == run_id).values(**values))
        change = {"from": row.state, "to": state, "reason": reason, "at": now}
        audit.append(conn, key, run_id, "run.state", change, actor)

    def start_step(self, run_id: int, index: int) -> int:
        key = self._audit_key()
        with self.engine.begin() as conn:
            step = conn.execute(
                select(Step.id, Step.kind).where(Step.run_id == run_id, Step.index == index)
            ).first()
            if step is None:
                raise StoreError(f"run {run_id} has no step {index}")
            now = time.time()
            conn.execute(
                update(Step).where(Step.id == step.id).values(status="running", started_at=now, ended_at=None)
            )
            audit.append(
                conn,
                key,
                run_id,
                "step.started",
                {"index": index, "kind": step.kind, "step_id": step.id, "at": now},
                "labctl",
            )
        return int(step.id)

    def finish_step(
        self, step_id: int, status: str, *, achieved: dict, summary: dict | None = None, reason: str = ""
    ) -> None:
        if status not in STEP_STATUSES:
            raise StoreError(f"unknown step status {status!r} (one of {', '.join(STEP_STATUSES)})")
        key = self._audit_key()
        with self.engine.begin() as conn:
            step = conn.execute(select(Step.run_id, Step.index, Step.kind).where(Step.id == step_id)).first()
            if step is None:
                raise StoreError(f"no step {step_id}")
            now = time.time()
            conn.execute(
                update(Step)
                .where(Step.id == step_id)
                .values(status=status, achieved=achieved, summary=summary, reason=reason, ended_at=now)
            )
            audit.append(
                conn,
                key,
                step.run_id,
                "step.finished",
                {
                    "index": step.index,
                    "kind": step.kind,
                    "step_id": step_id,
                    "status": status,
                    "reason": reason,
                    "achieved": achieved,
                    "summary_sha256": seals.json_digest(summary),
                    "at": now,
                },
                "labctl",
            )

    def run(self, run_id: int) -> dict[str, Any]:
        """The run row with its steps, sample and current leases (`*_at` as ISO 8601 UTC)."""
        self._check_id(run_id)
        with reading(self.engine) as conn:
            return queries.get_run(conn, run_id, self.url)

    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        """Run summaries, oldest first; filters: state, protocol (substring), sample, since, limit."""
        with reading(self.engine) as conn:
            return queries.list_runs(conn, **filters)

    # -- data ---------------------------------------------------------------------------------------

    def measurement_writer(self, run_id: int, step_id: int | None, stream: str) -> MeasurementWriter:
        def sealed(data: dict[str, Any]) -> None:
            self.append_event(run_id, "data.sealed", data)

        w = MeasurementWriter(self.engine, run_id, step_id, stream, on_close=sealed)
        self._flusher.add(w)
        return w

    def io_recorder(self, run_id: int) -> IORecorder:
        r = IORecorder(self.engine, run_id)
        self._flusher.add(r)
        return r

    def measurements(self, run_id: int, stream: str, step_id: int | None = None) -> dict[str, np.ndarray]:
        self._check_id(run_id)
        with reading(self.engine) as conn:
            return read_measurements(conn, run_id, stream, step_id)

    def streams(self, run_id: int) -> list[dict[str, Any]]:
        """The run's measurement streams: stream, step_id, points."""
        self._check_id(run_id)
        self.flush()
        with reading(self.engine) as conn:
            return queries.streams(conn, run_id)

    def io(self, run_id: int, instrument: str | None = None) -> list[dict[str, Any]]:
        self._check_id(run_id)
        self.flush()
        with reading(self.engine) as conn:
            return io_rows(conn, run_id, instrument)

    # -- samples ------------------------------------------------------------------------------------

    def record_sample(
        self, sample_id: str, *, substrate: str = "", run_id: int | None = None, overlayer: dict | None = None
    ) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(select(Sample.overlayer).where(Sample.id == sample_id)).first()
            if row is None:
                conn.execute(
                    insert(Sample).values(
                        id=sample_id,
                        substrate=substrate,
                        run_id=run_id,
                        overlayer=overlayer or {},
                        created_at=now,
                        updated_at=now,
                    )
                )
                return
            values: dict[str, Any] = {
                "updated_at": now,
                "overlayer": {**(row.overlayer or {}), **(overlayer or {})},
            }
            if substrate:
                values["substrate"] = substrate
            if run_id is not None:
                values["run_id"] = run_id
            conn.execute(update(Sample).where(Sample.id == sample_id).values(**values))

    def sample(self, sample_id: str) -> dict[str, Any] | None:
        """The `samples` row (overlayer, the run that made it), None if there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(*Sample.__table__.c).where(Sample.id == sample_id)).first()
            conn.rollback()
        return dict(row._mapping) if row is not None else None

    # -- leases -------------------------------------------------------------------------------------

    def acquire_leases(self, run_id: int, instruments: list[str]) -> None:
        key = self._audit_key()
        with self.engine.begin() as conn:
            audit.lock_chain(conn)  # PostgreSQL: serialize lease changes like appends
            new = leases.acquire(
                conn,
                run_id,
                instruments,
                lambda kind, data: audit.append(conn, key, run_id, kind, data, "labctl"),
            )
            if new:
                audit.append(conn, key, run_id, "lease.acquired", {"instruments": new}, "labctl")

    def heartbeat(self, run_id: int) -> None:
        with self.engine.begin() as conn:
            leases.heartbeat(conn, run_id)

    def release_leases(self, run_id: int) -> None:
        key = self._audit_key()
        with self.engine.begin() as conn:
            audit.lock_chain(conn)
            released = leases.release(conn, run_id)
            if released:
                audit.append(conn, key, run_id, "lease.released", {"instruments": released}, "labctl")

    def instruments(self, run_id: int) -> dict[str, Any]:
        """What a run used: its leases (instrument keys, still held or not) and the transcript's
        instruments with their record counts."""
        self._check_id(run_id)
        held: dict[str, bool] = {}
        for e in self.events(run_id):
            if e["kind"] in ("lease.acquired", "lease.released"):
                for name in json.loads(e["data"])["instruments"]:
                    held[name] = e["kind"] == "lease.acquired"
        self.flush()
        q = (
            select(IO.instrument, func.count().label("records"))
            .where(IO.run_id == run_id)
            .group_by(IO.instrument)
            .order_by(IO.instrument)
        )
        with reading(self.engine) as conn:
            talked = {r.instrument: r.records for r in conn.execute(q)}
        return {
            "leases": [{"instrument": k, "held": v} for k, v in sorted(held.items())],
            "io": [{"instrument": k, "records": v} for k, v in talked.items()],
        }

    def find_dead_runs(self) -> list[dict[str, Any]]:
        """Non-terminal runs whose process is gone: on this host, its pid is dead or now another process's
        (start time) or from another boot; elsewhere, its heartbeat is stale."""
        now = time.time()
        q = select(
            Run.id, Run.host, Run.pid, Run.proc_started, Run.boot_id, Run.heartbeat_at, Run.state
        ).where(Run.state.not_in(TERMINAL_STATES))
        dead = []
        with reading(self.engine) as conn:
            for r in conn.execute(q.order_by(Run.id)):
                held = select(Lease.host, Lease.pid, Lease.heartbeat_at, Lease.proc_started, Lease.boot_id)
                holders = conn.execute(held.where(Lease.run_id == r.id)).all()
                procs = [(r.host, r.pid, r.heartbeat_at, r.proc_started, r.boot_id), *map(tuple, holders)]
                if not self._gone(procs, now):
                    continue
                dead.append(
                    {
                        "id": r.id,
                        "state": r.state,
                        "host": r.host,
                        "pid": r.pid,
                        "heartbeat_at": queries.iso(r.heartbeat_at),
                    }
                )
        return dead

    @staticmethod
    def _gone(procs: list[tuple], now: float) -> bool:
        here = [p for p in procs if p[0] == leases.HOST]
        if here:
            return all(not leases.process_alive(pid, started, boot) for _, pid, _, started, boot in here)
        return all(leases.holder_dead(h, pid, hb, now) for h, pid, hb, _, _ in procs)

    def process_state(self, run_id: int) -> str:
        """'alive' (this host: same pid, start time and boot), 'dead' (as find_dead_runs decides) or
        'unknown' (another host with a fresh heartbeat, or a live pid recorded without its start time)."""
        self._check_id(run_id)
        with reading(self.engine) as conn:
            cols = select(Run.host, Run.pid, Run.proc_started, Run.boot_id, Run.heartbeat_at)
            r = conn.execute(cols.where(Run.id == run_id)).first()
        if r is None:
            raise StoreError(f"no run {run_id}")
        if self._gone([(r.host, r.pid, r.heartbeat_at, r.proc_started, r.boot_id)], time.time()):
            return "dead"
        if r.host == leases.HOST and r.proc_started is not None:
            return "alive"
        return "unknown"

    def mark_interrupted(
        self, run_id: int, *, actor: str = "labctl recover", why: str = "process died (found by recover)"
    ) -> dict[str, Any]:
        """Run -> interrupted (audited); running steps failed with 'in doubt'; leases released."""
        self._check_id(run_id)
        key = self._audit_key()
        with self.engine.begin() as conn:
            audit.lock_chain(conn)
            running = conn.execute(
                select(Step.id, Step.index, Step.kind, Step.summary).where(
                    Step.run_id == run_id, Step.status == "running"
                )
            ).all()
            now = time.time()
            for s in running:
                conn.execute(
                    update(Step)
                    .where(Step.id == s.id)
                    .values(
                        status="failed",
                        ended_at=now,
                        reason="in doubt: the run died while this step was running",
                        summary={**(s.summary or {}), "in_doubt": True},
                    )
                )
            released = leases.release(conn, run_id)
            self._set_state(conn, key, run_id, "interrupted", why, actor)
            audit.append(
                conn,
                key,
                run_id,
                "run.recovered",
                {"steps_in_doubt": [s.index for s in running], "instruments": released, "at": now},
                actor,
            )
        return {
            "run_id": run_id,
            "steps_in_doubt": [{"index": s.index, "kind": s.kind} for s in running],
            "instruments": released,
        }

    # -- control ------------------------------------------------------------------------------------

    def post_control(self, run_id: int, command: str, *, actor: str, args: dict | None = None) -> int:
        """Post pause | resume | abort | ack for a run (audited); returns the command's id."""
        self._check_id(run_id)
        key = self._audit_key()
        with self.engine.begin() as conn:
            return control.post(conn, key, run_id, command, actor, args)

    def take_control(self, run_id: int) -> list[dict[str, Any]]:
        """The run's unconsumed commands, oldest first; marks them consumed."""
        with self.engine.begin() as conn:
            return control.take(conn, run_id)
