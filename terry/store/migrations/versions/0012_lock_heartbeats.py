"""host_locks.heartbeat_at and runs.holder: telling a dead holder from a live one

Revision ID: 0012
Revises: 0011

A lock's holder renews ``heartbeat_at`` while it holds (how another machine tells it died);
a run records the process making it (``holder``), so recovery finishes the runs a dead
process left ``running``. Rows from before stay null: such a lock frees only when it
expires, and such a run is judged by its proposal's locks.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs, as in 0009: no batch copy of a table other tables point at.
    heartbeat = sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
    op.add_column("host_locks", heartbeat)
    op.add_column("runs", sa.Column("holder", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("holder")
    with op.batch_alter_table("host_locks") as batch:
        batch.drop_column("heartbeat_at")
