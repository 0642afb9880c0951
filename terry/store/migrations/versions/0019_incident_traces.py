"""incidents.trace_id, trace_span_id, trace_evidence: the incident's own trace (terry.traces)
and what the services' traces said about it

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("trace_span_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("trace_evidence", sa.JSON(), nullable=True))
        batch.create_index("ix_incidents_trace_id", ["trace_id"])


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_index("ix_incidents_trace_id")
        batch.drop_column("trace_evidence")
        batch.drop_column("trace_span_id")
        batch.drop_column("trace_id")
