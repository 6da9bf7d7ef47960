"""Campaigns: a designed experiment's file and design (kind, recorded seed), its points (the values, the
plan's verdict, the run request each became) and one observation per finished cell (hours to failure,
censored or excluded, with the run's metrics).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("protocols", sa.JSON(), nullable=False),
        sa.Column("station_path", sa.Text(), nullable=True),
        sa.Column("design_kind", sa.String(40), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("simulate", sa.Boolean(), nullable=False),
        sa.Column("horizon_s", sa.Double(), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
    )
    op.create_table(
        "campaign_points",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("point", sa.Integer(), nullable=False),
        sa.Column("replicate", sa.Integer(), nullable=False),
        sa.Column("block", sa.String(200), nullable=True),
        sa.Column("factor_values", sa.JSON(), nullable=False),
        sa.Column("plan_ok", sa.Boolean(), nullable=False),
        sa.Column("plan_errors", sa.JSON(), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("sample_id", sa.String(200), nullable=False),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("run_requests.id"), nullable=True),
        sa.UniqueConstraint("campaign_id", "seq", name="uq_campaign_points_seq"),
    )
    op.create_table(
        "campaign_observations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("point_id", sa.Integer(), sa.ForeignKey("campaign_points.id"), nullable=False, unique=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("hours", sa.Double(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("campaign_observations")
    op.drop_table("campaign_points")
    op.drop_table("campaigns")
