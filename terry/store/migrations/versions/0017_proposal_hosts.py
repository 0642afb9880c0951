"""proposal_hosts: each host of a proposal with its incident, wave and own outcome (storms
fold into one proposal over many hosts, rolled out in canary waves); proposals keep their
confidence score and the proposal whose next wave they are

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proposal_hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("environment", sa.String(64), nullable=True),
        sa.Column("wave", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["proposal_id"], ["proposals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("proposal_id", "host", name="uq_proposal_hosts"),
    )
    op.create_index("ix_proposal_hosts_proposal_id", "proposal_hosts", ["proposal_id"])
    op.create_index("ix_proposal_hosts_incident_id", "proposal_hosts", ["incident_id"])
    op.add_column("proposals", sa.Column("confidence_score", sa.Integer(), nullable=True))
    op.add_column("proposals", sa.Column("follows_id", sa.Integer(), nullable=True))
    op.create_index("ix_proposals_follows_id", "proposals", ["follows_id"])


def downgrade() -> None:
    op.drop_index("ix_proposals_follows_id", table_name="proposals")
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("follows_id")
        batch.drop_column("confidence_score")
    op.drop_index("ix_proposal_hosts_incident_id", table_name="proposal_hosts")
    op.drop_index("ix_proposal_hosts_proposal_id", table_name="proposal_hosts")
    op.drop_table("proposal_hosts")
