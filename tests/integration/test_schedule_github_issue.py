"""A schedule's report in a GitHub issue, updated in place: the real PyGithub client
against the local GitHub (``tests/fakes/github.py``), through ``run_schedule``.

No ansible here: each run's scan is recorded by Terry's own recording code
(``start_scan``/``finish_scan``) through the schedule's drift-fix hook, and read back by the
report renderer as any scan is. Scans of real hosts are ``test_drift_example``'s.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from terry.config import Config, load_config
from terry.drift.items import DriftItem, HostScan, HostStatus, ItemKind
from terry.drift.ledger import finish_scan, start_scan
from terry.drift.report import load_report
from terry.forges.github import GitHubForge, credentials_from_env
from terry.service.schedules import ScheduleRun, issue_marker, run_schedule
from terry.store import Store
from terry.store.models import ScheduleRunRow
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.integration

TOKEN = "ghp_CANARY0000schedule0000issue0000token"
ENV = {"GITHUB_TOKEN": TOKEN}
NAME = "drift-issue"
MARKER = issue_marker(NAME)


@dataclass
class World:
    repo: Path
    config: Config
    store: Store
    fake: FakeGitHub

    def run(self, hosts: dict[str, list[DriftItem]], environ: dict[str, str] = ENV) -> ScheduleRun:
        """Run the schedule; its scan finds ``hosts`` (no items: clean)."""

        def scan(_limit: str | None) -> tuple[int, None]:
            head = _git(self.repo, "rev-parse", "HEAD")
            scan_id = start_scan(self.store, commit=head, limit=None, run_dir="")
            finish_scan(self.store, scan_id, {h: _host(h, items) for h, items in hosts.items()})
            return scan_id, None

        return run_schedule(self.config, self.store, NAME, fix=scan, environ=environ)

    def terry_issues(self) -> list[dict[str, Any]]:
        return [i for i in self.fake.issues.values() if i["user"]["login"] == self.fake.bot]

    def issue_requests(self, method: str) -> int:
        path = f"/repos/{self.fake.owner}/{self.fake.name}/issues"
        return sum(
            1 for r in self.fake.requests if r["method"] == method and r["path"].startswith(path)
        )


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _host(name: str, items: list[DriftItem]) -> HostScan:
    return HostScan(name, HostStatus.DRIFTED if items else HostStatus.CLEAN, tuple(items))


def _file(host: str, path: str, diff: str) -> DriftItem:
    return DriftItem(host, ItemKind.TASK, "app_config", "Render app.conf", f"file {path}", diff)


@pytest.fixture
def world(gitops: Path, store: Store, tmp_path: Path) -> Iterator[World]:
    bare = tmp_path / "gitops.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    _git(gitops, "push", "--quiet", str(bare), "main", "main:refs/heads/terry/proposal-1")
    fake = FakeGitHub(bare, token=TOKEN)
    fake.start()
    raw = yaml.safe_load((gitops / "terry.yml").read_text())
    raw["forge"] = {  # kind stays local: the issue needs only the repository
        "github": {
            "repository": f"{fake.owner}/{fake.name}",
            "api_url": fake.base_url,
            "seconds_between_writes": 0,
            "retries": 1,
            "timeout": 5,
        }
    }
    raw["schedules"] = [
        {
            "name": NAME,
            "interval": 3600,
            "run": "drift-fix",
            "deliver": [{"github_issue": {"title": "Drift report", "labels": ["terry-drift"]}}],
        }
    ]
    (gitops / "terry.yml").write_text(yaml.safe_dump(raw))
    yield World(gitops, load_config(gitops, environ={}), store, fake)
    fake.stop()


def test_the_first_report_opens_an_issue_and_the_next_updates_it(world: World) -> None:
    alices = world.fake.open_issue_by("alice", "Drift report", "web-01 looks odd", ("bug",))
    impostor = world.fake.open_issue_by("mallory", "Drift report", f"{MARKER}\nmine now")
    before = [dict(alices), dict(impostor)]
    diff = "--- before: live\n+++ after: desired\n-```\n-@alice closes #1 <img src=x>\n+ok\n"

    first = world.run({"web-01": [_file("web-01", "/etc/app/app.conf", diff)], "web-02": []})

    assert first.status == "done", first.detail
    [issue] = world.terry_issues()
    assert first.delivered == (f"github issue #{issue['number']} opened: {issue['html_url']}",)
    assert issue["title"] == "Drift report"
    assert [label["name"] for label in issue["labels"]] == ["terry-drift"]
    body = issue["body"]
    assert body.splitlines()[0] == MARKER
    assert f"# Drift report: scan {first.scan_id}" in body
    # The host's text stays data: in a block whose fence is longer than its backticks.
    assert "````diff\n--- before: live" in body and "-@alice closes #1 <img src=x>\n" in body

    second = world.run({"web-01": [], "web-02": [_file("web-02", "/etc/motd", "-hi\n+hello\n")]})

    assert second.status == "done", second.detail
    assert second.delivered == (f"github issue #{issue['number']} updated: {issue['html_url']}",)
    [updated] = world.terry_issues()
    assert updated["number"] == issue["number"]
    assert f"# Drift report: scan {second.scan_id}" in updated["body"]
    assert f"# Drift report: scan {first.scan_id}" not in updated["body"]
    assert "file /etc/motd" in updated["body"]
    assert world.issue_requests("POST") == 1 and world.issue_requests("PATCH") == 1
    assert [world.fake.issues[i["number"]] for i in before] == before  # never touched


def test_a_new_title_in_terry_yml_is_applied_to_the_issue(world: World) -> None:
    world.run({"web-01": []})
    plain = {"name": NAME, "interval": 3600, "run": "drift-fix", "deliver": [{"github_issue": {}}]}
    world.config = load_config(world.repo, environ={}, overrides={"schedules": [plain]})

    world.run({"web-01": []})

    [issue] = world.terry_issues()
    assert issue["title"] == f"Terry drift report ({NAME})"
    assert [label["name"] for label in issue["labels"]] == ["terry-drift"]  # as opened


def test_pull_requests_and_closed_issues_are_not_the_report(world: World) -> None:
    github = world.config.forge.github
    forge = GitHubForge(github, credentials_from_env(github, ENV))
    pull = forge.open_pull(
        branch="terry/proposal-1", base="main", title="Drift report", body=f"{MARKER}\nx"
    )

    first = world.run({"web-01": []})
    [issue] = world.terry_issues()
    assert issue["number"] != pull.number and "opened" in first.delivered[0]
    assert world.fake.pulls[pull.number]["body"] == f"{MARKER}\nx"

    world.fake.close_issue_by(issue["number"], "alice")  # closed: history, not the report
    second = world.run({"web-01": []})

    assert "opened" in second.delivered[0]
    closed, reopened = sorted(world.terry_issues(), key=lambda i: i["number"])
    assert closed["number"] == issue["number"] and closed["state"] == "closed"
    assert f"scan {first.scan_id}" in closed["body"]
    assert reopened["state"] == "open" and f"scan {second.scan_id}" in reopened["body"]


def test_the_issue_is_found_past_the_first_page(world: World) -> None:
    for n in range(130):
        world.fake.open_issue_by("alice", f"question {n}", "?")
    world.run({"web-01": []})
    [issue] = world.terry_issues()
    seen = len(world.fake.requests)

    again = world.run({"web-01": []})

    assert again.delivered == (f"github issue #{issue['number']} updated: {issue['html_url']}",)
    assert len(world.terry_issues()) == 1
    listed = [r["query"] for r in world.fake.requests[seen:] if r["path"].endswith("/issues")]
    assert any("page=2" in q for q in listed), listed


def test_a_report_too_long_for_an_issue_is_cut_where_it_may_be(world: World) -> None:
    # Five hosts of 20 000-character diffs (with a run of four backticks: five-tick fences).
    diff = "".join(f"-line {n} ```` was\n+line {n} is\n" for n in range(700))
    hosts = {f"web-{n:02}": [_file(f"web-{n:02}", "/etc/big.conf", diff)] for n in range(5)}

    done = world.run(hosts)

    assert done.status == "done", done.detail
    [issue] = world.terry_issues()
    body = issue["body"]
    assert len(body) <= 65_536
    assert body.endswith(f"The whole report: `terry drift report --scan {done.scan_id}`.\n")
    report, note = body.rsplit("\n\n---\n\n", 1)
    assert "cut here" in note
    fences = [line for line in report.splitlines() if re.fullmatch(r"`{3,}(diff)?", line)]
    assert fences and len(fences) % 2 == 0 and fences[-1] == "`````"  # the cut block closed

    again = world.run(hosts)  # the update is held to the same limit
    assert again.status == "done" and "updated" in again.delivered[0], again.detail


@pytest.mark.parametrize(
    ("outage", "environ", "reason"),
    [
        (None, {"GITHUB_TOKEN": "ghp_revoked"}, "HTTP 401 Bad credentials"),
        (None, {}, "set GITHUB_TOKEN, or GITHUB_APP_ID"),
        ("502", ENV, "too many 502 error responses"),
        ("rate-limit", ENV, "too many 403 error responses"),
    ],
)
def test_a_github_failure_is_recorded_and_the_scan_kept(
    world: World, outage: str | None, environ: dict[str, str], reason: str
) -> None:
    if outage == "502":
        world.fake.fail_next(100, status=502)
    elif outage == "rate-limit":
        world.fake.rate_limit_next(100, reset_in=1)

    failed = world.run({"web-01": [_file("web-01", "/etc/app/app.conf", "-a\n+b\n")]}, environ)

    assert failed.status == "failed" and failed.scan_id is not None
    assert f"scan {failed.scan_id}: 1 host(s), 1 drifted" in failed.detail
    assert "delivery failed: " in failed.detail and reason in failed.detail, failed.detail
    assert TOKEN not in failed.detail
    with world.store.session() as session:
        row = session.scalars(select(ScheduleRunRow).where(ScheduleRunRow.name == NAME)).one()
        assert (row.status, row.scan_id, row.detail) == ("failed", failed.scan_id, failed.detail)
    assert load_report(world.store, world.config, failed.scan_id).summary.items == 1
    assert world.terry_issues() == []

    world.fake.fail_next(0)
    world.fake.rate_limit_next(0)
    after = world.run({"web-01": []})  # GitHub is back: the next run delivers
    assert after.status == "done" and "opened" in after.delivered[0], after.detail
