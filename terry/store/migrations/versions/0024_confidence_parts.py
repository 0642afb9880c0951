"""proposals.confidence_parts: what a proposal's confidence is made of

Revision ID: 0024
Revises: 0023

The gate stores the parts of the score with it (the remedy's record, the dry run, the
diagnosis' source) and the canary's outcome adds its own, so a person reads why the number
is what it is. Proposals from before keep the number alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("proposals", sa.Column("confidence_parts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("confidence_parts")
