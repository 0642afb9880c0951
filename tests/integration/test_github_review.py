"""Review on GitHub, for real: PyGithub against a local server that follows GitHub's REST
API, git pushing to and fetching from a real bare repository, webhooks with real
signatures into Terry's real Starlette app and worker, and the example fleet for applies.

A canary token stands in for GITHUB_TOKEN throughout; the last test looks for it
everywhere Terry writes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select, text
from starlette.testclient import TestClient

from terry.app import build_pipeline
from terry.cli import main
from terry.config import load_config
from terry.demo import example
from terry.service.server import create_app
from terry.service.worker import Worker
from terry.store import Store
from terry.store.models import ForgeDeliveryRow, ProposalRow, RunRow
from tests.conftest import Cli, alert, config_for, count_rows, make_cli, payload
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.integration

CANARY = "ghp_CANARY0000terry0000canary0000token"
SECRET = "webhook-secret-for-tests"
OWNER, NAME = "acme", "gitops"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, FakeGitHub]]:
    base = tmp_path_factory.mktemp("gh")
    repo = base / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    bare = base / "gitops.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    _git(repo, "remote", "add", "origin", str(bare))
    _git(repo, "push", "--quiet", "origin", "main")
    fake = FakeGitHub(bare, owner=OWNER, name=NAME, token=CANARY)
    fake.start()
    config = yaml.safe_load((repo / "terry.yml").read_text())
    config["forge"] = {
        "kind": "github",
        "github": {
            "repository": f"{OWNER}/{NAME}",
            "api_url": fake.base_url,
            "reviewers": {"production": ["alice"]},
            "allowed_users": ["alice", "bob"],
            "seconds_between_writes": 0,
            "retries": 2,
            "timeout": 5,
        },
    }
    (repo / "terry.yml").write_text(yaml.safe_dump(config))
    _git(repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qam", "forge: github")
    _git(repo, "push", "--quiet", "origin", "main")
    cli = make_cli(repo)
    cli.env.update({"GITHUB_TOKEN": CANARY, "TERRY_GITHUB_WEBHOOK_SECRET": SECRET})
    result = cli("example", "up")
    assert result.exit_code == 0, result.stdout + result.stderr
    yield cli, fake
    example.down(config_for(repo))
    fake.stop()


def _review_proposal(cli: Cli, fingerprint: str) -> dict[str, Any]:
    """A production alert: the gate sends its fix to review, so it gets a pull request."""
    out = cli.json(
        "alert",
        "ingest",
        "-",
        input=payload([alert("ServiceDown", fingerprint=fingerprint, host="db-01", service="web")]),
    )
    [outcome] = out["proposals"]
    assert outcome["state"] == "awaiting_review", outcome
    return cli.json("proposals", "show", str(outcome["proposal_id"]))


def _rows(cli: Cli, model: type, *where: Any) -> list[Any]:
    """Rows of ``model`` in the repository's store, detached so they outlive the session."""
    store = Store(config_for(cli.repo).store_url)
    try:
        with store.session() as session:
            rows = list(session.scalars(select(model).where(*where)))
            session.expunge_all()
            return rows
    finally:
        store.dispose()


def _row(cli: Cli, proposal_id: int) -> ProposalRow:
    [row] = _rows(cli, ProposalRow, ProposalRow.id == proposal_id)
    return row


_ARGV_SEEN: set[str] = set()


