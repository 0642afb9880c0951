"""forge reviews: pull request per proposal, webhook deliveries

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.add_column(sa.Column("pr_number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("pr_url", sa.String(500), nullable=True))
        batch.add_column(sa.Column("forge_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("forge_cursor", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("forge_error", sa.Text(), nullable=True))
    op.create_index("ix_proposals_forge_state", "proposals", ["forge_state"])
    op.create_table(
        "forge_deliveries",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("event", sa.String(50), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("forge_deliveries")
    op.drop_index("ix_proposals_forge_state", table_name="proposals")
    with op.batch_alter_table("proposals") as batch:
        for column in ("forge_error", "forge_cursor", "forge_state", "pr_url", "pr_number"):
            batch.drop_column(column)
