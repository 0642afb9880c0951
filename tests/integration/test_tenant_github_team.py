"""A ``github_team`` member's approval on a pull request is their tenant's approval (issue 17).

Two tenants on the example fleet: web-01 (192.168.90.11) is team-platform's, web-02
(10.0.1.12) team-data's, and each names only a GitHub team (``acme/platform``,
``acme/data``). A drift fix over both hosts needs an approval from each. On its pull
request: a login in neither team does not count, and the pull request says why; while
GitHub refuses to tell ``acme/platform``'s members (403), a member's approval does not
count either, with GitHub's answer on the pull request, and nothing merges; once GitHub
answers, the two members' approvals merge, apply and verify the fix.

Real PyGithub against the local GitHub of tests/fakes/github.py, real git, real
ansible-playbook on the example fleet, SQLite.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from terry.cli import main
from terry.demo import example
from terry.store import Store
from terry.store.models import AuditRow, ProposalRow
from tests.conftest import Cli, config_for, make_cli
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.integration

TOKEN = "ghp_team0000tenant0000approval0000test"
OWNER, NAME = "acme", "gitops"

TENANTS = """\
tenants:
  team-platform:
    hosts: ["192.168.90.*"]
    permissions: [read, manual-approval-only]
    members:
      - {github_team: acme/platform, role: operator}
  team-data:
    hosts: ["10.0.1.*"]
    permissions: [read, manual-approval-only]
    members:
      - {github_team: acme/data, role: operator}
"""

ADDRESSES = {"web-01": "192.168.90.11", "web-02": "10.0.1.12"}


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _commit(repo: Path, message: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", message)
    _git(repo, "push", "--quiet", "origin", "main")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, FakeGitHub]]:
    base = tmp_path_factory.mktemp("team")
    repo = base / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    bare = base / "gitops.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    _git(repo, "remote", "add", "origin", str(bare))
    fake = FakeGitHub(bare, owner=OWNER, name=NAME, token=TOKEN)
    fake.start()

    config = yaml.safe_load((repo / "terry.yml").read_text())
    config["forge"] = {  # nobody in allowed_users: every role here comes from a team
        "kind": "github",
        "github": {
            "repository": f"{OWNER}/{NAME}",
            "api_url": fake.base_url,
            "seconds_between_writes": 0,
            "retries": 1,
            "timeout": 5,
        },
    }
    (repo / "terry.yml").write_text(yaml.safe_dump(config))
    # The selectors place the hosts: no terry_tenant, and the tenants' addresses.
    hosts = repo / "inventories" / "example" / "hosts.yml"
    inventory: dict[str, Any] = yaml.safe_load(hosts.read_text())
    del inventory["all"]["vars"]["terry_tenant"]
    for group in inventory["all"]["children"].values():
        for name, variables in group["hosts"].items():
            if name in ADDRESSES:
                variables["ansible_host"] = ADDRESSES[name]
    hosts.write_text(yaml.safe_dump(inventory, sort_keys=False))
    (repo / "policies" / "tenants.yml").write_text(TENANTS)
    _commit(repo, "forge: github; tenants by GitHub team")

    cli = make_cli(repo)
    cli.env["GITHUB_TOKEN"] = TOKEN
    up = cli("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    fake.team_member("acme/platform", "alice")
    fake.team_member("acme/data", "bob")
    yield cli, fake
    example.down(config_for(repo))
    fake.stop()


def _proposal(cli: Cli, proposal_id: int) -> ProposalRow:
    store = Store(config_for(cli.repo).store_url)
    try:
        with store.session() as session:
            row = session.get(ProposalRow, proposal_id)
            assert row is not None
            session.expunge(row)
            return row
    finally:
        store.dispose()


def _tenant_approvals(cli: Cli, proposal_id: int) -> list[tuple[str, str]]:
    store = Store(config_for(cli.repo).store_url)
    try:
        with store.session() as session:
            rows = session.execute(
                select(AuditRow.reason, AuditRow.actor)
                .where(AuditRow.entity == "tenant_approval", AuditRow.entity_id == proposal_id)
                .order_by(AuditRow.id)
            ).all()
        return [(str(tenant), str(actor)) for tenant, actor in rows]
    finally:
        store.dispose()


def _said(fake: FakeGitHub, number: int) -> list[str]:
    return [c["body"] for c in fake.comments.get(number, []) if c["user"]["login"] == fake.bot]


def test_team_members_approve_for_their_tenants_and_refusals_say_why(
    world: tuple[Cli, FakeGitHub],
) -> None:
    cli, fake = world
    for host in ADDRESSES:
        cli.ok("example", "break", host, "config")
    fixed = cli.json("drift", "fix", "--limit", "web-01,web-02")
    assert fixed["state"] == "awaiting_review", fixed
    pid = int(fixed["proposal_id"])
    row = _proposal(cli, pid)
    number, commit = row.pr_number, row.commit_sha
    assert number is not None and commit is not None, row.forge_error
    assert "touches hosts of 2 tenants; each must approve: team-data, team-platform" in (
        row.reasons
    )

    # carol is in neither team: her approval does not count, and the pull request says why.
    fake.review(number, "carol", "APPROVED", commit_id=commit)
    cli.ok("sync", "--proposal", str(pid))
    [carol] = [b for b in _said(fake, number) if "The approval by @carol does not count" in b]
    assert "carol is not allowed to approve" in carol
    assert "not an active member of team acme/platform, acme/data" in carol

    # GitHub will not tell acme/platform's members: alice's approval does not count, with
    # GitHub's answer on the pull request; bob's counts for team-data alone: nothing merges.
    fake.team_error("acme/platform", 403)
    fake.review(number, "alice", "APPROVED", commit_id=commit)
    fake.review(number, "bob", "APPROVED", commit_id=commit)
    pending = cli("sync", "--proposal", str(pid))
    assert pending.exit_code == 0, pending.stdout + pending.stderr  # the sync goes on
    waiting = [b for b in _said(fake, number) if b.startswith("Not merged yet:")]
    assert len(waiting) == 1, _said(fake, number)
    assert "still needs an approval from tenant(s) team-platform" in " ".join(waiting[0].split())
    assert cli("sync", "--proposal", str(pid)).exit_code == 0  # said once, not per sync
    assert len([b for b in _said(fake, number) if b.startswith("Not merged yet:")]) == 1
    [alice] = [b for b in _said(fake, number) if "The approval by @alice does not count" in b]
    assert "GitHub could not say whether alice is in team acme/platform" in alice
    assert "HTTP 403 Resource not accessible by integration" in alice
    assert _proposal(cli, pid).state == "awaiting_review"
    assert not fake.pulls[number]["merged"]
    assert _tenant_approvals(cli, pid) == [("team-data", "bob")]

    # GitHub answers again: alice approves for team-platform, and the fix merges.
    fake.team_error("acme/platform", 0)
    done = cli.json("sync", "--proposal", str(pid))
    assert done[0]["state"] == "verified", (done, _proposal(cli, pid).outcome)
    assert fake.pulls[number]["merged"]
    assert sorted(_tenant_approvals(cli, pid)) == [("team-data", "bob"), ("team-platform", "alice")]
