"""Record: runs and their runner events, kept in the store next to the proposal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from terry.appliers.ansible_runner import RunResult
from terry.store import Store
from terry.store.models import ProposalRow, RunEventRow, RunRow, utcnow

__all__ = ["History", "fail_run", "finish_run", "remedy_history", "start_run"]


def start_run(store: Store, *, proposal_id: int, kind: str, commit: str | None) -> int:
    with store.session() as session:
        row = RunRow(
            proposal_id=proposal_id,
            kind=kind,
            commit_sha=commit,
            status="running",
            rc=None,
            started_at=utcnow(),
            finished_at=None,
            stats={},
            artifact_dir=None,
            ansible_seconds=None,
        )
        session.add(row)
        session.flush()
        return row.id


def finish_run(store: Store, run_id: int, result: RunResult) -> None:
    """The run's outcome and every event it produced, in one transaction."""
    with store.session() as session:
        row = session.get(RunRow, run_id)
        assert row is not None
        row.status = result.status.value
        row.rc = result.rc
        row.finished_at = utcnow()
        row.stats = {h: vars(s) for h, s in result.stats.items()}
        row.artifact_dir = str(result.artifact_dir) if result.artifact_dir else None
        row.ansible_seconds = result.ansible_seconds
        now = utcnow()
        session.add_all(
            RunEventRow(
                run_id=run_id,
                seq=e.seq,
                event=e.event,
                host=e.host,
                task=e.task,
                action=e.action,
                status=e.status.value if e.status else None,
                data=e.raw,
                created_at=now,
            )
            for e in result.events
        )


def fail_run(store: Store, run_id: int, status: str) -> None:
    with store.session() as session:
        row = session.get(RunRow, run_id)
        if row is not None:
            row.status = status
            row.finished_at = utcnow()


@dataclass(frozen=True)
class History:
    """How a remedy fared before: runs that reached apply, and how many were verified."""

    runs: int
    verified: int
    rolled_back: int

    @property
    def success_rate(self) -> float | None:
        return round(self.verified / self.runs, 4) if self.runs else None

    def as_input(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "verified": self.verified,
            "rolled_back": self.rolled_back,
            "success_rate": self.success_rate,
        }


def remedy_history(store: Store, remedy: str, *, exclude: int | None = None) -> History:
    finished = ("verified", "failed", "rolled_back", "escalated")
    with store.session() as session:
        rows = session.execute(
            select(ProposalRow.state, func.count(ProposalRow.id))
            .where(
                ProposalRow.remedy == remedy,
                ProposalRow.state.in_(finished),
                ProposalRow.id != (exclude or -1),
            )
            .group_by(ProposalRow.state)
        ).all()
    counts = {state: int(n) for state, n in rows}
    runs = sum(counts.values())
    verified = counts.get("verified", 0)
    return History(runs=runs, verified=verified, rolled_back=counts.get("rolled_back", 0))
