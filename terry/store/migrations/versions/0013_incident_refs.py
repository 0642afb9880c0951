"""incidents.ref: "INC-2026-12-04-007", a reference people can say out loud

Revision ID: 0013
Revises: 0012

Each incident gets the UTC day Terry recorded it and that day's sequence number; the last
number of each day is kept in ``incident_days`` so concurrent writers never hand out the same
one. Incidents from before get references in id order, by the day they were opened.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _utc_day(value: object) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.date().isoformat()
    return str(value)[:10]  # SQLite hands back the stored UTC text: "2026-12-04 10:00:00"


def upgrade() -> None:
    op.create_table(
        "incident_days",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("last", sa.Integer(), nullable=False),
    )
    # A plain ADD COLUMN and a separate unique index (no batch copy of a table others point at).
    op.add_column("incidents", sa.Column("ref", sa.String(32), nullable=True))
    op.create_index("ix_incidents_ref", "incidents", ["ref"], unique=True)
    bind = op.get_bind()
    incidents = sa.table(
        "incidents",
        sa.column("id", sa.Integer()),
        sa.column("opened_at", sa.DateTime()),
        sa.column("ref", sa.String()),
    )
    days: dict[str, int] = {}
    updates = []
    for incident_id, opened_at in bind.execute(
        sa.select(incidents.c.id, incidents.c.opened_at).order_by(incidents.c.id)
    ):
        day = _utc_day(opened_at)
        days[day] = days.get(day, 0) + 1
        updates.append({"b_id": incident_id, "b_ref": f"INC-{day}-{days[day]:03d}"})
    if updates:
        bind.execute(
            incidents.update()
            .where(incidents.c.id == sa.bindparam("b_id"))
            .values(ref=sa.bindparam("b_ref")),
            updates,
        )
        op.bulk_insert(
            sa.table(
                "incident_days", sa.column("day", sa.String()), sa.column("last", sa.Integer())
            ),
            [{"day": day, "last": last} for day, last in sorted(days.items())],
        )


def downgrade() -> None:
    op.drop_index("ix_incidents_ref", table_name="incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("ref")
    op.drop_table("incident_days")
