"""Incident reports (issue 15): ``terry incidents report INC`` after a real pipeline run, in
Markdown, HTML and JSON, with every section; hostile alert text stays text in all three;
closed incidents' reports are committed to main once (``terry incidents archive``), and the
file in git is what ``--format md`` prints.

Real ansible-playbook on the example hosts (local connection, scratch roots), real git, real
regorus; the archive's own test runs under SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.demo import example
from tests.conftest import Cli, alert, config_for, example_fleet, make_cli, payload

pytestmark = pytest.mark.integration

ESC = "\x1b"
HOSTILE = {
    "html": "<script>alert(1)</script><img src=x onerror=alert(2)>",
    "link": "[click me](http://evil.example/x) ![pixel](http://evil.example/p.png)",
    "ticks": "```\n# not a heading\n``` `rm -rf /`",
    "ansi": f"{ESC}[31mRED{ESC}[0m{ESC}]0;owned{ESC}\\",
    "jinja": "{{ 7*7 }} {% raw %}{{ config }}{% endraw %}",
    "table": "a | b | c",
}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _fire_and_resolve(cli: Cli, firing: dict[str, Any]) -> dict[str, Any]:
    """Feed ``firing``; the outcome of its proposal (or the alert's result when none)."""
    out = cli.json("alert", "ingest", "-", input=payload([firing]))
    return out["proposals"][0] if out["proposals"] else out["alerts"][0]


def _resolve(cli: Cli, firing: dict[str, Any]) -> None:
    resolved = {**firing, "status": "resolved", "endsAt": _now()}
    result = cli(
        "alert", "ingest", "-", "--output", "json", input=payload([resolved], status="resolved")
    )
    assert result.exit_code == 0, result.stderr


def _report(cli: Cli, key: str, fmt: str) -> str:
    result = cli("incidents", "report", key, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    return str(result.stdout)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with example_fleet(tmp_path_factory.mktemp("incident-report") / "ops") as cli:
        yield cli


@pytest.fixture(scope="module")
def fixed_twice(fleet: Cli) -> tuple[dict[str, Any], dict[str, Any]]:
    """db-01's service stopped twice: each time a proposal waits for review (production),
    alice approves it, it is applied, verified, and the alert resolves."""
    outcomes = []
    for n in (1, 2):
        fleet("example", "break", "db-01", "service")
        firing = alert("ServiceDown", fingerprint=f"report-svc-{n}", host="db-01", service="web")
        firing["startsAt"] = _now()
        outcome = _fire_and_resolve(fleet, firing)
        assert outcome["state"] == "awaiting_review", outcome
        approved = fleet.as_("alice").json("proposals", "approve", str(outcome["proposal_id"]))
        assert approved["state"] == "verified", approved
        _resolve(fleet, firing)
        outcomes.append(outcome)
    return outcomes[0], outcomes[1]


def test_a_fixed_incident_reports_every_section_in_md_html_and_json(
    fleet: Cli, fixed_twice: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    first, second = fixed_twice
    story = fleet.json("incidents", "show", str(second["incident_id"]))["incident"]
    ref = story["ref"]
    detail = fleet.json("proposals", "show", str(second["proposal_id"]))

    data = json.loads(_report(fleet, ref, "json"))
    assert data["schema"] == "terry.incident/v1"
    assert data["ref"] == ref and data["id"] == second["incident_id"]
    assert data["state"] == "resolved" and data["seconds_to_fix"] is not None
    assert "fixed in" in data["summary"] and "after alice approved it" in data["summary"]
    steps = [s["step"] for s in data["timeline"]]
    for step in (
        "alert fired",
        "received",
        "diagnosed",
        "proposed",
        "dry run",
        "decision: review",
        "approved by alice",
        "applied on db-01",
        "verified",
        "alert resolved",
        "resolved",
    ):
        assert step in steps, (step, steps)
    assert steps[0] == "alert fired"
    fired = next(s for s in data["timeline"] if s["step"] == "alert fired")
    again = json.loads(_report(fleet, ref, "json"))  # stable: the same report again
    assert again["timeline"] == data["timeline"]
    decision = next(s for s in data["timeline"] if s["step"] == "decision: review")
    assert "production host" in decision["detail"]
    assert fired["at"] <= decision["at"]
    [proposal] = data["proposals"]
    assert proposal["commit"] == detail["commit"]
    assert proposal["merge_commit"] == detail["merge_commit"]
    assert proposal["branch"] == detail["summary"]["branch"]
    assert proposal["approved_by"] == "alice" and proposal["decision"] == "review"
    assert [h["host"] for h in proposal["applied"]] == ["db-01"]
    assert proposal["applied"][0]["result"] == "changed"
    assert proposal["verified"]  # the verification's own words
    assert data["diagnosis"]["by"] == "Terry's rules" and not data["diagnosis"]["ai_authored"]
    assert data["diagnosis"]["remedy"] == proposal["remedy"]
    # recurrence: the first time the same remedy ran on db-01, with its outcome
    assert data["recurrence_total"] == 1
    [earlier] = data["recurrence"]
    assert earlier["proposal_id"] == first["proposal_id"]
    assert earlier["state"] == "verified" and earlier["outcome"].startswith("verified")

    md = _report(fleet, ref, "md")
    assert md.startswith(f"# {ref}: ServiceDown on db-01\n")
    for heading in (
        "## Timeline",
        "## Diagnosis",
        "## What changed",
        "## Time to fix",
        "## Recurrence",
        "## What a person should still look at",
        "## The alert",
    ):
        assert f"\n{heading}\n" in md, heading
    assert f"`{detail['commit'][:12]}`" in md and f"`{detail['merge_commit'][:12]}`" in md
    assert "| approved by alice | alice |" in md
    assert "approved by: alice" in md
    assert f"| {earlier['proposal_id']} | {first['incident_id']} (" in md
    assert "By Terry's rules: remedy" in md

    html = _report(fleet, ref, "html")
    assert html.startswith("<!doctype html>")
    for anchor in ('id="summary"', 'id="timeline"', 'id="diagnosis"', 'id="recurrence"'):
        assert anchor in html
    assert "approved by alice" in html and detail["commit"][:12] in html

    # the first incident: nothing earlier, nothing left for a person
    md_first = _report(fleet, str(first["incident_id"]), "md")
    assert "None: no earlier proposal of this remedy on this host." in md_first
    assert "## What a person should still look at\n\nNothing.\n" in md_first


def test_a_report_of_no_such_incident_exits_4(fleet: Cli) -> None:
    missing = fleet("incidents", "report", "INC-2001-01-01-001")
    assert missing.exit_code == 4
    assert "does not exist" in missing.stderr
    as_json = fleet("incidents", "report", "999999", "--format", "json")
    assert as_json.exit_code == 4
    assert json.loads(as_json.stderr)["exit_code"] == 4


def _hostile_incident(cli: Cli, tag: str) -> dict[str, Any]:
    """An alert full of hostile text on a host nobody knows: kept for a person, then resolved."""
    firing = alert(
        f"Disk{HOSTILE['html']}",
        fingerprint=f"report-hostile-{tag}",
        host=f"ghost-{tag}",
        annotations={"summary": HOSTILE["link"], "description": HOSTILE["ticks"]},
        **{"x_ansi": HOSTILE["ansi"], "x_jinja": HOSTILE["jinja"], "x_table": HOSTILE["table"]},
    )
    firing["startsAt"] = _now()
    found = _fire_and_resolve(cli, firing)
    _resolve(cli, firing)
    return found


def test_hostile_alert_text_stays_text_in_every_format(fleet: Cli) -> None:
    found = _hostile_incident(fleet, "fmt")
    key = str(found["incident_id"])
    data = json.loads(_report(fleet, key, "json"))
    assert data["title"] == f"Disk{HOSTILE['html']}"  # JSON: the data, exactly
    assert data["labels"]["x_ansi"] == HOSTILE["ansi"]
    assert data["annotations"]["description"] == HOSTILE["ticks"]
    assert data["attention"]  # kept for a person: the host is unknown
    raw_json = _report(fleet, key, "json")
    assert ESC not in raw_json

    md = _report(fleet, key, "md")
    assert ESC not in md and "RED" in md  # Markdown cells: control characters are blanks
    assert re.search(r"(?<!\\)[<>]", md) is None  # no tag: every < and > escaped
    assert "\\<script\\>" in md
    assert "[click me](" not in md and "![pixel](" not in md
    assert "\\[click me\\]" in md
    assert "\n```" not in md and "\n# not a heading" not in md  # one line, no fence broken
    assert "\\`rm -rf /\\`" in md
    assert "{{ 7\\*7 }} {% raw %}{{ config }}" in md  # a template is text: nothing renders it
    assert "a \\| b \\| c" in md  # a pipe cannot split a table cell
    [row] = [line for line in md.splitlines() if "x_table" in line]
    assert len(re.findall(r"(?<!\\)\|", row)) == 4  # still three cells

    html = _report(fleet, key, "html")
    assert ESC not in html and "\\x1b" in html
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="http://evil' not in html and "<a " not in html
    assert "{{ 7*7 }}" in html


def test_archive_commits_each_closed_incident_once_as_report_md(
    fleet: Cli, fixed_twice: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    hostile = _hostile_incident(fleet, "archive")
    open_firing = alert("ServiceDown", fingerprint="report-open", host="ghost-open", service="web")
    fleet.json("alert", "ingest", "-", input=payload([open_firing]))  # stays open
    main_before = _git(fleet.repo, "rev-parse", "main").strip()

    done = fleet.json("incidents", "archive")
    refs = {
        fleet.json("incidents", "show", str(o["incident_id"]))["incident"]["ref"]
        for o in (*fixed_twice, hostile)
    }
    assert refs <= set(done["committed"])
    assert done["paths"] == [f"reports/incidents/{r}.md" for r in done["committed"]]
    head = _git(fleet.repo, "rev-parse", "main").strip()
    assert head != main_before
    assert _git(fleet.repo, "rev-list", "--count", f"{main_before}..main").strip() == "2"
    message = _git(fleet.repo, "log", "-1", "--format=%B", "main")
    assert "Terry-Decision: none (a report changes no host: no dry run, no gate)" in message
    for ref in refs:
        assert f"Terry-Report: {ref} (incident " in message
        in_git = _git(fleet.repo, "show", f"main:reports/incidents/{ref}.md")
        assert in_git == _report(fleet, ref, "md")
    hostile_md = _git(
        fleet.repo,
        "show",
        f"main:reports/incidents/"
        f"{fleet.json('incidents', 'show', str(hostile['incident_id']))['incident']['ref']}.md",
    )
    assert ESC not in hostile_md and "<script>" not in hostile_md
    listing = _git(fleet.repo, "ls-tree", "--name-only", "main", "reports/incidents/")
    open_ref = fleet.json("incidents", "list", "--state", "open")[0]["ref"]
    assert open_ref not in listing  # an open incident has no report yet

    again = fleet.json("incidents", "archive")
    assert again["committed"] == []
    assert _git(fleet.repo, "rev-parse", "main").strip() == head
    text = fleet("incidents", "archive")
    assert text.exit_code == 0 and "nothing to commit" in text.stdout


def test_archive_marks_once_under_each_store(gitops: Path, store_url: str) -> None:
    """No ansible: an incident kept for a person (unknown host) that resolves."""
    cli = make_cli(gitops, store_url)
    firing = alert("DiskUsageHigh", fingerprint="arch-1", host="nowhere-01", mountpoint="/srv")
    cli.json("alert", "ingest", "-", input=payload([firing]))
    assert cli.json("incidents", "archive")["committed"] == []  # open: nothing yet
    _resolve(cli, firing)
    [ref] = cli.json("incidents", "archive")["committed"]
    assert ref.startswith("INC-")
    md = _git(gitops, "show", f"main:reports/incidents/{ref}.md")
    assert md == _report(cli, ref, "md")
    assert "kept for a person" in md and "nowhere-01" in md
    assert cli.json("incidents", "archive")["committed"] == []
    assert len(_git(gitops, "log", "--format=%H", "main", "--", "reports/").split()) == 1


AI_KEY = "sk-ant-api03-CANARY-report-0000"
AI_SAYS = (
    "the run directory is missing\n```\n</pre><script>x()</script>\n```  [x](http://evil.example)"
)


@pytest.fixture(scope="module")
def ai_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    from terry.gitops.repo import Repo
    from tests.fakes.anthropic import FakeAnthropic

    claude = FakeAnthropic(api_key=AI_KEY)
    claude.start()
    repo = tmp_path_factory.mktemp("report-ai") / "ops"
    cli = make_cli(repo)
    cli.ok("init", str(repo))
    config = yaml.safe_load((repo / "terry.yml").read_text())
    config["ai"] = {"base_url": claude.base_url, "timeout": 5, "max_retries": 1}
    (repo / "terry.yml").write_text(yaml.safe_dump(config))
    Repo(repo).commit_paths(["terry.yml"], "ask Claude")
    cli.env["ANTHROPIC_API_KEY"] = AI_KEY
    cli.ok("example", "up")
    run_dir = str(repo / ".terry" / "hosts" / "web-01" / "run" / "app")
    claude.answer(
        {
            "diagnosis": AI_SAYS,
            "confidence": 80,
            "rollback": "remove the directory again",
            "fix": {
                "kind": "playbook",
                "tasks": [
                    {
                        "name": "create the run directory",
                        "module": "ansible.builtin.file",
                        "args": {"path": run_dir, "state": "directory", "mode": "0755"},
                    }
                ],
                "rollback_tasks": [
                    {
                        "name": "remove it",
                        "module": "ansible.builtin.file",
                        "args": {"path": run_dir, "state": "absent"},
                    }
                ],
            },
        }
    )
    yield cli
    example.down(config_for(repo))
    claude.stop()


def test_an_ai_authored_diagnosis_is_marked_with_its_confidence_and_stays_text(
    ai_fleet: Cli,
) -> None:
    firing = alert("AppPidFileMissing", fingerprint="report-ai", host="web-01")
    outcome = _fire_and_resolve(ai_fleet, firing)
    assert outcome["state"] == "awaiting_review", outcome
    key = str(outcome["incident_id"])

    data = json.loads(_report(ai_fleet, key, "json"))
    diagnosis = data["diagnosis"]
    assert diagnosis["ai_authored"] and diagnosis["by"] == "Claude"
    assert diagnosis["confidence"] == 80 and diagnosis["model"]
    assert diagnosis["text"] == AI_SAYS
    look = " ".join(data["attention"])
    assert f"proposal {outcome['proposal_id']} waits for review" in look
    assert "written by Claude at 80% confidence" in look
    assert "decision: review" in [s["step"] for s in data["timeline"]]

    md = _report(ai_fleet, key, "md")
    assert "AI-authored, confidence 80%" in md
    # Claude's words in a fence longer than any run of backticks they hold
    assert "\n````text\nthe run directory is missing\n```\n</pre><script>" in md
    assert md.count("\n````\n") == 1
    html = _report(ai_fleet, key, "html")
    assert "AI-authored, confidence 80%" in html
    assert "<script>x()" not in html and "&lt;/pre&gt;&lt;script&gt;x()" in html


def test_the_service_worker_commits_closed_incidents_reports_by_itself(
    gitops: Path, store_url: str
) -> None:
    from terry.app import build_pipeline
    from terry.config import load_config
    from terry.service.worker import Worker
    from terry.store import Store

    cli = make_cli(gitops, store_url)
    firing = alert("DiskUsageHigh", fingerprint="arch-worker", host="nowhere-02", mountpoint="/s")
    cli.json("alert", "ingest", "-", input=payload([firing]))
    _resolve(cli, firing)
    ref = cli.json("incidents", "list")[0]["ref"]
    config = load_config(gitops, environ={"TERRY_DATABASE_URL": store_url})
    store = Store(config.store_url)
    worker = Worker(
        lambda: build_pipeline(config, store), store, poll_seconds=0.1, archive_seconds=0.2
    )
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while f"{ref}.md" not in _git(gitops, "ls-tree", "-r", "--name-only", "main"):
            assert time.monotonic() < deadline, "the worker committed no report"
            time.sleep(0.2)
    finally:
        assert worker.stop(timeout=60)
        store.dispose()
    assert _git(gitops, "show", f"main:reports/incidents/{ref}.md") == _report(cli, ref, "md")
    assert cli.json("incidents", "archive")["committed"] == []
