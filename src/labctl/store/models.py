"""The store's tables as SQLAlchemy 2 typed models (portable: SQLite and PostgreSQL).

Times are unix seconds (float). JSON columns use `sqlalchemy.JSON`. The Alembic migrations in
`labctl/store/migrations` create exactly this schema (plus the append-only triggers on `events`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUN_STATES = (
    "created",
    "preflight",
    "running",
    "paused",
    "awaiting_operator",
    "completed",
    "failed",
    "aborted",
    "interrupted",
)
TERMINAL_STATES = frozenset({"completed", "failed", "aborted", "interrupted"})
STEP_STATUSES = ("pending", "running", "done", "failed", "skipped", "deviated")
CONTROL_COMMANDS = ("pause", "resume", "abort", "ack")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, float: Double}


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    protocol_name: Mapped[str] = mapped_column(String(200))
    protocol_path: Mapped[str] = mapped_column(Text, default="")
    protocol_text: Mapped[str] = mapped_column(Text, default="")
    protocol_sha256: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    station_name: Mapped[str] = mapped_column(String(200), default="")
    station_text: Mapped[str] = mapped_column(Text, default="")
    operator: Mapped[str] = mapped_column(String(200), default="")
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    proc_started: Mapped[float | None]  # the process' start time (with pid and boot_id: which process)
    boot_id: Mapped[str | None] = mapped_column(String(64))
    versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    mode: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[float] = mapped_column(index=True)
    started_at: Mapped[float | None]
    ended_at: Mapped[float | None]
    heartbeat_at: Mapped[float | None]
    exit_reason: Mapped[str] = mapped_column(Text, default="")
    sample_id: Mapped[str | None] = mapped_column(String(200), index=True)


class Step(Base):
    __tablename__ = "steps"
    __table_args__ = (Index("ix_steps_run_index", "run_id", "index", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    achieved: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[float | None]
    ended_at: Mapped[float | None]


class Event(Base):
    """Append-only, hash-chained audit log (see `labctl.store.audit`)."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200))
    t: Mapped[float]
    data: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Blob(Base):
    """Bulk instrument replies, stored once by content hash (zlib-compressed since revision 0003)."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # of the reply as received
    length: Mapped[int] = mapped_column(Integer)  # of the reply as received
    codec: Mapped[str] = mapped_column(String(20), server_default="raw")  # "raw" or "zlib"
    data: Mapped[bytes] = mapped_column(LargeBinary)


class IO(Base):
    """Every byte to and from an instrument (bulk replies by reference to `blobs`)."""

    __tablename__ = "io"
    __table_args__ = (Index("ix_io_run_t", "run_id", "t"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    t: Mapped[float]
    instrument: Mapped[str] = mapped_column(String(100))
    direction: Mapped[str] = mapped_column(String(10))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    length: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    note: Mapped[str] = mapped_column(Text, default="")


class Chunk(Base):
    """A block of measurement points: little-endian float64 columns concatenated column-wise, compressed
    as `codec` says (see `labctl.store.ingest`)."""

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_run_stream", "run_id", "stream", "step_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    step_id: Mapped[int | None] = mapped_column(ForeignKey("steps.id"))
    stream: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    t_first: Mapped[float | None]
    t_last: Mapped[float | None]
    columns: Mapped[list[str]] = mapped_column(JSON)
    codec: Mapped[str] = mapped_column(String(20), server_default="zlib")
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Sample(Base):
    __tablename__ = "samples"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    substrate: Mapped[str] = mapped_column(String(200), default="")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    overlayer: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float]
    updated_at: Mapped[float]


class Lease(Base):
    """Who holds an instrument (by lease key) right now."""

    __tablename__ = "leases"

    instrument: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    proc_started: Mapped[float | None]
    boot_id: Mapped[str | None] = mapped_column(String(64))
    since: Mapped[float]
    heartbeat_at: Mapped[float]


class Control(Base):
    """Commands to a run from other processes (pause, resume, abort, ack)."""

    __tablename__ = "control"
    __table_args__ = (Index("ix_control_run_pending", "run_id", "consumed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    command: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    posted_at: Mapped[float]
    consumed_at: Mapped[float | None]


REQUEST_STATES = ("queued", "taken", "started", "finished", "failed", "cancelled")
REQUEST_ENDED = frozenset({"finished", "failed", "cancelled"})


class RunRequest(Base):
    """A request to run a protocol somewhere that can serve it (see `labctl.store.requests`)."""

    __tablename__ = "run_requests"
    __table_args__ = (Index("ix_run_requests_pick", "state", "priority", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    protocol_name: Mapped[str] = mapped_column(String(200))
    protocol_path: Mapped[str] = mapped_column(Text, default="")
    protocol_text: Mapped[str] = mapped_column(Text)
    protocol_sha256: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    requirements: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"kinds", "roles", "instruments"}
    simulate: Mapped[bool] = mapped_column(Boolean, default=False)
    realtime: Mapped[bool] = mapped_column(Boolean, default=False)  # a dry run on the wall clock
    sample_id: Mapped[str | None] = mapped_column(String(200))
    requested_by: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[float | None]
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[float]
    taken_at: Mapped[float | None]
    started_at: Mapped[float | None]
    ended_at: Mapped[float | None]
    worker: Mapped[str | None] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    process: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the launched run process: host, pid, start
    reason: Mapped[str] = mapped_column(Text, default="")


class Worker(Base):
    """A runner or bench worker: what station it serves and a heartbeat (one row per worker name)."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # "runner" (SQLite, this PC) or "worker" (procrastinate)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    proc_started: Mapped[float | None]
    boot_id: Mapped[str | None] = mapped_column(String(64))
    station_name: Mapped[str] = mapped_column(String(200))
    station: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"roles": {role: lease key}, "simulate": bool}
    state: Mapped[str] = mapped_column(String(20))  # running, stopping, stopped
    started_at: Mapped[float]
    heartbeat_at: Mapped[float]


