"""Tenants (issue 17): the roadmap's example on the example fleet, through a real pipeline.

web-01 (staging, ``ansible_host`` 192.168.90.11) is team-platform's, web-02 (staging,
10.0.1.12) team-data's, db-01 (production) team-platform's by its group. The same disk fault
auto-fixes on web-01 and waits for a team-data reviewer on web-02; a drift reconciliation of
both hosts needs an approval from each tenant; ``terry inventory validate`` reports hosts in
no tenant and in two; a malformed tenants file is an error naming the file and the key.

Real ansible-playbook (local connection, scratch roots), real git, real regorus, SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from terry.cli import main
from terry.demo import example
from terry.gitops.repo import Repo
from terry.tenants.loader import parse_tenants
from tests.conftest import Cli, alert, config_for, make_cli, payload

pytestmark = pytest.mark.integration

# The roadmap's example, as written, in Terry's config form.
ROADMAP = """\
tenants:
  team-platform: {hosts: ["192.168.90.*"], permissions: [read, write, auto-resolve]}
  team-data:     {hosts: ["10.0.1.*"],     permissions: [read, manual-approval-only]}
policies:
  - {tenant: team-platform, can_auto_resolve: true,  approval_threshold: MEDIUM}
  - {tenant: team-data,     can_auto_resolve: false, approval_threshold: LOW}
"""

# The same, with the richer selectors and who is in each tenant.
TENANTS = """\
tenants:
  team-platform:
    hosts: ["192.168.90.*"]
    groups: [production]
    permissions: [read, write, auto-resolve]
    members:
      - {user: pat, role: operator}
      - {github: octo-pat, role: viewer}
  team-data:
    hosts: ["10.0.1.*"]
    permissions: [read, manual-approval-only]
    members:
      - {user: dana, role: operator}
    reviewers: [dora]
policies:
  - {tenant: team-platform, can_auto_resolve: true,  approval_threshold: MEDIUM}
  - {tenant: team-data,     can_auto_resolve: false, approval_threshold: LOW}
