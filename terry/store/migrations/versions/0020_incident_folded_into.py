"""incidents.folded_into: the storm proposal whose fix an incident shares with an earlier
incident on the same host (terry.pipeline's storm fold); marked fixed with that host

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("folded_into", sa.Integer(), nullable=True))
        batch.create_index("ix_incidents_folded_into", ["folded_into"])


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_index("ix_incidents_folded_into")
        batch.drop_column("folded_into")
