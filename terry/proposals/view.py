"""The one read model of a proposal: what ``terry proposals show``, the JSON API, the pull
request's body (``terry.review.forge``) and ``terry explain`` all read. Plain frozen
dataclasses built from the store; the CLI, the server and the forge render them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from terry.errors import NotFound
from terry.store import Store
from terry.store.models import AuditRow, ProposalHostRow, ProposalRow, RunEventRow, RunRow

__all__ = [
    "ProposalDetail",
    "ProposalSummary",
    "RunSummary",
    "TimelineEntry",
    "list_proposals",
    "proposal_detail",
]


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    what: str
    actor: str
    detail: str


@dataclass(frozen=True)
class ProposalSummary:
    id: int
    incident_id: int
    remedy: str
    hosts: tuple[str, ...]
    risk: str
    state: str
    decision: str | None
    branch: str | None
    updated_at: datetime
    confidence: int | None = None  # 0-100 (terry.proposals.confidence), set by the gate
    # its parts: record, dry_run, diagnosis (and canary, once it ran); None before 0024
    confidence_parts: dict[str, int] | None = None


@dataclass(frozen=True)
class RunSummary:
    id: int
    kind: str
    status: str
    rc: int | None
    started_at: datetime
    finished_at: datetime | None
    commit: str | None
    stats: dict[str, Any]
    artifact_dir: str | None
    events: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ProposalDetail:
    summary: ProposalSummary
    params: dict[str, Any]
    reasons: tuple[str, ...]
    policy_commit: str | None
    commit: str | None
    merge_commit: str | None
    approved_by: str | None
    outcome: str | None
    modules: tuple[str, ...]
    playbook_path: str | None
    playbook: str | None
    vars_path: str | None
    check_summary: dict[str, Any]
    check_diff: str | None
    runs: tuple[RunSummary, ...]
    history: tuple[TimelineEntry, ...]
    pull_request: dict[str, Any] | None = None  # number, url, state, error on the forge
    applier: str = "ansible"  # or argocd (playbook_path is then the manifest it changes)
    target: str | None = None  # the Argo CD application
    # Written by Claude: {"model", "confidence", "diagnosis"}; None when Terry's own.
    ai: dict[str, Any] | None = None
    # Each host with its incident, wave and own outcome (terry.proposals.hosts), and the
    # proposal whose next wave this one is (a storm's late hosts, terry.proposals.storm).
    host_outcomes: tuple[dict[str, Any], ...] = ()
    follows: int | None = None


def _proposal_summary(row: ProposalRow) -> ProposalSummary:
    return ProposalSummary(
        id=row.id,
        incident_id=row.incident_id,
        remedy=row.remedy,
        hosts=tuple(row.hosts),
        risk=row.risk,
        state=row.state,
        decision=row.decision,
        branch=row.branch,
        updated_at=row.updated_at,
        confidence=row.confidence_score,
        confidence_parts=dict(row.confidence_parts) if row.confidence_parts else None,
    )


def list_proposals(
    store: Store, *, state: str | None = None, limit: int = 50, before_id: int | None = None
) -> list[ProposalSummary]:
    """Newest first; ``before_id``: only ids below it (the next page after that id)."""
    with store.session() as session:
        query = select(ProposalRow).order_by(ProposalRow.id.desc()).limit(limit)
        if state:
            query = query.where(ProposalRow.state == state)
        if before_id is not None:
            query = query.where(ProposalRow.id < before_id)
        return [_proposal_summary(r) for r in session.scalars(query)]


def proposal_detail(store: Store, proposal_id: int, *, events: bool = False) -> ProposalDetail:
    with store.session() as session:
        row = session.get(ProposalRow, proposal_id)
        if row is None:
            raise NotFound(f"proposal {proposal_id} does not exist")
        runs = list(
            session.scalars(
                select(RunRow).where(RunRow.proposal_id == proposal_id).order_by(RunRow.id)
            )
        )
        run_events: dict[int, list[RunEventRow]] = {}
        if events and runs:
            for event in session.scalars(
                select(RunEventRow)
                .where(RunEventRow.run_id.in_([r.id for r in runs]))
                .order_by(RunEventRow.run_id, RunEventRow.seq, RunEventRow.id)
            ):
                run_events.setdefault(event.run_id, []).append(event)
        host_rows = list(
            session.scalars(
                select(ProposalHostRow)
                .where(ProposalHostRow.proposal_id == proposal_id)
                .order_by(ProposalHostRow.id)
            )
        )
        audits = list(
            session.scalars(
                select(AuditRow)
                .where(AuditRow.entity == "proposal", AuditRow.entity_id == proposal_id)
                .order_by(AuditRow.at, AuditRow.id)
            )
        )
    return ProposalDetail(
        summary=_proposal_summary(row),
        params=row.params,
        reasons=tuple(row.reasons),
        policy_commit=row.policy_commit,
        commit=row.commit_sha,
        merge_commit=row.merge_sha,
        approved_by=row.approved_by,
        outcome=row.outcome,
        modules=tuple(row.modules),
        playbook_path=row.playbook_path,
        playbook=row.playbook,
        vars_path=row.vars_path,
        check_summary=row.check_summary,
        check_diff=row.check_diff,
        applier=row.applier,
        target=row.target,
        follows=row.follows_id,
        host_outcomes=tuple(
            {
                "host": h.host,
                "incident_id": h.incident_id,
                "environment": h.environment,
                "wave": h.wave,
                "state": h.state,
                "detail": h.detail or "",
            }
            for h in host_rows
        ),
        ai=(
            {"model": row.ai_model, "confidence": row.confidence, "diagnosis": row.ai_diagnosis}
            if row.ai_authored
            else None
        ),
        pull_request=(
            {
                "number": row.pr_number,
                "url": row.pr_url,
                "state": row.forge_state,
                "error": row.forge_error,
            }
            if row.forge_state
            else None
        ),
        runs=tuple(
            RunSummary(
                id=r.id,
                kind=r.kind,
                status=r.status,
                rc=r.rc,
                started_at=r.started_at,
                finished_at=r.finished_at,
                commit=r.commit_sha,
                stats=r.stats,
                artifact_dir=r.artifact_dir,
                events=tuple(
                    {
                        "seq": e.seq,
                        "event": e.event,
                        "host": e.host,
                        "task": e.task,
                        "action": e.action,
                        "status": e.status,
                    }
                    for e in run_events.get(r.id, [])
                ),
            )
            for r in runs
        ),
        history=tuple(
            TimelineEntry(a.at, f"{a.from_state or ''} → {a.to_state}".strip(), a.actor, a.reason)
            for a in audits
        ),
    )
