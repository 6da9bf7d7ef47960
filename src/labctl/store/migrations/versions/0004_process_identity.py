"""A process is identified by pid, start time and boot: runs and leases record `proc_started` (the process'
create time, psutil) and `boot_id` (/proc/sys/kernel/random/boot_id), so a dead run whose pid was reused is
still recognised as dead. PostgreSQL: `runs.seed` becomes 64-bit like SQLite's integers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("runs", "leases"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("proc_started", sa.Double(), nullable=True))
            batch_op.add_column(sa.Column("boot_id", sa.String(length=64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("runs", "seed", type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("runs", "seed", type_=sa.Integer(), existing_type=sa.BigInteger())
    for table in ("leases", "runs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("boot_id")
            batch_op.drop_column("proc_started")
