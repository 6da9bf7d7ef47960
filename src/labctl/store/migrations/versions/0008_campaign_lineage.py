"""Campaign lineage: for a campaign with a fabrication and a test protocol, one row per cell linking the
sample, the fabrication run that made it, the cell assembled from it and the test run that cycled it (each
with its run request), and where the test runs go (`campaigns.cycler_path`: a station or a multi-channel
cycler).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("cycler_path", sa.Text(), nullable=True))
    op.create_table(
        "campaign_cells",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("point_id", sa.Integer(), sa.ForeignKey("campaign_points.id"), nullable=False, unique=True),
        sa.Column("sample_id", sa.String(200), nullable=False),
        sa.Column("fab_request_id", sa.Integer(), sa.ForeignKey("run_requests.id"), nullable=True),
        sa.Column("fab_run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("cell_id", sa.String(200), nullable=False),
        sa.Column("cell", sa.JSON(), nullable=False),
        sa.Column("test_request_id", sa.Integer(), sa.ForeignKey("run_requests.id"), nullable=True),
        sa.Column("test_run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("channel", sa.String(200), nullable=True),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_campaign_cells_campaign_id", "campaign_cells", ["campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_cells_campaign_id", table_name="campaign_cells")
    op.drop_table("campaign_cells")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("cycler_path")
