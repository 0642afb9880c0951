"""Storms become one proposal.

When one cause hits many hosts at once (a bad release filling the logs everywhere), every
host raises its own incident. Those that need the same remedy with the same parameters
(``fold_key``) are *folded*: one proposal over all their hosts — one branch, one dry run
across the hosts (Ansible's forks), one decision, one pull request listing every host, one
apply (in canary waves, ``terry.proposals.waves``) — instead of one proposal each.

- Incidents that arrive together (one Alertmanager group, one batch of the worker's queue,
  which ``terry serve`` gathers until none came for ``storm.gather`` seconds) are grouped
  before anything is proposed (``group``).
- An incident that arrives later, within ``storm.window`` seconds of an open proposal that
  Terry itself is carrying (proposed, checked, approved, merged or applying: not yet
  finished), *joins* it (``join``): its host is queued on that proposal (host state
  ``queued``), never given a proposal of its own. The queued hosts cannot ride on a dry
  run and a decision that never saw them, so: queued before the decision (during the dry
  run), they go **in the proposal** (``terry.pipeline.Pipeline._widen``: one more commit
  on its branch, the dry run again over every host, then its one decision); queued after
  it, they go out when it is done as its **next wave**: one follow-up proposal over all of
  them (``follows`` the first), with its own dry run and its own decision
  (``terry.pipeline.Pipeline.follow_up``).
- A proposal waiting for a person is not joined: the reviewer approves the hosts they were
  shown; an incident arriving then gets its own decision.

Only plain remedy fixes fold: the remedy's own playbook, no desired-state edits, no
manifest, not written by an AI (each of those is a change of its own).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import select

from terry.diagnosis.finding import Finding, Fix
from terry.proposals.hosts import queue_host
from terry.proposals.state import ProposalState
from terry.remedies.params import ParamType
from terry.remedies.variants import DEFAULT, VARIANT_PARAM
from terry.store import Store
from terry.store.models import ProposalRow, utcnow

__all__ = ["JOINABLE", "FoldKey", "fold_key", "group", "join", "merged_fix"]

# Open proposals Terry is carrying itself: an incident may join them (their next wave).
# ``applied`` is one: a rollout in waves is ``applied`` once its first wave is, while its
# canary is watched and the rest roll out; until session 28 a host arriving then got a
# proposal of its own (or its follow-up at once), changed before the canary was judged.
JOINABLE = (
    ProposalState.PROPOSED,
    ProposalState.CHECKED,
    ProposalState.APPROVED,
    ProposalState.MERGED,
    ProposalState.APPLYING,
    ProposalState.APPLIED,
)

FoldKey = tuple[str, str, str, str]  # remedy, applier, parameters (canonical JSON), tenants
T = TypeVar("T")
# Which tenants a host is in (main's policies/tenants.yml, as the gate places it): a storm
# never folds hosts of different tenants, whose approvals, reviewers and readers differ.
Placement = Callable[[str], tuple[str, ...]]


def _no_tenants(_host: str) -> tuple[str, ...]:
    return ()


def _tenants(hosts: Iterable[str], placement: Placement) -> str:
    return ",".join(sorted({t for h in hosts for t in placement(h)}))


def fold_key(finding: Finding, placement: Placement = _no_tenants) -> FoldKey | None:
    """What a fix must share with another to fold into one proposal (its hosts' tenants
    too); None: it never folds."""
    if not isinstance(finding, Fix):
        return None
    if (
        finding.render is not None
        or finding.manifest is not None
        or finding.edits
        or finding.ai is not None
        or finding.check is not None
    ):
        return None
    found = finding.diagnosis
    return (
        found.remedy.name,
        finding.applier_name,
        _canonical(found.params, _prose(finding)),
        _tenants((h.name for h in found.hosts), placement),
    )


def _prose(fix: Fix) -> frozenset[str]:
    """Parameters that are words for people, different on every host, that do not change
    what the remedy does: free text (``type: string``) taken from an alert's annotations
    (its summary, its description). A path, a number, a name or a choice taken from an
    annotation is what the fix acts on: hosts fold only when it is the same."""
    return frozenset(
        p.name
        for p in fix.diagnosis.remedy.params
        if p.source is not None
        and p.source.startswith("annotation:")
        and p.type is ParamType.STRING
    )


def _canonical(params: dict[str, object], prose: frozenset[str]) -> str:
    kept = {k: v for k, v in params.items() if k not in prose}
    if kept.get(VARIANT_PARAM) == DEFAULT:
        # the remedy's own parameters, named only where variants are tried (staging, say):
        # the same fix as a host's where they are not, so staging and production fold
        del kept[VARIANT_PARAM]
    return json.dumps(kept, sort_keys=True, ensure_ascii=True, default=str)


def group(
    findings: Sequence[tuple[T, Finding]], placement: Placement = _no_tenants
) -> list[list[tuple[T, Finding]]]:
    """Findings in groups that fold together (first-seen order); what never folds, alone."""
    groups: list[list[tuple[T, Finding]]] = []
    by_key: dict[FoldKey, list[tuple[T, Finding]]] = {}
    for item in findings:
        key = fold_key(item[1], placement)
        if key is None:
            groups.append([item])
        elif key in by_key:
            by_key[key].append(item)
        else:
            by_key[key] = [item]
            groups.append(by_key[key])
    return groups


def merged_fix(fixes: Sequence[Fix]) -> Fix:
    """One fix over every host of ``fixes`` (which share a fold key), hosts once each."""
    first = fixes[0]
    hosts = {h.name: h for f in fixes for h in f.diagnosis.hosts}
    params = dict(first.diagnosis.params)
    for name in _prose(first):  # one text for all: the first one's, saying there are more
        said = {str(f.diagnosis.params.get(name, "")) for f in fixes}
        if len(said) > 1 and isinstance(params.get(name), str):
            # no count: hosts that join before the decision would make it stale (the
            # proposal's hosts say how many)
            params[name] = f"{params[name]} (and the other hosts of a storm)"
    diagnosis = replace(first.diagnosis, hosts=tuple(hosts.values()), params=params)
    return replace(first, diagnosis=diagnosis)


def join(
    store: Store,
    fix: Fix,
    incident_id: int,
    *,
    window: float,
    environment: str | None,
    placement: Placement = _no_tenants,
) -> int | None:
    """Queue ``fix``'s host on an open proposal it folds into (same remedy, parameters and
    tenants), made within ``window`` seconds; that proposal's id, or None (it gets a
    proposal of its own)."""
    key = fold_key(fix, placement)
    if key is None or window <= 0 or len(fix.diagnosis.hosts) != 1:
        return None
    remedy, applier, params, tenants = key
    host = fix.diagnosis.hosts[0].name
    since = utcnow() - timedelta(seconds=window)
    with store.session() as session:
        rows = session.scalars(
            select(ProposalRow)
            .where(
                ProposalRow.remedy == remedy,
                ProposalRow.applier == applier,
                ProposalRow.state.in_([s.value for s in JOINABLE]),
                ProposalRow.created_at >= since,
                ProposalRow.commit_sha.is_not(None),
            )
            .order_by(ProposalRow.id.desc())
        ).all()
        prose = _prose(fix)
        chosen = next(
            (
                r.id
                for r in rows
                if _canonical(r.params, prose) == params
                and fold_key_plan(r)
                and _tenants(r.hosts, placement) == tenants
            ),
            None,
        )
    if chosen is None:
        return None
    if not queue_host(store, chosen, host, incident_id, environment):
        # The host is already on it (for another incident, or added by another process at
        # the same moment): this incident is not silently absorbed (it would never be
        # marked fixed); it gets its own proposal, serialised on the host by the host locks,
        # and the re-check before its apply withdraws it if the first fix healed it.
        return None
    return chosen


def fold_key_plan(row: ProposalRow) -> bool:
    """Whether a stored proposal is a plain remedy fix (one a storm may join)."""
    plan = row.plan or {}
    return not row.ai_authored and not row.target and not (plan.get("edits") or [])
