"""The CLI's remote mode and the write API, for real.

A real ``terry serve`` process on a real repository with the example hosts (real
ansible-playbook on local scratch roots, real git, real regorus), tokens made with ``terry
tokens create``, and the real CLI with ``TERRY_SERVER`` / ``TERRY_TOKEN``: its reads equal
local mode's, its role decides (a viewer is refused with the reason, an operator's approval
is applied and verified), a revoked token and a server that is down are one clear line each,
and the token is never printed. The write endpoints are walked with every kind of caller as
docs/permissions.md says; ``--as`` is checked in local mode.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from terry.demo import example
from terry.errors import NotFound, PermissionDenied, StateError, Unreachable
from terry.gitops.init import init_repository
from terry.ports import free_port
from tests.conftest import Cli, alert, config_for, make_cli, payload
from tests.integration.test_permissions import (  # the matrix's fixture and its readers
    HIGH,
    MEDIUM,
    Matrix,
    _may,
    _path,
    endpoints,
    matrix,
)
from tests.integration.test_server import Serve

pytestmark = pytest.mark.integration
__all__ = ["matrix"]  # the permission matrix's fixture, used here


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: the flows here are the server's and its clients'; the store's code runs
    on PostgreSQL in the store's, server's and notifier's own tests (conftest's store_url),
    and both stores doubled this module's CI time (session 27)."""
    return f"sqlite:///{tmp_path / 'terry.db'}"


@dataclass
class Site:
    repo: Path
    local: Cli
    server: Serve

    def remote(self, token: str) -> Cli:
        """The CLI in remote mode: no repository of its own, the server and a token."""
        env = {**self.local.env, "TERRY_SERVER": self.server.url, "TERRY_TOKEN": token}
        env.pop("TERRY_DATABASE_URL", None)
        return replace(self.local, repo=self.repo.parent / "elsewhere", env=env)

    def token(self, user: str, role: str) -> tuple[str, str]:
        made = self.local.json("tokens", "create", "--user", user, "--role", role)
        return made["id"], made["token"]


