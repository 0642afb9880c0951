"""``terry explain INCIDENT``: a plain-language account of an incident.

The record's account: what happened, what Terry concluded (a remedy, Claude's diagnosis,
or why a person must look), what each proposal went through (dry run, gate and its reasons,
review, apply, verification) and where it stands. It comes from the store and is always
given; nothing is asked of the hosts.

With an API key configured, Claude is also asked to tell the same facts in plain language
(``terry.ai.account``). Claude only narrates: its account comes first, labelled, and any
failure (no key, the API, a refused answer) leaves the record's account and the reason.

The record's account is for people: what it quotes from alerts, reviewers and other
systems is made inert (``terry.inert``), one line each, so a label cannot move the cursor,
reverse the text or forge a line of the account.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from terry.ai.account import ClaudeAccount, clean_text
from terry.ai.errors import AIError
from terry.config import Config
from terry.inert import inert
from terry.jsonable import to_jsonable
from terry.proposals.view import ProposalDetail, proposal_detail
from terry.reports.views import IncidentStory, incident_story
from terry.store import Store

__all__ = ["Explanation", "explain", "explain_incident", "record_facts"]

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
        f"Claude ({inert((d.ai or {}).get('model') or 'unknown model')}, "
        f"{(d.ai or {}).get('confidence')}% confident) composed or chose"
        if d.ai
        else "Terry chose"
    )
    hosts = inert(", ".join(s.hosts))
    lines = [f"Proposal {s.id}: {who} {inert(s.remedy)} on {hosts} (risk {s.risk})."]
    if d.ai and d.ai.get("diagnosis"):
        lines.append(f"  Claude's diagnosis: {inert(d.ai['diagnosis'])}")
    changed = d.check_summary.get("changed")
    if d.check_summary:
        verdict = "passed" if d.check_summary.get("ok") else "failed"
        lines.append(f"  Its dry run {verdict} ({changed} change(s) predicted).")
    if s.decision:
        reasons = "; ".join(d.reasons) or "no reason"
        lines.append(f"  The gate said {s.decision}: {inert(reasons)}.")
    if d.approved_by:
        lines.append(f"  {inert(d.approved_by)} approved it.")
    lines.append(f"  It {_ENDINGS.get(s.state, s.state)}.")
    if d.outcome:
        lines.append(f"  Outcome: {inert(d.outcome)}")
    return lines


@dataclass(frozen=True)
class Explanation:
    incident_id: int
    text: str  # the record's account, always
    claude: ClaudeAccount | None = None
    claude_error: str | None = None  # why Claude's account is missing (None: not asked)


def _read(store: Store, key: int | str) -> tuple[IncidentStory, list[ProposalDetail]]:
    story = incident_story(store, key)
    return story, [proposal_detail(store, pid) for pid in story.incident.proposals]


def _story(story: IncidentStory, details: list[ProposalDetail]) -> str:
    i = story.incident
    lines = [
        f"Incident {i.id} ({i.ref}): {inert(i.title)} on "
        f"{inert(i.host or 'an unknown host')}, opened "
        f"{i.opened_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f", seen {i.recurrence} time(s) before" if i.recurrence else "")
        + ".",
    ]
    summary = story.annotations.get("summary")
    if summary:
        lines.append(f"The alert says: {inert(summary)}")
    if i.attention:
        lines.append(f"Kept for a person: {inert(i.attention)}")
    if not i.proposals and not i.attention:
        lines.append("No proposal yet: diagnosis has not run or found nothing to propose.")
    for detail in details:
        lines.extend(_proposal(detail))
    if i.state == "resolved":
        how = f" (fixed in {i.seconds_to_fix:.0f} s)" if i.seconds_to_fix else ""
        lines.append(f"The incident is resolved{how}.")
    else:
        lines.append("The incident is still open.")
    return "\n".join(lines)


def _facts(story: IncidentStory, details: list[ProposalDetail]) -> dict[str, Any]:
    proposals = [
        {
            "id": d.summary.id,
            "remedy": d.summary.remedy,
            "params": d.params,
            "hosts": d.summary.hosts,
            "risk": d.summary.risk,
            "state": d.summary.state,
            "gate": {"decision": d.summary.decision, "reasons": d.reasons},
            "dry_run": d.check_summary,
            "approved_by": d.approved_by,
            "outcome": d.outcome,
            "runs": [
                {
                    "kind": r.kind,
                    "status": r.status,
                    "rc": r.rc,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                }
                for r in d.runs
            ],
            "written_by_claude": d.ai,  # model, confidence, diagnosis; None when Terry's own
        }
        for d in details
    ]
    return to_jsonable(
        {
            "incident": story.incident,
            "alert": {"labels": story.labels, "annotations": story.annotations},
            "timeline": story.timeline,
            "proposals": proposals,
        }
    )


def record_facts(store: Store, incident_id: int) -> dict[str, Any]:
    """The facts the record's account is told from, as JSON-ready data (what Claude sees)."""
    return _facts(*_read(store, incident_id))


def explain(store: Store, incident_id: int) -> str:
    """The record's account of the incident."""
    return _story(*_read(store, incident_id))


def _no_claude(config: Config) -> str:
    if not config.ai.enabled:
        return "Claude is off (ai.enabled: false)"
    return f"no Anthropic API key in ${config.ai.api_key_env}"


def explain_incident(
    config: Config,
    store: Store,
    key: int | str,
    *,
    ask_claude: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Explanation:
    """The record's account of incident ``key`` (id or INC reference), and Claude's when
    asked and configured, or why it is missing. NotFound when there is no such incident;
    Claude's failures never raise."""
    story, details = _read(store, key)
    incident_id = story.incident.id
    text = _story(story, details)
    if not ask_claude:
        return Explanation(incident_id, text)
    from terry.ai.client import ClaudeDiagnoser  # the Anthropic client: only when asked

    claude = ClaudeDiagnoser.from_config(config.ai, os.environ if environ is None else environ)
    if claude is None:
        return Explanation(incident_id, text, claude_error=_no_claude(config))
    with claude:
        try:
            account = claude.explain(_facts(story, details))
        except AIError as exc:
            why = " ".join(clean_text(str(exc)).split())[:500]  # one line
            return Explanation(incident_id, text, claude_error=why)
    return Explanation(incident_id, text, claude=account)
