"""API tokens: ``terry tokens create|list|revoke`` and ``terry serve`` accepting them.

The real CLI and the real app (``create_app``, driven in process) on a real repository and
store: a token is printed once and stored as a digest; it reads the API and logs in to the
console; revoked or expired it is refused with the reason in the log (never the token); and
the audit names the token that acted.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from starlette.testclient import TestClient

from terry.access import Role
from terry.store import Store
from terry.store.api_tokens import create_token
from terry.store.models import ApiTokenRow, AuditRow, IncidentRow, ProposalRow, utcnow
from tests.conftest import Cli, config_for, make_cli

pytestmark = pytest.mark.integration

ORIGIN = {"Origin": "http://terry.test"}


@pytest.fixture
def repo(gitops: Path) -> Path:
    return gitops


def _store(store_url: str) -> Store:
    store = Store(store_url)
    store.migrate()
    return store


def _create(cli: Cli, *args: str) -> tuple[str, str]:
    made = cli.json("tokens", "create", *args)
    return made["id"], made["token"]


def test_a_token_is_shown_once_and_only_its_digest_is_kept(repo: Path, store_url: str) -> None:
    cli = make_cli(repo, store_url)
    cli.env["TERRY_ACTOR"] = "lead"
    shown = cli("tokens", "create", "--user", "alice", "--role", "operator", "--expires", "30d")
    assert shown.exit_code == 0, shown.output
    [token] = re.findall(r"^tk_[0-9a-f]{8}_\S{43}$", shown.stdout, re.M)
    token_id = token[:11]
    assert f"token {token_id} for alice (operator, tenant *)" in shown.stdout

    listed = cli.json("tokens", "list")
    assert [(t["id"], t["user"], t["role"], t["status"]) for t in listed] == [
        (token_id, "alice", "operator", "active")
    ]
    assert listed[0]["created_by"] == "lead" and listed[0]["expires_at"] is not None
    table = cli("tokens", "list")
    assert token_id in table.stdout and token not in table.stdout + str(listed)

    store = _store(store_url)
    try:
        with store.session() as session:
            [row] = session.scalars(select(ApiTokenRow)).all()
            kept = [str(getattr(row, c.key)) for c in ApiTokenRow.__table__.columns]
        assert row.digest == hashlib.sha256(token.encode()).hexdigest()
        assert not any(token[12:] in value for value in kept)  # the secret part, nowhere
    finally:
        store.dispose()

    revoked = cli.json("tokens", "revoke", token_id)
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    assert cli.json("tokens", "revoke", token_id)["revoked_at"] == revoked["revoked_at"]
    assert cli("tokens", "revoke", "tk_00000000").exit_code == 4
    assert cli("tokens", "create", "--user", "a b", "--role", "viewer").exit_code == 2
    assert (
        cli("tokens", "create", "--user", "x", "--role", "viewer", "--expires", "soon").exit_code
        == 2
    )
    never = cli.json("tokens", "create", "--user", "ci", "--role", "viewer", "--expires", "never")
    assert never["expires_at"] is None and never["tenant"] == "*"
    # a tenant no host on main is in (a misspelt name): made, with a warning saying so
    typo = cli("tokens", "create", "--user", "d", "--role", "viewer", "--tenant", "exmaple")
    assert typo.exit_code == 0
    assert "no host on main is in tenant 'exmaple' (tenants: example)" in typo.stderr
    right = cli("tokens", "create", "--user", "d", "--role", "viewer", "--tenant", "example")
    assert right.exit_code == 0 and "warning" not in right.stderr


def test_serve_accepts_api_tokens_until_revoked_or_expired_and_says_why_in_the_log(
    repo: Path, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from terry.service.server import create_app

    cli = make_cli(repo, store_url)
    viewer_id, viewer = _create(cli, "--user", "vic", "--role", "viewer")
    store = _store(store_url)
    try:
        expired = create_token(
            store,
            user="old",
            role=Role.VIEWER,
            expires_in=timedelta(hours=1),
            now=utcnow() - timedelta(hours=2),
        )[1]
        app = create_app(config_for(repo), store, token="hook-token-0123456789", readers={})
        client = TestClient(app, base_url="http://terry.test")
        caplog.set_level(logging.INFO)
        read = client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {viewer}"})
        assert read.status_code == 200, read.text
        assert f"by vic (token {viewer_id}): 200" in caplog.text
        assert cli.json("tokens", "list", "--user", "vic")[0]["last_used_at"] is not None
        # a viewer's token posts no alert: that is the webhook's token alone
        posted = client.post("/api/v1/alerts", headers={"Authorization": f"Bearer {viewer}"})
        assert posted.status_code == 401

        cli("tokens", "revoke", viewer_id)
        for token, why in ((viewer, "revoked"), (expired, "expired")):
            refused = client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == 'Bearer realm="terry"'
            assert token not in refused.text
            assert re.search(
                rf"refused API token tk_[0-9a-f]{{8}} of \w+: {why} since", caplog.text
            )
        assert viewer not in caplog.text and expired not in caplog.text
        assert viewer[12:] not in caplog.text
    finally:
        store.dispose()


def test_the_console_takes_api_tokens_names_them_in_the_audit_and_ends_revoked_sessions(
    repo: Path, store_url: str
) -> None:
    from terry.service.server import create_app

    cli = make_cli(repo, store_url)
    alice_id, alice = _create(cli, "--user", "alice", "--role", "operator")
    store = _store(store_url)
    try:
        now = utcnow()
        with store.session() as session:
            session.execute(
                insert(IncidentRow.__table__),
                [
                    {
                        "fingerprint": "tokens",
                        "source": "alert",
                        "title": "Tokens",
                        "host": "web-01",
                        "labels": {},
                        "annotations": {},
                        "state": "open",
                        "opened_at": now,
                        "resolved_at": None,
                        "truncated": False,
                        "recurrence": 0,
                    }
                ],
            )
            session.execute(
                insert(ProposalRow.__table__),
                [
                    {
                        "incident_id": 1,
                        "remedy": "disk-usage-high",
                        "role": "disk_cleanup",
                        "hosts": ["web-01"],
                        "params": {},
                        "risk": "low",
                        "state": "awaiting_review",
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
        app = create_app(config_for(repo), store, token="hook-token-0123456789", readers={})
        client = TestClient(app, base_url="http://terry.test")
        login = client.post(
            "/console/login",
            data={"token": alice, "next": "/proposals/1"},
            headers=ORIGIN,
            follow_redirects=False,
        )
        assert login.status_code == 303, login.text
        assert alice not in str(client.cookies)
        page = client.get("/proposals/1")
        assert page.status_code == 200 and "alice" in page.text and "Reject" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        rejected = client.post(
            "/proposals/1/reject",
            data={"csrf": csrf[1], "reason": "not now"},
            headers=ORIGIN,
            follow_redirects=False,
        )
        assert rejected.status_code == 303, rejected.text
        with store.session() as session:
            actors = session.scalars(
                select(AuditRow.actor).where(AuditRow.entity == "proposal")
            ).all()
        assert f"console:alice (token {alice_id})" in actors

        cli("tokens", "revoke", alice_id)
        after = client.get("/proposals/1")  # the session ended with its token
        assert after.status_code == 401
    finally:
        store.dispose()
