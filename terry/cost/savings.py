"""Savings achieved: what applied cost proposals take off the monthly bill.

``terry cost propose`` records, beside the proposal, an audit row (entity ``cost_saving``,
the proposal's id) saying the monthly saving it was proposed for: ``"34.56 USD a month:
downsize:web-01 (m5.xlarge -> m5.large)"``. A cost proposal counts as achieved from the
moment it was applied or verified (its own audit trail says when); rejected, denied or
rolled back it counts nothing. The weekly report sets the run rate achieved by the window's
end against ``cost.savings_goal`` and names what the window added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from terry.cost.rules import Recommendation
from terry.reports.markup import md_text
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import AuditRow, ProposalRow

__all__ = ["COST_ENTITY", "Saving", "Savings", "record_saving", "savings_achieved"]

COST_ENTITY = "cost_saving"
_REASON = re.compile(r"^(\d+(?:\.\d+)?) ([A-Z]{3}) a month: (\S+)")
_APPLIED = ("applied", "verified")


@dataclass(frozen=True)
class Saving:
    proposal_id: int
    recommendation: str
    monthly_saving: float
    applied_at: datetime


@dataclass(frozen=True)
class Savings:
    goal: float  # cost.savings_goal, a month
    currency: str | None
    achieved: float  # a month, by the window's end
    in_window: float  # of which applied in the window
    proposals: tuple[Saving, ...]  # applied in the window

    @property
    def goal_percent(self) -> float | None:
        return round(self.achieved / self.goal * 100, 1) if self.goal else None


def record_saving(
    store: Store, proposal_id: int, rec: Recommendation, currency: str, actor: str
) -> None:
    with store.session() as session:
        audit(
            session,
            entity=COST_ENTITY,
            entity_id=proposal_id,
            actor=actor,
            from_state=None,
            to_state="proposed",
            reason=f"{rec.monthly_saving:.2f} {currency} a month: {rec.id} "
            f"({rec.current} -> {rec.proposed})",
        )


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def savings_achieved(store: Store, *, start: datetime, end: datetime, goal: float) -> Savings:
    start, end = _utc(start), _utc(end)
    achieved = in_window = 0.0
    currency: str | None = None
    found: list[Saving] = []
    with store.session() as session:
        rows = session.scalars(select(AuditRow).where(AuditRow.entity == COST_ENTITY)).all()
        for row in rows:
            match = _REASON.match(row.reason or "")
            proposal = session.get(ProposalRow, row.entity_id)
            if match is None or proposal is None or proposal.state not in _APPLIED:
                continue
            applied = session.scalars(
                select(AuditRow.at)
                .where(
                    AuditRow.entity == "proposal",
                    AuditRow.entity_id == row.entity_id,
                    AuditRow.to_state.in_(_APPLIED),
                )
                .order_by(AuditRow.at)
            ).first()
            at = _utc(applied or proposal.updated_at)
            if at >= end:
                continue
            saving, currency = float(match.group(1)), match.group(2)
            achieved += saving
            if at >= start:
                in_window += saving
                found.append(Saving(row.entity_id, match.group(3), saving, at))
    return Savings(
        goal=goal,
        currency=currency,
        achieved=round(achieved, 2),
        in_window=round(in_window, 2),
        proposals=tuple(sorted(found, key=lambda s: s.applied_at)),
    )


def savings_lines(savings: Savings) -> list[str]:
    """The weekly report's Markdown section."""
    currency = savings.currency or ""
    goal = (
        f" of a goal of {savings.goal:,.2f} {currency} ({savings.goal_percent:.1f}%)"
        if savings.goal
        else ""
    )
    lines = [
        "",
        "## Cost savings",
        "",
        f"{savings.achieved:,.2f} {currency} a month saved by applied cost proposals{goal}; "
        f"this window added {savings.in_window:,.2f} {currency}.".replace("  ", " "),
    ]
    lines += [
        f"- proposal {s.proposal_id}: {md_text(s.recommendation)}, {s.monthly_saving:,.2f} "
        f"{currency} a month, applied {s.applied_at:%Y-%m-%d}"
        for s in savings.proposals
    ]
    return lines
