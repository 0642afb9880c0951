"""inbox.traceparent and incidents.alert_traceparent: the trace Alertmanager sent a
notification in

Revision ID: 0023
Revises: 0022

Alertmanager (0.28 and later, with tracing on) sends the W3C ``traceparent`` of its
notification's span with each webhook. The inbox keeps it with the body; the incident the
notification opened keeps the first one, and its trace links to it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inbox", sa.Column("traceparent", sa.String(55), nullable=True))
    op.add_column("incidents", sa.Column("alert_traceparent", sa.String(55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("alert_traceparent")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("traceparent")
