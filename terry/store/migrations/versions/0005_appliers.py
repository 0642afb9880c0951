"""appliers: which applier carries a proposal (ansible or argocd) and its target

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.add_column(
            sa.Column("applier", sa.String(16), nullable=False, server_default="ansible")
        )
        batch.add_column(sa.Column("target", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("target")
        batch.drop_column("applier")
