"""ai: proposals written by Claude (model, confidence, its diagnosis)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (no batch copy of the table: SQLite adds these in place, and a
    # copy would trip the foreign keys of runs and run_events).
    op.add_column(
        "proposals",
        sa.Column("ai_authored", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("proposals", sa.Column("confidence", sa.Integer(), nullable=True))
    op.add_column("proposals", sa.Column("ai_model", sa.String(128), nullable=True))
    op.add_column("proposals", sa.Column("ai_diagnosis", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("ai_diagnosis")
        batch.drop_column("ai_model")
        batch.drop_column("confidence")
        batch.drop_column("ai_authored")
