"""Schedules: when they run, how cron becomes a systemd calendar, what terry.yml refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from terry.config import ScheduleConfig, load_config
from terry.errors import ConfigError
from terry.service.schedules import crontab_line, next_run, on_calendar, systemd_units


@pytest.mark.parametrize(
    ("cron", "calendar"),
    [
        ("0 3 * * *", "*-*-* 3:0:00 UTC"),
        ("*/15 * * * *", "*-*-* *:0/15:00 UTC"),
        ("30 2 * * 1-5", "Mon..Fri *-*-* 2:30:00 UTC"),
        ("0 0 * * 0", "Sun *-*-* 0:0:00 UTC"),
        ("5 4 1 1,6 *", "*-1,6-1 4:5:00 UTC"),
    ],
)
def test_cron_as_a_systemd_calendar(cron: str, calendar: str) -> None:
    assert on_calendar(cron) == calendar


def test_cron_that_systemd_would_read_differently_is_refused() -> None:
    with pytest.raises(ConfigError, match="both days of month and of week"):
        on_calendar("0 3 1 * 1")  # cron: the 1st OR Mondays; systemd would AND them


def test_next_run_in_utc() -> None:
    nightly = ScheduleConfig(name="nightly", cron="0 3 * * *")
    at = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    assert next_run(nightly, at) == datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    often = ScheduleConfig(name="often", interval=90)
    assert next_run(often, at) == datetime(2026, 11, 25, 7, 1, 30, tzinfo=UTC)


def test_crontab_line_and_units_quote_the_repository() -> None:
    nightly = ScheduleConfig(name="nightly", cron="0 3 * * *")
    repo = Path("/srv/ops repo")
    line = crontab_line(nightly, terry="/usr/bin/terry", repo=repo, log_file=repo / "x.log")
    assert line == (
        "0 3 * * * /usr/bin/terry --repo '/srv/ops repo' schedule run nightly "
        ">> '/srv/ops repo/x.log' 2>&1"
    )
    units = systemd_units(nightly, terry="/usr/bin/terry", repo=repo, user="terry")
    assert set(units) == {"terry-nightly.service", "terry-nightly.timer"}
    assert "OnCalendar=*-*-* 3:0:00 UTC" in units["terry-nightly.timer"]
    assert "User=terry" in units["terry-nightly.service"]


@pytest.mark.parametrize(
    ("schedules", "error"),
    [
        ([{"name": "a", "cron": "0 3 * * *", "interval": 60}], "either cron or interval"),
        ([{"name": "a"}], "either cron or interval"),
        ([{"name": "a", "cron": "61 * * * *"}], "is not a cron expression \\(minute 0-59"),
        ([{"name": "a", "cron": "0 3 31 2 *"}], "never fires"),  # 31 February
        ([{"name": "a", "interval": True}], "expected seconds, got true or false"),
        ([{"name": "a", "interval": 1e400}], "schedules.0.interval"),
        ([{"name": "a", "cron": "0 3 * * * *"}], "not a 5-field cron"),
        ([{"name": "a", "interval": 5}, {"name": "a", "interval": 9}], "used twice"),
        ([{"name": "a", "interval": 5, "deliver": [{}]}], "exactly one of dir, webhook_url_env"),
        (
            [{"name": "a", "interval": 5, "deliver": [{"dir": "r", "github_issue": {}}]}],
            "exactly one of dir, webhook_url_env, github_issue",
        ),
        (
            [{"name": "nightly", "interval": 5, "deliver": [{"github_issue": {}}]}],
            "schedule nightly: a github_issue delivery needs forge.github.repository",
        ),
        ([{"name": "a", "interval": 5, "run": "rm -rf /"}], "schedules.0.run"),
        ([{"name": "Bad Name", "interval": 5}], "schedules.0.name"),
    ],
)
def test_terry_yml_refuses_broken_schedules(tmp_path: Path, schedules: list, error: str) -> None:
    (tmp_path / "terry.yml").write_text(yaml.safe_dump({"schedules": schedules}))
    with pytest.raises(ConfigError, match=error):
        load_config(tmp_path, environ={})


@pytest.mark.parametrize(
    ("issue", "error"),
    [
        ({"title": ""}, "deliver.0.github_issue.title"),
        ({"title": "two\nlines"}, "deliver.0.github_issue.title"),
        ({"labels": ["ok", ""]}, "deliver.0.github_issue.labels.1"),
        ({"labels": ["a,b"]}, "deliver.0.github_issue.labels.0"),
        ({"labels": ["x" * 51]}, "deliver.0.github_issue.labels.0"),
        ({"assignees": ["alice"]}, "deliver.0.github_issue.assignees: Extra inputs"),
    ],
)
def test_terry_yml_refuses_broken_issue_deliveries(tmp_path: Path, issue: dict, error: str) -> None:
    schedule = {"name": "a", "interval": 5, "deliver": [{"github_issue": issue}]}
    forge = {"github": {"repository": "acme/gitops"}}
    (tmp_path / "terry.yml").write_text(yaml.safe_dump({"forge": forge, "schedules": [schedule]}))
    with pytest.raises(ConfigError, match=error):
        load_config(tmp_path, environ={})


def test_an_issue_delivery_needs_only_the_repository(tmp_path: Path) -> None:
    schedule = {"name": "a", "interval": 5, "deliver": [{"github_issue": {"labels": ["drift"]}}]}
    forge = {"github": {"repository": "acme/gitops"}}  # forge.kind may stay local
    (tmp_path / "terry.yml").write_text(yaml.safe_dump({"forge": forge, "schedules": [schedule]}))
    [delivery] = load_config(tmp_path, environ={}).schedules[0].deliver
    assert delivery.github_issue is not None
    assert (delivery.github_issue.title, delivery.github_issue.labels) == (None, ["drift"])
