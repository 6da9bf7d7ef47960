"""Campaign suggestions: each point a planner proposed, with the sha256 of the observations (and pending
points) it was built from, what the planner said it was, and what became of it (queued as a campaign point,
edited, refused by its plan, or rejected by a person).

Revision ID: 0009
Revises: 0008 (rechained when 0008, the campaign lineage, was merged: the two touch different tables)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_suggestions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("planner", sa.JSON(), nullable=False),
        sa.Column("suggested_values", sa.JSON(), nullable=False),
        sa.Column("final_values", sa.JSON(), nullable=True),
        sa.Column("observations_sha256", sa.String(64), nullable=False),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("point_id", sa.Integer(), sa.ForeignKey("campaign_points.id"), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.Double(), nullable=True),
    )
    op.create_index("ix_campaign_suggestions_campaign", "campaign_suggestions", ["campaign_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_campaign_suggestions_campaign", "campaign_suggestions")
    op.drop_table("campaign_suggestions")
