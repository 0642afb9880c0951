"""Ingest: alerts stored first, folded into incidents by fingerprint, duplicates ignored."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from terry.incidents.lifecycle import Effect, ingest
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from terry.store.models import AlertRow, AuditRow, IncidentRow
from tests.conftest import alert, count_rows, payload

pytestmark = pytest.mark.unit


def test_same_fingerprint_joins_one_incident_and_resend_creates_nothing(store: Store) -> None:
    first = parse_payload(payload([alert("DiskUsageHigh", fingerprint="fp1", host="web-01")]))
    again = parse_payload(
        payload(
            [
                alert("DiskUsageHigh", fingerprint="fp1", host="web-01"),
                alert(
                    "DiskUsageHigh", fingerprint="fp1", host="web-01", starts="2026-11-24T10:00:30Z"
                ),
            ]
        )
    )
    opened = ingest(store, first)
    assert [e.effect for e in opened.effects] == [Effect.OPENED]
    joined = ingest(store, again)
    assert [e.effect for e in joined.effects] == [Effect.DUPLICATE, Effect.JOINED]
    assert ingest(store, again).effects[1].effect is Effect.DUPLICATE
    assert count_rows(store, IncidentRow) == 1
    assert count_rows(store, AlertRow) == 2


def test_resolved_closes_the_incident_with_an_audit_row(store: Store) -> None:
    ingest(store, parse_payload(payload([alert("ServiceDown", fingerprint="fp2")])))
    resolved = parse_payload(
        payload(
            [
                alert(
                    "ServiceDown", fingerprint="fp2", status="resolved", ends="2026-11-24T10:05:00Z"
                )
            ],
            status="resolved",
        )
    )
    result = ingest(store, resolved)
    assert result.effects[0].effect is Effect.RESOLVED
    with store.session() as session:
        incident = session.scalars(select(IncidentRow)).one()
        assert incident.state == "resolved"
        assert incident.resolved_at.isoformat() == "2026-11-24T10:05:00+00:00"
        audits = [(a.from_state, a.to_state) for a in session.scalars(select(AuditRow))]
    assert audits == [(None, "open"), ("open", "resolved")]


def test_resolved_before_firing_is_stored_and_changes_nothing(store: Store) -> None:
    early = parse_payload(
        payload(
            [
                alert(
                    "ServiceDown", fingerprint="fp3", status="resolved", ends="2026-11-24T10:05:00Z"
                )
            ],
            status="resolved",
        )
    )
    result = ingest(store, early)
    assert result.effects[0].effect is Effect.IGNORED
    assert "no open incident" in result.effects[0].detail
    assert count_rows(store, AlertRow) == 1
    assert count_rows(store, IncidentRow) == 0
    # the firing alert that arrives afterwards still opens its incident
    late = ingest(store, parse_payload(payload([alert("ServiceDown", fingerprint="fp3")])))
    assert late.effects[0].effect is Effect.OPENED


def test_truncated_payload_is_flagged_on_the_incident(store: Store) -> None:
    ingest(store, parse_payload(payload([alert("X", fingerprint="fp4")], truncated=7)))
    with store.session() as session:
        assert session.scalars(select(IncidentRow)).one().truncated is True


def test_a_refired_problem_after_resolution_is_a_new_incident_counting_recurrence(
    store: Store,
) -> None:
    ingest(store, parse_payload(payload([alert("X", fingerprint="fp5")])))
    ingest(
        store,
        parse_payload(
            payload(
                [alert("X", fingerprint="fp5", status="resolved", ends="2026-11-24T10:01:00Z")],
                status="resolved",
            )
        ),
    )
    ingest(
        store,
        parse_payload(payload([alert("X", fingerprint="fp5", starts="2026-11-24T11:00:00Z")])),
    )
    with store.session() as session:
        rows = list(session.scalars(select(IncidentRow).order_by(IncidentRow.id)))
    assert [(r.state, r.recurrence) for r in rows] == [("resolved", 0), ("open", 1)]
