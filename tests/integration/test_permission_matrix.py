"""The permission matrix across interfaces (issue 17): every action of docs/permissions.md's
table, asked through the HTTP API, the remote CLI and chat, by every kind of caller.

One real ``terry serve`` on a real repository with the roadmap's two tenants (web-01 in
team-platform, web-02 in team-data) and a store holding proposals of medium and high risk
on each. The callers are API tokens of each role in every tenant, an operator of team-data
only, a revoked and an expired token, and nobody; in chat, people each holding one of those
roles (chat.users and chat.writers in terry.yml, or a tenant's members). What each may do
is read from the page's table (``tests.integration.test_permissions.documented``), never
written here: a caller whose role may is answered by the pipeline (the proposals are
rejected already, so an allowed write is its 409 and nothing runs), one whose role may not
is refused with the reason (403, exit 11, "Refused: ..."), one without a valid token is
401 (exit 11), and another tenant's proposal is answered as a missing one (404, exit 4,
"does not exist").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from sqlalchemy import insert

from terry.access import ANY_TENANT, RISKS, Action, Role
from terry.errors import NotFound, PermissionDenied, StateError
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.store import Store
from terry.store.api_tokens import create_token, revoke_token
from terry.store.models import IncidentRow, ProposalRow, utcnow
from tests.conftest import Cli, make_cli
from tests.fakes.chat_platforms import SlackReceiver, slack_headers
from tests.integration.test_permissions import documented
from tests.integration.test_server import Serve
from tests.integration.test_tenants import ADDRESSES, _place

pytestmark = pytest.mark.integration

SECRET = "slack-signing-secret-of-the-matrix"
TEAM = "T0MATRIX"
TENANTS = """\
tenants:
  team-platform:
    hosts: ["192.168.90.*"]
    permissions: [read, write, auto-resolve]
    members:
      - {slack: U0PLATOP, role: operator}
  team-data:
    hosts: ["10.0.1.*"]
    permissions: [read, manual-approval-only]
    members:
      - {slack: U0DATAOP, role: operator}
      - {slack: U0DATAVW, role: viewer}
policies:
  - {tenant: team-platform, can_auto_resolve: true,  approval_threshold: MEDIUM}
  - {tenant: team-data,     can_auto_resolve: false, approval_threshold: LOW}
