"""The read commands' answers: ``status HOST``, ``incidents``, ``explain``.

Built from the read models (``terry.reports.views``, ``terry.proposals.view``,
``terry.reports.explain``, ``terry.drift.report``) and the store; nothing is asked of the
hosts or of Prometheus. Every piece of untrusted text is made inert.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from terry.chat.answer import Answer, Button, ButtonAction
from terry.chat.grammar import Explain, Incidents
from terry.config import Config
from terry.errors import NotFound
from terry.forecast.findings import ANOMALY_SOURCE, SOURCE
from terry.incidents.refs import resolve_incident
from terry.inert import inert
from terry.inventory.hosts import Inventory
from terry.proposals.state import ProposalState
from terry.reports.explain import explain_incident
from terry.store import Store
from terry.store.models import IncidentRow, ProposalRow
from terry.tenants.scope import EVERYTHING, Scope

__all__ = ["explain_answer", "incidents_answer", "review_buttons", "status_answer"]

MAX_LISTED = 15


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def review_buttons(proposal_id: int) -> tuple[Button, ...]:
    return (
        Button(f"Approve {proposal_id}", ButtonAction.APPROVE, str(proposal_id)),
        Button(f"Reject {proposal_id}", ButtonAction.REJECT, str(proposal_id), danger=True),
    )


def _drift(config: Config, store: Store, host: str) -> str:
    from terry.drift.report import load_report  # git for unapplied commits: only when asked

    try:
        report = load_report(store, config)
    except NotFound:
        return "Drift: no drift scan yet."
    view = next((h for h in report.hosts if h.host == host), None)
    if view is None:
        return f"Drift: {host} was not in the last scan ({report.scan_id})."
    items = [i for i in view.items if i.state != "resolved"]
    line = f"Drift (scan {report.scan_id}, {_when(report.finished_at)}): {inert(view.status)}"
    if items:
        shown = "; ".join(f"{inert(i.resource)} ({i.severity})" for i in items[:5])
        line += f", {len(items)} item(s): {shown}"
    return line


def status_answer(config: Config, store: Store, host: str) -> Answer:
    """Open incidents, the last fixes, drift and forecasts of ``host``."""
    with store.session() as session:
        incidents = list(
            session.scalars(
                select(IncidentRow)
                .where(IncidentRow.host == host, IncidentRow.state == "open")
                .order_by(IncidentRow.id.desc())
                .limit(MAX_LISTED)
            )
        )
        recent = [
            p
            for p in session.scalars(select(ProposalRow).order_by(ProposalRow.id.desc()).limit(500))
            if host in (p.hosts or [])
        ][:5]
        rows = [(i.id, i.ref, i.title, i.source, i.attention) for i in incidents]
        fixes = [(p.id, p.remedy, p.state, p.updated_at, p.outcome) for p in recent]
    lines = [f"Status of {host}:"]
    forecasts = [r for r in rows if r[3] in (SOURCE, ANOMALY_SOURCE)]
    lines.append(f"Open incidents: {len(rows) - len(forecasts) or 'none'}")
    for iid, ref, title, source, attention in rows:
        if source in (SOURCE, ANOMALY_SOURCE):
            continue
        lines.append(f"  incident {iid} ({ref}): {inert(title)}")
        if attention:
            lines.append(f"    kept for a person: {inert(attention)[:300]}")
    lines.append("Last fixes:" if fixes else "Last fixes: none")
    buttons: list[Button] = []
    for pid, remedy, state, updated, outcome in fixes:
        line = f"  proposal {pid}: {inert(remedy)}, {state} ({_when(updated)})"
        if outcome:
            line += f": {inert(outcome)[:200]}"
        lines.append(line)
        if state == ProposalState.AWAITING_REVIEW.value:
            buttons.extend(review_buttons(pid))
    lines.append(_drift(config, store, host))
    if forecasts:
        lines.append("Forecast:")
        lines.extend(f"  incident {i} ({r}): {inert(t)}" for i, r, t, _s, _a in forecasts)
    else:
        lines.append("Forecast: nothing predicted (no open forecast or anomaly incident).")
    return Answer("\n".join(lines), tuple(buttons[:10]))


def incidents_answer(
    store: Store, inventory: Inventory, command: Incidents, scope: Scope = EVERYTHING
) -> Answer:
    """The incidents the filters select, newest first; only those on hosts ``scope`` sees."""
    query = select(IncidentRow).order_by(IncidentRow.id.desc())
    if command.since is not None:
        query = query.where(IncidentRow.opened_at >= command.since)
    if command.state is not None:
        query = query.where(IncidentRow.state == command.state)
    chosen: list[str] = []
    more = False
    with store.session() as session:
        for row in session.scalars(query.limit(5000)):
            if not scope.sees_host(row.host):
                continue
            if command.severity is not None and (row.labels or {}).get("severity") != (
                command.severity
            ):
                continue
            if command.environment is not None:
                found = inventory.find(row.host) if row.host else None
                if found is None or found.environment != command.environment:
                    continue
            if len(chosen) == MAX_LISTED:
                more = True
                break
            chosen.append(
                f"  incident {row.id} ({row.ref}): {inert(row.title)} on "
                f"{inert(row.host or '?')}, {row.state}, opened {_when(row.opened_at)}"
            )
    if not chosen:
        return Answer(f"No incidents match: {inert(command.text())}")
    lines = [f"Incidents ({inert(command.text())}):", *chosen]
    if more:
        lines.append("  … and more: narrow it with a time, --severity or --environment")
    return Answer("\n".join(lines))


def explain_answer(config: Config, store: Store, command: Explain) -> Answer:
    """The record's account of the incident, as ``terry explain --no-claude`` tells it."""
    with store.session() as session:
        incident_id = resolve_incident(session, command.incident)
    explanation = explain_incident(config, store, incident_id, ask_claude=False)
    return Answer(inert(explanation.text, multiline=True))
