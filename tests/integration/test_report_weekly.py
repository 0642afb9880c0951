"""``terry report weekly``: the figures a person reads, in Markdown, HTML and JSON alike.

Two records. One is written through the store's own API with fixed times (two windows, so
the comparison and "as it stood at the window's end" have exact answers), on SQLite and on
PostgreSQL when TERRY_TEST_POSTGRES_URL is set. The other is the real pipeline on the
example fleet (ansible-playbook on scratch roots, git, regorus): a fix merged on its own and
an alert kept for a person.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from terry.cli import main
from terry.demo import example
from terry.incidents.lifecycle import ingest, mark_diagnosed, open_incident
from terry.proposals.state import ProposalState as S
from terry.proposals.state import transition
from terry.reports import Settings, to_html, to_json, to_markdown, weekly_report
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import IncidentRow, ProposalRow, utcnow
from tests.conftest import Cli, alert, config_for, make_cli, payload
from tests.fakes.local_server import LocalServer

pytestmark = pytest.mark.integration

END = datetime(2026, 11, 23, tzinfo=UTC)  # the window: Mon 16 to Sun 22 November
START = END - timedelta(days=7)
BEFORE = START - timedelta(days=7)  # last week: 9 to 15 November
HOSTILE_NAME = "Disk|Full <script>alert(1)</script>"
HOSTILE_SUMMARY = "a | b <img src=x onerror=alert(1)> [click](javascript:alert(1)) `x`"
HOSTILE_REASON = "host '<b>evil|host</b>' is not in the inventory"
ENVIRONMENTS = {"web-01": "staging", "web-02": "staging", "db-01": "production"}


# -- a record with known times, through the store's API ------------------------------------
def _at(day: datetime, days: int, hours: float) -> datetime:
    return day + timedelta(days=days, hours=hours)


def _alert(
    store: Store,
    name: str,
    opened: datetime,
    *,
    fingerprint: str,
    host: str | None = None,
    summary: str = "",
    status: str = "firing",
) -> int:
    labels = {"host": host} if host else {}
    body = payload(
        [
            alert(
                name,
                fingerprint=fingerprint,
                status=status,
                starts=opened.strftime("%Y-%m-%dT%H:%M:%SZ"),
                annotations={"summary": summary or f"{name} test"},
                **labels,
            )
        ],
        status=status,
    )
    result = ingest(store, parse_payload(body), now=opened)
    if status == "resolved":
        return 0
    [incident] = result.opened
    if host:
        mark_diagnosed(store, incident, host=host)
    return incident


def _proposal(
    store: Store,
    incident: int,
    remedy: str,
    host: str,
    at: datetime,
    path: list[tuple[S, float, str]],
    *,
    decision: str | None = None,
) -> int:
    """A proposal created at ``at`` that moves along ``path`` (state, minutes after ``at``,
    actor); "verified" also marks its incident fixed, as the apply step does."""
    with store.session() as session:
        row = ProposalRow(
            incident_id=incident,
            remedy=remedy,
            role=remedy,
            hosts=[host],
            params={},
            risk="low",
            state=S.PROPOSED.value,
            decision=decision,
            created_at=at,
            updated_at=at,
            reasons=["production host"] if decision == "review" else [],
            check_summary={},
        )
        session.add(row)
        session.flush()
        proposal = row.id
        audit(
            session,
            entity="proposal",
            entity_id=proposal,
            actor="terry",
            from_state=None,
            to_state="proposed",
            at=at,
        )
    for state, minutes, actor in path:
        when = at + timedelta(minutes=minutes)
        transition(store, proposal, state, actor=actor, reason=f"test: {state}", at=when)
        if state is S.VERIFIED:
            with store.session() as session:
                session.execute(
                    update(IncidentRow).where(IncidentRow.id == incident).values(fixed_at=when)
                )
    return proposal


def _needs_human(store: Store, incident: int, reason: str, at: datetime) -> None:
    with store.session() as session:
        session.execute(
            update(IncidentRow).where(IncidentRow.id == incident).values(attention=reason)
        )
        audit(
            session,
            entity="incident",
            entity_id=incident,
            actor="terry",
            from_state="open",
            to_state="open",
            reason=f"needs a human: {reason}",
            at=at,
        )


AUTO = [
    (S.CHECKED, 0.2, "terry"),
    (S.MERGED, 0.4, "terry"),
    (S.APPLYING, 0.6, "terry"),
    (S.APPLIED, 0.8, "terry"),
]


def _disk_fixed(store: Store, fingerprint: str, host: str, opened: datetime, minutes: float) -> int:
    """A DiskUsageHigh alert whose fix the gate merged on its own, verified ``minutes`` later."""
    incident = _alert(store, "DiskUsageHigh", opened, fingerprint=fingerprint, host=host)
    _auto_fix(store, incident, host, opened, minutes)
    return incident


def _auto_fix(store: Store, incident: int, host: str, at: datetime, minutes: float) -> None:
    path = [*AUTO, (S.VERIFIED, minutes, "terry")]
    _proposal(store, incident, "disk-usage-high", host, at, path, decision="merge")


def _record(store: Store) -> None:
    """This week: 7 incidents (2 fixed on their own, 1 after alice approved, 1 rolled back,
    1 kept for a person, 1 fixed only after the end, 1 resolved by itself). Last week: 4."""
    # too early and too late for either window
    _alert(store, "DiskUsageHigh", BEFORE - timedelta(hours=1), fingerprint="old", host="web-01")
    _alert(store, "DiskUsageHigh", END + timedelta(hours=1), fingerprint="new", host="web-01")

    # this week
    _disk_fixed(store, "a1", "web-01", _at(START, 0, 10), 10)  # 10 minutes to fix
    a2 = _alert(store, "ServiceDown", _at(START, 1, 9), fingerprint="a2", host="db-01")
    _proposal(
        store,
        a2,
        "service-restart",
        "db-01",
        _at(START, 1, 9),
        [
            (S.CHECKED, 1, "terry"),
            (S.AWAITING_REVIEW, 2, "terry"),
            (S.APPROVED, 20, "alice"),
            (S.MERGED, 21, "alice"),
            (S.APPLYING, 22, "alice"),
            (S.APPLIED, 25, "alice"),
            (S.VERIFIED, 30, "alice"),  # 30 minutes to fix
        ],
        decision="review",
    )
    a3 = _alert(store, "DiskUsageHigh", _at(START, 2, 12), fingerprint="a3", host="web-02")
    _proposal(
        store,
        a3,
        "disk-usage-high",
        "web-02",
        _at(START, 2, 12),
        [*AUTO, (S.FAILED, 15, "terry"), (S.ROLLED_BACK, 20, "terry")],
        decision="merge",
    )
    a4 = _alert(store, HOSTILE_NAME, _at(START, 2, 13), fingerprint="a4", summary=HOSTILE_SUMMARY)
    _needs_human(store, a4, HOSTILE_REASON, _at(START, 2, 13.1))
    f1 = open_incident(
        store,
        source="forecast",
        fingerprint="forecast:disk:web-01",
        title="DiskWillFillSoon",
        host="web-01",
        labels={},
        annotations={},
        holder="test",
    )
    with store.session() as session:
        session.execute(
            update(IncidentRow).where(IncidentRow.id == f1).values(opened_at=_at(START, 3, 8))
        )
    _auto_fix(store, f1, "web-01", _at(START, 3, 8), 20)  # 20 minutes, before any alert
    _alert(store, "Flapping", _at(START, 4, 10), fingerprint="a6")
    _alert(store, "Flapping", _at(START, 4, 10.5), fingerprint="a6", status="resolved")
    _disk_fixed(store, "a5", "web-01", _at(START, 6, 23), 120)  # verified after the end

    # last week
    _disk_fixed(store, "b1", "web-01", _at(BEFORE, 1, 10), 3)  # 3 minutes
    _disk_fixed(store, "b2", "web-02", _at(BEFORE, 2, 10), 60)  # an hour
    b3 = _alert(store, "NoSuchRemedy", _at(BEFORE, 5, 10), fingerprint="b3")
    _needs_human(store, b3, "no remedy matches", _at(BEFORE, 5, 10.1))
    _disk_fixed(store, "b4", "web-01", _at(BEFORE, 6, 20), 300)  # verified after its end


@pytest.fixture
def recorded(store: Store) -> Store:
    _record(store)
    return store


def test_figures_of_the_week_and_the_week_before(recorded: Store) -> None:
    report = weekly_report(recorded, end=END, environments=ENVIRONMENTS)
    s, p, d = report.summary, report.previous, report.deltas
    assert (report.start, report.end, report.days) == (START, END, 7)
    assert s.incidents_opened == 7
    assert s.by_source == {"alert": 6, "drift": 0, "inventory": 0, "forecast": 1, "anomaly": 0}
    assert (s.fixed, s.auto_fixed, s.fixed_after_approval) == (3, 2, 1)
    assert s.needed_person == 3  # approved, rolled back, unknown host
    assert (s.resolved, s.open) == (1, 3)
    assert s.auto_resolution_rate == pytest.approx(2 / 7, abs=1e-4)
    assert s.mttf_mean_seconds == 1200.0  # (10 + 30 + 20 minutes) / 3
    assert s.mttf_median_seconds == 1200.0
    assert s.time_to_fix == {
        "under 5m": 0,
        "5-15m": 1,
        "15m-1h": 2,
        "1-4h": 0,
        "4-24h": 0,
        "over 1d": 0,
    }
    assert s.rollbacks == 1
    assert s.prevented == 1
    assert s.time_saved_minutes == 85.0  # 30 + 30 + (30 - 5 for the approval)
    assert s.proposals == 5
    assert s.proposals_by_state["verified"] == 3
    assert s.proposals_by_state["rolled_back"] == 1
    assert s.proposals_by_state["in_progress"] == 1  # applied at the end, verified later

    # last week, as it stood at its own end: b4's fix came after it
    assert (p.incidents_opened, p.fixed, p.auto_fixed, p.needed_person) == (4, 2, 2, 1)
    assert p.auto_resolution_rate == 0.5
    assert (p.proposals_by_state["verified"], p.proposals_by_state["in_progress"]) == (2, 1)
    assert p.mttf_mean_seconds == 1890.0  # (3 + 60 minutes) / 2
    assert (p.rollbacks, p.prevented, p.time_saved_minutes) == (0, 0, 60.0)

    assert d.incidents_opened == 3
    assert d.auto_fixed == 0
    assert d.auto_resolution_rate == pytest.approx(2 / 7 - 0.5, abs=1e-4)
    assert d.mttf_mean_seconds == -690.0
    assert (d.rollbacks, d.prevented, d.time_saved_minutes, d.needed_person) == (1, 1, 25.0, 2)

    days = [(x.day, x.opened, x.auto_fixed, x.needed_person, x.other) for x in report.per_day]
    assert days == [
        ("2026-11-16", 1, 1, 0, 0),
        ("2026-11-17", 1, 0, 1, 0),
        ("2026-11-18", 2, 0, 2, 0),
        ("2026-11-19", 1, 1, 0, 0),
        ("2026-11-20", 1, 0, 0, 1),
        ("2026-11-21", 0, 0, 0, 0),
        ("2026-11-22", 1, 0, 0, 1),
    ]
    disk = next(r for r in report.remedies if r.remedy == "disk-usage-high")
    assert (disk.proposals, disk.auto_merged, disk.verified, disk.rollbacks) == (4, 4, 2, 1)
    assert disk.success_rate == pytest.approx(2 / 3, abs=1e-4)
    service = next(r for r in report.remedies if r.remedy == "service-restart")
    assert (service.approved, service.verified, service.mttf_mean_seconds) == (1, 1, 1800.0)
    envs = {
        e.environment: (e.incidents, e.auto_fixed, e.needed_person) for e in report.environments
    }
    assert envs == {"staging": (4, 2, 1), "production": (1, 0, 1), "unknown": (2, 0, 1)}

    kept = {k.title: k for k in report.kept}
    assert set(kept) == {"ServiceDown", "DiskUsageHigh", HOSTILE_NAME}
    assert kept["ServiceDown"].status == "fixed after approval by alice"
    assert kept["DiskUsageHigh"].status == "rolled back"
    assert kept[HOSTILE_NAME].reason == HOSTILE_REASON
    assert kept[HOSTILE_NAME].summary == HOSTILE_SUMMARY


def test_settings_change_the_time_saved(recorded: Store) -> None:
    settings = Settings(manual_minutes_per_fix=60, review_minutes_per_approval=15)
    report = weekly_report(recorded, end=END, settings=settings)
    assert report.summary.time_saved_minutes == 60 + 60 + 45
    assert report.previous.time_saved_minutes == 120


def _table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the table under ``## heading``, split on unescaped pipes."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[2:]]


def test_the_three_formats_say_the_same(recorded: Store) -> None:
    report = weekly_report(recorded, end=END, environments=ENVIRONMENTS)
    data = json.loads(to_json(report))
    markdown = to_markdown(report)
    page = to_html(report)

    assert data["schema"] == "terry.weekly/v1"
    assert list(data) == [
        "schema",
        "generated_at",
        "start",
        "end",
        "days",
        "settings",
        "summary",
        "previous",
        "deltas",
        "per_day",
        "remedies",
        "environments",
        "hosts",
        "kept",
        "kept_total",
        "budgets",  # error budgets per service (docs/slo.md): none here, no SLOs
        "savings",  # cost savings against cost.savings_goal (docs/cost.md): null here
    ]
    s = data["summary"]
    assert (s["incidents_opened"], s["auto_fixed"], s["rollbacks"], s["prevented"]) == (7, 2, 1, 1)
    assert s["time_saved_minutes"] == 85.0 and s["mttf_mean_seconds"] == 1200.0

    summary = {row[0]: row[1:] for row in _table_rows(markdown, "Summary")}
    assert summary["incidents opened"][0].startswith("7 (alert 6, forecast 1)")
    assert summary["fixed automatically"] == ["2 of 7 (28.6%)", "2 of 4 (50.0%)", "−21.4 pts"]
    assert summary["kept for a person"] == ["3", "1", "+2"]
    assert summary["mean time to fix"] == [
        "20m (median 20m)",
        "31m 30s (median 31m 30s)",
        "−11m 30s",
    ]
    assert summary["rollbacks"] == ["1", "0", "+1"]
    assert summary["prevented incidents"] == ["1", "0", "+1"]
    assert summary["time saved"] == ["1h 25m", "1h", "+25m"]

    # the HTML page's cards hold the same words, and its charts the same numbers
    for key, label in (
        ("auto_fixed", "2 of 7 (28.6%)"),
        ("mttf", "20m (median 20m)"),
        ("rollbacks", "1"),
        ("prevented", "1"),
        ("time_saved", "1h 25m"),
    ):
        card = page.split(f'id="card-{key}"', 1)[1].split("</div>", 1)[0]
        assert f"<b>{label}</b>" in card, (key, card)
    assert page.count("<svg") == 4  # per day, compared, time to fix, remedies
    assert "<title>2026-11-18: 2 kept for a person</title>" in page
    assert "<title>2026-11-16: 1 fixed automatically</title>" in page
    assert "<title>15m-1h: 2 (this week)</title>" in page
    assert "<title>disk-usage-high: 1 (rolled back)</title>" in page
    assert "<title>rollbacks: 1 (this week)</title>" in page


def test_untrusted_text_stays_text_in_markdown_and_html(recorded: Store) -> None:
    report = weekly_report(recorded, end=END, environments=ENVIRONMENTS)
    markdown = to_markdown(report)
    page = to_html(report)

    # Markdown: nothing opens HTML, a link or an image; every table keeps its columns
    assert not re.search(r"(?<!\\)[<>`]", markdown)  # each one escaped with a backslash
    assert not re.search(r"(?<!\\)\]\(", markdown)  # no link, no image
    [line] = [x for x in markdown.splitlines() if "Disk" in x and "Full" in x]
    assert r"Disk\|Full \<script\>alert(1)\</script\>" in line
    assert r"a \| b \<img src=x onerror=alert(1)\> \[click\](javascript:alert(1)) \`x\`" in line
    assert r"host '\<b\>evil\|host\</b\>' is not in the inventory" in line
    for heading in ("Summary", "By day", "By remedy", "By environment", "By host"):
        rows = _table_rows(markdown, heading)
        assert len({len(r) for r in rows}) == 1, heading

    # HTML: escaped by autoescape, and the page fetches nothing and runs nothing
    assert "<script" not in page and "<img" not in page and "<b>evil" not in page
    assert html.escape(HOSTILE_NAME, quote=False) in page
    assert "a | b &lt;img src=x onerror=alert(1)&gt; [click](javascript:alert(1))" in page
    assert "&lt;b&gt;evil|host&lt;/b&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|javascript)""", page)


