"""What the webhook accepts always folds; what it cannot fold is refused with the reason.

The bodies of ``tests/webhook_bodies.py`` go through the webhook's own steps (the text of the
body, ``parse_payload``, an inbox row holding exactly that text) and then through folding, on
SQLite and, with TERRY_TEST_POSTGRES_URL, PostgreSQL. The same table is posted to a real
server in ``tests/integration/test_server.py``.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Integer, String, select

from terry.errors import InputError
from terry.sources import alertmanager
from terry.sources.alertmanager import decode_body, load_json, parse_payload
from terry.sources.inbox import fold_pending
from terry.store import Store
from terry.store.models import MAX_ROW_ID, AlertRow, InboxRow, IncidentRow, utcnow
from tests.conftest import count_rows
from tests.webhook_bodies import bodies

pytestmark = pytest.mark.unit


def _refusal(raw: bytes) -> str | None:
    """The webhook's judgement of a body: None (acknowledged) or the 400's reason."""
    try:
        parse_payload(decode_body(raw))
    except InputError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("body", bodies(), ids=lambda b: b.name)
def test_the_webhook_refuses_with_a_reason_or_accepts(body) -> None:
    reason = _refusal(body.raw)
    if body.refused is None:
        assert reason is None, reason
        return
    assert reason is not None, f"{body.name}: accepted, expected a 400 naming {body.refused!r}"
    assert body.refused in reason
    assert "\n" not in reason and len(reason) < 300  # one line, a reason and not an echo
    reason.encode("utf-8")  # what the 400 carries can always be sent


def test_every_accepted_body_folds_and_none_is_kept_with_an_error(store: Store) -> None:
    table = bodies()
    accepted = [b for b in table if _refusal(b.raw) is None]
    assert {b.name for b in accepted} == {b.name for b in table if b.refused is None}
    with store.session() as session:  # what the webhook stores: the very text it parsed
        session.add_all(InboxRow(received_at=utcnow(), body=decode_body(b.raw)) for b in accepted)
    while fold_pending(store).rows:
        pass
    with store.session() as session:
        errors = session.execute(select(InboxRow.id, InboxRow.error)).all()
        stored = session.execute(select(AlertRow.fingerprint, AlertRow.starts_at)).all()
    assert [e for _id, e in errors if e is not None] == []
    assert count_rows(store, InboxRow, InboxRow.folded_at.is_(None)) == 0
    for body in accepted:
        rows = [s for s in stored if s.fingerprint in body.fingerprints]
        assert rows, f"{body.name}: acknowledged, then lost"
        if body.rows is not None:
            assert len(rows) == body.rows, f"{body.name}: {rows}"
    [tz] = [s for s in stored if s.fingerprint == "tz"]  # three offsets, one instant, in UTC
    assert tz.starts_at.isoformat() == "2026-11-24T10:00:00+00:00"
    assert count_rows(store, IncidentRow) == len({fp for b in accepted for fp in b.fingerprints})


def test_the_limits_fit_the_columns() -> None:
    """The door's limits are the store's: nothing accepted is too long for a column."""
    assert isinstance(AlertRow.__table__.c.alertname.type, String)
    assert AlertRow.__table__.c.alertname.type.length >= alertmanager.MAX_ALERTNAME
    assert IncidentRow.__table__.c.title.type.length >= alertmanager.MAX_ALERTNAME
    assert AlertRow.__table__.c.fingerprint.type.length >= alertmanager.MAX_FINGERPRINT
    assert IncidentRow.__table__.c.fingerprint.type.length >= alertmanager.MAX_FINGERPRINT
    assert isinstance(AlertRow.__table__.c.truncated_alerts.type, Integer)
    # INTEGER is 32-bit on PostgreSQL: counts and ids above it fit no row
    assert alertmanager.MAX_INTEGER == MAX_ROW_ID == 2**31 - 1
    from terry.cli import ids

    assert ids.MAX_ROW_ID == MAX_ROW_ID


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 65 + "]" * 65, "nested deeper than 64"),
        ('{"a":' * 3000 + "1" + "}" * 3000, "nested deeper than 64"),
        ("1" * 21, "more than 20 digits"),
        ("-" + "1" * 21, "more than 20 digits"),
        ("1." + "0" * 100, "longer than 64"),
        ("[Infinity]", "Infinity is not JSON"),
        ("[-Infinity]", "-Infinity is not JSON"),
        ("{", "not JSON"),
    ],
)
def test_json_from_outside_is_bounded(text: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        load_json(text)


def test_json_within_the_bounds_loads() -> None:
    assert load_json("[" * 64 + "]" * 64) is not None
    assert load_json(json.dumps({"n": 10**19, "f": 1.5e300})) == {"n": 10**19, "f": 1.5e300}


def test_a_body_is_strict_utf8_and_loses_one_byte_order_mark() -> None:
    assert decode_body(b"\xef\xbb\xbf{}") == "{}"
    with pytest.raises(InputError, match="not UTF-8"):
        decode_body(b"{\xc0\xaf}")  # an overlong encoding
    # a row stored with its mark (before this change) still folds
    document = json.loads(next(b for b in bodies() if b.name == "plain").raw)
    assert parse_payload("\ufeff" + json.dumps(document)).alerts[0].fingerprint == "plain"


def test_the_github_webhook_reads_no_more_than_its_limit_without_a_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chunked body (no Content-Length) is read only up to the limit: 413, before the
    signature is looked at, so an unsigned sender cannot make Terry hold more."""
    from types import SimpleNamespace

    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from terry.service import webhooks

    monkeypatch.setattr(webhooks, "_MAX_BODY", 1000)
    github = SimpleNamespace(webhook_secret_env="TERRY_TEST_NO_SUCH_SECRET")
    hook = webhooks.GitHubWebhook(SimpleNamespace(forge=SimpleNamespace(github=github)), None, None)  # type: ignore[arg-type]
    app = Starlette(routes=[Route("/hook", hook.handle, methods=["POST"])])
    monkeypatch.delenv("TERRY_TEST_NO_SUCH_SECRET", raising=False)

    def chunks(n: int):
        yield from (b"x" * 100 for _ in range(n))

    with TestClient(app) as client:
        assert client.post("/hook", content=chunks(11)).status_code == 413  # 1,100 bytes
        assert client.post("/hook", content=b"x" * 1001).status_code == 413
        assert client.post("/hook", content=chunks(10)).status_code == 401  # within: no secret
