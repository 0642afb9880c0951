"""Asking Claude about an incident no remedy matches: the request from the record, the
answer validated, or the reason a person must look instead.

Called by the pipeline in the worker (never in the webhook), after rule-based diagnosis
found a known host but no remedy. With no key configured nothing is asked and nothing
fails: the incident is kept for a human with Terry's own reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select

from terry.ai.answer import AIAnswer
from terry.ai.client import ClaudeDiagnoser
from terry.ai.errors import AIAnswerError, AIServiceError
from terry.ai.request import DiagnosisRequest, PastIncident
from terry.config import Config
from terry.inventory import Host, Inventory
from terry.remedies.catalogue import Catalogue
from terry.store import Store
from terry.store.models import IncidentRow, ProposalRow

__all__ = ["Consulted", "consult", "past_incidents"]


@dataclass(frozen=True)
class Consulted:
    """Claude's usable answer, or why a person must look (``answer`` None)."""

    answer: AIAnswer | None
    reason: str


def past_incidents(
    store: Store, alertname: str, *, exclude: int, limit: int = 5
) -> tuple[PastIncident, ...]:
    """The newest earlier incidents of the same kind, and how each ended."""
    with store.session() as session:
        rows = session.scalars(
            select(IncidentRow)
            .where(IncidentRow.title == alertname, IncidentRow.id != exclude)
            .order_by(IncidentRow.id.desc())
            .limit(limit)
        ).all()
        found: list[PastIncident] = []
        for row in rows:
            proposal = session.scalars(
                select(ProposalRow)
                .where(ProposalRow.incident_id == row.id)
                .order_by(ProposalRow.id.desc())
                .limit(1)
            ).first()
            outcome = (
                proposal.state if proposal else ("kept for a human" if row.attention else row.state)
            )
            found.append(
                PastIncident(
                    opened_at=row.opened_at.isoformat(timespec="seconds"),
                    host=row.host or "",
                    outcome=outcome,
                    remedy=proposal.remedy if proposal else None,
                    note=(proposal.outcome if proposal else row.attention) or "",
                )
            )
        return tuple(found)


def consult(
    config: Config,
    store: Store,
    *,
    incident_id: int,
    alertname: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    host: Host,
    inventory: Inventory,
    catalogue: Catalogue,
    rule_reason: str,
    environ: Mapping[str, str] | None = None,
) -> Consulted | None:
    """Claude's answer, or the reason it cannot be used; None when Claude is not configured."""
    diagnoser = ClaudeDiagnoser.from_config(config.ai, os.environ if environ is None else environ)
    if diagnoser is None:
        return None
    request = DiagnosisRequest.build(
        alertname=alertname,
        labels=labels,
        annotations=annotations,
        host=host,
        inventory=inventory,
        catalogue=catalogue,
        past_incidents=past_incidents(store, alertname, exclude=incident_id),
    )
    with diagnoser:
        try:
            answer = diagnoser.diagnose(request)
        except (AIServiceError, AIAnswerError) as exc:
            return Consulted(None, f"{rule_reason}; asked Claude: {exc}")
    if answer.held:
        return Consulted(
            None,
            f"{rule_reason}; Claude ({answer.confidence}% confident) suggests: "
            f"{answer.diagnosis[:300]} — held: {answer.held}",
        )
    return Consulted(answer, answer.diagnosis)
