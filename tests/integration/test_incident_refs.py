"""Incident references (INC-YYYY-MM-DD-NNN): handed out once per incident, in order, under
concurrent writers, kept for incidents from before, and accepted wherever an id is."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from terry.incidents import lifecycle
from terry.incidents.refs import format_ref, parse_ref, resolve_incident
from terry.sources.alertmanager import parse_payload
from terry.store import MIGRATIONS, Store
from terry.store.models import IncidentDayRow, IncidentRow

from ..conftest import alert, make_cli, payload

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()


def _refs(store: Store) -> list[str]:
    with store.session() as session:
        return [r or "" for r in session.scalars(select(IncidentRow.ref).order_by(IncidentRow.id))]


def _open(store: Store, n: int, tag: str) -> None:
    for i in range(n):
        lifecycle.open_incident(
            store,
            source="drift",
            fingerprint=f"{tag}-{i}",
            title="drift",
            host="web-01",
            labels={},
            annotations={},
            holder="test",
        )


def test_references_count_up_per_day_across_alert_batches_and_other_sources(
    store: Store,
) -> None:
    body = payload([alert("DiskUsageHigh", fingerprint=f"f{i}", host="web-01") for i in range(4)])
    lifecycle.ingest(store, parse_payload(body.encode()))
    _open(store, 1, "drift")
    # a re-sent group opens nothing new, so it takes no number
    lifecycle.ingest(store, parse_payload(body.encode()))
    refs = _refs(store)
    assert refs == [format_ref(TODAY, n) for n in range(1, 6)]
    assert refs[0] == f"INC-{TODAY.isoformat()}-001"
    with store.session() as session:
        assert session.get(IncidentDayRow, TODAY.isoformat()).last == 5  # type: ignore[union-attr]


def test_concurrent_writers_never_share_a_number(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        try:
            _open(store, 15, tag)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{t}",)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    refs = _refs(store)
    assert sorted(refs) == sorted(format_ref(TODAY, n) for n in range(1, 91))


def test_references_resolve_in_any_case_and_bad_ones_are_refused(store: Store) -> None:
    _open(store, 7, "r")
    ref = format_ref(TODAY, 7)
    assert resolve_incident(store, ref) == 7
    assert resolve_incident(store, ref.lower()) == 7
    assert resolve_incident(store, f"INC-{TODAY.isoformat()}-7") == 7  # unpadded
    assert resolve_incident(store, "7") == 7
    for bad, said in [
        (format_ref(TODAY, 8), f"incident {format_ref(TODAY, 8)} does not exist"),
        ("INC-2026-13-01-001", "give a number or a reference"),  # no 13th month
        ("INC-2026-12-04-000", "give a number or a reference"),
        ("'; drop table incidents; --", "give a number or a reference"),
    ]:
        with pytest.raises(Exception, match=re.escape(said)):
            resolve_incident(store, bad)
    assert parse_ref("  INC-2026-12-04-1000 ") == (datetime(2026, 12, 4).date(), 1000)


def test_migration_gives_incidents_from_before_references_by_the_day_they_opened(
    store_url: str,
) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    store = Store(store_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0012")
    opened = [
        datetime(2026, 11, 30, 23, 59, tzinfo=UTC),
        datetime(2026, 12, 1, 0, 1, tzinfo=UTC),
        datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
    ]
    rows = [
        {
            "fingerprint": f"old{i}",
            "source": "alert",
            "title": "Old",
            "host": None,
            "labels": {},
            "annotations": {},
            "state": "resolved",
            "opened_at": at,
            "resolved_at": None,
            "fixed_at": None,
            "attention": None,
            "truncated": False,
            "recurrence": 0,
            "claimed_by": None,
            "claimed_at": None,
            "diagnosed_at": at,
        }
        for i, at in enumerate(opened)
    ]
    with store.engine.begin() as connection:
        connection.execute(insert(IncidentRow.__table__), rows)
    store.migrate()
    assert _refs(store) == ["INC-2026-11-30-001", "INC-2026-12-01-001", "INC-2026-12-01-002"]
    _open(store, 1, "new")  # today's number follows the day's counter, backfilled ones included
    assert _refs(store)[-1] == format_ref(TODAY, 1 + sum(at.date() == TODAY for at in opened))
    store.dispose()


def test_cli_and_api_take_the_reference_wherever_they_take_the_id(
    gitops: Path, store_url: str
) -> None:
    from starlette.testclient import TestClient

    from terry.config import load_config
    from terry.service.server import create_app

    store = Store(store_url)
    store.migrate()
    _open(store, 2, "c")
    ref = format_ref(TODAY, 2)
    cli = make_cli(gitops, store_url)

    shown = cli.json("incidents", "show", ref.lower())
    assert shown["incident"]["id"] == 2 and shown["incident"]["ref"] == ref
    text = cli("incidents", "show", ref)
    assert text.exit_code == 0 and f"Incident 2 ({ref})" in text.stdout
    listed = cli("incidents", "list")
    assert ref in listed.stdout
    explained = cli.json("explain", ref, "--no-ai")
    assert explained["incident_id"] == 2 and ref in explained["text"]

    missing = cli("incidents", "show", format_ref(TODAY, 99))
    assert missing.exit_code == 4 and "does not exist" in missing.stderr
    malformed = cli("incidents", "show", "INC-2026-02-30-001")
    assert malformed.exit_code == 2 and "not an incident reference" in malformed.stderr
    word = cli("explain", "yesterday")
    assert word.exit_code == 2 and "give its number or its reference" in word.stderr

    reader = {"Authorization": "Bearer " + "r" * 32}
    app = create_app(
        load_config(gitops, environ={}), store, token="t" * 32, readers={"ops": "r" * 32}
    )
    with TestClient(app, headers=reader) as client:
        by_ref = client.get(f"/api/v1/incidents/{ref}")
        assert by_ref.status_code == 200, by_ref.text
        assert by_ref.json()["incident"]["id"] == 2
        assert client.get(f"/api/v1/incidents/{format_ref(TODAY, 50)}").status_code == 404
        bad = client.get("/api/v1/incidents/INC-x")
        assert bad.status_code == 400 and "INC reference" in json.dumps(bad.json())
        listed_api = client.get("/api/v1/incidents").json()
        assert [i["ref"] for i in listed_api] == [ref, format_ref(TODAY, 1)]
    store.dispose()
