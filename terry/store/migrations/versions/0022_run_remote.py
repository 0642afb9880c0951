"""runs.remote: where a run goes on outside Terry's process (an AWX job)

Revision ID: 0022
Revises: 0021

A run an applier hands to another system (``awx:<job id>``) keeps going when the process
that started it dies. Recovery reads this to stop it before the run's hosts are freed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("remote", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("remote")
