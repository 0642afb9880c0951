"""inbox: a partial index on the rows still to fold, so claiming the oldest 200 reads 200
index entries however long the backlog is (instead of every unfolded row, then a sort)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_UNFOLDED = sa.text("folded_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_inbox_unfolded",
        "inbox",
        ["id"],
        postgresql_where=_UNFOLDED,
        sqlite_where=_UNFOLDED,
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_unfolded", table_name="inbox")
