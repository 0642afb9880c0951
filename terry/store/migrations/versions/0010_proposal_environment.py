"""proposals.environment: the environment the gate judged a proposal in (its record there)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, as in 0009: no batch copy of a table other tables point at.
    op.add_column("proposals", sa.Column("environment", sa.String(64), nullable=True))
    op.create_index("ix_proposals_environment", "proposals", ["environment"])


def downgrade() -> None:
    op.drop_index("ix_proposals_environment", table_name="proposals")
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("environment")
