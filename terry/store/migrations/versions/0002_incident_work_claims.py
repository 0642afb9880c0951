"""incident work claims: claimed_by, claimed_at, diagnosed_at

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("diagnosed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_incidents_diagnosed_at", ["diagnosed_at"])
    # Incidents from before work claims existed were diagnosed when they were ingested.
    op.execute("UPDATE incidents SET diagnosed_at = opened_at")


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_index("ix_incidents_diagnosed_at")
        batch.drop_column("diagnosed_at")
        batch.drop_column("claimed_at")
        batch.drop_column("claimed_by")
