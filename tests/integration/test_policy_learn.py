"""Learning from outcomes, for real: a remedy that keeps succeeding on a production host is
proposed for auto-merge as a commit to the policy data; once a person merges it, the next
fix merges without review; its first failure sends the next one back to review at once,
and `terry policy learn` proposes unlisting it.

Real ansible-playbook (local connection to the example hosts' scratch roots), real git,
real regorus, the real store (SQLite).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
from click.testing import CliRunner

from terry.cli import main
from terry.demo import example
from tests.conftest import Cli, alert, config_for, make_cli, payload
from tests.shop import git

pytestmark = pytest.mark.integration

MIN_RUNS = 2  # proven_min_runs, lowered in the test repository's policy data
_fingerprints = count(1)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    repo = tmp_path_factory.mktemp("learn") / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    data = repo / "policies" / "data.json"
    document = json.loads(data.read_text())
    document["terry"]["settings"]["proven_min_runs"] = MIN_RUNS
    data.write_text(json.dumps(document, indent=2) + "\n")
    git(repo, "commit", "-qam", "policy: two runs prove a remedy (a small fleet)")
    cli = make_cli(repo)
    result = cli("example", "up")
    assert result.exit_code == 0, result.stdout + result.stderr
    yield cli
    example.down(config_for(repo))


def _disk_alert(cli: Cli) -> dict[str, Any]:
    """db-01 (production) fills its disk; the alert's proposal as Terry left it."""
    cli("example", "break", "db-01", "disk")
    fingerprint = f"learn-disk-{next(_fingerprints)}"
    starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = payload(
        [
            alert(
                "DiskUsageHigh",
                fingerprint=fingerprint,
                host="db-01",
                mountpoint="/srv/data",
                starts=starts,
            )
        ]
    )
    out = cli.json("alert", "ingest", "-", input=body)
    [outcome] = out["proposals"]
    return outcome


def _learn(cli: Cli, *args: str) -> dict[str, Any]:
    return cli.json("policy", "learn", *args)


def _standing(learned: dict[str, Any], remedy: str, env: str) -> dict[str, Any]:
    [found] = [s for s in learned["standings"] if (s["remedy"], s["environment"]) == (remedy, env)]
    return found


