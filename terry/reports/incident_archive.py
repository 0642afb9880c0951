"""Closed incidents' reports, kept in the GitOps repository: ``reports/incidents/INC-....md``
on main, each the Markdown ``terry incidents report INC --format md`` prints.

Closing happens on the alert webhook's path (``terry.incidents.lifecycle``), which must stay
fast, so nothing is committed there. ``archive_closed`` runs later, from the service
worker's loop (now and then) and from ``terry incidents archive``: it takes the resolved
incidents whose report is not committed yet, renders them, and commits them in Terry's
usual way: one commit on a branch ``terry/reports-<first reference>`` built by plumbing,
merged into main by compare-and-swap, with main refreshed from and shared with the forge
first and after (``Share``: nothing locally; fetch and push on GitHub), one commit for the
batch. A report changes no host, so it has no dry run and passes no gate; its commits say
so in their trailers (``Terry-Decision: none``).

Each incident's report is committed once. The marker is an audit row (entity ``report``,
the incident's id, to ``committed``, the path and commit in its reason), written after the
merge; a report already on main (a run that died between the merge and the marker) is
marked without a second commit. One process archives at a time (the named lock
``reports:incidents``); another finds the lock taken and leaves the batch to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select

from terry.appliers.base import Share
from terry.gitops.repo import Repo
from terry.reports.incident_report import incident_report
from terry.reports.incident_report_format import to_markdown
from terry.store import Store
from terry.store.audit import audit
from terry.store.locks import named_lock
from terry.store.models import AuditRow, IncidentRow

__all__ = ["ARCHIVED", "ENTITY", "REPORTS_DIR", "Archivist", "archive_closed", "report_path"]

log = logging.getLogger("terry.reports")

REPORTS_DIR = "reports/incidents"
ENTITY = "report"  # the audit rows that mark an incident's report as committed
ARCHIVED = "committed"
_LOCK = "reports:incidents"
_BATCH = 100  # reports in one commit at most; the next run takes the rest


class Archivist(Protocol):
    """What archiving needs of the pipeline's context (``terry.context.Context`` is one)."""

    @property
    def store(self) -> Store: ...

    @property
    def repo(self) -> Repo: ...


@dataclass(frozen=True)
class _Closed:
    id: int
    ref: str


def report_path(ref: str) -> str:
    """Where an incident's report lives in the repository."""
    return f"{REPORTS_DIR}/{ref}.md"


def _unarchived(store: Store, limit: int) -> list[_Closed]:
    """Resolved incidents with a reference and no report committed yet, oldest first."""
    marked = select(AuditRow.entity_id).where(
        AuditRow.entity == ENTITY, AuditRow.to_state == ARCHIVED
    )
    with store.session() as session:
        rows = session.execute(
            select(IncidentRow.id, IncidentRow.ref)
            .where(
                IncidentRow.state == "resolved",
                IncidentRow.ref.is_not(None),
                IncidentRow.id.not_in(marked),
            )
            .order_by(IncidentRow.id)
            .limit(limit)
        ).all()
    return [_Closed(int(r.id), str(r.ref)) for r in rows if r.ref]


def _message(refs: list[tuple[_Closed, str]], title: str) -> str:
    lines = [
        title,
        "",
        "Reports of closed incidents, as `terry incidents report INC --format md` renders",
        "them. A report changes no host: no dry run, no gate.",
        "",
    ]
    for closed, _ in refs:
        lines.append(f"Terry-Report: {closed.ref} (incident {closed.id})")
    lines.append("Terry-Decision: none (a report changes no host: no dry run, no gate)")
    return "\n".join(lines) + "\n"


def _mark(store: Store, marks: list[tuple[int, str]]) -> None:
    with store.session() as session:
        for incident_id, reason in marks:
            audit(
                session,
                entity=ENTITY,
                entity_id=incident_id,
                actor="terry",
                from_state=None,
                to_state=ARCHIVED,
                reason=reason,
            )


def archive_closed(ctx: Archivist, share: Share | None = None, *, limit: int = _BATCH) -> list[str]:
    """Commit the reports of closed incidents that have none yet, in one commit on main;
    the references committed (empty when there was nothing to do, or another process is
    archiving). ``share``: where main is refreshed from and pushed to (the review seam)."""
    store, repo = ctx.store, ctx.repo
    if not _unarchived(store, 1):
        return []
    with named_lock(store, _LOCK, ttl=timedelta(minutes=10)) as taken:
        if not taken:
            return []
        closed = _unarchived(store, limit)  # again, under the lock
        if not closed:
            return []
        if share is not None:
            share.refresh_main()
        main = repo.head()
        present = repo.object_ids(main, [report_path(c.ref) for c in closed])
        marks = [
            (c.id, f"{report_path(c.ref)} already on main at {main[:12]}")
            for c in closed
            if present[report_path(c.ref)] is not None
        ]
        files: dict[str, str | None] = {}
        batch: list[tuple[_Closed, str]] = []
        for c in closed:
            path = report_path(c.ref)
            if present[path] is not None:
                continue
            try:
                text = to_markdown(incident_report(store, c.id))
            except Exception:  # one report that cannot be made must not hold the others
                log.exception("incident %s (%s): its report could not be made", c.id, c.ref)
                continue
            files[path] = text
            batch.append((c, path))
        if batch:
            first = batch[0][0].ref
            more = f" and {len(batch) - 1} more" if len(batch) > 1 else ""
            branch = repo.free_branch(f"terry/reports-{first.lower()}")
            repo.commit_files(
                branch=branch,
                files=files,
                message=_message(batch, f"Incident report {first}{more}"),
                base=main,
            )
            merge = repo.merge(
                branch,
                message=_message(batch, f"Merge {branch}: incident report {first}{more}"),
            )
            if share is not None:
                share.share_main()
            marks += [(c.id, f"{path} in {merge[:12]}") for c, path in batch]
        _mark(store, marks)
    return [c.ref for c, _ in batch]
