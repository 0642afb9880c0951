"""GitHub review of a Kubernetes target, two ways the main suite does not cover: Terry
authenticated as a GitHub App (JWT → installation token, acting as ``<slug>[bot]``), and
``pr_for_merges`` (a merge decision still goes through a pull request, opened and merged by
Terry, so every change has one). Argo CD applies; both services are the local stand-ins.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text

from terry.store import Store
from tests.conftest import Cli, config_for, make_cli
from tests.fakes.argocd import FakeArgoCD
from tests.fakes.github import FakeGitHub
from tests.shop import git, ingest_one, shop_repo

pytestmark = pytest.mark.integration

ARGO_TOKEN = "argocd-token-for-the-shop"
APP_ID, INSTALLATION = 4242, 77
LOW_RISK = """\
remedies:
  - name: shop-busy
    summary: Add replicas to the shop when it is busy
    match: {alertname: [ShopBusy]}
    risk: low
    params:
      replicas: {from: label:replicas, type: int, min: 1, max: 9, default: 3}
    manifest:
      kind: Deployment
      set: {spec.replicas: "{replicas}"}
"""


@dataclass
class Shop:
    cli: Cli
    github: FakeGitHub
    argocd: FakeArgoCD
    bare: Path


def _shop(
    tmp_path: Path, github_config: dict[str, Any]
) -> tuple[Path, Path, FakeGitHub, dict[str, Any]]:
    repo, bare = tmp_path / "ops", tmp_path / "gitops.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    github = FakeGitHub(bare, owner="acme", name="gitops", token="ghp_not_used_here")
    forge = {
        "kind": "github",
        "github": {
            "repository": "acme/gitops",
            "api_url": github.base_url,
            "allowed_users": ["alice"],
            "seconds_between_writes": 0,
            "retries": 1,
            "timeout": 5,
            **github_config,
        },
    }
    return repo, bare, github, forge


@pytest.fixture
def app_shop(tmp_path: Path) -> Iterator[tuple[Shop, str]]:
    """The shop on GitHub, Terry signed in as a GitHub App (no GITHUB_TOKEN at all)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    yield from _started(tmp_path, {}, app=(public, private))


@pytest.fixture
def pr_shop(tmp_path: Path) -> Iterator[tuple[Shop, str]]:
    """The shop on GitHub with pr_for_merges, and a low-risk remedy the gate merges."""
    yield from _started(tmp_path, {"pr_for_merges": True}, extra_role=LOW_RISK)


def _started(
    tmp_path: Path,
    github_config: dict[str, Any],
    *,
    app: tuple[str, str] | None = None,
    extra_role: str | None = None,
) -> Iterator[tuple[Shop, str]]:
    repo, bare, github, forge = _shop(tmp_path, github_config)
    argocd = FakeArgoCD(bare, token=ARGO_TOKEN)
    shop_repo(repo, argocd.base_url, forge=forge)
    if extra_role:
        (repo / "roles" / "shop_fixes").mkdir()
        (repo / "roles" / "shop_fixes" / "remedies.yml").write_text(extra_role)
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", "shop fixes")
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "--quiet", "origin", "main")
    argocd.add_app("shop", "apps/shop")
    cli = make_cli(repo)
    cli.env["ARGOCD_AUTH_TOKEN"] = ARGO_TOKEN
    private = ""
    if app is not None:
        public, private = app
        github.enable_app(APP_ID, public, INSTALLATION, "terry-ops")
        cli.env.update(
            {
                "GITHUB_APP_ID": str(APP_ID),
                "GITHUB_APP_PRIVATE_KEY": private,
                "GITHUB_APP_INSTALLATION_ID": str(INSTALLATION),
            }
        )
    else:
        cli.env["GITHUB_TOKEN"] = github.token
    github.start()
    argocd.start()
    try:
        yield Shop(cli, github, argocd, bare), private
    finally:
        argocd.stop()
        github.stop()


def test_as_a_github_app_terry_opens_answers_and_applies(app_shop: tuple[Shop, str]) -> None:
    shop, private_key = app_shop
    cli, github = shop.cli, shop.github
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-app", host="shop", replicas="4")
    assert outcome["state"] == "awaiting_review", outcome
    pid = outcome["proposal_id"]
    number = cli.json("proposals", "show", str(pid))["pull_request"]["number"]
    pull = github.pulls[number]
    # Opened with an installation token the App's JWT obtained, as the App's bot.
    assert pull["user"]["login"] == "terry-ops[bot]" and pull["user"]["type"] == "Bot"
    assert github.installation_tokens, "no installation token was requested"

    github.comment(number, "alice", "/terry explain")
    [first] = cli.json("sync", "--proposal", str(pid))
    assert first["state"] == "awaiting_review", first
    replies = [c for c in github.comments[number] if c["user"]["login"] == "terry-ops[bot]"]
    assert len(replies) == 1 and "incident" in replies[0]["body"].lower()
    assert any(r["path"] == "/app" for r in github.requests)  # who the bot is: GET /app
    # The bot's own reply is never read as a command on the next sync.
    [again] = cli.json("sync", "--proposal", str(pid))
    assert again["notes"] == [] or all("explain" not in n for n in again["notes"])
    assert len([c for c in github.comments[number] if c["user"]["type"] == "Bot"]) == 1

    merge = github.merge_by(number, "alice")
    [done] = cli.json("sync", "--proposal", str(pid))
    assert done["state"] == "verified", done
    assert shop.argocd.syncs("shop")[-1]["revision"] == merge
    # The App's private key is nowhere in the store.
    marker = private_key.splitlines()[5]
    store = Store(config_for(cli.repo).store_url)
    try:
        with store.session() as session:
            for table in ("proposals", "runs", "run_events", "audit", "forge_deliveries"):
                dump = str(session.execute(text(f"SELECT * FROM {table}")).all())
                assert marker not in dump and "ghs_" not in dump, table
    finally:
        store.dispose()


def test_with_pr_for_merges_a_merge_decision_goes_through_a_pull_request(
    pr_shop: tuple[Shop, str],
) -> None:
    shop, _ = pr_shop
    cli, github = shop.cli, shop.github
    outcome = ingest_one(cli, "ShopBusy", "fp-busy", host="shop", replicas="5")
    # Low risk on staging: the gate merges, and the merge is a pull request Terry merged.
    assert outcome["state"] == "verified", outcome
    shown = cli.json("proposals", "show", str(outcome["proposal_id"]))
    number = shown["pull_request"]["number"]
    pull = github.pulls[number]
    assert pull["state"] == "closed" and pull["merged"] is True
    assert pull["merged_by"]["login"] == github.bot
    assert pull["merge_commit_sha"] == shown["merge_commit"]
    assert git(shop.bare, "rev-parse", "main") == shown["merge_commit"]
    assert shop.argocd.syncs("shop")[-1]["revision"] == shown["merge_commit"]
    assert shop.argocd.live("shop", "Deployment", "shop")["spec"]["replicas"] == 5
