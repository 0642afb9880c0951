"""What the console's incident list reads: incidents filtered the way people look for them
(state, environment, host, source, time), newest first, a page at a time like the API
(``limit`` and ``before_id``)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from terry.errors import InputError
from terry.store import Store
from terry.store.models import MAX_ROW_ID, IncidentRow, ProposalRow, utcnow

__all__ = [
    "SINCE",
    "Environments",
    "IncidentFilter",
    "IncidentLine",
    "incident_page",
    "incident_ref",
]

# The time filter's choices: name -> how far back.
SINCE: dict[str, timedelta | None] = {
    "": None,
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
STATES = ("", "open", "resolved")
SOURCES = ("", "alert", "drift", "inventory", "forecast", "anomaly", "forge")
_WORD = re.compile(r"[A-Za-z0-9_.:@-]{1,255}")
_DIGITS = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class IncidentFilter:
    state: str = ""
    environment: str = ""
    host: str = ""
    source: str = ""
    since: str = ""
    limit: int = 50
    before_id: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, max_page: int) -> IncidentFilter:
        """The filter a query string asks for; InputError naming the first bad field."""

        def word(name: str, allowed: tuple[str, ...] | None = None) -> str:
            value = (query.get(name) or "").strip()
            if allowed is not None and value not in allowed:
                raise InputError(f"{name} must be one of: {', '.join(a for a in allowed if a)}")
            if value and not _WORD.fullmatch(value):
                raise InputError(f"{name} must be a name (letters, digits, '_.:@-')")
            return value

        def number(name: str, high: int) -> int | None:
            raw = query.get(name) or ""
            if not raw:
                return None
            if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= high:
                raise InputError(f"{name} must be a whole number from 1 to {high}")
            return int(raw)

        return cls(
            state=word("state", STATES),
            environment=word("environment"),
            host=word("host"),
            source=word("source", SOURCES),
            since=word("since", tuple(SINCE)),
            limit=number("limit", max_page) or 50,
            before_id=number("before_id", MAX_ROW_ID),
        )

    def query(self, **changes: object) -> dict[str, str]:
        """The filter as query parameters (empty ones left out), with ``changes``."""
        fields = {
            "state": self.state,
            "environment": self.environment,
            "host": self.host,
            "source": self.source,
            "since": self.since,
            "limit": "" if self.limit == 50 else str(self.limit),
        }
        fields.update({k: "" if v is None else str(v) for k, v in changes.items()})
        return {k: v for k, v in fields.items() if v}


@dataclass(frozen=True)
class IncidentLine:
    id: int
    ref: str
    title: str
    source: str
    host: str | None
    environment: str | None
    state: str
    opened_at: datetime
    attention: str | None
    proposals: tuple[int, ...]


class Environments:
    """Each host's environment as main's inventory says (``load``), read again at most
    every ``seconds``: a page of incidents does not read git each time."""

    def __init__(self, load: Callable[[], dict[str, str]], seconds: float = 30.0) -> None:
        self._load = load
        self._seconds = seconds
        self._at = -seconds
        self._value: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._at >= self._seconds:
                self._value = self._load()
                self._at = time.monotonic()
            return self._value


def incident_page(
    store: Store,
    environments: Mapping[str, str],
    wanted: IncidentFilter,
    *,
    hosts: Collection[str] | None = None,
) -> tuple[list[IncidentLine], int | None]:
    """One page of incidents matching ``wanted`` and the ``before_id`` of the next page
    (None on the last). ``hosts``: only incidents on these (a tenant's scope, filtered by
    the database so that a page is full); None: every incident."""
    query = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(wanted.limit + 1)
    if hosts is not None:
        query = query.where(IncidentRow.host.in_(sorted(hosts)))
    if wanted.state:
        query = query.where(IncidentRow.state == wanted.state)
    if wanted.source:
        query = query.where(IncidentRow.source == wanted.source)
    if wanted.host:
        query = query.where(IncidentRow.host == wanted.host)
    if wanted.environment:
        hosts = [h for h, env in environments.items() if env == wanted.environment]
        query = query.where(IncidentRow.host.in_(hosts))
    back = SINCE.get(wanted.since)
    if back is not None:
        query = query.where(IncidentRow.opened_at >= utcnow() - back)
    if wanted.before_id is not None:
        query = query.where(IncidentRow.id < wanted.before_id)
    with store.session() as session:
        rows = list(session.scalars(query))
        following = rows[wanted.limit - 1].id if len(rows) > wanted.limit else None
        rows = rows[: wanted.limit]
        pairs = session.execute(
            select(ProposalRow.incident_id, ProposalRow.id).where(
                ProposalRow.incident_id.in_([r.id for r in rows])
            )
        ).all()
    by_incident: dict[int, list[int]] = {}
    for incident_id, proposal_id in pairs:
        by_incident.setdefault(incident_id, []).append(proposal_id)
    lines = [
        IncidentLine(
            id=r.id,
            ref=r.ref or "",
            title=r.title,
            source=r.source,
            host=r.host,
            environment=environments.get(r.host or ""),
            state=r.state,
            opened_at=r.opened_at,
            attention=r.attention,
            proposals=tuple(sorted(by_incident.get(r.id, []))),
        )
        for r in rows
    ]
    return lines, following


def incident_ref(store: Store, incident_id: int) -> str:
    """The INC reference of incident ``incident_id`` ("" when it has none)."""
    with store.session() as session:
        return session.scalar(select(IncidentRow.ref).where(IncidentRow.id == incident_id)) or ""
