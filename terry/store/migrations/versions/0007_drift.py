"""drift: scans, the hosts each one covered, and the items it found

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("commit_sha", sa.String(64), nullable=False),
        sa.Column("limit", sa.String(500), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("run_dir", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drift_scans_status", "drift_scans", ["status"])
    op.create_table(
        "drift_hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), sa.ForeignKey("drift_scans.id"), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scan_id", "host", name="uq_drift_host"),
    )
    op.create_index("ix_drift_hosts_host_scan", "drift_hosts", ["host", "scan_id"])
    op.create_table(
        "drift_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), sa.ForeignKey("drift_scans.id"), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("task", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("diff", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drift_items_scan_host", "drift_items", ["scan_id", "host"])


def downgrade() -> None:
    op.drop_index("ix_drift_items_scan_host", table_name="drift_items")
    op.drop_table("drift_items")
    op.drop_index("ix_drift_hosts_host_scan", table_name="drift_hosts")
    op.drop_table("drift_hosts")
    op.drop_index("ix_drift_scans_status", table_name="drift_scans")
    op.drop_table("drift_scans")