@pytest.fixture(autouse=True)
def _watch_process_arguments() -> Iterator[None]:
    """Read every process's arguments while a test runs: the token must never be one."""
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if "git" in argv or "ansible" in argv or "terry" in argv:
                    _ARGV_SEEN.add(argv)
            stop.wait(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def _sync(cli: Cli, proposal_id: int) -> dict[str, Any]:
    [done] = cli.json("sync", "--proposal", str(proposal_id))
    return done


def test_a_review_decision_opens_one_pull_request_a_reviewer_can_decide_from(
    world: tuple[Cli, FakeGitHub],
) -> None:
    cli, fake = world
    shown = _review_proposal(cli, "gh-open")
    pid = shown["summary"]["id"]
    row = _row(cli, pid)
    assert row.forge_state == "open" and row.pr_number is not None
    pull = fake.pulls[row.pr_number]
    assert pull["head"]["sha"] == row.commit_sha == _git(fake.bare, "rev-parse", row.branch)
    body = pull["body"]
    for needle in (
        "ServiceDown",
        "`db-01`",
        "production",
        "### Diagnosis",
        "### The playbook",
        "### Check-mode diff",
        "### Rollback plan",
        # every task the playbook runs, read from the role on the proposal commit
        "### What it runs (every task, from the proposal commit)",
        "Restart service {{ service }}",
        "/terry reject <reason>",
        *(f"- {r}" for r in row.reasons),
    ):
        assert needle in body, needle
    assert {label["name"] for label in pull["labels"]} == {
        "terry",
        f"risk:{row.risk}",
        "env:production",
    }
    assert [u["login"] for u in pull["requested_reviewers"]] == ["alice"]
    [status] = [s for s in fake.statuses.get(row.commit_sha, []) if s["context"] == "terry/dry-run"]
    assert status["state"] == "success"

    # Syncing again updates the same pull request: never a second one.
    _sync(cli, pid)
    assert [n for n, p in fake.pulls.items() if p["head"]["ref"] == row.branch] == [row.pr_number]


def test_closing_unmerged_rejects(world: tuple[Cli, FakeGitHub]) -> None:
    cli, fake = world
    pid = _review_proposal(cli, "gh-close")["summary"]["id"]
    number = _row(cli, pid).pr_number
    assert number is not None
    fake.close_by(number, "alice")
    done = _sync(cli, pid)
    assert done["state"] == "rejected"
    assert cli.json("proposals", "show", str(pid))["summary"]["state"] == "rejected"


def test_commands_from_strangers_are_refused_and_answered(
    world: tuple[Cli, FakeGitHub],
) -> None:
    cli, fake = world
    pid = _review_proposal(cli, "gh-stranger")["summary"]["id"]
    number = _row(cli, pid).pr_number
    assert number is not None
    fake.comment(number, "mallory", "/terry apply")
    fake.comment(number, "alice", "/terry explain")
    fake.comment(number, "alice", "/terry frobnicate")
    _sync(cli, pid)
    replies = [c["body"] for c in fake.comments[number] if c["user"]["login"] != "mallory"]
    replies = [b for b in replies if not b.startswith("/terry")]
    assert any("Refused `apply` from @mallory" in b for b in replies)
    assert any(f"Proposal {pid} is **awaiting_review**" in b for b in replies)
    assert any(b.startswith("Unknown command") for b in replies)
    assert _row(cli, pid).state == "awaiting_review"
    # The same comments are never answered twice.
    before = len(fake.comments[number])
    _sync(cli, pid)
    assert len(fake.comments[number]) == before
    # An allowed reviewer's reject closes it.
    fake.comment(number, "bob", "/terry reject fixed by hand")
    _sync(cli, pid)
    row = _row(cli, pid)
    assert row.state == "rejected" and "fixed by hand" in (row.outcome or "") + str(
        cli.json("proposals", "show", str(pid))["history"]
    )
    assert fake.pulls[number]["state"] == "closed"


def test_a_moved_head_is_never_merged(world: tuple[Cli, FakeGitHub]) -> None:
    cli, fake = world
    pid = _review_proposal(cli, "gh-moved")["summary"]["id"]
    row = _row(cli, pid)
    assert row.pr_number is not None and row.branch is not None
    main_before = _git(fake.bare, "rev-parse", "main")
    fake.push_commit(row.branch, {"playbooks/extra.yml": "- hosts: all\n"}, "sneaky")
    head = _git(fake.bare, "rev-parse", row.branch)
    fake.review(row.pr_number, "alice", "APPROVED", commit_id=head)
    fake.comment(row.pr_number, "alice", "/terry apply")
    _sync(cli, pid)
    assert _row(cli, pid).state == "awaiting_review"
    assert _git(fake.bare, "rev-parse", "main") == main_before
    assert any("the head is now" in c["body"] for c in fake.comments[row.pr_number])


def _approved_but_not_merged(cli: Cli, fake: FakeGitHub, fingerprint: str) -> tuple[int, int]:
    """alice approves the dry-run commit; GitHub refuses the merge (the base moved under
    it): the proposal is approved, nothing merged. Its id and pull request number."""
    cli("example", "break", "db-01", "service")
    pid = _review_proposal(cli, fingerprint)["summary"]["id"]
    row = _row(cli, pid)
    assert row.pr_number is not None and row.commit_sha is not None
    main_before = _git(fake.bare, "rev-parse", "main")
    fake.review(row.pr_number, "alice", "APPROVED", commit_id=row.commit_sha)
    fake.refuse_merges(1)
    said = cli("sync", "--proposal", str(pid))
    assert said.exit_code == 10, said.stdout + said.stderr  # GitHub refused: it waits
    assert "could not be synced: github: merge #" in said.stderr
    row = _row(cli, pid)
    assert row.state == "approved", row.state
    assert "Base branch was modified" in (row.forge_error or ""), row.forge_error
    assert not fake.pulls[row.pr_number]["merged"]
    assert _git(fake.bare, "rev-parse", "main") == main_before
    said_on_github = [c["body"] for c in fake.comments[row.pr_number]]
    assert any(
        b.startswith("GitHub did not merge this:") and "`/terry reject <reason>`" in b
        for b in said_on_github
    ), said_on_github
    return pid, row.pr_number


def test_an_approval_github_refused_to_merge_is_merged_by_a_later_sync(
    world: tuple[Cli, FakeGitHub],
) -> None:
    cli, fake = world
    pid, number = _approved_but_not_merged(cli, fake, "gh-merge-refused")

    done = _sync(cli, pid)

    row = _row(cli, pid)
    assert (done["state"], row.state, row.approved_by) == ("verified", "verified", "alice")
    assert fake.pulls[number]["merged"] and row.merge_sha == _git(fake.bare, "rev-parse", "main")
    assert any("merged on a second try" in c["body"] for c in fake.comments[number])


def test_an_approval_github_will_not_merge_can_be_given_up(
    world: tuple[Cli, FakeGitHub],
) -> None:
    """Closing its pull request, or rejecting it, ends a proposal GitHub refuses to merge:
    it does not stay approved for ever."""
    cli, fake = world
    closed, number = _approved_but_not_merged(cli, fake, "gh-refused-closed")
    fake.refuse_merges(0)
    fake.close_by(number, "alice")
    assert _sync(cli, closed)["state"] == "rejected"
    assert _row(cli, closed).outcome == "rejected: pull request closed"

    rejected, number = _approved_but_not_merged(cli, fake, "gh-refused-rejected")
    done = cli.as_("alice")("proposals", "reject", str(rejected), "--reason", "by hand")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert _row(cli, rejected).state == "rejected"
    _sync(cli, rejected)
    assert not fake.pulls[number]["merged"]


def test_a_pull_request_that_conflicts_with_main_is_rejected_and_closed(
    world: tuple[Cli, FakeGitHub],
) -> None:
    """Two edits of one line, each a pull request; the first merged. GitHub will never merge
    the second (405): Terry tells the conflict from a refusal worth trying again, rejects
    it, says which file on the pull request and closes it, instead of trying at every sync."""
    cli, fake = world
    ids = []
    for tier in ("edge", "core"):
        proposed = cli.json("inventory", "set", "web-02", f"terry_labels.tier={tier}")
        assert proposed["state"] == "awaiting_review", proposed
        ids.append(proposed["proposal_id"])
    first, second = (_row(cli, i) for i in ids)
    assert first.pr_number is not None and second.pr_number is not None
    fake.review(first.pr_number, "alice", "APPROVED", commit_id=first.commit_sha)
    assert _sync(cli, first.id)["state"] == "verified"
    main_before = _git(fake.bare, "rev-parse", "main")
    hosts = "inventories/example/hosts.yml"

    fake.review(second.pr_number, "alice", "APPROVED", commit_id=second.commit_sha)
    done = cli("sync", "--proposal", str(second.id))

    assert done.exit_code == 0, done.stdout + done.stderr
    row = _row(cli, second.id)
    assert (row.state, row.forge_state) == ("rejected", "closed"), (row.state, row.forge_state)
    assert row.outcome == f"not merged: main changed {hosts} since its branch was made"
    pull = fake.pulls[second.pr_number]
    assert pull["state"] == "closed" and not pull["merged"]
    [said] = [c["body"] for c in fake.comments[second.pr_number] if "Not merged" in c["body"]]
    assert "the two changes conflict" in said and hosts in said, said
    assert _git(fake.bare, "rev-parse", "main") == main_before
    assert "tier: edge" in _git(fake.bare, "show", f"main:{hosts}")
    assert second.id not in [r["proposal_id"] for r in cli.json("sync")]  # nothing to retry
    incident = cli.json("incidents", "show", str(row.incident_id))["incident"]
    assert incident["attention"].startswith(f"proposal {second.id} was not merged")


def test_github_down_leaves_the_proposal_waiting_and_sync_publishes_it(
    world: tuple[Cli, FakeGitHub],
) -> None:
    cli, fake = world
    fake.fail_next(50, status=502)
    try:
        pid = _review_proposal(cli, "gh-down")["summary"]["id"]
    finally:
        fake.fail_next(0)
    row = _row(cli, pid)
    assert (row.state, row.forge_state, row.pr_number) == ("awaiting_review", "pending", None)
    assert "502" in (row.forge_error or "")
    done = _sync(cli, pid)
    row = _row(cli, pid)
    assert row.forge_state == "open" and row.pr_number == done["pr_number"]
    assert row.pr_number in fake.pulls


def test_webhooks_are_verified_deduplicated_and_an_approval_merges_and_applies(
    world: tuple[Cli, FakeGitHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, fake = world
    monkeypatch.setenv("GITHUB_TOKEN", CANARY)  # terry serve's environment
    monkeypatch.setenv("TERRY_GITHUB_WEBHOOK_SECRET", SECRET)
    cli("example", "break", "db-01", "service")
    pid = _review_proposal(cli, "gh-approve")["summary"]["id"]
    row = _row(cli, pid)
    assert row.pr_number is not None and row.commit_sha is not None
    config = load_config(cli.repo, environ=cli.env)
    store = Store(config.store_url)
    worker = Worker(lambda: build_pipeline(config, store), store, poll_seconds=0.2, threads=1)
    app = create_app(config, store, worker=worker, token="t")
    main_before = _git(fake.bare, "rev-parse", "main")
    fake.review(row.pr_number, "alice", "APPROVED", commit_id=row.commit_sha)
    event = {
        "action": "submitted",
        "review": {"state": "approved", "user": {"login": "alice"}, "commit_id": row.commit_sha},
        "pull_request": {"number": row.pr_number, "head": {"sha": row.commit_sha}},
        "repository": {"full_name": f"{OWNER}/{NAME}"},
        "sender": {"login": "alice"},
    }
    headers, body = fake.webhook("pull_request_review", event, SECRET)
    with TestClient(app) as client:
        forged = dict(headers, **{"X-Hub-Signature-256": "sha256=" + "0" * 64})
        assert client.post("/api/v1/github", content=body, headers=forged).status_code == 401
        unsigned = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
        assert client.post("/api/v1/github", content=body, headers=unsigned).status_code == 401
        assert count_rows(store, ForgeDeliveryRow) == 0  # refused: nothing stored

        first = client.post("/api/v1/github", content=body, headers=headers)
        again = client.post("/api/v1/github", content=body, headers=headers)
        assert (first.status_code, again.status_code) == (202, 200)
        assert "duplicate" in again.json()["message"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _row(cli, pid).state not in (
            "verified",
            "rolled_back",
            "escalated",
            "failed",
        ):
            time.sleep(0.5)
    row = _row(cli, pid)
    assert row.state == "verified", row.outcome
    assert row.approved_by == "alice"
    merge = _git(fake.bare, "rev-parse", "main")
    assert merge != main_before and row.merge_sha == merge
    assert _git(fake.bare, "rev-list", "--parents", "-n1", merge).split()[1:] == [
        main_before,
        row.commit_sha,
    ]
    assert _git(cli.repo, "rev-parse", "main") == merge  # Terry fetched main from GitHub
    assert fake.pulls[row.pr_number]["merged"] is True
    assert any("Result: **verified**" in c["body"] for c in fake.comments[row.pr_number])
    assert count_rows(store, ForgeDeliveryRow) == 1
    store.dispose()


def test_a_merge_by_an_allowed_reviewer_is_applied(world: tuple[Cli, FakeGitHub]) -> None:
    cli, fake = world
    cli("example", "break", "db-01", "service")
    pid = _review_proposal(cli, "gh-human-merge")["summary"]["id"]
    number = _row(cli, pid).pr_number
    assert number is not None
    merge = fake.merge_by(number, "bob")
    done = _sync(cli, pid)
    row = _row(cli, pid)
    assert (done["state"], row.state, row.merge_sha, row.approved_by) == (
        "verified",
        "verified",
        merge,
        "bob",
    )
    assert _git(cli.repo, "rev-parse", "main") == merge


def test_approving_a_pull_request_a_person_just_merged_says_so_and_sync_applies_it(
    world: tuple[Cli, FakeGitHub],
) -> None:
    """bob merges on GitHub; before any sync, alice approves with the CLI. GitHub refuses
    Terry's merge (405: merged already): that is no refusal to tell the pull request about,
    and the next sync applies bob's merge."""
    cli, fake = world
    cli("example", "break", "db-01", "service")
    pid = _review_proposal(cli, "gh-merged-before-approve")["summary"]["id"]
    number = _row(cli, pid).pr_number
    assert number is not None
    merge = fake.merge_by(number, "bob")

    approved = cli.as_("alice")("proposals", "approve", str(pid))

    assert approved.exit_code == 5, approved.stdout + approved.stderr
    said = " ".join(approved.stderr.split())
    assert f"pull request #{number} was merged meanwhile (by bob on GitHub)" in said, said
    assert not any("did not merge" in c["body"] for c in fake.comments.get(number, []))
    done = _sync(cli, pid)
    row = _row(cli, pid)
    assert (done["state"], row.merge_sha, row.approved_by) == ("verified", merge, "alice")


def test_a_merge_by_someone_else_is_not_applied(world: tuple[Cli, FakeGitHub]) -> None:
    cli, fake = world
    pid = _review_proposal(cli, "gh-stranger-merge")["summary"]["id"]
    number = _row(cli, pid).pr_number
    assert number is not None
    merged = fake.merge_by(number, "mallory")
    _sync(cli, pid)
    row = _row(cli, pid)
    assert row.state == "rejected" and "mallory is not allowed" in (row.outcome or "")
    assert any("Terry did not apply this" in c["body"] for c in fake.comments[number])
    assert not any(r.kind == "apply" for r in _runs(cli, pid))
    # What nobody allowed approved is on main now: flagged, and re-checked before any apply.
    assert any("which no dry run or gate saw" in c["body"] for c in fake.comments[number])
    _recheck_main(cli, fake, merged)


def _recheck_main(cli: Cli, fake: FakeGitHub, ungated: str) -> None:
    """Approve the re-check of main Terry proposed on GitHub (its dry run saw main as it
    then was, the ungated merge included); it is applied and verified."""
    [recheck] = _rows(
        cli,
        ProposalRow,
        ProposalRow.remedy == "recheck-main",
        ProposalRow.state == "awaiting_review",
    )
    assert "risk is high" in recheck.reasons and recheck.pr_number is not None
    assert recheck.commit_sha is not None
    _git(cli.repo, "merge-base", "--is-ancestor", ungated, recheck.commit_sha)  # raises if not
    fake.review(recheck.pr_number, "alice", "APPROVED", commit_id=recheck.commit_sha)
    done = _sync(cli, recheck.id)
    assert done["state"] == "verified", (done, _row(cli, recheck.id).outcome)
    story = cli.json("incidents", "show", str(recheck.incident_id))
    assert story["incident"]["state"] == "resolved"


def test_a_merge_whose_head_moved_stops_every_apply_until_main_is_re_checked(
    world: tuple[Cli, FakeGitHub],
) -> None:
    cli, fake = world
    pid = _review_proposal(cli, "gh-ungated")["summary"]["id"]
    row = _row(cli, pid)
    assert row.pr_number is not None and row.branch is not None
    sneaky = fake.push_commit(row.branch, {"sneaky.txt": "nobody gated this\n"}, "sneaky")
    fake.comment(row.pr_number, "bob", "/terry explain")  # just before the merge
    merged = fake.merge_by(row.pr_number, "alice")
    _sync(cli, pid)
    assert _row(cli, pid).state == "rejected"
    said = [c["body"] for c in fake.comments[row.pr_number]]
    [flag] = [b for b in said if "Terry did not apply this" in b]
    assert "the merged head" in flag and f"Main now holds `{merged[:12]}`" in flag
    assert "which no dry run or gate saw" in flag and "The re-check is proposal" in flag
    assert any(f"Proposal {pid} is **rejected**" in b for b in said)  # the command answered
    assert _git(cli.repo, "merge-base", "--is-ancestor", sneaky, "main") == ""

    # The next fix Terry merges would carry the sneaky commit: it is merged, not applied.
    cli("example", "break", "web-01", "disk")
    out = cli.json(
        "alert",
        "ingest",
        "-",
        input=payload(
            [alert("DiskUsageHigh", fingerprint="gh-carry", host="web-01", mountpoint="/srv/data")]
        ),
    )
    [carried] = out["proposals"]
    assert (carried["decision"], carried["state"]) == ("merge", "merged"), carried
    refused = cli("proposals", "apply", str(carried["proposal_id"]))
    assert refused.exit_code == 5, refused.stdout + refused.stderr
    assert "carries a change on main that no dry run or gate saw" in refused.stderr
    assert not any(r.kind == "apply" for r in _runs(cli, carried["proposal_id"]))

    # A re-check of main as it now is, approved and verified, lifts it.
    _recheck_main(cli, fake, merged)
    applied = cli.json("proposals", "apply", str(carried["proposal_id"]))
    assert applied["state"] == "verified", applied


def test_a_command_posted_just_before_a_close_is_still_answered(
    world: tuple[Cli, FakeGitHub],
) -> None:
    cli, fake = world
    pid = _review_proposal(cli, "gh-late")["summary"]["id"]
    number = _row(cli, pid).pr_number
    assert number is not None
    fake.comment(number, "alice", "/terry explain")
    fake.comment(number, "bob", "/terry reject not needed")
    fake.close_by(number, "alice")
    _sync(cli, pid)
    assert _row(cli, pid).state == "rejected"
    replies = [c["body"] for c in fake.comments[number] if not c["body"].startswith("/terry")]
    assert any(f"Proposal {pid} is **rejected**" in b for b in replies), replies
    assert any(
        b.startswith("`reject` from @bob: the pull request was closed before Terry read this")
        for b in replies
    ), replies
    before = len(fake.comments[number])
    _sync(cli, pid)  # answered once
    assert len(fake.comments[number]) == before


def test_an_alert_that_resolves_by_itself_closes_its_pull_request(
    world: tuple[Cli, FakeGitHub],
) -> None:
    cli, fake = world
    pid = _review_proposal(cli, "gh-resolves")["summary"]["id"]
    number = _row(cli, pid).pr_number
    assert number is not None
    refire = alert(
        "ServiceDown",
        fingerprint="gh-resolves",
        host="db-01",
        service="web",
        starts="2026-11-24T10:07:00Z",
    )
    cli.json("alert", "ingest", "-", input=payload([refire]))
    assert any("fired again" in c["body"] for c in fake.comments[number])
    resolved = alert(
        "ServiceDown",
        fingerprint="gh-resolves",
        host="db-01",
        service="web",
        status="resolved",
        ends="2026-11-24T10:09:00Z",
    )
    cli.json("alert", "ingest", "-", input=payload([resolved], status="resolved"))
    assert fake.pulls[number]["state"] == "closed" and not fake.pulls[number]["merged"]
    assert any("resolved by itself" in c["body"] for c in fake.comments[number])
    assert _row(cli, pid).state == "rejected"


def test_a_merge_decision_is_pushed_to_main_on_github(world: tuple[Cli, FakeGitHub]) -> None:
    cli, fake = world
    cli("example", "break", "web-01", "disk")
    out = cli.json(
        "alert",
        "ingest",
        "-",
        input=payload(
            [alert("DiskUsageHigh", fingerprint="gh-auto", host="web-01", mountpoint="/srv/data")]
        ),
    )
    [outcome] = out["proposals"]
    assert (outcome["decision"], outcome["state"]) == ("merge", "verified"), outcome
    row = _row(cli, outcome["proposal_id"])
    assert (
        _git(fake.bare, "rev-parse", "main") == row.merge_sha == _git(cli.repo, "rev-parse", "main")
    )


def test_rate_limits_and_slow_answers_are_waited_out(world: tuple[Cli, FakeGitHub]) -> None:
    cli, fake = world
    pid = _review_proposal(cli, "gh-limited")["summary"]["id"]
    number = _row(cli, pid).pr_number
    assert number is not None
    fake.rate_limit_next(1, reset_in=1)
    started = time.monotonic()
    done = _sync(cli, pid)
    assert done["error"] is None and time.monotonic() - started >= 0.5
    fake.stall_next(10, seconds=8)  # longer than forge.github.timeout (5 s), every retry
    try:
        stalled = cli("sync", "--proposal", str(pid), "--output", "json")
    finally:
        fake.stall_next(0, seconds=0)
    assert stalled.exit_code == 10, stalled.stdout + stalled.stderr
    assert "Timeout" in json.loads(stalled.stdout)[0]["error"]
    assert _row(cli, pid).state == "awaiting_review"


def _runs(cli: Cli, proposal_id: int) -> list[Any]:
    return _rows(cli, RunRow, RunRow.proposal_id == proposal_id)


def test_the_token_is_nowhere_terry_writes(world: tuple[Cli, FakeGitHub]) -> None:
    cli, fake = world
    # Error paths too: a forge that refuses the token, and one that is down.
    cli.env["GITHUB_TOKEN"] = CANARY + "-wrong"
    try:
        refused = cli("sync", "--output", "json")
    finally:
        cli.env["GITHUB_TOKEN"] = CANARY
    assert refused.exit_code == 10, refused.stdout + refused.stderr
    assert CANARY not in refused.stdout + refused.stderr

    found: list[str] = []
    for path in (cli.repo / ".terry").rglob("*"):
        if path.is_file() and path.suffix != ".db" and CANARY.encode() in path.read_bytes():
            found.append(str(path))
    store = Store(config_for(cli.repo).store_url)
    with store.engine.connect() as conn:
        tables = [
            r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        ]
        for table in tables:
            for record in conn.execute(text(f'SELECT * FROM "{table}"')):
                if CANARY in json.dumps([str(v) for v in record]):
                    found.append(f"store table {table}")
    store.dispose()
    for request in fake.requests:
        if CANARY in request["body"]:
            found.append(f"request body {request['method']} {request['path']}")
    assert found == []
    assert CANARY not in " ".join(_ARGV_SEEN), "the token appeared in a process's arguments"


TENANT_MEMBERS = """\
tenants:
  example:
    hosts: ["*"]
    members:
      - {github: octo-view, role: viewer}
      - {github: olga, role: operator}
      - {github_team: acme/dbas, role: operator}
"""


def test_tenant_members_act_by_their_role_and_refusals_say_why(
    world: tuple[Cli, FakeGitHub],
) -> None:
    """Last in the module: it commits tenants to main. A viewer's ``/terry apply``, an
    approval by someone whose team invitation is still pending and a viewer's merge are
    refused with the reason (once); an operator member's approval merges and applies."""
    cli, fake = world
    (cli.repo / "policies" / "tenants.yml").write_text(TENANT_MEMBERS)
    _git(cli.repo, "add", "policies/tenants.yml")
    _git(cli.repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", "tenants")
    _git(cli.repo, "push", "--quiet", "origin", "main")
    cli("example", "break", "db-01", "service")
    pid = _review_proposal(cli, "gh-tenant-members")["summary"]["id"]
    row = _row(cli, pid)
    number, commit = row.pr_number, row.commit_sha
    assert number is not None and commit is not None

    fake.comment(number, "octo-view", "/terry apply")
    fake.team_member("acme/dbas", "dora", state="pending")
    fake.review(number, "dora", "APPROVED", commit_id=commit)
    _sync(cli, pid)
    _sync(cli, pid)  # the same review is answered once
    replies = [c["body"] for c in fake.comments[number] if c["user"]["login"] == fake.bot]
    [viewer] = [b for b in replies if "Refused `apply` from @octo-view" in b]
    assert "octo-view (viewer) may not approve: the viewer role does not" in viewer
    [pending] = [b for b in replies if "The approval by @dora does not count" in b]
    assert "dora is not allowed to approve" in pending
    assert _row(cli, pid).state == "awaiting_review"
    asked = [r["path"] for r in fake.requests if "/teams/" in r["path"]]
    assert "/orgs/acme/teams/dbas/memberships/dora" in asked

    fake.review(number, "olga", "APPROVED", commit_id=commit)
    done = _sync(cli, pid)
    assert done["state"] == "verified", (done, _row(cli, pid).outcome)
    assert _row(cli, pid).approved_by == "olga"

    # a viewer's merge is recorded and not treated as an approval
    second = _review_proposal(cli, "gh-tenant-viewer-merge")["summary"]["id"]
    number = _row(cli, second).pr_number
    assert number is not None
    fake.merge_by(number, "octo-view")
    _sync(cli, second)
    row = _row(cli, second)
    assert row.state == "rejected" and "octo-view (viewer) may not approve" in (row.outcome or "")
