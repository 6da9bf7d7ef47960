"""Alembic environment: runs on the connection `labctl.store.migrate` passes in."""

from __future__ import annotations

from alembic import context

from labctl.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run labctl's migrations through labctl.store.migrate (it passes the connection)")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
