"""Record a drift scan, each item judged against the host's previous scan.

Per host, not per scan: a scan limited to ``web-01`` compares web-01 with web-01's last
scan and says nothing about the others. An unreachable host is compared with nothing: its
earlier items are neither resolved nor persisting, just not known this time.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from terry.drift.items import DriftItem, HostScan, HostStatus
from terry.store import Store
from terry.store.models import DriftHostRow, DriftItemRow, DriftScanRow, utcnow

__all__ = ["ItemState", "fail_scan", "finish_scan", "start_scan"]


class ItemState(StrEnum):
    NEW = "new"
    PERSISTING = "persisting"
    RESOLVED = "resolved"


def start_scan(store: Store, *, commit: str, limit: str | None, run_dir: str) -> int:
    with store.session() as session:
        row = DriftScanRow(
            started_at=utcnow(),
            finished_at=None,
            commit_sha=commit,
            limit=limit,
            status="running",
            error=None,
            run_dir=run_dir,
        )
        session.add(row)
        session.flush()
        return row.id


def fail_scan(store: Store, scan_id: int, error: str) -> None:
    with store.session() as session:
        row = session.get(DriftScanRow, scan_id)
        if row is not None:
            row.status, row.error, row.finished_at = "failed", error[:2000], utcnow()


def _earlier_items(session: Session, host: str, scan_id: int) -> dict[str, DriftItemRow]:
    """The items still drifted in the host's last finished scan where it was reachable."""
    last = session.scalar(
        select(DriftHostRow.scan_id)
        .join(DriftScanRow, DriftScanRow.id == DriftHostRow.scan_id)
        .where(
            DriftHostRow.host == host,
            DriftHostRow.scan_id < scan_id,
            DriftHostRow.status != HostStatus.UNREACHABLE.value,
            DriftScanRow.status == "done",
        )
        .order_by(DriftHostRow.scan_id.desc())
        .limit(1)
    )
    if last is None:
        return {}
    rows = session.scalars(
        select(DriftItemRow).where(
            DriftItemRow.scan_id == last,
            DriftItemRow.host == host,
            DriftItemRow.state != ItemState.RESOLVED.value,
        )
    )
    return {row.key: row for row in rows}


def _row(scan_id: int, item: DriftItem, state: ItemState, since: datetime) -> DriftItemRow:
    return DriftItemRow(
        scan_id=scan_id,
        host=item.host,
        key=item.key,
        kind=item.kind.value,
        role=item.role,
        task=item.task,
        resource=item.resource,
        diff=item.diff,
        detail=item.detail,
        state=state.value,
        since=since,
    )


def _copy(old: DriftItemRow, scan_id: int) -> DriftItemRow:
    """An earlier scan's item, recorded in this scan as resolved (its since kept)."""
    columns = ("host", "key", "kind", "role", "task", "resource", "diff", "detail", "since")
    return DriftItemRow(
        scan_id=scan_id,
        state=ItemState.RESOLVED.value,
        **{c: getattr(old, c) for c in columns},
    )


def finish_scan(store: Store, scan_id: int, scans: dict[str, HostScan]) -> None:
    """Store every host and item of the scan and mark it done, in one transaction."""
    now = utcnow()
    with store.session() as session:
        for name, scan in sorted(scans.items()):
            session.add(
                DriftHostRow(
                    scan_id=scan_id,
                    host=name,
                    status=scan.status.value,
                    facts=scan.facts,
                    message=scan.message or None,
                )
            )
            if scan.status is HostStatus.UNREACHABLE:
                continue
            earlier = _earlier_items(session, name, scan_id)
            seen: set[str] = set()
            for item in scan.items:
                if item.key in seen:  # the same resource reported twice in one run
                    continue
                seen.add(item.key)
                before = earlier.get(item.key)
                if before is None:
                    session.add(_row(scan_id, item, ItemState.NEW, now))
                else:
                    session.add(_row(scan_id, item, ItemState.PERSISTING, before.since))
            for key, gone in earlier.items():
                if key not in seen:
                    session.add(_copy(gone, scan_id))
        scan_row = session.get(DriftScanRow, scan_id)
        assert scan_row is not None
        scan_row.status, scan_row.finished_at = "done", now
