"""Terry merges the commit its dry run and its gate saw, never a proposal branch's tip: a
commit someone pushes on the branch afterwards is not merged and never runs (DESIGN.md
invariant 6), whether a person approves the proposal or the gate merges it at once. What
was pushed stays on the branch, and the merge says so.

Real ansible-playbook on the example hosts (local connection, scratch roots), real git, real
regorus, SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.app import build_pipeline
from terry.gitops.repo import Repo
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from tests.conftest import Cli, alert, config_for, example_fleet, payload

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with example_fleet(tmp_path_factory.mktemp("merge-checked") / "ops") as cli:
        yield cli


def _marker(cli: Cli, host: str) -> Path:
    return cli.repo / ".terry" / "hosts" / host / "pushed-after-the-dry-run"


def _push_on(cli: Cli, proposal_id: int, host: str) -> str:
    """A person commits on the proposal's branch: one more play in its playbook, which
    leaves a file on the host when it runs."""
    shown = cli.json("proposals", "show", str(proposal_id))
    repo = Repo(cli.repo)
    branch, path = shown["summary"]["branch"], shown["playbook_path"]
    text = repo.read_text(repo.head(branch), path)
    assert text is not None
    play = {
        "name": "Pushed after the dry run",
        "hosts": host,
        "gather_facts": False,
        "tags": ["apply"],
        "tasks": [
            {"ansible.builtin.copy": {"content": "unchecked\n", "dest": str(_marker(cli, host))}}
        ],
    }
    return repo.commit_on(
        branch=branch,
        tip=repo.head(branch),
        files={path: text + yaml.safe_dump([play], sort_keys=False)},
        message="one more play",
    )


def _merged_as_checked(cli: Cli, proposal_id: int, pushed: str, host: str) -> dict[str, Any]:
    shown = cli.json("proposals", "show", str(proposal_id))
    repo, path = Repo(cli.repo), shown["playbook_path"]
    commit, merge = shown["commit"], shown["merge_commit"]
    assert repo.is_ancestor(commit, repo.head()), "the checked commit is on main"
    assert not repo.is_ancestor(pushed, repo.head()), "the pushed commit is not"
    assert repo.read_text(merge, path) == repo.read_text(commit, path)
    assert repo.head(shown["summary"]["branch"]) == pushed, "what was pushed is kept"
    assert not _marker(cli, host).exists(), "the unchecked play never ran"
    merged = [h["detail"] for h in shown["history"] if h["detail"].startswith("merged into")]
    assert merged and f"its branch is now {pushed[:10]}" in merged[0], shown["history"]
    assert f"the dry run and the gate saw {commit[:10]}" in merged[0]
    return shown


def test_a_commit_pushed_before_the_approval_is_not_merged(fleet: Cli) -> None:
    host = "db-01"  # production: the shipped policy asks a person
    fleet("example", "break", host, "disk")
    body = payload(
        [alert("DiskUsageHigh", fingerprint="pushed", host=host, mountpoint="/srv/data")]
    )
    [outcome] = fleet.json("alert", "ingest", "-", input=body)["proposals"]
    pid = outcome["proposal_id"]
    assert outcome["state"] == "awaiting_review", outcome
    pushed = _push_on(fleet, pid, host)

    approved = fleet.as_("erin").json("proposals", "approve", str(pid))

    assert approved["state"] == "verified", approved
    _merged_as_checked(fleet, pid, pushed, host)


class _PushDuringTheDryRun:
    """Terry's reporter; the moment the dry run is reported, a person pushes on the branch
    (the gate has not decided yet)."""

    def __init__(self, cli: Cli, host: str) -> None:
        self.cli, self.host = cli, host
        self.pushed = ""
        self.steps: list[str] = []

    def step(self, proposal_id: int | None, message: str) -> None:
        self.steps.append(message)
        if message.startswith("check-mode diff") and proposal_id and not self.pushed:
            self.pushed = _push_on(self.cli, proposal_id, self.host)

    def event(self, proposal_id: int, kind: str, event: object) -> None:
        return None


def test_a_commit_pushed_before_the_gate_merges_is_not_merged(fleet: Cli) -> None:
    host = "web-01"  # staging, low risk: the gate merges at once
    fleet("example", "break", host, "disk")
    config = config_for(fleet.repo)
    store = Store(config.store_url)
    store.migrate()
    reporter = _PushDuringTheDryRun(fleet, host)
    pipeline = build_pipeline(config, store, reporter=reporter)
    body = payload([alert("DiskUsageHigh", fingerprint="gated", host=host, mountpoint="/srv/data")])

    [outcome] = pipeline.ingest(parse_payload(body)).outcomes

    assert reporter.pushed, reporter.steps
    shown = _merged_as_checked(fleet, outcome.proposal_id, reporter.pushed, host)
    assert shown["summary"]["state"] == "verified", shown["summary"]
    said = [s for s in reporter.steps if s.startswith("merged into")]
    assert said and f"its branch is now {reporter.pushed[:10]}" in said[0], reporter.steps