@pytest.fixture
def site(tmp_path: Path, store_url: str) -> Iterator[Site]:
    repo = init_repository(tmp_path / "ops").path
    (tmp_path / "elsewhere").mkdir()  # where the remote CLI runs: no terry.yml
    local = make_cli(repo, store_url)
    local.env["TERRY_ACTOR"] = "lead"
    up = local("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    server = Serve(repo, env={"TERRY_DATABASE_URL": store_url}, args=("--no-worker",))
    try:
        yield Site(repo, local, server)
    finally:
        server.stop()
        example.down(config_for(repo))


def _http_ok(repo: Path, host: str) -> bool:
    inventory = example.example_hosts(config_for(repo))
    port = inventory[host].variables["terry_services"]["web"]["port"]
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_remote_reads_equal_local_and_roles_decide_the_writes(site: Site) -> None:
    site.local("example", "break", "db-01", "service")
    out = site.local.json(
        "alert",
        "ingest",
        "-",
        input=payload(
            [alert("ServiceDown", fingerprint="remote-svc", host="db-01", service="web")]
        ),
    )
    [outcome] = out["proposals"]
    assert outcome["state"] == "awaiting_review"
    pid, iid = str(outcome["proposal_id"]), str(outcome["incident_id"])

    viewer_id, viewer = site.token("vic", "viewer")
    operator_id, operator = site.token("oscar", "operator")
    seen = site.remote(viewer)
    printed: list[str] = []

    def run(cli: Cli, *args: str) -> Any:
        result = cli(*args)
        printed.append(result.stdout + result.stderr)
        return result

    # reads: the same JSON and the same tables as local mode
    for args in (
        ("incidents", "list"),
        ("incidents", "show", iid),
        ("proposals", "list"),
        ("proposals", "show", pid),
        ("proposals", "list", "--state", "awaiting_review", "--limit", "1"),
    ):
        there = run(seen, *args, "--output", "json")
        assert there.exit_code == 0, there.stderr
        assert json.loads(there.stdout) == site.local.json(*args), args
        table = run(seen, *args)
        assert table.exit_code == 0 and table.stdout == site.local(*args).stdout, args
    told = run(seen, "explain", iid, "--output", "json")
    assert json.loads(told.stdout) == site.local.json("explain", iid, "--no-ai")
    missing = run(seen, "proposals", "show", "999")
    assert missing.exit_code == NotFound.exit_code and "does not exist" in missing.stderr

    # a viewer may not approve: the reason, and the permission exit code
    refused = run(seen, "proposals", "approve", pid)
    assert refused.exit_code == PermissionDenied.exit_code, refused.stderr
    assert "vic (token " in refused.stderr and "may not approve" in refused.stderr
    assert site.local.json("proposals", "show", pid)["summary"]["state"] == "awaiting_review"

    # an operator may not put another name in the audit, but approves as themselves
    acting = site.remote(operator)
    as_other = run(acting, "proposals", "approve", pid, "--as", "somebody-else")
    assert as_other.exit_code == PermissionDenied.exit_code
    assert "may not act as 'somebody-else'" in as_other.stderr
    approved = run(acting, "proposals", "approve", pid, "--output", "json")
    assert approved.exit_code == 0, approved.stderr
    answer = json.loads(approved.stdout)
    assert answer["state"] == "verified"
    assert answer["approved_by"] == f"api:oscar (token {operator_id})"
    assert _http_ok(site.repo, "db-01")  # real ansible restarted the service
    detail = site.local.json("proposals", "show", pid)
    assert [r["kind"] for r in detail["runs"]] == ["check", "apply", "verify"]

    # a retried approve says the state (409 → the state-conflict exit code)
    again = run(acting, "proposals", "approve", pid)
    assert again.exit_code == StateError.exit_code
    assert "it is verified" in again.stderr

    # revoked: refused, one line
    assert site.local.json("tokens", "revoke", operator_id)["status"] == "revoked"
    revoked = run(acting, "proposals", "reject", pid, "--reason", "late")
    assert revoked.exit_code == PermissionDenied.exit_code
    assert "refused the token" in revoked.stderr and revoked.stderr.count("\n") == 1

    for text in printed:
        assert viewer not in text and operator not in text
        assert viewer[12:] not in text and operator[12:] not in text  # the secret parts
    log = site.server.log.read_text()
    assert viewer[12:] not in log and operator[12:] not in log
    assert f"oscar (token {operator_id})" in log and viewer_id in log


def test_a_server_that_is_down_or_no_token_is_one_clear_line(gitops: Path) -> None:
    cli = make_cli(gitops)
    secret = "tk_00000000_this-is-the-secret-part-of-a-token-000000"
    cli.env.update({"TERRY_SERVER": f"http://127.0.0.1:{free_port()}", "TERRY_TOKEN": secret})
    for args in (("proposals", "list"), ("incidents", "show", "1"), ("proposals", "approve", "1")):
        down = cli(*args)
        assert down.exit_code == Unreachable.exit_code, down.stderr
        assert down.stderr.startswith("terry: error: cannot reach terry serve at http://127.0")
        assert down.stderr.count("\n") == 1 and secret not in down.stdout + down.stderr
    as_json = cli("proposals", "list", "--output", "json")
    assert json.loads(as_json.stderr)["exit_code"] == Unreachable.exit_code

    cli.env["TERRY_TOKEN"] = ""
    missing = cli("proposals", "list")
    assert missing.exit_code == 2 and "needs an API token in $TERRY_TOKEN" in missing.stderr
    cli.env["MY_TOKEN"] = secret
    named = cli("--server", "ftp://x", "--token-env", "MY_TOKEN", "incidents", "list")
    assert named.exit_code == 2 and "not an http(s) URL" in named.stderr

    # plain http to another machine: the token would cross the network in clear, said once
    cli.env["TERRY_TOKEN"] = secret
    for server, warned in (
        ("http://terry.invalid:8080", True),
        ("https://terry.invalid:8443", False),
        (f"http://[::1]:{free_port()}", False),
        (f"http://localhost:{free_port()}", False),
    ):
        told = cli("--server", server, "incidents", "list")
        assert told.exit_code == Unreachable.exit_code, told.stderr
        assert ("unencrypted (plain http)" in told.stderr) is warned, told.stderr
        assert secret not in told.stderr
        assert f"cannot reach terry serve at {server}" in told.stderr  # IPv6 bracketed


def test_the_write_api_answers_every_caller_as_documented(matrix: Matrix) -> None:
    client = TestClient(matrix.app, base_url="http://terry.test")  # type: ignore[arg-type]
    checked = 0
    for (method, path), action in endpoints().items():
        if not action.endswith(" (bearer)"):
            continue
        verb = action.split()[0]
        for proposal, risk in ((MEDIUM, "medium"), (HIGH, "high")):
            for caller in matrix.callers:
                if _may(caller, verb, risk) and verb in ("apply", "rollback"):
                    continue  # allowed: it would run (the remote CLI's test runs one)
                headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
                body = {"reason": "the matrix says no"} if verb == "reject" else {}
                answer = client.request(method, _path(path, proposal), headers=headers, json=body)
                where = (caller.name, path, risk, answer.status_code, answer.text[:200])
                if caller.role is None or not _may(caller, "read", "low"):
                    assert answer.status_code == 401, where
                    assert answer.headers["www-authenticate"] == 'Bearer realm="terry"'
                elif not _may(caller, verb, risk):
                    assert answer.status_code == 403, where
                    reason = answer.json()["error"]
                    assert f"may not {verb}" in reason or "an admin must" in reason, where
                elif verb in ("approve", "reject"):  # the pipeline's answer: it is verified
                    assert answer.status_code == 409, where
                    assert answer.json()["state"] == "verified" and "verified" in answer.text
                checked += 1
    assert checked > 50
    admin = next(c for c in matrix.callers if c.name == "admin")
    auth = {"Authorization": f"Bearer {admin.token}"}
    assert client.post("/api/v1/proposals/999/approve", headers=auth).status_code == 404
    assert client.post("/api/v1/proposals/x/approve", headers=auth).status_code == 400
    bad = client.post(f"/api/v1/proposals/{MEDIUM}/reject", headers=auth, json={})
    assert bad.status_code == 400 and "reason" in bad.json()["error"]
    odd = client.post(f"/api/v1/proposals/{MEDIUM}/approve", headers=auth, content=b"[1]")
    assert odd.status_code == 400
    job = client.get(f"/api/v1/proposals/{MEDIUM}/job", headers=auth)
    assert job.status_code == 200 and job.json() == {"proposal_id": MEDIUM, "job": None}


def test_local_as_names_only_yourself_unless_an_admin(gitops: Path, store_url: str) -> None:
    cli = make_cli(gitops, store_url)
    cli.env["TERRY_ACTOR"] = "alice"
    other = cli("proposals", "approve", "999", "--as", "bob")
    assert other.exit_code == PermissionDenied.exit_code
    assert "alice may not act as 'bob'" in other.stderr and "TERRY_ACTOR" in other.stderr
    assert cli("proposals", "approve", "999", "--as", "alice").exit_code == NotFound.exit_code
    assert cli("proposals", "reject", "999", "--reason", "r").exit_code == NotFound.exit_code

    cli.env["TERRY_ACTOR"] = "bob"  # today's `--as NAME` scripts set TERRY_ACTOR instead
    assert cli("proposals", "rollback", "999").exit_code == NotFound.exit_code

    config = gitops / "terry.yml"
    config.write_text(config.read_text() + "\nadmins: [alice]\n")
    cli.env["TERRY_ACTOR"] = "alice"
    assert cli("proposals", "apply", "999", "--as", "bob").exit_code == NotFound.exit_code
    cli.env["TERRY_ACTOR"] = "carol"
    refused = cli("proposals", "apply", "999", "--as", "bob")
    assert refused.exit_code == PermissionDenied.exit_code


def test_an_admin_acting_as_another_is_still_who_approves(site: Site) -> None:
    """Separation of duties sees through ``as``: the admin who asked for a production edit
    does not approve it by naming someone else (the API's ``"as"``, the local ``--as``),
    and the refusal is a permission refusal (403, exit 11), not a state conflict."""
    edited = site.local.as_("ada").json("inventory", "set", "db-01", "terry_labels={tier: db}")
    assert edited["state"] == "awaiting_review", edited
    pid = str(edited["proposal_id"])
    _id, ada = site.token("ada", "admin")
    _id, carol = site.token("carol", "admin")
    api = f"{site.server.url}/api/v1/proposals/{pid}/approve"

    for named in ("bob", "ADA"):
        refused = httpx.post(
            api, json={"as": named, "apply": False}, headers={"Authorization": f"Bearer {ada}"}
        )
        assert refused.status_code == 403, refused.text
        assert "separation of duties" in refused.json()["error"]
    remote = site.remote(ada)("proposals", "approve", pid, "--as", "bob", "--no-apply")
    assert remote.exit_code == PermissionDenied.exit_code, remote.stdout + remote.stderr
    assert "separation of duties" in " ".join(remote.stderr.split())

    config = site.repo / "terry.yml"
    config.write_text(config.read_text() + "\nadmins: [ada, carol]\n")
    local = site.local.as_("ada")("proposals", "approve", pid, "--as", "bob", "--no-apply")
    assert local.exit_code == PermissionDenied.exit_code, local.stdout + local.stderr
    odd = site.local.as_("carol")("proposals", "approve", pid, "--as", "bob (by x)")
    assert odd.exit_code == PermissionDenied.exit_code and "no spaces" in odd.stderr
    assert site.local.json("proposals", "show", pid)["summary"]["state"] == "awaiting_review"

    # another admin may approve it in someone's name: the audit keeps both
    approved = httpx.post(
        api, json={"as": "bob", "apply": False}, headers={"Authorization": f"Bearer {carol}"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["approved_by"].startswith("api:bob (by carol (token tk_")
