"""proposals.plan: how a proposal is dry-run, verified and rolled back (remedy data)

Revision ID: 0011
Revises: 0010

Proposals made before this revision get the plan their remedy implied then: a drift
reconciliation is verified by a drift scan, an inventory edit by the inventory on main (and,
converging, a drift scan); neither is rolled back automatically. Every other proposal keeps
the default (its applier's check, verify and rollback, and Prometheus when configured),
which is what a null plan means.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_RECONCILE = {
    "check": ["ansible"],
    "verify": ["drift-scan"],
    "rollback": "manual",
    "rollback_note": "None automatic: the desired state is the reference; revert its commit "
    "in git and fix again",
    "resolves": "drift fixed",
}


def _edit(applier: str) -> dict[str, object]:
    converge = applier != "git"
    return {
        "check": ["git", "ansible"] if converge else ["git"],
        "verify": ["inventory", "drift-scan"] if converge else ["inventory"],
        "rollback": "manual",
        "rollback_note": "None automatic: revert the merge commit (git revert -m 1), then "
        "'terry drift fix'",
        "resolves": "inventory edit verified",
        "edits": ["inventory"],  # the files are on its commit; the gate reads them edited
    }


def upgrade() -> None:
    op.add_column("proposals", sa.Column("plan", sa.JSON(), nullable=True))
    proposals = sa.table(
        "proposals",
        sa.column("remedy", sa.String),
        sa.column("applier", sa.String),
        sa.column("plan", sa.JSON),
    )
    op.execute(
        proposals.update().where(proposals.c.remedy == "reconcile-drift").values(plan=_RECONCILE)
    )
    for applier in ("git", "ansible"):
        op.execute(
            proposals.update()
            .where(proposals.c.remedy == "inventory-edit", proposals.c.applier == applier)
            .values(plan=_edit(applier))
        )


def downgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("plan")