# -- the command ---------------------------------------------------------------------------
@pytest.fixture
def cli(gitops: Path, store_url: str, recorded: Store) -> Cli:
    return make_cli(gitops, store_url)


def test_the_command_in_three_formats(cli: Cli, tmp_path: Path) -> None:
    shown = cli("report", "weekly", "--end", "2026-11-22", "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["start"] == "2026-11-16T00:00:00+00:00"
    assert data["summary"]["incidents_opened"] == 7
    assert data["summary"]["auto_resolution_rate"] == 0.2857
    # environments come from main's inventory (the example fleet)
    envs = {e["environment"]: e["incidents"] for e in data["environments"]}
    assert envs == {"staging": 4, "production": 1, "unknown": 2}
    # --output json, as every command takes it, is --format json
    for spelled in ("--output", "-o"):
        again = cli("report", "weekly", "--end", "2026-11-22", spelled, "json")
        assert again.exit_code == 0, again.stderr
        assert json.loads(again.stdout)["summary"] == data["summary"]

    markdown = cli("report", "weekly", "--end", "2026-11-22").stdout
    assert markdown.startswith("# Terry weekly report: 2026-11-16 to 2026-11-22\n")
    assert "| rollbacks | 1 | 0 | +1 |" in markdown

    out = tmp_path / "week.html"
    written = cli("report", "weekly", "--end", "2026-11-22", "--format", "html", "--out", str(out))
    assert written.exit_code == 0 and written.stdout == ""
    assert "wrote" in written.stderr and "2026-11-16 to 2026-11-22" in written.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<link" not in page

    # three days: the comparison is the three days before
    short = json.loads(
        cli("report", "weekly", "--end", "2026-11-18", "--days", "3", "--format", "json").stdout
    )
    assert (short["start"], short["days"]) == ("2026-11-16T00:00:00+00:00", 3)
    assert short["summary"]["incidents_opened"] == 4
    assert short["previous"]["incidents_opened"] == 2  # b3 and b4, on the 14th and 15th
    assert (
        "|  | these 3 days | the 3 days before | change |"
        in cli("report", "weekly", "--end", "2026-11-18", "--days", "3").stdout
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--end", "2026-13-01"), 2, "--end '2026-13-01' is not a date: write YYYY-MM-DD"),
        (("--end", "last week"), 2, "is not a date"),
        (("--days", "0"), 2, "0 is not in the range 1<=x<=366"),
        (("--format", "pdf"), 2, "'pdf' is not one of 'md', 'html', 'json'"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    gitops: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = make_cli(gitops)("report", "weekly", *args)
    assert result.exit_code == code
    assert message in result.stderr
    assert result.stdout == ""


def test_an_out_file_that_cannot_be_written_exits_2(gitops: Path) -> None:
    result = make_cli(gitops)("report", "weekly", "--out", str(gitops / "no-dir" / "w.md"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"terry: error: cannot write --out {gitops / 'no-dir' / 'w.md'}: No such file or "
        "directory\n"
    )


def test_no_repository_exits_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--repo", str(tmp_path), "report", "weekly"])
    assert result.exit_code == 3
    assert result.stderr.startswith("terry: error: ") and result.stderr.count("\n") == 1


def test_an_unreachable_store_exits_6(gitops: Path) -> None:
    cli = make_cli(gitops, "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = cli("report", "weekly")
    assert result.exit_code == 6
    assert result.stderr.startswith("terry: error: ") and result.stderr.count("\n") == 1


def test_help_teaches_the_figures() -> None:
    result = CliRunner().invoke(main, ["report", "weekly", "--help"])
    assert result.exit_code == 0
    for words in ("--end", "--days", "--format", "fixed automatically", "time saved", "Exit codes"):
        assert words in result.stdout


# -- on a schedule -------------------------------------------------------------------------
class Slack(LocalServer):
    """An incoming webhook that keeps what it is sent."""

    label = "slack webhook"

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []

    def _app(self) -> Starlette:
        async def hook(request: Request) -> PlainTextResponse:
            self.received.append(await request.json())
            return PlainTextResponse("ok")

        return Starlette(routes=[Route("/slack", hook, methods=["POST"])])


def test_a_weekly_report_schedule_delivers_the_seven_days_before(
    gitops: Path, store_url: str, store: Store
) -> None:
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    _disk_fixed(store, "s1", "web-01", today - timedelta(days=2), 10)
    _alert(store, "Later", today + timedelta(seconds=1), fingerprint="s2")  # today: not yet
    config = yaml.safe_load((gitops / "terry.yml").read_text())
    config["schedules"] = [
        {
            "name": "weekly",
            "cron": "0 6 * * 1",
            "run": "weekly-report",
            "report_format": "html",
            "deliver": [
                {"dir": "reports/weekly"},
                {"webhook_url_env": "SLACK_URL", "webhook_kind": "slack"},
            ],
        }
    ]
    (gitops / "terry.yml").write_text(yaml.safe_dump(config))
    slack = Slack()
    slack.start()
    try:
        cli = make_cli(gitops, store_url)
        cli.env["SLACK_URL"] = f"{slack.base_url}/slack"
        done = cli.json("schedule", "run", "weekly")
    finally:
        slack.stop()
    first, last = (today - timedelta(days=7)).date(), (today - timedelta(days=1)).date()
    assert done["status"] == "done", done
    assert done["detail"].startswith(f"weekly report {first} to {last}: 1 incident(s) opened")
    folder = gitops / "reports" / "weekly"
    page = (folder / f"weekly-{last}.html").read_text()
    assert page == (folder / "latest.html").read_text()
    assert f"Terry weekly report · {first} to {last}" in page
    assert "<b>1 of 1 (100.0%)</b>" in page
    [sent] = slack.received
    lines = sent["text"].splitlines()
    assert lines[0] == (
        f"Terry weekly report, {first} to {last}: 1 incident(s) opened; Terry fixed 1 on its "
        "own (100.0%), 0 kept for a person, 0 rollback(s), 0 prevented, about 30m saved."
    )
    assert "time saved: 30m (last week 0s, +30m)" in sent["text"]
    listed = {s["name"]: s for s in cli.json("schedule", "list")}
    assert listed["weekly"]["run"] == "weekly-report"
    assert listed["weekly"]["last_run"]["status"] == "done"


def test_a_schedule_some_of_whose_deliveries_failed_is_partial_not_done(
    gitops: Path, store_url: str
) -> None:
    """The report went to its folder, the webhook's URL was missing: not ``done`` (nobody
    would look) and not ``failed`` (it was made and kept): ``partial``, exit 1, the failure
    named, and so in ``schedule list``; with nothing delivered at all, ``failed``."""
    config = yaml.safe_load((gitops / "terry.yml").read_text())
    weekly = {"name": "weekly", "cron": "0 6 * * 1", "run": "weekly-report"}
    hook = {"webhook_url_env": "SLACK_URL", "webhook_kind": "slack"}
    config["schedules"] = [
        {**weekly, "deliver": [{"dir": "reports/weekly"}, hook]},
        {**weekly, "name": "nowhere", "deliver": [hook]},
    ]
    (gitops / "terry.yml").write_text(yaml.safe_dump(config))
    cli = make_cli(gitops, store_url)
    result = cli("schedule", "run", "weekly", "--output", "json")
    assert result.exit_code == 1, result.stdout + result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "partial", run
    assert run["detail"].endswith("; delivery failed: $SLACK_URL is not set (the webhook URL)")
    [kept] = run["delivered"]
    assert Path(kept).parent == gitops / "reports" / "weekly" and Path(kept).is_file()
    listed = {s["name"]: s for s in cli.json("schedule", "list")}
    assert listed["weekly"]["last_run"]["status"] == "partial"
    nowhere = cli("schedule", "run", "nowhere")
    assert nowhere.exit_code == 1 and "schedule nowhere: failed: " in nowhere.stdout


# -- the real pipeline ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    repo = tmp_path_factory.mktemp("weekly") / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    cli = make_cli(repo)  # no "example up": the disk faults make the files they need
    yield cli
    example.down(config_for(repo))


def _ingest(cli: Cli, *alerts: dict[str, Any]) -> dict[str, Any]:
    return cli.json("alert", "ingest", "-", input=payload(list(alerts)))


def _ago(minutes: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - minutes * 60))


def test_a_week_of_the_real_pipeline(fleet: Cli) -> None:
    begun = time.time()
    # fixed on its own (staging); the alert started 10 minutes ago
    fleet("example", "break", "web-01", "disk")
    [auto] = _ingest(
        fleet,
        alert(
            "DiskUsageHigh",
            fingerprint="week-disk",
            host="web-01",
            mountpoint="/srv/data",
            starts=_ago(10),
        ),
    )["proposals"]
    assert auto["state"] == "verified", auto
    # a host Terry does not know, with markup in its name and summary: kept for a person
    [kept] = _ingest(
        fleet,
        alert(
            "DiskUsageHigh",
            fingerprint="week-unknown",
            host="mystery|<script>x</script>",
            mountpoint="/srv/data",
            annotations={"summary": "disk | <b>full</b>"},
            starts=_ago(1),
        ),
    )["proposals"]
    assert kept["proposal_id"] is None
    elapsed_minutes = (time.time() - begun) / 60

    data = json.loads(fleet("report", "weekly", "--format", "json").stdout)
    s = data["summary"]
    assert s["incidents_opened"] == 2
    assert (s["fixed"], s["auto_fixed"], s["fixed_after_approval"]) == (1, 1, 0)
    assert s["needed_person"] == 1
    assert s["auto_resolution_rate"] == 0.5
    assert (s["rollbacks"], s["prevented"]) == (0, 0)
    assert s["time_saved_minutes"] == 30.0
    # the fix took its alert's 10 minutes and the runs
    assert 10 * 60 <= s["mttf_mean_seconds"] <= (10 + elapsed_minutes + 1) * 60
    assert s["time_to_fix"]["5-15m"] + s["time_to_fix"]["15m-1h"] == 1
    assert (s["proposals"], s["proposals_by_state"]["verified"]) == (1, 1)
    assert data["previous"]["incidents_opened"] == 0
    assert data["deltas"]["incidents_opened"] == 2
    envs = {e["environment"]: (e["incidents"], e["auto_fixed"]) for e in data["environments"]}
    assert envs == {"staging": (1, 1), "unknown": (1, 0)}  # web-01 from main's inventory
    [remedy] = data["remedies"]
    assert remedy["remedy"] == "disk-usage-high"
    assert (remedy["proposals"], remedy["auto_merged"], remedy["verified"]) == (1, 1, 1)
    assert remedy["success_rate"] == 1.0
    [stranger] = data["kept"]
    assert stranger["proposal_id"] is None and stranger["status"] == "open"
    assert "mystery|<script>x</script>" in stranger["reason"]
    assert stranger["summary"] == "disk | <b>full</b>"

    markdown = fleet("report", "weekly").stdout
    assert "| kept for a person | 1 | 0 | +1 |" in markdown
    assert "| time saved | 30m | 0s | +30m |" in markdown
    assert not re.search(r"(?<!\\)<", markdown) and r"\<script\>" in markdown
    out = fleet.repo / "week.html"
    fleet.ok("report", "weekly", "--format", "html", "--out", str(out))
    page = out.read_text()
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "<b>1 of 2 (50.0%)</b>" in page


def test_an_auto_merged_storm_counts_every_incident_it_fixed_as_fixed_automatically(
    gitops: Path,
) -> None:
    """One storm over two hosts, one proposal the gate merged, verified on both, nobody
    approved anything: both incidents were fixed automatically. The report used to find a
    storm's other incidents no proposal (only ``proposals.incident_id``), so it counted the
    second "fixed after approval" and took 5 review minutes nobody spent off its time saved."""
    cli = make_cli(gitops)
    for host in ("web-01", "web-02"):
        example.break_host(config_for(gitops), host, example.Fault.DISK)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = payload(
        [
            alert(
                "DiskUsageHigh", fingerprint=f"wk-{h}", host=h, mountpoint="/srv/data", starts=now
            )
            for h in ("web-01", "web-02")
        ]
    )
    outcomes = cli.json("alert", "ingest", "-", input=body)["proposals"]
    [(pid, state)] = {(o["proposal_id"], o["state"]) for o in outcomes}
    assert state == "verified"
    assert cli.json("proposals", "show", str(pid))["summary"]["decision"] == "merge"
    summary = cli.json("report", "weekly", "--output", "json")["summary"]
    counted = {k: summary[k] for k in ("fixed", "auto_fixed", "fixed_after_approval")}
    assert counted == {"fixed": 2, "auto_fixed": 2, "fixed_after_approval": 0}
    assert summary["needed_person"] == 0 and summary["auto_resolution_rate"] == 1.0
    assert summary["time_saved_minutes"] == 60.0  # 30 each: no review to take off
