"""``terry explain INCIDENT``: a plain-language account of an incident, from the record.

What happened, what Terry concluded (a remedy, Claude's diagnosis, or why a person must
look), what each proposal went through (dry run, gate and its reasons, review, apply,
verification) and where it stands. Everything comes from the store; nothing is asked of
the hosts or of Claude.
"""

from __future__ import annotations

from terry.store import Store
from terry.views import ProposalDetail, incident_story, proposal_detail

__all__ = ["explain"]

_ENDINGS = {
    "verified": "was applied and verified",
    "rolled_back": "failed and was rolled back",
    "failed": "failed",
    "escalated": "was applied, but verification could not tell; a person must check",
    "denied": "was denied by policy",
    "rejected": "was rejected by a reviewer",
    "awaiting_review": "is waiting for a reviewer",
    "merged": "is merged and waits to be applied",
    "applied": "is applied and being verified",
    "interrupted": "was interrupted mid-run (never re-applied blindly)",
}


def _proposal(d: ProposalDetail) -> list[str]:
    s = d.summary
    who = (
        f"Claude ({(d.ai or {}).get('model') or 'unknown model'}, "
        f"{(d.ai or {}).get('confidence')}% confident) composed or chose"
        if d.ai
        else "Terry chose"
    )
    lines = [
        f"Proposal {s.id}: {who} {s.remedy} on {', '.join(s.hosts)} (risk {s.risk}).",
    ]
    if d.ai and d.ai.get("diagnosis"):
        lines.append(f"  Claude's diagnosis: {d.ai['diagnosis']}")
    changed = d.check_summary.get("changed")
    if d.check_summary:
        verdict = "passed" if d.check_summary.get("ok") else "failed"
        lines.append(f"  Its dry run {verdict} ({changed} change(s) predicted).")
    if s.decision:
        lines.append(f"  The gate said {s.decision}: {'; '.join(d.reasons) or 'no reason'}.")
    if d.approved_by:
        lines.append(f"  {d.approved_by} approved it.")
    lines.append(f"  It {_ENDINGS.get(s.state, s.state)}.")
    if d.outcome:
        lines.append(f"  Outcome: {d.outcome}")
    return lines


def explain(store: Store, incident_id: int) -> str:
    story = incident_story(store, incident_id)
    i = story.incident
    lines = [
        f"Incident {i.id}: {i.title} on {i.host or 'an unknown host'}, opened "
        f"{i.opened_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f", seen {i.recurrence} time(s) before" if i.recurrence else "")
        + ".",
    ]
    summary = story.annotations.get("summary")
    if summary:
        lines.append(f"The alert says: {summary}")
    if i.attention:
        lines.append(f"Kept for a person: {i.attention}")
    if not i.proposals and not i.attention:
        lines.append("No proposal yet: diagnosis has not run or found nothing to propose.")
    for pid in i.proposals:
        lines.extend(_proposal(proposal_detail(store, pid)))
    if i.state == "resolved":
        how = f" (fixed in {i.seconds_to_fix:.0f} s)" if i.seconds_to_fix else ""
        lines.append(f"The incident is resolved{how}.")
    else:
        lines.append("The incident is still open.")
    return "\n".join(lines)
