"""Record: runs and their runner events, kept in the store next to the proposal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from terry.appliers.base import RunResult
from terry.store import Store
from terry.store.models import ProposalRow, RunEventRow, RunRow, utcnow

__all__ = [
    "History",
    "RemedyRecord",
    "fail_run",
    "finish_run",
    "remedy_record",
    "remedy_records",
    "start_run",
]


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
        if result.revision is not None:  # it acted on another commit (a revert it made)
            row.commit_sha = result.revision
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


FINISHED = ("verified", "failed", "rolled_back", "escalated")


@dataclass(frozen=True)
class History:
    """How a remedy fared before: proposals that reached an end after apply (verified,
    failed, rolled back, escalated), how many were verified, the last one's end, and the mean
    time from proposal to verified."""

    runs: int
    verified: int
    rolled_back: int
    last_outcome: str | None = None
    mean_seconds_to_fix: float | None = None

    @property
    def success_rate(self) -> float | None:
        return round(self.verified / self.runs, 4) if self.runs else None

    def as_input(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "verified": self.verified,
            "rolled_back": self.rolled_back,
            "success_rate": self.success_rate,
            "last_outcome": self.last_outcome,
            "mean_seconds_to_fix": self.mean_seconds_to_fix,
        }

    def describe(self) -> str:
        if not self.runs:
            return "no runs yet"
        text = f"{self.verified} of {self.runs} verified"
        if self.rolled_back:
            text += f", {self.rolled_back} rolled back"
        return text + f", last {self.last_outcome}"


def _history(rows: list[tuple[str, datetime, datetime]]) -> History:
    """``rows``: (state, created_at, updated_at) of finished proposals, oldest first."""
    fixes = [(u - c).total_seconds() for state, c, u in rows if state == "verified"]
    return History(
        runs=len(rows),
        verified=sum(1 for state, _c, _u in rows if state == "verified"),
        rolled_back=sum(1 for state, _c, _u in rows if state == "rolled_back"),
        last_outcome=rows[-1][0] if rows else None,
        mean_seconds_to_fix=round(sum(fixes) / len(fixes), 1) if fixes else None,
    )


@dataclass(frozen=True)
class RemedyRecord:
    """A remedy's history over every environment and in each one (by the environment the
    gate judged each proposal in; proposals from before Terry kept it count only in the
    whole)."""

    remedy: str
    overall: History
    by_environment: dict[str, History]

    def environment(self, name: str) -> History:
        return self.by_environment.get(name, History(runs=0, verified=0, rolled_back=0))


def remedy_records(
    store: Store, remedies: tuple[str, ...] | None = None, *, exclude: int | None = None
) -> dict[str, RemedyRecord]:
    """Every remedy's record (or only ``remedies``), read in one query."""
    query = (
        select(ProposalRow.remedy, ProposalRow.environment, ProposalRow.state)
        .add_columns(ProposalRow.created_at, ProposalRow.updated_at)
        .where(ProposalRow.state.in_(FINISHED), ProposalRow.id != (exclude or -1))
        .order_by(ProposalRow.id)
    )
    if remedies is not None:
        query = query.where(ProposalRow.remedy.in_(remedies))
    overall: dict[str, list[tuple[str, datetime, datetime]]] = {}
    per_env: dict[str, dict[str, list[tuple[str, datetime, datetime]]]] = {}
    with store.session() as session:
        for remedy, environment, state, created, updated in session.execute(query):
            overall.setdefault(remedy, []).append((state, created, updated))
            if environment:
                per_env.setdefault(remedy, {}).setdefault(environment, []).append(
                    (state, created, updated)
                )
    return {
        remedy: RemedyRecord(
            remedy,
            _history(rows),
            {env: _history(r) for env, r in sorted(per_env.get(remedy, {}).items())},
        )
        for remedy, rows in sorted(overall.items())
    }


def remedy_record(store: Store, remedy: str, *, exclude: int | None = None) -> RemedyRecord:
    """One remedy's record (empty when it never reached an end)."""
    found = remedy_records(store, (remedy,), exclude=exclude).get(remedy)
    return found or RemedyRecord(remedy, History(runs=0, verified=0, rolled_back=0), {})
