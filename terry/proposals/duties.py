"""Separation of duties: a person does not approve their own change in production.

An inventory edit is a change a person asked for (``terry inventory add|set|remove``); its
incident records who (the label ``author``). In production its approval must come from
someone else, whatever interface the approval arrives through (the CLI, the API, the web
console, chat, a pull request review): they all reach ``ReviewStep.approve``, which asks here.
Changes Terry authored itself (a fix, a drift reconciliation, a learned policy) have no human
author to separate from.
"""

from __future__ import annotations

import re

from terry.access import actors_in
from terry.environments import PRODUCTION, environment_name
from terry.errors import PermissionDenied
from terry.store import Store
from terry.store.models import IncidentRow, ProposalRow

__all__ = ["check_not_author", "person_of", "persons_of"]

# "slack:U456 (alice)", "discord:81234 (bob)": the Terry identity is in the parentheses.
_CHAT = re.compile(r"^(?:slack|discord):\S+ \((?P<name>[^()]+)\)$")
# "console:alice (token tk_ab12cd34)", "api:alice (token ...)", "alice (token ...)".
_TOKEN = re.compile(r"^(?:(?:console|api):)?(?P<name>[^\s()]+)(?: \(token [^()]*\))?$")


def persons_of(actor: str) -> frozenset[str]:
    """The persons an actor string names (lower case): one, or two when an admin acted as
    someone else (``terry.access.actors_in``)."""
    return frozenset(person_of(a) for a in actors_in(actor))


def person_of(actor: str) -> str:
    """The person behind an actor string, as every interface records it (lower case)."""
    text = actor.strip()
    for pattern in (_CHAT, _TOKEN):
        match = pattern.fullmatch(text)
        if match:
            return match["name"].strip().lower()
    return text.lower()


def check_not_author(store: Store, proposal_id: int, *, actor: str) -> None:
    """PermissionDenied when ``actor`` authored the change ``proposal_id`` makes and it is
    judged in production."""
    with store.session() as session:
        row = session.get(ProposalRow, proposal_id)
        if row is None or environment_name(row.environment) != PRODUCTION:
            return
        incident = session.get(IncidentRow, row.incident_id)
        author = str((incident.labels or {}).get("author") or "") if incident else ""
    if author and persons_of(author) & persons_of(actor):
        raise PermissionDenied(
            f"{actor} may not approve proposal {proposal_id}: {author} asked for this change "
            "and it is in production; another person approves it (separation of duties)"
        )
