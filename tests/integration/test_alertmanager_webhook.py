"""``POST /api/v1/alerts`` as Alertmanager drives it (notify/webhook/webhook.go,
notify/util.go): one JSON body with ``Content-Type: application/json``, never compressed,
``Authorization: Bearer`` from ``http_config.authorization``; 2xx is done, 5xx is retried
with backoff, any 4xx is dropped for good. Re-sends (``repeat_interval``, retries, an HA
peer) must change nothing; a body Terry cannot take gets a 4xx with the reason."""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from terry.gitops.init import init_repository
from terry.service.server import create_app
from terry.store import Store
from terry.store.models import AlertRow, InboxRow, IncidentRow
from tests.conftest import alert, config_for, count_rows, payload

pytestmark = pytest.mark.integration
TOKEN = "s3cret-webhook-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Store]]:
    config = config_for(init_repository(tmp_path / "ops").path)
    store = Store(config.store_url)
    store.migrate()
    with TestClient(create_app(config, store, token=TOKEN)) as client:
        yield client, store
    store.dispose()


def _until(predicate: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 20
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _folded(store: Store) -> None:
    _until(lambda: count_rows(store, InboxRow, InboxRow.folded_at.is_(None)) == 0, "folding")


def test_resends_mixed_groups_and_unknown_resolutions(served) -> None:
    client, store = served
    firing = payload([alert("DiskUsageHigh", fingerprint="am-1", host="web-01")])
    for content_type in ("application/json", "application/json; charset=utf-8", None):
        headers = {**BEARER, **({"Content-Type": content_type} if content_type else {})}
        answer = client.post("/api/v1/alerts", content=firing.encode(), headers=headers)
        assert answer.status_code == 202, answer.text
    resolved = alert(
        "DiskUsageHigh", fingerprint="am-1", status="resolved", ends="2026-11-24T11:00:00Z"
    )
    mixed = payload([resolved, alert("Other", fingerprint="am-2", host="web-02")], status="firing")
    never_seen = payload(
        [alert("Gone", fingerprint="am-3", status="resolved", ends="2026-11-24T11:00:00Z")],
        status="resolved",
    )
    for body in (mixed, mixed, never_seen, never_seen, firing):  # each sent twice at least
        assert client.post("/api/v1/alerts", content=body, headers=BEARER).status_code == 202
    _folded(store)
    with store.session() as session:
        incidents = {
            fp: state
            for fp, state in session.execute(select(IncidentRow.fingerprint, IncidentRow.state))
        }
        effects = session.execute(select(AlertRow.fingerprint, AlertRow.effect)).all()
        errors = [e for e in session.scalars(select(InboxRow.error)) if e]
    assert incidents == {"am-1": "resolved", "am-2": "open"}  # the late re-send reopens nothing
    assert sorted(effects) == [
        ("am-1", "opened"),
        ("am-1", "resolved"),
        ("am-2", "opened"),
        ("am-3", "ignored: no open incident with this fingerprint"),
    ]
    assert errors == []


def test_what_terry_cannot_take_gets_a_4xx_with_the_reason_and_nothing_is_stored(
    served,
) -> None:
    client, store = served
    good = payload([alert("X", fingerprint="am-bad", host="web-01")]).encode()
    basic = base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode()
    refused = {
        "basic auth": (good, {"Authorization": f"Basic {basic}"}, 401, "bearer token"),
        "gzip": (gzip.compress(good), {**BEARER, "Content-Encoding": "gzip"}, 400, "gzip"),
        "array": (b"[]", BEARER, 400, "expected a JSON object"),
        "invalid UTF-8": (b'{"version": "4\xff"}', BEARER, 400, "not UTF-8"),
        "version 4 as a number": (
            good.replace(b'"version": "4"', b'"version": 4'),
            BEARER,
            400,
            "not a string",
        ),
        "too large": (b"{" + b" " * 1_100_000 + b"}", BEARER, 413, "larger than"),
    }
    for name, (body, headers, status, reason) in refused.items():
        answer = client.post("/api/v1/alerts", content=body, headers=headers)
        assert answer.status_code == status, f"{name}: {answer.status_code} {answer.text}"
        assert reason in json.loads(answer.text)["error"], f"{name}: {answer.text}"
    assert count_rows(store, InboxRow) == 0
