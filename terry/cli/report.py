"""``terry report``: what Terry did over a span of days, for people and for tools."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import click

from terry.cli.context import open_config, open_store
from terry.cli.output import emit_report, report_options
from terry.errors import InputError
from terry.reports import report_for, to_html, to_json, to_markdown


@click.group("report")
def command() -> None:
    """Reports over Terry's record: incidents, fixes, rollbacks, time saved.

    \b
      terry report weekly                          the last 7 days (today included), Markdown
      terry report weekly --end 2026-11-30         the week Nov 24-30 (UTC), vs Nov 17-23
      terry report weekly --format html --out week.html   one page with charts
      terry report weekly --format json            schema terry.weekly/v1 (docs/reports.md)
    Figures cover the incidents opened in the window, as they stood at its end.
    """


def _end(value: str | None) -> datetime | None:
    """--end YYYY-MM-DD: the last day in the window (UTC); the window ends after it."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--end {value[:40]!r} is not a date: write YYYY-MM-DD") from None
    if len(value) != 10:
        raise InputError(f"--end {value[:40]!r} is not a date: write YYYY-MM-DD")
    return datetime.combine(day, time(), tzinfo=UTC) + timedelta(days=1)


@command.command("weekly")
@click.option(
    "--end",
    metavar="YYYY-MM-DD",
    help="The last day of the window, UTC (default: today).",
)
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=7,
    show_default=True,
    help="How many days the window holds (the comparison is the same span before it).",
)
@report_options(html="charts")
@click.pass_context
def weekly(ctx: click.Context, end: str | None, days: int, fmt: str, out: Path | None) -> None:
    """Incidents, auto-resolution rate, time to fix, rollbacks, prevented incidents and time
    saved over --days days, each with last week's figure and the change.

    \b
      terry report weekly                          the 7 days up to today (UTC)
      terry report weekly --end 2026-11-22         Nov 16-22, against Nov 9-15
      terry report weekly --format html --out week.html
      terry report weekly --format json | jq .summary.auto_resolution_rate

    \b
    What the figures mean (also at the end of every report and in docs/reports.md):
      fixed automatically   a proposal the gate merged on its own was verified
      kept for a person     marked as needing a human, or a proposal waited for review,
                            was denied, rejected, failed, rolled back or escalated
      time to fix           from the alert's start to the verified fix (mean, median)
      prevented             forecast incidents fixed before the disk crossed the threshold
      time saved            reports.manual_minutes_per_fix (30) per automatic fix, minus
                            reports.review_minutes_per_approval (5) when a person approved
    Exit codes: 0 written, 2 bad --end, --days, --format or --out, 3 no or bad terry.yml,
    6 the store cannot be reached. On a schedule: run: weekly-report (docs/reports.md).
    """
    window_end = _end(end)
    config = open_config(ctx)
    found = report_for(config, open_store(config), end=window_end, days=days)
    text = {"md": to_markdown, "html": to_html, "json": to_json}[fmt](found)
    last = (found.end - timedelta(days=1)).date()
    emit_report(text, out, f"{fmt}, {found.start.date()} to {last}")