"""


@dataclass(frozen=True)
class Target:
    """A proposal (and its incident) the callers act on."""

    id: int
    incident: int
    host: str
    risk: str
    tenant: str


# All rejected already: an allowed write is the pipeline's refusal, and nothing runs.
TARGETS = (
    Target(1, 1, "web-01", "medium", "team-platform"),
    Target(2, 1, "web-01", "high", "team-platform"),
    Target(3, 2, "web-02", "medium", "team-data"),
    Target(4, 2, "web-02", "high", "team-data"),
)


class Answer(Enum):
    OK = "the interface's own answer"
    REFUSED = "refused: the role may not (403)"
    UNKNOWN = "no valid credential (401)"
    HIDDEN = "another tenant's: as a missing one (404)"


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role | None  # None: no valid credential
    tenant: str = ANY_TENANT
    token: str = ""  # the API token
    slack: str = ""  # the Slack user id (a person in chat)

    def expect(self, action: Action, target: Target) -> Answer:
        """What docs/permissions.md says this caller gets."""
        if self.role is None:
            return Answer.UNKNOWN
        if self.tenant not in (ANY_TENANT, target.tenant):
            return Answer.HIDDEN
        limit = documented().get(self.role, {}).get(action)
        if limit is None or (limit != "any" and RISKS.index(target.risk) > RISKS.index(limit)):
            return Answer.REFUSED
        return Answer.OK


@dataclass
class World:
    repo: Path
    server: Serve
    slack: SlackReceiver
    cli: Cli
    callers: list[Caller]  # API tokens
    people: list[Caller]  # chat users
    sent: int = 0

    def remote(self, caller: Caller) -> Cli:
        env = {**self.cli.env, "TERRY_SERVER": self.server.url, "TERRY_TOKEN": caller.token}
        env.pop("TERRY_DATABASE_URL", None)
        return replace(self.cli, repo=self.repo.parent / "elsewhere", env=env)

    def say(self, slack_user: str, text: str) -> str:
        """``/terry text`` from ``slack_user``: what Terry answered (inline or followed up)."""
        self.sent += 1
        body = urlencode(
            {
                "team_id": TEAM,
                "user_id": slack_user,
                "command": "/terry",
                "text": text,
                "response_url": self.slack.url(str(self.sent)),
            }
        ).encode()
        answer = httpx.post(
            f"{self.server.url}/api/v1/chat/slack/commands",
            content=body,
            headers=slack_headers(SECRET, body),
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
        said = answer.json()
        if said.get("text") == "Working on it…":
            said = self.slack.wait(f"/actions/{self.sent}")[-1].body
        return str(said["text"])


def _rows(now: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    incidents = [
        {
            "fingerprint": f"matrix-{host}",
            "source": "alert",
            "title": f"Disk on {host}",
            "host": host,
            "labels": {},
            "annotations": {},
            "state": "open",
            "opened_at": now,
            "resolved_at": None,
            "truncated": False,
            "recurrence": 0,
        }
        for host in ("web-01", "web-02")
    ]
    proposals = [
        {
            "incident_id": t.incident,
            "remedy": "disk-usage-high",
            "role": "disk_cleanup",
            "hosts": [t.host],
            "params": {},
            "risk": t.risk,
            "state": "rejected",
            "created_at": now,
            "updated_at": now,
        }
        for t in TARGETS
    ]
    return incidents, proposals


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("matrix")
    repo = init_repository(tmp / "ops").path
    (tmp / "elsewhere").mkdir()
    _place(repo, TENANTS, ADDRESSES)  # web-01: team-platform, web-02: team-data
    slack = SlackReceiver()
    slack.start()
    settings = yaml.safe_load((repo / "terry.yml").read_text())
    settings["chat"] = {
        "users": {f"slack:{TEAM}/U0VIEWER": "vera", f"slack:{TEAM}/U0WRITER": "wanda"},
        "writers": ["wanda"],
        "slack": {"response_urls": [slack.base_url + "/"]},
    }
    (repo / "terry.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    Repo(repo).commit_paths(["terry.yml"], "chat: the matrix's people")
    store_url = f"sqlite:///{tmp / 'terry.db'}"
    store = Store(store_url)
    store.migrate()
    now = utcnow()
    incidents, proposals = _rows(now)
    with store.session() as session:
        session.execute(insert(IncidentRow.__table__), incidents)
        session.execute(insert(ProposalRow.__table__), proposals)

    def token(user: str, role: Role, tenant: str = ANY_TENANT) -> str:
        return create_token(store, user=user, role=role, tenant=tenant, expires_in=None)[1]

    revoked_made, revoked = create_token(
        store, user="rex", role=Role.ADMIN, expires_in=timedelta(days=1)
    )
    revoke_token(store, revoked_made.id)
    expired = create_token(
        store, user="exa", role=Role.ADMIN, expires_in=timedelta(days=1), now=now - timedelta(2)
    )[1]
    callers = [
        Caller("viewer", Role.VIEWER, token=token("vic", Role.VIEWER)),
        Caller("operator", Role.OPERATOR, token=token("oscar", Role.OPERATOR)),
        Caller("admin", Role.ADMIN, token=token("ada", Role.ADMIN)),
        Caller(
            "team-data operator",
            Role.OPERATOR,
            "team-data",
            token("dana", Role.OPERATOR, "team-data"),
        ),
        Caller("revoked", None, token=revoked),
        Caller("expired", None, token=expired),
        Caller("nobody", None),
    ]
    people = [
        Caller("viewer (chat.users)", Role.VIEWER, slack="U0VIEWER"),
        Caller("writer (chat.writers)", Role.ADMIN, slack="U0WRITER"),  # as before roles
        Caller("team-platform operator", Role.OPERATOR, "team-platform", slack="U0PLATOP"),
        Caller("team-data operator", Role.OPERATOR, "team-data", slack="U0DATAOP"),
        Caller("team-data viewer", Role.VIEWER, "team-data", slack="U0DATAVW"),
        Caller("stranger", None, slack="U0STRANGER"),
    ]
    store.dispose()
    server = Serve(
        repo,
        env={"TERRY_DATABASE_URL": store_url, "TERRY_SLACK_SIGNING_SECRET": SECRET},
        args=("--no-worker",),
    )
    try:
        yield World(repo, server, slack, make_cli(repo, store_url), callers, people)
    finally:
        server.stop()
        slack.stop()


_WRITES = (Action.APPROVE, Action.REJECT, Action.APPLY, Action.ROLLBACK)


def test_the_write_api_and_its_reads_answer_every_caller_as_the_table_says(world: World) -> None:
    checked = 0
    with httpx.Client(base_url=world.server.url, timeout=20) as client:
        for caller in world.callers:
            headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
            for target in TARGETS:
                for what in ("proposals", "incidents"):
                    key = target.id if what == "proposals" else target.incident
                    got = client.get(f"/api/v1/{what}/{key}", headers=headers)
                    expected = caller.expect(Action.READ, target)
                    status = {Answer.OK: 200, Answer.UNKNOWN: 401, Answer.HIDDEN: 404}
                    assert got.status_code == status[expected], (caller.name, what, key)
                for action in _WRITES:
                    body = {"reason": "the matrix"} if action is Action.REJECT else {}
                    got = client.post(
                        f"/api/v1/proposals/{target.id}/{action}", headers=headers, json=body
                    )
                    where = (caller.name, action, target, got.status_code, got.text[:300])
                    match caller.expect(action, target):
                        case Answer.OK:  # the pipeline's answer: it is rejected already
                            assert got.status_code == 409, where
                            assert got.json()["state"] == "rejected", where
                        case Answer.REFUSED:
                            assert got.status_code == 403, where
                            said = got.json()["error"]
                            assert f"may not {action}" in said or "an admin must" in said, where
                        case Answer.UNKNOWN:
                            assert got.status_code == 401, where
                        case Answer.HIDDEN:
                            assert got.status_code == 404, where
                            said = got.json()["error"]
                            assert said == f"proposal {target.id} does not exist", where
                    checked += 1
            for target in TARGETS[::2]:  # an incident's retry (no risk: one per incident)
                got = client.post(
                    f"/api/v1/incidents/{target.incident}/retry",
                    headers=headers,
                    json={"reason": "the matrix"},
                )
                where = (caller.name, "retry", target, got.status_code, got.text[:300])
                match caller.expect(Action.RETRY, target):
                    case Answer.OK:  # the incident's own answer: it waits for diagnosis
                        assert got.status_code == 409, where
                        assert "waiting for its diagnosis" in got.json()["error"], where
                    case Answer.REFUSED:
                        assert got.status_code == 403, where
                        assert "may not retry" in got.json()["error"], where
                    case Answer.UNKNOWN:
                        assert got.status_code == 401, where
                    case Answer.HIDDEN:
                        assert got.status_code == 404, where
                        said = got.json()["error"]
                        assert said == f"incident {target.incident} does not exist", where
            if caller.tenant != ANY_TENANT:  # lists: only its tenant's rows
                listed = client.get("/api/v1/proposals", headers=headers).json()
                assert {p["id"] for p in listed} == {
                    t.id for t in TARGETS if t.tenant == caller.tenant
                }
    assert checked == len(world.callers) * len(TARGETS) * len(_WRITES)


_EXIT = {
    Answer.OK: StateError.exit_code,  # 409: it is rejected already
    Answer.REFUSED: PermissionDenied.exit_code,
    Answer.UNKNOWN: PermissionDenied.exit_code,
    Answer.HIDDEN: NotFound.exit_code,
}


def test_the_remote_cli_exits_as_the_table_says(world: World) -> None:
    for caller in world.callers:
        if not caller.token:
            continue  # the CLI will not start without one (test_remote_cli)
        cli = world.remote(caller)
        for target in TARGETS:
            shown = cli("proposals", "show", str(target.id), "--output", "json")
            read = caller.expect(Action.READ, target)
            expected = 0 if read is Answer.OK else _EXIT[read]
            assert shown.exit_code == expected, (caller.name, target, shown.stderr)
            for action in _WRITES:
                more = ("--reason", "the matrix") if action is Action.REJECT else ()
                done = cli("proposals", str(action), str(target.id), *more)
                answer = caller.expect(action, target)
                where = (caller.name, action, target, done.exit_code, done.stderr)
                assert done.exit_code == _EXIT[answer], where
                if answer is Answer.REFUSED:
                    assert "refused:" in done.stderr, where
                    assert "may not" in done.stderr or "an admin must" in done.stderr, where
                if answer is Answer.OK:
                    assert "rejected" in done.stderr, where
        for target in TARGETS[::2]:
            done = cli("incidents", "retry", str(target.incident), "--reason", "the matrix")
            answer = caller.expect(Action.RETRY, target)
            where = (caller.name, "retry", target, done.exit_code, done.stderr)
            assert done.exit_code == _EXIT[answer], where
            if answer is Answer.REFUSED:
                assert "may not retry" in done.stderr, where
            if answer is Answer.OK:
                assert "waiting for its diagnosis" in done.stderr, where
        listed = cli("proposals", "list", "--output", "json")
        if caller.role is None:
            assert listed.exit_code == PermissionDenied.exit_code
        else:
            seen = {p["id"] for p in json.loads(listed.stdout)}
            assert seen == {t.id for t in TARGETS if caller.tenant in (ANY_TENANT, t.tenant)}


def test_chat_answers_every_person_as_the_table_says(world: World) -> None:
    for caller in world.people:
        for target in TARGETS:
            commands = {
                Action.APPROVE: f"approve {target.id}",
                Action.REJECT: f"reject {target.id} the matrix",
            }
            for action, text in commands.items():
                said = world.say(caller.slack, text)
                where = (caller.name, text, said)
                match caller.expect(action, target):
                    case Answer.OK:  # the pipeline's refusal: it is rejected already
                        assert said.startswith("Not done: cannot"), where
                        assert "rejected" in said, where
                    case Answer.REFUSED:
                        assert said.startswith("Refused: "), where
                        assert f"may not {action}" in said or "an admin must" in said, where
                    case Answer.UNKNOWN:
                        assert said.startswith("Refused: you are not a Terry user"), where
                    case Answer.HIDDEN:
                        assert said == f"Not done: proposal {target.id} does not exist", where
        # reads: another tenant's host is not in their inventory, its incident not there
        for target in TARGETS[::2]:
            status = world.say(caller.slack, f"status {target.host}")
            explain = world.say(caller.slack, f"explain {target.incident}")
            match caller.expect(Action.READ, target):
                case Answer.OK:
                    assert status.startswith(f"Status of {target.host}:"), (caller, status)
                    assert "Not done" not in explain and "Refused" not in explain, explain
                case Answer.UNKNOWN:
                    assert status.startswith("Refused: you are not a Terry user"), status
                case Answer.HIDDEN:
                    assert f"host {target.host} is not in the inventory" in status, status
                    assert explain == f"Not done: incident {target.incident} does not exist"
        listed = world.say(caller.slack, "incidents")
        if caller.role is not None:
            for target in TARGETS[::2]:
                visible = caller.expect(Action.READ, target) is Answer.OK
                assert (f"on {target.host}," in listed) == visible, (caller.name, listed)
        for target in TARGETS[::2]:
            said = world.say(caller.slack, f"retry {target.incident} the matrix")
            where = (caller.name, "retry", said)
            match caller.expect(Action.RETRY, target):
                case Answer.OK:  # the incident's own answer: it waits for diagnosis
                    assert said.startswith("Not done: cannot retry"), where
                    assert "waiting for its diagnosis" in said, where
                case Answer.REFUSED:
                    assert said.startswith("Refused: ") and "may not retry" in said, where
                case Answer.UNKNOWN:
                    assert said.startswith("Refused: you are not a Terry user"), where
                case Answer.HIDDEN:
                    assert said == f"Not done: incident {target.incident} does not exist", where
        rollback = world.say(caller.slack, "rollback web-01 --to=1h-ago")
        match caller.expect(Action.ROLLBACK, TARGETS[0]):
            case Answer.OK:
                assert rollback.startswith("Nothing was applied on web-01"), rollback
            case Answer.REFUSED:
                assert rollback.startswith("Refused: ") and "may not rollback" in rollback
            case Answer.UNKNOWN:
                assert rollback.startswith("Refused: you are not a Terry user"), rollback
            case Answer.HIDDEN:
                assert "host web-01 is not in the inventory" in rollback, rollback
