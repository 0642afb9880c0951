"""Argo CD as an applier, for real: Terry's httpx client against a local server that follows
Argo CD's REST API, reading manifests with git from the GitOps repository Terry commits to.

A target with ``terry_applier: argocd`` gets manifest remedies: the proposal edits its
manifest (comments kept), the dry run is an Argo CD sync with ``dryRun`` of the proposal
commit, applying syncs the merge commit and waits for Synced and Healthy, and a sync that
ends Degraded is rolled back by reverting the merge on main and syncing again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from terry.store import Store
from terry.store.models import AuditRow, ProposalRow, RunEventRow, RunRow
from tests.conftest import Cli, config_for, make_cli
from tests.fakes.argocd import FakeArgoCD
from tests.fakes.github import FakeGitHub
from tests.shop import MANIFEST, git, ingest_one, shop_repo

pytestmark = pytest.mark.integration

TOKEN = "argocd-CANARY-token-0000"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Cli, FakeArgoCD]]:
    repo = tmp_path / "ops"
    fake = FakeArgoCD(repo, token=TOKEN)
    shop_repo(repo, fake.base_url)
    fake.add_app("shop", "apps/shop")
    fake.start()
    cli = make_cli(repo)
    cli.env["ARGOCD_AUTH_TOKEN"] = TOKEN
    yield cli, fake
    fake.stop()


def _rows(cli: Cli, model: type, *where: Any, order: Any = None) -> list[Any]:
    store = Store(config_for(cli.repo).store_url)
    try:
        with store.session() as session:
            query = select(model).where(*where)
            rows = list(session.scalars(query.order_by(order) if order is not None else query))
            session.expunge_all()
            return rows
    finally:
        store.dispose()


def test_scale_up_is_a_manifest_change_synced_by_argocd_and_verified(
    world: tuple[Cli, FakeArgoCD],
) -> None:
    cli, fake = world
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-scale", host="shop", replicas="4")
    # Medium risk with no record yet: a person reviews the manifest change first.
    assert outcome["state"] == "awaiting_review", outcome
    pid = str(outcome["proposal_id"])
    shown = cli.json("proposals", "show", pid)
    assert shown["applier"] == "argocd" and shown["target"] == "shop"
    assert shown["playbook_path"] == "apps/shop/shop.yaml"
    # The dry run: an Argo CD sync with dryRun of the proposal commit, nothing changed live.
    [dry] = fake.syncs("shop")
    assert dry == {
        "name": "shop",
        "revision": shown["commit"],
        "dryRun": True,
        "prune": False,
    }
    assert fake.live("shop", "Deployment", "shop")["spec"]["replicas"] == 2
    assert "-  replicas: 2  # the HPA's floor" in shown["check_diff"]
    assert "+  replicas: 4  # the HPA's floor" in shown["check_diff"]
    assert "Argo CD: deployment.apps/shop configured (dry run)" in shown["check_diff"]
    assert "service/shop" not in shown["check_diff"]  # unchanged resources are not diffs

    approved = cli.as_("alice").json("proposals", "approve", pid)
    assert approved["state"] == "verified", approved
    merge = approved["merge_commit"]
    # The edit is on main, in place: comments, order and quoting kept, one line changed.
    on_main = git(cli.repo, "show", f"{merge}:apps/shop/shop.yaml") + "\n"
    assert on_main == MANIFEST.replace("replicas: 2", "replicas: 4")
    # Argo CD synced exactly the merge commit, and the cluster runs it.
    assert [s["revision"] for s in fake.syncs("shop")] == [shown["commit"], merge]
    assert fake.syncs("shop")[1]["dryRun"] is False
    assert fake.live("shop", "Deployment", "shop")["spec"]["replicas"] == 4
    runs = _rows(cli, RunRow, RunRow.proposal_id == int(pid), order=RunRow.id)
    assert [(r.kind, r.status) for r in runs] == [
        ("check", "successful"),
        ("apply", "successful"),
        ("verify", "successful"),
    ]
    assert runs[1].commit_sha == merge
    events = _rows(cli, RunEventRow, RunEventRow.run_id == runs[1].id, order=RunEventRow.seq)
    assert ("argocd_resource", "Deployment shop/shop", "changed") in [
        (e.event, e.task, e.status) for e in events
    ]
    assert events[-1].event == "argocd_health" and events[-1].status == "ok"
    # Nobody's token in the store.
    for row in _rows(cli, RunEventRow):
        assert TOKEN not in str(row.data)
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in fake.requests)


def test_a_sync_that_degrades_is_reverted_on_main_and_synced_back(
    world: tuple[Cli, FakeArgoCD],
) -> None:
    cli, fake = world
    fake.capacity = 5  # the cluster cannot run more than five replicas
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-degrade", host="shop", replicas="8")
    pid = str(outcome["proposal_id"])
    before = git(cli.repo, "rev-parse", "main")

    approved = cli.as_("alice").json("proposals", "approve", pid)

    assert approved["state"] == "rolled_back", approved
    merge = approved["merge_commit"]
    revert = git(cli.repo, "rev-parse", "main")
    assert git(cli.repo, "rev-parse", f"{revert}^") == merge
    message = git(cli.repo, "log", "-1", "--format=%B", revert)
    assert f"Terry-Reverts: {merge}" in message
    # main says what it said before the fix; the cluster runs that again, and is healthy.
    assert git(cli.repo, "diff", before, revert) == ""
    assert [s["revision"] for s in fake.syncs("shop")][1:] == [merge, revert]
    assert fake.live("shop", "Deployment", "shop")["spec"]["replicas"] == 2
    runs = _rows(cli, RunRow, RunRow.proposal_id == int(pid), order=RunRow.id)
    assert [(r.kind, r.status) for r in runs] == [
        ("check", "successful"),
        ("apply", "failed"),
        ("rollback", "successful"),
    ]
    assert runs[2].commit_sha == revert
    reasons = [
        a.reason
        for a in _rows(cli, AuditRow, AuditRow.entity == "proposal", AuditRow.entity_id == int(pid))
    ]
    assert any("exceeded its progress deadline" in r for r in reasons), reasons
    assert "rolled back: apply failed" in reasons
    assert "Degraded" in (approved["outcome"] or "")


def test_memory_limit_edit_picks_the_container_by_name(world: tuple[Cli, FakeArgoCD]) -> None:
    cli, fake = world
    outcome = ingest_one(
        cli, "ContainerOOMKilled", "fp-oom", host="shop", container="app", memory="1Gi"
    )
    pid = str(outcome["proposal_id"])
    approved = cli.as_("alice").json("proposals", "approve", pid)
    assert approved["state"] == "verified", approved
    live = fake.live("shop", "Deployment", "shop")
    assert live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "memory": "1Gi"
    }
    text = git(cli.repo, "show", "main:apps/shop/shop.yaml")
    # The comment stays, at its column.
    assert "              memory: 1Gi     # raised by hand twice already\n" in text


def test_remedies_and_targets_must_share_an_applier(world: tuple[Cli, FakeArgoCD]) -> None:
    cli, fake = world
    # A manifest remedy for a host Ansible manages: kept for a human, nothing proposed.
    wrong = ingest_one(cli, "AppReplicasTooLow", "fp-wrong-1", host="web-01", replicas="3")
    assert wrong["proposal_id"] is None
    assert "is applied by argocd, but host web-01 is applied by ansible" in wrong["note"]
    # A playbook remedy for an Argo CD target: the same.
    other = ingest_one(cli, "ServiceDown", "fp-wrong-2", host="shop", service="web")
    assert other["proposal_id"] is None
    assert "is applied by ansible, but host shop is applied by argocd" in other["note"]
    # A container the manifest does not have: the reason, not a broken proposal.
    missing = ingest_one(cli, "ContainerOOMKilled", "fp-wrong-3", host="shop", container="sidecar")
    assert missing["proposal_id"] is None
    assert "0 items of containers have name='sidecar'" in missing["note"]
    # Asking for what the manifest already says changes nothing and proposes nothing.
    same = ingest_one(cli, "AppReplicasTooLow", "fp-wrong-4", host="shop", replicas="2")
    assert same["proposal_id"] is None and "already says so" in same["note"]
    assert fake.syncs("shop") == []


def test_a_hostile_label_value_is_data_in_the_manifest(world: tuple[Cli, FakeArgoCD]) -> None:
    cli, fake = world
    # An int parameter refuses it outright; nothing is proposed.
    out = ingest_one(
        cli, "AppReplicasTooLow", "fp-hostile", host="shop", replicas="4\nkind: Secret"
    )
    assert out["proposal_id"] is None and "replicas" in out["note"]
    assert git(cli.repo, "branch", "--list", "terry/*") == ""
    assert fake.syncs("shop") == []


def test_argocd_refusals_and_outages(world: tuple[Cli, FakeArgoCD]) -> None:
    cli, fake = world
    # Argo CD down for two requests: retried with backoff, the dry run goes through.
    fake.fail_next(2, status=503)
    ok = ingest_one(cli, "AppReplicasTooLow", "fp-retry", host="shop", replicas="3")
    assert ok["state"] == "awaiting_review", ok
    # A wrong token: Argo CD's 401 and its message, the proposal fails, nothing synced.
    cli.env["ARGOCD_AUTH_TOKEN"] = "not-the-token"
    bad = ingest_one(cli, "AppReplicasTooLow", "fp-401", host="shop", replicas="5")
    assert bad["state"] == "failed", bad
    [row] = _rows(cli, ProposalRow, ProposalRow.id == bad["proposal_id"])
    assert "Argo CD answered 401: invalid session: token signature is invalid" in row.outcome
    assert "not-the-token" not in row.outcome
    assert len(fake.syncs("shop")) == 1  # only the first proposal's dry run
    [check] = _rows(cli, RunRow, RunRow.proposal_id == bad["proposal_id"])
    assert check.status == "error"


def test_with_github_argocd_reads_the_pushed_branch_merge_and_revert(tmp_path: Path) -> None:
    """Argo CD reads the repository on GitHub: the proposal branch is pushed before its dry
    run, the merge happens there, and the revert is pushed before it is synced."""
    repo, bare = tmp_path / "ops", tmp_path / "gitops.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    github = FakeGitHub(bare, owner="acme", name="gitops", token="ghp_test")
    argocd = FakeArgoCD(bare, token=TOKEN)
    forge = {
        "kind": "github",
        "github": {
            "repository": "acme/gitops",
            "api_url": github.base_url,
            "allowed_users": ["alice"],
            "seconds_between_writes": 0,
            "retries": 1,
            "timeout": 5,
        },
    }
    shop_repo(repo, argocd.base_url, forge=forge)
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "--quiet", "origin", "main")
    argocd.capacity = 5
    argocd.add_app("shop", "apps/shop")
    github.start()
    argocd.start()
    try:
        cli = make_cli(repo)
        cli.env.update({"ARGOCD_AUTH_TOKEN": TOKEN, "GITHUB_TOKEN": "ghp_test"})
        outcome = ingest_one(cli, "AppReplicasTooLow", "fp-gh", host="shop", replicas="8")
        assert outcome["state"] == "awaiting_review", outcome
        shown = cli.json("proposals", "show", str(outcome["proposal_id"]))
        # The dry run found the branch commit on GitHub, and the pull request shows it.
        assert shown["check_summary"]["ok"] is True, shown["check_summary"]
        number = shown["pull_request"]["number"]
        body = github.pulls[number]["body"]
        assert "### The manifest, as it will be (`apps/shop/shop.yaml`)" in body
        assert "asks Argo CD to sync `shop`" in body
        assert "+  replicas: 8  # the HPA's floor" in body

        merge = github.merge_by(number, "alice")
        [done] = cli.json("sync", "--proposal", str(outcome["proposal_id"]))
        assert done["state"] == "rolled_back", done
        revert = git(bare, "rev-parse", "main")
        assert git(bare, "rev-parse", f"{revert}^") == merge
        assert git(repo, "rev-parse", "main") == revert
        assert [s["revision"] for s in argocd.syncs("shop")] == [shown["commit"], merge, revert]
        assert argocd.live("shop", "Deployment", "shop")["spec"]["replicas"] == 2
    finally:
        argocd.stop()
        github.stop()
