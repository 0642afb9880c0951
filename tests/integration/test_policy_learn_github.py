"""`terry policy learn` with GitHub: the learned edit becomes a pull request a person
merges. The real PyGithub client against the local GitHub (``tests/fakes/github.py``), git
pushing to a real bare repository, the real store (SQLite and PostgreSQL).

The record is written as the pipeline leaves it (finished proposal rows with the
environment the gate judged them in); the pipeline writing it is test_policy_learn's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.store import Store
from terry.store.models import IncidentRow, ProposalRow, utcnow
from tests.conftest import Cli, make_cli
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.integration

TOKEN = "ghp_CANARY0000policy0000learn0000token"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass
class World:
    cli: Cli
    fake: FakeGitHub
    bare: Path
    store: Store

    def record(self, remedy: str, environment: str, *states: str) -> None:
        """Finished proposals of ``remedy`` in ``environment``, oldest first."""
        now = utcnow()
        with self.store.session() as session:
            for n, state in enumerate(states):
                incident = IncidentRow(
                    fingerprint=f"{remedy}-{environment}-{n}",
                    source="alert",
                    title=f"{remedy} {n}",
                    host="db-01",
                    state="resolved",
                    opened_at=now,
                    resolved_at=now,
                    fixed_at=now if state == "verified" else None,
                )
                session.add(incident)
                session.flush()
                session.add(
                    ProposalRow(
                        incident_id=incident.id,
                        remedy=remedy,
                        role="disk_cleanup",
                        hosts=["db-01"],
                        params={},
                        risk="low",
                        state=state,
                        environment=environment,
                        created_at=now - timedelta(seconds=60),
                        updated_at=now,
                        reasons=[],
                        check_summary={},
                    )
                )

    def pulls(self) -> list[dict[str, Any]]:
        return [p for _n, p in sorted(self.fake.pulls.items())]


@pytest.fixture
def world(gitops: Path, store_url: str, tmp_path: Path) -> Iterator[World]:
    bare = tmp_path / "gitops.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    _git(gitops, "remote", "add", "origin", str(bare))
    fake = FakeGitHub(bare, token=TOKEN)
    fake.start()
    raw = yaml.safe_load((gitops / "terry.yml").read_text())
    raw["forge"] = {
        "kind": "github",
        "github": {
            "repository": f"{fake.owner}/{fake.name}",
            "api_url": fake.base_url,
            "seconds_between_writes": 0,
            "retries": 1,
            "timeout": 5,
        },
    }
    (gitops / "terry.yml").write_text(yaml.safe_dump(raw))
    _git(gitops, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qam", "forge: github")
    _git(gitops, "push", "--quiet", "origin", "main")
    cli = make_cli(gitops, store_url)
    cli.env["GITHUB_TOKEN"] = TOKEN
    store = Store(store_url)
    store.migrate()
    yield World(cli, fake, bare, store)
    store.dispose()
    fake.stop()


def test_the_learned_edit_is_a_pull_request_and_asking_again_updates_it(world: World) -> None:
    world.record("disk-usage-high", "production", *["verified"] * 5)
    world.record("service-down", "production", "verified", "verified", "rolled_back")

    learned = world.cli.json("policy", "learn")
    assert learned["changes"] == ["add disk-usage-high@production"]
    [pull] = world.pulls()
    assert pull["head"]["ref"] == learned["branch"] and pull["base"]["ref"] == "main"
    assert learned["pull_url"] == pull["html_url"] and learned["pull_error"] is None
    assert pull["title"].startswith("policy: learn from outcomes: auto-merge disk-usage-high")
    assert "| add | `disk-usage-high` | production | 5 of 5 verified" in pull["body"]
    assert "review → merge" in pull["body"]
    assert {label["name"] for label in pull["labels"]} == {"terry", "policy"}
    # the branch is on the remote, with the edit and nothing else
    data = json.loads(_git(world.bare, "show", f"{learned['branch']}:policies/data.json"))
    assert data["terry"]["settings"]["auto_merge"] == {"disk-usage-high": ["production"]}
    assert _git(world.bare, "diff", "--name-only", "main", learned["branch"]) == (
        "policies/data.json"
    )
    service = [s for s in learned["standings"] if s["remedy"] == "service-down"]
    assert [(s["change"], s["holds"]) for s in service] == [("none", False)]

    again = world.cli.json("policy", "learn")
    assert again["already_proposed"] is True and again["branch"] == learned["branch"]
    assert len(world.pulls()) == 1  # the same pull request, found by its branch


def test_github_down_keeps_the_branch_and_says_why(world: World) -> None:
    world.record("disk-usage-high", "production", *["verified"] * 5)
    world.fake.fail_next(10, status=502)
    result = world.cli("policy", "learn", "--output", "json")
    assert result.exit_code == 0, result.stderr
    learned = json.loads(result.stdout)
    assert learned["pull_url"] is None and "502" in learned["pull_error"]
    assert _git(world.cli.repo, "rev-parse", "--verify", learned["branch"])  # kept locally
    assert world.pulls() == []
    world.fake.fail_next(0)
    text = world.cli("policy", "learn")  # GitHub is back: the same branch gets its PR
    assert text.exit_code == 0, text.stderr
    assert "pull request: http" in text.stdout
    [pull] = world.pulls()
    assert pull["head"]["ref"] == learned["branch"]
