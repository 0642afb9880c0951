"""``terry schedule``: the jobs of terry.yml's ``schedules:``, run by ``terry serve`` or by
cron / systemd through ``terry schedule run NAME``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from terry.cli.context import open_config, open_pipeline, open_store
from terry.cli.output import console, emit_json, err_console, output_option
from terry.errors import ConfigError
from terry.service.schedules import crontab_line, next_run, run_schedule, systemd_units
from terry.store.models import ScheduleRunRow, utcnow


@click.group("schedule")
def command() -> None:
    """Scheduled drift scans and fixes, the weekly report, and where their reports go.

    \b
    In terry.yml:
      schedules:
        - name: nightly-drift
          cron: "0 3 * * *"          # UTC; or: interval: 3600 (seconds)
          run: drift-scan            # or drift-fix (scan, then propose the reconciliation),
                                     # or weekly-report (the 7 days before, 'terry report weekly')
          report_format: html        # md | html | json
          deliver:
            - dir: reports/drift     # drift-<scan>.html (weekly-<last day>.html) and latest.html
            - webhook_url_env: SLACK_WEBHOOK_URL   # the URL stays in the environment
              webhook_kind: slack                  # slack | discord | json
            - github_issue:          # one issue, updated in place (forge.github's repo)
                labels: [terry-drift]
    'terry serve' runs them. Without it: 'terry schedule install' prints a crontab line (or
    writes systemd units) that runs 'terry schedule run NAME'. One run of a schedule at a
    time, across processes: a run that finds another going is recorded as skipped.
    """


@command.command("list")
@output_option
@click.pass_context
def list_(ctx: click.Context, output: str) -> None:
    """Each schedule: when it runs next, and how its last run went."""
    config = open_config(ctx)
    store = open_store(config)
    now = utcnow()
    rows = []
    with store.session() as session:
        for schedule in config.schedules:
            last = session.scalars(
                select(ScheduleRunRow)
                .where(ScheduleRunRow.name == schedule.name)
                .order_by(ScheduleRunRow.id.desc())
                .limit(1)
            ).first()
            rows.append(
                {
                    "name": schedule.name,
                    "when": schedule.cron or f"every {schedule.interval:g}s",
                    "run": schedule.run,
                    "limit": schedule.limit,
                    "next_run": next_run(schedule, now),
                    "last_run": None
                    if last is None
                    else {
                        "started_at": last.started_at,
                        "status": last.status,
                        "detail": last.detail,
                    },
                }
            )
    if output == "json":
        emit_json(rows)
        return
    if not rows:
        console.print("no schedules in terry.yml (see 'terry schedule --help')", markup=False)
        return
    table = Table("schedule", "when (UTC)", "runs", "next", "last run")
    for row in rows:
        last = row["last_run"]
        table.add_row(
            escape(row["name"]),
            escape(row["when"]),
            row["run"] + (f" --limit {escape(row['limit'])}" if row["limit"] else ""),
            row["next_run"].strftime("%Y-%m-%d %H:%M:%S"),
            "never"
            if last is None
            else escape(f"{last['started_at']:%Y-%m-%d %H:%M} {last['status']}: {last['detail']}"),
        )
    console.print(table)


@command.command("run")
@click.argument("name")
@output_option
@click.pass_context
def run(ctx: click.Context, name: str, output: str) -> None:
    """Run schedule NAME now (what cron and systemd timers call).

    Exit codes: 0 done or skipped (another run of it is still going), 1 failed, or
    partial (its report made, some deliveries out and some failed: the detail names each),
    4 no such schedule.
    """
    from terry.sources.drift import drift_fixer  # the pipeline: only when running one

    config, store, pipeline = open_pipeline(ctx, output)
    done = run_schedule(config, store, name, fix=drift_fixer(lambda: pipeline))
    if output == "json":
        emit_json(done)
    else:
        console.print(f"schedule {done.name}: {done.status}: {done.detail}", markup=False)
        for where in done.delivered:
            console.print(f"  delivered to {where}", markup=False)
    if done.status in ("failed", "partial"):
        ctx.exit(1)


@command.command("install")
@click.option(
    "--systemd",
    "kind",
    flag_value="systemd",
    help="Write terry-NAME.service and .timer units (into --dir).",
)
@click.option("--cron", "kind", flag_value="cron", default=True, help="Print crontab lines.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write systemd units (e.g. /etc/systemd/system); default: print them.",
)
@click.option("--user", help="systemd: the user the service runs as.")
@click.pass_context
def install(ctx: click.Context, kind: str, directory: Path | None, user: str | None) -> None:
    """Run the schedules without 'terry serve': crontab lines, or systemd timer units.

    \b
      terry schedule install --cron | crontab -        (replaces your crontab!)
      terry schedule install --systemd --dir /etc/systemd/system
      systemctl daemon-reload && systemctl enable --now terry-nightly-drift.timer
    """
    config = open_config(ctx)
    if not config.schedules:
        raise ConfigError("no schedules in terry.yml to install")
    terry = shutil.which("terry") or str(Path(sys.argv[0]).resolve())
    logs = config.state_dir / "schedules.log"
    if kind == "cron":
        click.echo("# Terry schedules (times are UTC)\nCRON_TZ=UTC")
        for schedule in config.schedules:
            if schedule.cron is None:
                click.echo(f"# {schedule.name}: every {schedule.interval:g}s has no cron form")
                continue
            click.echo(crontab_line(schedule, terry=terry, repo=config.repo, log_file=logs))
        return
    for schedule in config.schedules:
        for filename, text in systemd_units(
            schedule, terry=terry, repo=config.repo, user=user
        ).items():
            if directory is None:
                click.echo(f"# {filename}\n{text}")
                continue
            directory.mkdir(parents=True, exist_ok=True)
            (directory / filename).write_text(text, encoding="utf-8")
            err_console.print(f"wrote {directory / filename}", markup=False)
