"""The permission matrix: docs/permissions.md against the code and every endpoint.

The page's role × action table must be ``terry.access.TABLE``; its endpoint table must list
every route ``terry serve`` answers; and every endpoint is asked by every kind of caller
(anonymous, environment and API tokens of each role, the webhook's token, a revoked and an
expired token), each answer checked against what the page says. The app is the real one
(``create_app``) on a real repository and store, driven in process by Starlette's client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from starlette.testclient import TestClient

from terry.access import RISKS, TABLE, Action, Role
from terry.gitops.init import init_repository
from terry.store import Store
from terry.store.api_tokens import create_token, revoke_token
from terry.store.models import IncidentRow, ProposalRow, utcnow
from tests.conftest import config_for

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
WEBHOOK = "the-webhook-token-of-the-matrix"
ENV_VIEWER = "vera-reads-with-this-env-token"
ENV_OPERATOR = "otto-operates-with-this-env-token"
MEDIUM, HIGH = 1, 2  # the proposals' ids, by risk


def _table(heading: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table under ``## heading``."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return rows[2:]  # past the header and its rule


def _limit(cell: str) -> str | None:
    if cell == "yes":
        return "any"
    if cell == "no":
        return None
    found = re.fullmatch(r"up to (low|medium|high)", cell)
    assert found, f"docs/permissions.md: {cell!r} is not yes, no or 'up to RISK'"
    return found[1]


def documented() -> dict[Role, dict[Action, str]]:
    """The role × action table of docs/permissions.md, as ``TABLE`` is written."""
    text = DOC.read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| action |"))
    roles = [Role(cell.strip()) for cell in header.strip("|").split("|")[1:]]
    table: dict[Role, dict[Action, str]] = {role: {} for role in roles}
    for row in _table("The table"):
        action = Action(row[0])
        for role, cell in zip(roles, row[1:], strict=True):
            limit = _limit(cell)
            if limit is not None:
                table[role][action] = limit
    return table


def endpoints() -> dict[tuple[str, str], str]:
    """(method, path) -> the action (or open, signed, session) the page says it needs."""
    return {(row[0], row[1]): row[2] for row in _table("Endpoints")}


@dataclass(frozen=True)
class Caller:
    name: str
    token: str | None
    role: Role | None  # None: no valid credential (anonymous, revoked, expired)


@dataclass
class Matrix:
    app: object
    callers: list[Caller]
    store: Store


@pytest.fixture
def matrix(tmp_path: Path, store_url: str) -> Iterator[Matrix]:
    from terry.service.server import create_app

    repo = init_repository(tmp_path / "ops").path
    store = Store(store_url)
    store.migrate()
    now = utcnow()
    with store.session() as session:
        session.execute(
            insert(IncidentRow.__table__),
            [
                {
                    "fingerprint": "matrix",
                    "source": "alert",
                    "title": "Matrix",
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
                    "risk": risk,
                    "state": "verified",  # so an allowed approve is the pipeline's 409
                    "created_at": now,
                    "updated_at": now,
                }
                for risk in ("medium", "high")
            ],
        )

    def token(role: Role) -> str:
        return create_token(store, user=f"{role}-user", role=role, expires_in=None)[1]

    revoked_made, revoked = create_token(
        store, user="rex", role=Role.ADMIN, expires_in=timedelta(days=1)
    )
    revoke_token(store, revoked_made.id)
    expired = create_token(
        store,
        user="exa",
        role=Role.ADMIN,
        expires_in=timedelta(days=1),
        now=now - timedelta(days=2),
    )[1]
    callers = [
        Caller("anonymous", None, None),
        Caller("webhook", WEBHOOK, Role.ALERTMANAGER),
        Caller("viewer (env)", ENV_VIEWER, Role.VIEWER),
        Caller("operator (env)", ENV_OPERATOR, Role.OPERATOR),
        Caller("viewer", token(Role.VIEWER), Role.VIEWER),
        Caller("operator", token(Role.OPERATOR), Role.OPERATOR),
        Caller("admin", token(Role.ADMIN), Role.ADMIN),
        Caller("revoked", revoked, None),
        Caller("expired", expired, None),
    ]
    app = create_app(
        config_for(repo),
        store,
        token=WEBHOOK,
        readers={"vera": ENV_VIEWER},
        operators={"otto": ENV_OPERATOR},
    )
    try:
        yield Matrix(app, callers, store)
    finally:
        store.dispose()


def test_the_documented_table_is_the_code_s() -> None:
    assert documented() == {role: dict(actions) for role, actions in TABLE.items()}


def test_every_route_is_documented_and_every_documented_route_exists(matrix: Matrix) -> None:
    served = {
        (method, route.path)  # type: ignore[attr-defined]
        for route in matrix.app.routes  # type: ignore[attr-defined]
        for method in (getattr(route, "methods", None) or {"GET"})
        if method != "HEAD"
    }
    assert served == set(endpoints())


def _path(path: str, proposal: int) -> str:
    """``path`` with its placeholder filled: the proposal's id, or the one incident's."""
    which = str(proposal) if "proposals" in path else "1"
    return path.replace("{id}", which).replace("{key}", "1")


def _may(caller: Caller, action: str, risk: str) -> bool:
    if caller.role is None:
        return False
    limit = documented().get(caller.role, {}).get(Action(action))
    return limit is not None and (limit == "any" or RISKS.index(risk) <= RISKS.index(limit))


def test_every_endpoint_answers_every_caller_as_documented(matrix: Matrix) -> None:
    client = TestClient(matrix.app, base_url="http://terry.test")  # type: ignore[arg-type]
    checked = 0
    for (method, path), action in endpoints().items():
        if action not in ("ingest", "read"):
            continue
        for proposal, risk in ((MEDIUM, "medium"), (HIGH, "high")):
            if proposal == HIGH and "{id}" not in path:
                continue
            for caller in matrix.callers:
                headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
                body = b'{"version":"4","status":"firing","alerts":[]}'
                answer = client.request(
                    method, _path(path, proposal), headers=headers, content=body
                )
                if _may(caller, action, risk):  # past the door: the route's own answer
                    assert answer.status_code not in (401, 403), (caller.name, method, path)
                    # the webhook parses {} and refuses it; a report with nothing to report
                    # yet (no drift scan) says so
                    expected = {400} if action == "ingest" else {200}
                    if path.endswith("/report"):
                        expected = {200, 404}
                    assert answer.status_code in expected, (caller.name, path, answer.text[:300])
                else:
                    assert answer.status_code == 401, (caller.name, method, path)
                    assert answer.headers["www-authenticate"] == 'Bearer realm="terry"'
                checked += 1
    assert checked > 100


def _log_in(client: TestClient, caller: Caller) -> bool:
    answer = client.post(
        "/console/login",
        data={"token": caller.token or "", "next": "/console"},
        headers={"Origin": "http://terry.test"},
        follow_redirects=False,
    )
    return answer.status_code == 303


def test_console_forms_answer_every_caller_as_documented(matrix: Matrix) -> None:
    """Approve, reject (a proposal at medium and high risk) and retry (the one incident)."""
    for caller in matrix.callers:
        client = TestClient(matrix.app, base_url="http://terry.test")  # type: ignore[arg-type]
        logged_in = _log_in(client, caller)
        assert logged_in == _may(caller, "read", "low"), caller.name
        csrf = ""
        if logged_in:
            page = client.get(f"/proposals/{MEDIUM}")
            found = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert found, page.text
            csrf = found[1]
        for (method, path), action in endpoints().items():
            if action not in ("approve", "reject", "retry"):
                continue
            for proposal, risk in ((MEDIUM, "medium"), (HIGH, "high")):
                if action == "retry" and proposal == HIGH:
                    continue  # an incident's retry has no risk
                answer = client.request(
                    method,
                    _path(path, proposal),
                    data={"csrf": csrf, "reason": "the matrix says no"},
                    headers={"Origin": "http://terry.test"},
                    follow_redirects=False,
                )
                where = (caller.name, path, risk, answer.status_code)
                if not logged_in:
                    assert answer.status_code == 401, where
                elif _may(caller, action, risk):
                    # allowed: the pipeline's own answer (the proposal is verified already;
                    # the incident waits for its diagnosis)
                    assert answer.status_code == 409, where
                    said = "waiting for its diagnosis" if action == "retry" else "verified"
                    assert said in answer.text, where
                else:
                    assert answer.status_code == 403, where
                    assert f"may not {action}" in answer.text or "an admin must" in answer.text


def test_signed_routes_ignore_bearer_tokens(matrix: Matrix) -> None:
    client = TestClient(matrix.app, base_url="http://terry.test")  # type: ignore[arg-type]
    for (method, path), action in endpoints().items():
        if action != "signed":
            continue
        anonymous = client.request(method, path, content=b"{}").status_code
        assert anonymous >= 400, path
        for caller in matrix.callers:
            headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
            answer = client.request(method, path, headers=headers, content=b"{}")
            assert answer.status_code == anonymous, (caller.name, path)


def test_interfaces_actors_name_their_members_and_several_roles_are_judged_as_one() -> None:
    from terry.access import Principal, allowed_any, identities_of

    assert identities_of("slack:U0456 (alice)") == {"slack:U0456", "user:alice"}
    assert identities_of("discord:81234 (unmapped)") == {"discord:81234"}
    assert identities_of("api:pat (token tk_0a1b2c3d)") == {"user:pat"}
    assert identities_of("console:pat (token tk_0a1b2c3d)") == {"user:pat"}
    assert identities_of("api:bob (by alice (token tk_0a1b2c3d))") == frozenset()
    held = [
        Principal("dana", Role.VIEWER, "team-platform"),
        Principal("dana", Role.OPERATOR, "team-data"),
    ]
    assert allowed_any(held, Action.APPROVE, risk="medium", tenants={"team-data"})
    refused = allowed_any(held, Action.APPROVE, risk="low", tenants={"team-platform"})
    assert not refused and "the viewer role does not" in refused.reason
    high = allowed_any(held, Action.APPROVE, risk="high", tenants={"team-data"})
    assert not high and "an admin must" in high.reason
    assert allowed_any([], Action.READ, nobody="who?").reason == "who?"