"""

ADDRESSES = {"web-01": "192.168.90.11", "web-02": "10.0.1.12"}


def _init(repo: Path) -> None:
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout


def _place(repo: Path, tenants: str, addresses: dict[str, str]) -> None:
    """Commit a tenants file, and an inventory whose hosts name no terry_tenant (which would
    win over the selectors) and carry ``addresses`` as ansible_host."""
    path = repo / "inventories" / "example" / "hosts.yml"
    inventory: dict[str, Any] = yaml.safe_load(path.read_text())
    del inventory["all"]["vars"]["terry_tenant"]
    for group in inventory["all"]["children"].values():
        for name, variables in group["hosts"].items():
            if name in addresses:
                variables["ansible_host"] = addresses[name]
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    (repo / "policies" / "tenants.yml").write_text(tenants)
    Repo(repo).commit_paths(
        ["inventories/example/hosts.yml", "policies/tenants.yml"], "tenants: the example"
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    repo = tmp_path_factory.mktemp("tenants") / "ops"
    _init(repo)
    _place(repo, TENANTS, ADDRESSES)
    cli = make_cli(repo)
    up = cli("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    yield cli
    example.down(config_for(repo))


def _disk(cli: Cli, host: str, fingerprint: str) -> dict[str, Any]:
    cli.ok("example", "break", host, "disk")
    body = payload(
        [alert("DiskUsageHigh", fingerprint=fingerprint, host=host, mountpoint="/srv/data")]
    )
    [outcome] = cli.json("alert", "ingest", "-", input=body)["proposals"]
    return outcome


def test_the_roadmap_example_loads_as_written() -> None:
    tenants = parse_tenants(yaml.safe_load(ROADMAP), source="policies/tenants.yml")
    platform, data = tenants.tenants["team-platform"], tenants.tenants["team-data"]
    assert platform.settings() == {
        "defined": True,
        "can_auto_resolve": True,
        "approval_threshold": "medium",
        "permissions": ["auto-resolve", "read", "write"],
        "reviewers": [],
    }
    assert data.settings()["can_auto_resolve"] is False
    assert data.settings()["approval_threshold"] == "low"
    assert data.settings()["permissions"] == ["manual-approval-only", "read"]


def test_the_same_fault_fixes_itself_on_platform_and_waits_on_data(fleet: Cli) -> None:
    platform = _disk(fleet, "web-01", "ten-disk-01")
    assert platform["decision"] == "merge" and platform["state"] == "verified", platform

    data = _disk(fleet, "web-02", "ten-disk-02")
    assert data["decision"] == "review" and data["state"] == "awaiting_review", data
    assert any("tenant team-data never merges on its own" in r for r in data["reasons"]), data[
        "reasons"
    ]
    pid = str(data["proposal_id"])

    # pat is team-platform's: the approval is refused, with the reason, and nothing moves.
    refused = fleet.as_("pat")("proposals", "approve", pid)
    assert refused.exit_code == 5, refused.stdout + refused.stderr
    assert "pat is not a member or reviewer of tenant team-data" in refused.stderr
    assert fleet.json("proposals", "show", pid)["summary"]["state"] == "awaiting_review"

    # dora reviews for team-data: merged, applied, verified.
    approved = fleet.as_("dora").json("proposals", "approve", pid)
    assert approved["state"] == "verified", approved
    assert approved["approved_by"] == "dora"


def test_a_proposal_on_two_tenants_needs_an_approval_from_each(fleet: Cli) -> None:
    for host in ("web-01", "web-02"):
        fleet.ok("example", "break", host, "config")
    fixed = fleet.json("drift", "fix", "--limit", "web-01,web-02")
    assert sorted(fixed["hosts"]) == ["web-01", "web-02"], fixed
    assert fixed["state"] == "awaiting_review", fixed
    pid = str(fixed["proposal_id"])
    reasons = fleet.json("proposals", "show", pid)["reasons"]
    assert "touches hosts of 2 tenants; each must approve: team-data, team-platform" in reasons

    # pat approves for team-platform: recorded, and it says who is still missing.
    first = fleet.as_("pat")("proposals", "approve", pid)
    assert first.exit_code == 0, first.stdout + first.stderr  # recorded: the CLI succeeds
    said = " ".join(first.stderr.split())
    assert "approval recorded for tenant(s) team-platform by pat" in said
    assert "still needs an approval from tenant(s) team-data" in said
    assert fleet.json("proposals", "show", pid)["summary"]["state"] == "awaiting_review"

    # Approving again for the same tenant changes nothing.
    again = fleet.as_("pat")("proposals", "approve", pid)
    assert again.exit_code == 5 and "team-platform by pat" in " ".join(again.stderr.split())

    # dana completes the set: merged, applied, verified.
    done = fleet.as_("dana").json("proposals", "approve", pid)
    assert done["state"] == "verified", done
    fleet.ok("drift", "scan", "--exit-code")


def test_validate_reports_hosts_in_no_tenant_and_in_two(tmp_path: Path) -> None:
    repo = tmp_path / "ops"
    _init(repo)
    overlapping = """\
tenants:
  team-platform: {hosts: [web-01], groups: [production]}
  team-data: {hosts: ["web-01", "10.9.*"]}
"""
    _place(repo, overlapping, {})
    cli = make_cli(repo)
    result = cli("inventory", "validate", "--output", "json")
    assert result.exit_code == 1, result.stdout + result.stderr
    problems = {
        p["host"]: p["message"] for p in _json(result.stdout)["problems"] if p["rule"] == "tenant"
    }
    assert problems["web-01"].startswith("in two tenants: team-data, team-platform")
    assert problems["web-02"] == "in no tenant: no selector of policies/tenants.yml matches it"
    assert "db-01" not in problems


def test_a_malformed_tenants_file_is_a_clear_error(tmp_path: Path) -> None:
    repo = tmp_path / "ops"
    _init(repo)
    broken = """\
tenants:
  team-data:
    hosts: ["10.0.1.*"]
    members:
      - {user: dana, role: boss}
"""
    _place(repo, broken, {})
    result = make_cli(repo)("inventory", "validate")
    assert result.exit_code == 3, result.stdout + result.stderr
    assert (
        "policies/tenants.yml: tenants.team-data.members[0].role: 'boss' is not one of "
        "viewer, operator, admin"
    ) in " ".join(result.stderr.split())


def _json(text: str) -> Any:
    return json.loads(text)
