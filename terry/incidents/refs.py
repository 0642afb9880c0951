"""Incident references: ``INC-2026-12-04-007``, a name people can say out loud.

A reference is the UTC day Terry recorded the incident and that day's sequence number (three
digits at least; the thousandth incident of a day is ``...-1000``). Numbers come from one
counter row per day (``incident_days``), bumped by an upsert in the same transaction as the
incident's insert: concurrent writers queue on that row, so no two incidents share a number,
and a rolled-back insert gives its number back. The day is when Terry recorded the incident,
not the alert's ``startsAt``, so a day's references read in the order Terry saw them.

Everywhere an incident id is accepted (the CLI, the API, the console, chat) a reference is
too: ``resolve_incident`` turns either into the row id.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from terry.errors import NotFound
from terry.store import Store
from terry.store.models import MAX_ROW_ID, IncidentDayRow, IncidentRow

__all__ = ["allocate_refs", "format_ref", "parse_ref", "resolve_incident"]

_REF = re.compile(r"INC-(\d{4})-(\d{2})-(\d{2})-(\d{1,9})", re.IGNORECASE)


def format_ref(day: date, seq: int) -> str:
    return f"INC-{day.isoformat()}-{seq:03d}"


def parse_ref(text: str) -> tuple[date, int] | None:
    """The day and sequence of a reference (any case, surrounding blanks ignored), or None."""
    match = _REF.fullmatch(text.strip())
    if match is None:
        return None
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    seq = int(match[4])
    return (day, seq) if seq >= 1 else None


def allocate_refs(session: Session, day: date, count: int) -> list[str]:
    """``count`` new references for ``day``, in order, from the day's counter (upserted)."""
    if count <= 0:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = IncidentDayRow.__table__
    statement: Any = insert(table).values(day=day.isoformat(), last=count)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.day], set_={"last": table.c.last + count}
    ).returning(table.c.last)
    last = int(session.execute(statement).scalar_one())
    return [format_ref(day, seq) for seq in range(last - count + 1, last + 1)]


def _canonical(text: str) -> str | None:
    parsed = parse_ref(text)
    return None if parsed is None else format_ref(*parsed)


def resolve_incident(source: Store | Session, key: int | str) -> int:
    """The row id of incident ``key``: an id (int or digits) or a reference (``INC-...``).

    NotFound names what was asked for; an id no row can have is not looked up."""
    if isinstance(key, int) and not isinstance(key, bool):
        if not 1 <= key <= MAX_ROW_ID:
            raise NotFound(f"incident {key} does not exist")
        return key
    text = str(key).strip()
    if text.isascii() and text.isdigit():
        if len(text) > 10 or not 1 <= int(text) <= MAX_ROW_ID:
            raise NotFound(f"incident {text[:24]} does not exist")
        return int(text)
    ref = _canonical(text)
    shown = text if len(text) <= 40 else text[:40] + "…"
    if ref is None:
        raise NotFound(
            f"incident {shown!r} does not exist: give a number or a reference "
            "like INC-2026-12-04-007"
        )
    query = select(IncidentRow.id).where(IncidentRow.ref == ref)
    if isinstance(source, Session):
        found = source.scalar(query)
    else:
        with source.session() as session:
            found = session.scalar(query)
    if found is None:
        raise NotFound(f"incident {ref} does not exist")
    return int(found)