def test_a_record_of_successes_is_proposed_then_merged_by_a_person_then_used(fleet: Cli) -> None:
    assert _learn(fleet, "--no-propose")["standings"] == []  # no record yet

    # fixes on production, each reviewed and approved by a person, each verified
    for _ in range(MIN_RUNS):
        outcome = _disk_alert(fleet)
        assert outcome["state"] == "awaiting_review", outcome
        assert any("not listed to merge in production" in r for r in outcome["reasons"])
        approved = fleet.as_("ann").json("proposals", "approve", str(outcome["proposal_id"]))
        assert approved["state"] == "verified", approved

    # the operator's checkout of main followed every merge (clean, the playbooks in it)
    assert git(fleet.repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert len(list((fleet.repo / "playbooks" / "remediations").glob("*.yml"))) == 2 * MIN_RUNS

    shown = _learn(fleet, "--no-propose")
    disk = _standing(shown, "disk-usage-high", "production")
    assert disk["record"]["runs"] == MIN_RUNS and disk["record"]["verified"] == MIN_RUNS
    assert disk["record"]["last_outcome"] == "verified"
    assert disk["record"]["mean_seconds_to_fix"] > 0
    assert (disk["listed"], disk["change"]) == (False, "add")
    assert (disk["gate_before"], disk["gate_after"]) == ("review", "merge")
    assert shown["changes"] == ["add disk-usage-high@production"]
    assert shown["branch"] is None  # --no-propose writes nothing

    main_before = git(fleet.repo, "rev-parse", "main")
    proposed = _learn(fleet)
    branch = proposed["branch"]
    assert branch.startswith("terry/policy-learn-") and proposed["already_proposed"] is False
    assert git(fleet.repo, "rev-parse", "main") == main_before  # a proposal, not a change
    edited = json.loads(git(fleet.repo, "show", f"{branch}:policies/data.json"))
    assert edited["terry"]["settings"]["auto_merge"] == {"disk-usage-high": ["production"]}
    assert edited["terry"]["settings"]["proven_min_runs"] == MIN_RUNS  # the rest kept
    message = git(fleet.repo, "log", "-1", "--format=%B", branch)
    assert message.startswith(
        "policy: learn from outcomes: auto-merge disk-usage-high in production"
    )
    assert f"{MIN_RUNS} of {MIN_RUNS} verified" in message and "review -> merge" in message
    # the same edit again finds the same branch
    again = _learn(fleet)
    assert again["branch"] == branch and again["already_proposed"] is True

    accepted = subprocess.run(
        ["git", "-C", str(fleet.repo), "merge", "--no-ff", "-m", "policy: accept it", branch],
        capture_output=True,
        text=True,
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    merged = _disk_alert(fleet)
    assert merged["state"] == "verified" and merged["decision"] == "merge", merged
    assert any("may merge in production" in r for r in merged["reasons"]), merged["reasons"]
    assert _learn(fleet, "--no-propose")["changes"] == []  # listing and record agree


def test_one_failure_sends_it_back_to_review_and_learn_proposes_unlisting(fleet: Cli) -> None:
    # a disk the remedy cannot clean: a big file it does not touch. The dry run's estimate
    # says the fix falls short, so even a listed remedy waits for a person (issue 13, item
    # 9); approved anyway, its verification fails and it is rolled back.
    config = config_for(fleet.repo)
    host = example.example_hosts(config)["db-01"]
    quota_mb = int(host.variables["terry_disk_quota_mb"])
    blob = fleet.repo / ".terry" / "hosts" / "db-01" / "srv" / "data" / "blob.bin"
    blob.write_bytes(b"\1" * (quota_mb * 1024 * 1024 * 95 // 100))
    try:
        held = _disk_alert(fleet)
        assert held["decision"] == "review", held
        assert any("falls short" in r for r in held["reasons"]), held["reasons"]
        approved = fleet("proposals", "approve", str(held["proposal_id"]), "--output", "json")
    finally:
        blob.unlink()
    failed = json.loads(approved.stdout)
    assert failed["state"] == "rolled_back", (failed, approved.stderr)

    # the next one goes to review at once: no data changed, the record took it back
    next_one = _disk_alert(fleet)
    assert next_one["state"] == "awaiting_review", next_one
    assert any(
        "no longer holds" in r and "the last one rolled_back" in r for r in next_one["reasons"]
    ), next_one["reasons"]
    fleet.json("proposals", "reject", str(next_one["proposal_id"]), "--reason", "looked")

    learned = _learn(fleet)
    disk = _standing(learned, "disk-usage-high", "production")
    assert (disk["listed"], disk["change"]) == (True, "remove")
    assert disk["record"]["rolled_back"] == 1
    assert (disk["gate_before"], disk["gate_after"]) == ("review", "review")
    edited = json.loads(git(fleet.repo, "show", f"{learned['branch']}:policies/data.json"))
    assert edited["terry"]["settings"]["auto_merge"] == {}
    message = git(fleet.repo, "log", "-1", "--format=%B", learned["branch"])
    assert "review again disk-usage-high in production" in message


def test_text_output_and_broken_policy_data(fleet: Cli) -> None:
    shown = fleet("policy", "learn", "--no-propose")
    assert shown.exit_code == 0, shown.stderr
    assert "disk-usage-high" in shown.stdout and "production" in shown.stdout
    assert "need 2 runs at 90% verified" in shown.stdout

    data = fleet.repo / "policies" / "data.json"
    good = data.read_text()
    document = json.loads(good)
    document["terry"]["settings"]["auto_merge"] = ["disk-usage-high"]  # not a mapping
    data.write_text(json.dumps(document))
    git(fleet.repo, "commit", "-qam", "a bad edit")
    try:
        broken = fleet("policy", "learn", "--output", "json")
        assert broken.exit_code == 9, broken.stdout
        error = json.loads(broken.stderr)
        assert "auto_merge must map remedy names to lists of environments" in error["error"]
    finally:
        data.write_text(good)
        git(fleet.repo, "commit", "-qam", "undo the bad edit")