USER_ROLES = ("viewer", "operator", "admin")  # each can do what the ones before it can


class User(Base):
    """A web user (`labctl users`): role, argon2 password hash; disabled users cannot log in."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float]
    updated_at: Mapped[float]


class WebSession(Base):
    """A logged-in browser: the SHA-256 of its cookie token (never the token), its CSRF token, its expiry."""

    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float]
    expires_at: Mapped[float]
    address: Mapped[str] = mapped_column(String(100))

OBSERVATION_STATUSES = ("failed", "censored", "excluded")


class Campaign(Base):
    """A designed experiment (see `labctl.campaign`): the file's text, the design and its recorded seed."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    protocols: Mapped[dict[str, Any]] = mapped_column(JSON)  # role -> {"path", "sha256"}
    station_path: Mapped[str | None] = mapped_column(Text)
    cycler_path: Mapped[str | None] = mapped_column(Text)  # where test runs go (0008): a station or a rack
    design_kind: Mapped[str] = mapped_column(String(40))
    seed: Mapped[int] = mapped_column(BigInteger)
    simulate: Mapped[bool] = mapped_column(Boolean)
    horizon_s: Mapped[float | None]
    state: Mapped[str] = mapped_column(String(20))  # running, finished, cancelled
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float]
    ended_at: Mapped[float | None]


class CampaignPoint(Base):
    """One cell of a campaign in run order: its factor values, the plan's verdict and its run request."""

    __tablename__ = "campaign_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    seq: Mapped[int] = mapped_column(Integer)
    point: Mapped[int] = mapped_column(Integer)
    replicate: Mapped[int] = mapped_column(Integer)
    block: Mapped[str | None] = mapped_column(String(200))
    factor_values: Mapped[dict[str, Any]] = mapped_column(JSON)
    plan_ok: Mapped[bool] = mapped_column(Boolean)
    plan_errors: Mapped[list[str]] = mapped_column(JSON)
    duration_s: Mapped[float]
    sample_id: Mapped[str] = mapped_column(String(200))  # the cell's sample id: finds its request on resume
    request_id: Mapped[int | None] = mapped_column(ForeignKey("run_requests.id"))


class CampaignObservation(Base):
    """A finished cell: hours to failure (`failed`), alive at the end (`censored`) or `excluded`."""

    __tablename__ = "campaign_observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    point_id: Mapped[int] = mapped_column(ForeignKey("campaign_points.id"), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    status: Mapped[str] = mapped_column(String(20))
    hours: Mapped[float | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float]


CELL_STATES = ("planned", "fabricating", "fabricated", "fabrication failed", "testing", "tested",
               "interrupted")


class CampaignCell(Base):
    """Lineage of one cell of a linked campaign (0008): sample -> fabrication run -> cell -> test run."""

    __tablename__ = "campaign_cells"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    point_id: Mapped[int] = mapped_column(ForeignKey("campaign_points.id"), unique=True)
    sample_id: Mapped[str] = mapped_column(String(200))
    fab_request_id: Mapped[int | None] = mapped_column(ForeignKey("run_requests.id"))
    fab_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    cell_id: Mapped[str] = mapped_column(String(200))
    cell: Mapped[dict[str, Any]] = mapped_column(JSON)  # the assembly: build, who answered, in which run
    test_request_id: Mapped[int | None] = mapped_column(ForeignKey("run_requests.id"))
    test_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    channel: Mapped[str | None] = mapped_column(String(200))  # the station (cycler channel) it was tested on
    state: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[float]


class CampaignSuggestion(Base):
    """A point a campaign's planner proposed (migration 0009): the hash of the observations it used, and
    whether it was queued (as `point_id`), edited, refused by its plan or rejected."""

    __tablename__ = "campaign_suggestions"
    __table_args__ = (Index("ix_campaign_suggestions_campaign", "campaign_id", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    batch: Mapped[int] = mapped_column(Integer)
    planner: Mapped[dict[str, Any]] = mapped_column(JSON)  # the planner's describe()
    suggested_values: Mapped[dict[str, Any]] = mapped_column(JSON)
    final_values: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    observations_sha256: Mapped[str] = mapped_column(String(64))
    observations: Mapped[int] = mapped_column(Integer)
    pending: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))  # proposed, queued, refused, rejected
    point_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_points.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[float | None]
