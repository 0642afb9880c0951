"""Schedules: drift scans (and fixes) and the weekly report on time, their reports delivered.

``terry serve`` runs every schedule of ``terry.yml`` (``Scheduler``); installations without
it run ``terry schedule run NAME`` from cron or a systemd timer (``crontab_line``,
``systemd_units``). Either way one run of a schedule at a time: a run takes the database
lock ``schedule:<name>``, and a run that finds it taken is recorded as skipped.

A ``weekly-report`` schedule delivers ``terry report weekly`` for the seven whole days
before the day it runs (UTC); it runs nothing else. A ``chaos`` schedule runs its
``experiment`` as ``terry chaos run`` does (terry.chaos) and delivers nothing: a run Terry
did not resolve in time notifies through the notifier (chaos-slow).

Deliveries: a directory (``drift-<scan>.<ext>`` or ``weekly-<last day>.<ext>``, and
``latest.<ext>``, written atomically);
a webhook whose URL comes from the environment, sent through the notifier's path
(``terry.notify.send``, apprise): Slack and Discord incoming webhooks get a short summary,
``json`` endpoints the whole report, an apprise URL (``slack://``, ``mailto://``...) the
summary; or a GitHub issue holding the
Markdown report, one per schedule, updated in place (Terry finds its own by the marker on
the body's first line). A delivery that fails is recorded and does not stop the others.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter

from terry.config import Config, DeliveryConfig, ScheduleConfig
from terry.drift.report import DriftReport, load_report, to_html, to_json, to_markdown
from terry.errors import ConfigError, NotFound, TerryError
from terry.notify.message import Message
from terry.reports import WeeklyReport, report_for
from terry.reports import to_html as weekly_html
from terry.reports import to_json as weekly_json
from terry.reports import to_markdown as weekly_markdown
from terry.reports.markup import write_atomically
from terry.reports.weekly_format import headlines, sentence
from terry.store import Store
from terry.store.locks import named_lock
from terry.store.models import ScheduleRunRow, utcnow

__all__ = [
    "Outgoing",
    "ScheduleRun",
    "Scheduler",
    "crontab_line",
    "issue_marker",
    "next_run",
    "run_schedule",
    "systemd_units",
]

log = logging.getLogger("terry.service.schedules")
_EXT = {"md": "md", "html": "html", "json": "json"}
WEBHOOK_TIMEOUT = 15.0  # seconds a webhook delivery may take
# GitHub refuses an issue body longer than this many characters.
_ISSUE_BODY_LIMIT = 65_536


@dataclass(frozen=True)
class ScheduleRun:
    name: str
    run_id: int
    status: str  # done | partial (some deliveries failed) | failed | skipped
    detail: str
    scan_id: int | None = None
    proposal_id: int | None = None
    delivered: tuple[str, ...] = ()


def next_run(schedule: ScheduleConfig, after: datetime) -> datetime:
    """When ``schedule`` fires next after ``after`` (UTC)."""
    if schedule.interval is not None:
        return after + timedelta(seconds=schedule.interval)
    assert schedule.cron is not None
    return croniter(schedule.cron, after).get_next(datetime)


# -- one run --------------------------------------------------------------------------------
def _record(store: Store, name: str, status: str, detail: str = "") -> int:
    with store.session() as session:
        row = ScheduleRunRow(
            name=name,
            started_at=utcnow(),
            finished_at=utcnow() if status == "skipped" else None,
            status=status,
            detail=detail,
        )
        session.add(row)
        session.flush()
        return row.id


def _finish(store: Store, run_id: int, status: str, detail: str, **ids: int | None) -> None:
    with store.session() as session:
        row = session.get(ScheduleRunRow, run_id)
        assert row is not None
        row.status, row.detail, row.finished_at = status, detail[:4000], utcnow()
        row.scan_id, row.proposal_id = ids.get("scan_id"), ids.get("proposal_id")


def run_schedule(
    config: Config,
    store: Store,
    name: str,
    *,
    fix: Callable[[str | None], tuple[int, int | None]] | None = None,
    environ: dict[str, str] | None = None,
) -> ScheduleRun:
    """Run schedule ``name`` now, unless another run of it holds its lock (then skipped).

    ``fix(limit) -> (scan_id, proposal_id)`` carries out ``drift-fix`` (the CLI and the
    server pass the pipeline's ``fix_drift``; this module does not build pipelines).
    """
    schedule = config.schedule(name)
    if schedule is None:
        known = ", ".join(s.name for s in config.schedules) or "none configured"
        raise NotFound(f"no schedule {name!r} in terry.yml ({known})")
    lock_ttl = timedelta(seconds=schedule.timeout)
    with named_lock(store, f"schedule:{name}", ttl=lock_ttl) as taken:
        if not taken:
            why = "another run of this schedule is still going"
            return ScheduleRun(name, _record(store, name, "skipped", why), "skipped", why)
        run_id = _record(store, name, "running")
        if schedule.run == "weekly-report":
            return _weekly(config, store, schedule, run_id, environ)
        if schedule.run == "chaos":
            return _chaos(config, store, schedule, run_id)
        proposal_id: int | None = None
        try:
            if schedule.run == "drift-fix":
                if fix is None:
                    raise ConfigError("drift-fix schedules need a pipeline")
                scan_id, proposal_id = fix(schedule.limit)
            else:
                from terry.drift.scan import run_scan  # ansible-runner: only for a scan

                scan_id = run_scan(config, store, limit=schedule.limit).scan_id
            report = load_report(store, config, scan_id)
            delivered, failures = deliver(_drift(report), schedule, config, environ)
        except TerryError as exc:
            _finish(store, run_id, "failed", str(exc))
            return ScheduleRun(name, run_id, "failed", str(exc))
        s = report.summary
        detail = (
            f"scan {scan_id}: {s.hosts_scanned} host(s), {s.hosts_drifted} drifted, "
            f"{s.hosts_unreachable} unreachable, {s.items} item(s)"
            + (f"; proposal {proposal_id}" if proposal_id else "")
            + (f"; delivery failed: {'; '.join(failures)}" if failures else "")
        )
        status = _delivery_status(delivered, failures)
        _finish(store, run_id, status, detail, scan_id=scan_id, proposal_id=proposal_id)
        return ScheduleRun(name, run_id, status, detail, scan_id, proposal_id, tuple(delivered))


def _delivery_status(delivered: list[str], failures: list[str]) -> str:
    """A run whose report was made: ``done`` when every delivery went out, ``failed`` when
    none did, ``partial`` when some did (the detail names each failure)."""
    if not failures:
        return "done"
    return "partial" if delivered else "failed"


def _weekly(
    config: Config,
    store: Store,
    schedule: ScheduleConfig,
    run_id: int,
    environ: dict[str, str] | None,
) -> ScheduleRun:
    """A ``weekly-report`` run: the seven whole days before today (UTC), delivered."""
    today = utcnow().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        report = report_for(config, store, end=today)
        delivered, failures = deliver(_weekly_outgoing(report), schedule, config, environ)
    except TerryError as exc:
        _finish(store, run_id, "failed", str(exc))
        return ScheduleRun(schedule.name, run_id, "failed", str(exc))
    last = (report.end - timedelta(days=1)).date()
    detail = f"weekly report {report.start.date()} to {last}: {sentence(report)}" + (
        f"; delivery failed: {'; '.join(failures)}" if failures else ""
    )
    status = _delivery_status(delivered, failures)
    _finish(store, run_id, status, detail)
    return ScheduleRun(schedule.name, run_id, status, detail, delivered=tuple(delivered))


def _chaos(config: Config, store: Store, schedule: ScheduleConfig, run_id: int) -> ScheduleRun:
    """A ``chaos`` run: the schedule's experiment on a drawn target (terry.chaos); a run
    Terry did not resolve in time notifies through the audit log (chaos-slow)."""
    from terry.chaos.run import run_experiment  # chaostoolkit-lib: only for a chaos run

    assert schedule.experiment is not None
    try:
        reports = run_experiment(config, store, schedule.experiment)
    except TerryError as exc:
        _finish(store, run_id, "failed", str(exc))
        return ScheduleRun(schedule.name, run_id, "failed", str(exc))
    detail = "; ".join(
        f"chaos run {r.run_id}: {r.fault} on {r.target}: {r.outcome}"
        + (f", MTTR {r.phases['mttr']:.0f}s" if r.phases.get("mttr") is not None else "")
        for r in reports
    )
    status = "done" if all(r.outcome != "failed" for r in reports) else "failed"
    _finish(store, run_id, status, detail)
    return ScheduleRun(schedule.name, run_id, status, detail)


# -- delivery -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outgoing:
    """A report ready to deliver, whatever made it."""

    stem: str  # its file name in a directory, without the extension
    title: str  # an issue's default title, before " (<schedule>)"
    summary: tuple[str, ...]  # for Slack and Discord: a headline, then details
    whole: str  # the command that prints the whole report (when an issue has to cut it)
    render: Callable[[str], str]  # md | html | json -> the text


def _drift(report: DriftReport) -> Outgoing:
    return Outgoing(
        stem=f"drift-{report.scan_id}",
        title="Terry drift report",
        summary=tuple(_summary_lines(report)),
        whole=f"terry drift report --scan {report.scan_id}",
        render=lambda fmt: {"md": to_markdown, "html": to_html, "json": to_json}[fmt](report),
    )


def _weekly_outgoing(report: WeeklyReport) -> Outgoing:
    last = (report.end - timedelta(days=1)).date().isoformat()
    picked = ("auto_fixed", "needed_person", "mttf", "rollbacks", "prevented", "time_saved")
    lines = [f"Terry weekly report, {report.start.date()} to {last}: {sentence(report)}"]
    lines += [
        f"{h.label}: {h.value} (last week {h.previous}, {h.change})"
        for h in headlines(report)
        if h.key in picked
    ]
    renderers = {"md": weekly_markdown, "html": weekly_html, "json": weekly_json}
    return Outgoing(
        stem=f"weekly-{last}",
        title="Terry weekly report",
        summary=tuple(lines),
        whole=f"terry report weekly --end {last}",
        render=lambda fmt: renderers[fmt](report),
    )


def _summary_lines(report: DriftReport, limit: int = 15) -> list[str]:
    s = report.summary
    lines = [
        f"Terry drift scan {report.scan_id}: {s.hosts_scanned} host(s), {s.hosts_drifted} "
        f"drifted, {s.hosts_unreachable} unreachable; {s.items} item(s), {s.new} new, "
        f"{s.resolved} resolved"
    ]
    for host in report.hosts:
        if host.status == "clean":
            continue
        if host.status == "unreachable":
            lines.append(f"{host.host}: unreachable")
            continue
        current = [i for i in host.items if i.state != "resolved"]
        lines.append(f"{host.host}: " + ", ".join(f"{i.resource} ({i.state})" for i in current))
    return lines[: limit + 1]


def _message(report: Outgoing, kind: str) -> Message:
    """The summary as a chat message: its first line, then the rest (fenced for Slack and
    Discord, whose shapes ``terry.notify.send`` speaks)."""
    head, rest = report.summary[0], "\n".join(report.summary[1:]).replace("```", "'''")
    if not rest:
        return Message(head, "")
    if kind == "slack":
        return Message(head, f"```{rest}```")
    if kind == "discord":
        return Message(head, f"```\n{rest[:1700]}\n```")
    return Message(head, rest)


def _to_dir(report: Outgoing, delivery: DeliveryConfig, fmt: str, config: Config) -> str:
    assert delivery.dir is not None
    folder = Path(delivery.dir)
    if not folder.is_absolute():
        folder = config.repo / folder
    folder.mkdir(parents=True, exist_ok=True)
    text = report.render(fmt)
    for name in (f"{report.stem}.{_EXT[fmt]}", f"latest.{_EXT[fmt]}"):
        write_atomically(folder / name, text)
    return str(folder / f"{report.stem}.{_EXT[fmt]}")


def _to_webhook(report: Outgoing, delivery: DeliveryConfig, environ: dict[str, str]) -> str:
    """Through the notifier's sending path (apprise): an http(s) URL gets the ``webhook_kind``
    body (Slack's, Discord's, or the whole JSON report); an apprise URL (slack://...,
    mailto://...) the summary."""
    from terry.notify.routes import Target
    from terry.notify.send import DeliveryError, send

    env, kind = delivery.webhook_url_env, delivery.webhook_kind
    assert env is not None
    url = (environ.get(env) or "").strip()
    if not url:
        raise ConfigError(f"${env} is not set (the webhook URL)")
    plain = url.lower().startswith(("http://", "https://"))
    target = Target(route=f"{kind} webhook", shape=kind if plain else "apprise", url=url)
    document = json.loads(report.render("json")) if kind == "json" and plain else None
    try:
        send(target, _message(report, kind), timeout=WEBHOOK_TIMEOUT, document=document)
    except DeliveryError as exc:
        raise TerryError(f"{kind} webhook (${env}) {exc.why}") from None
    return f"{kind} webhook ${env}"


def issue_marker(schedule: str) -> str:
    """The first line of the body of the issue Terry keeps the schedule's report in."""
    return f"<!-- terry-schedule: {schedule} -->"


def _fence_after(line: str, fence: str) -> str:
    """The code fence open after ``line`` ("" outside code), ``fence`` the one open before.
    Reports fence text with more backticks than it holds in a row (``fenced``), so a run
    of backticks as long as the fence can only be the closing line."""
    if fence:
        closes = len(line.strip()) >= len(fence) and set(line.strip()) == {"`"}
        return "" if closes else fence
    opening = re.match(r"`{3,}", line)
    return opening.group(0) if opening else ""


def _cut_markdown(text: str, budget: int) -> str:
    """Whole lines of ``text``, at most ``budget`` characters with the closing fence of a
    code block open at the cut (so nothing after it is swallowed into the block)."""
    kept: list[str] = []
    size, fence = 0, ""
    for line in text.splitlines():
        after = _fence_after(line, fence)
        if size + len(line) + 1 + (len(after) + 1 if after else 0) > budget:
            break
        kept.append(line)
        size, fence = size + len(line) + 1, after
    return "\n".join([*kept, fence] if fence else kept)


def _issue_body(report: Outgoing, marker: str) -> str:
    head = f"{marker}\n\n"
    text = report.render("md")
    if len(head) + len(text) <= _ISSUE_BODY_LIMIT:
        return head + text
    note = (
        f"\n\n---\n\n**The report is cut here**: it is longer than GitHub allows in an "
        f"issue. The whole report: `{report.whole}`.\n"
    )
    return head + _cut_markdown(text, _ISSUE_BODY_LIMIT - len(head) - len(note)) + note


def _to_github_issue(
    report: Outgoing,
    delivery: DeliveryConfig,
    schedule: ScheduleConfig,
    config: Config,
    environ: dict[str, str],
) -> str:
    issue = delivery.github_issue
    assert issue is not None
    github = config.forge.github
    from terry.forges.github import GitHubForge, credentials_from_env  # PyGithub: only here

    forge = GitHubForge(github, credentials_from_env(github, environ))
    marker = issue_marker(schedule.name)
    title = issue.title or f"{report.title} ({schedule.name})"
    body = _issue_body(report, marker)
    existing = forge.find_issue(marker)
    if existing is None:
        opened = forge.open_issue(title=title, body=body, labels=issue.labels)
        return f"github issue #{opened.number} opened: {opened.url}"
    updated = forge.update_issue(existing.number, title=title, body=body)
    return f"github issue #{updated.number} updated: {updated.url}"


def deliver(
    report: Outgoing,
    schedule: ScheduleConfig,
    config: Config,
    environ: dict[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Send the report everywhere the schedule says; (delivered, failures)."""
    env = dict(os.environ) if environ is None else environ
    delivered: list[str] = []
    failures: list[str] = []
    for delivery in schedule.deliver:
        try:
            if delivery.dir is not None:
                delivered.append(_to_dir(report, delivery, schedule.report_format, config))
            elif delivery.webhook_url_env is not None:
                delivered.append(_to_webhook(report, delivery, env))
            else:
                delivered.append(_to_github_issue(report, delivery, schedule, config, env))
        except (TerryError, OSError) as exc:
            log.error("schedule %s: delivery failed: %s", schedule.name, exc)
            failures.append(str(exc))
    return delivered, failures


# -- terry serve ----------------------------------------------------------------------------
class Scheduler:
    """A thread that runs each schedule when it is due, each run in a thread of its own."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        fix: Callable[[str | None], tuple[int, int | None]] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.fix = fix
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="terry-scheduler", daemon=True)
        self._running: dict[str, threading.Thread] = {}

    def start(self) -> None:
        if self.config.schedules:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        for thread in list(self._running.values()):
            thread.join(60)

    def _loop(self) -> None:
        now = utcnow()
        due = {s.name: next_run(s, now) for s in self.config.schedules}
        while not self._stop.is_set():
            now = utcnow()
            for schedule in self.config.schedules:
                if due[schedule.name] > now:
                    continue
                due[schedule.name] = next_run(schedule, now)
                busy = self._running.get(schedule.name)
                if busy is not None and busy.is_alive():
                    _record(self.store, schedule.name, "skipped", "the previous run is going")
                    continue
                thread = threading.Thread(
                    target=self._run, args=(schedule.name,), name=f"terry-{schedule.name}"
                )
                self._running[schedule.name] = thread
                thread.start()
            wait = min(due.values()) - utcnow()
            self._stop.wait(max(0.05, min(wait.total_seconds(), 30.0)))

    def _run(self, name: str) -> None:
        try:
            done = run_schedule(self.config, self.store, name, fix=self.fix)
            level = logging.WARNING if done.status in ("failed", "partial") else logging.INFO
            log.log(level, "schedule %s: %s: %s", name, done.status, done.detail)
        except Exception:
            log.exception("schedule %s crashed", name)


# -- without terry serve --------------------------------------------------------------------
def crontab_line(schedule: ScheduleConfig, *, terry: str, repo: Path, log_file: Path) -> str:
    """A crontab line running the schedule (cron schedules only; cron is UTC here only if
    the machine's is: CRON_TZ=UTC is set on the line's block)."""
    if schedule.cron is None:
        raise ConfigError(f"schedule {schedule.name} runs every {schedule.interval}s: use cron")
    command = shlex.join([terry, "--repo", str(repo), "schedule", "run", schedule.name])
    return f"{schedule.cron} {command} >> {shlex.quote(str(log_file))} 2>&1"


_DOW = {str(i): d for i, d in enumerate(["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"])}
_DOW["7"] = "Sun"


def _calendar_field(value: str, *, dow: bool = False) -> str:
    if value == "*":
        return "*" if not dow else ""
    parts = []
    for part in value.split(","):
        if re.fullmatch(r"\*/\d+", part) and not dow:
            parts.append(f"0/{part[2:]}")
        elif re.fullmatch(r"\d+-\d+", part):
            low, high = part.split("-")
            parts.append(f"{_DOW[low]}..{_DOW[high]}" if dow else f"{low}..{high}")
        elif re.fullmatch(r"\d+", part):
            parts.append(_DOW[part] if dow else part)
        elif dow and re.fullmatch(r"[A-Za-z]{3}(-[A-Za-z]{3})?", part):
            parts.append(part.title().replace("-", "..").title())
        else:
            raise ConfigError(f"cannot express cron field {value!r} as a systemd calendar")
    return ",".join(parts)


def on_calendar(cron: str) -> str:
    """A five-field cron expression as systemd's ``OnCalendar=`` (UTC)."""
    minute, hour, dom, month, dow = cron.split()
    if dom != "*" and dow != "*":  # cron: either matches; systemd: both must
        raise ConfigError(f"cron {cron!r} names both days of month and of week: use cron")
    days = _calendar_field(dow, dow=True)
    date = f"*-{_calendar_field(month)}-{_calendar_field(dom)}"
    time = f"{_calendar_field(hour)}:{_calendar_field(minute)}:00"
    return " ".join(p for p in (days, date, time, "UTC") if p)


def systemd_units(
    schedule: ScheduleConfig, *, terry: str, repo: Path, user: str | None = None
) -> dict[str, str]:
    """``terry-<name>.service`` and ``terry-<name>.timer`` running the schedule."""
    if schedule.cron is not None:
        timer = f"OnCalendar={on_calendar(schedule.cron)}\n"
    else:
        timer = f"OnBootSec=60\nOnUnitActiveSec={int(schedule.interval or 60)}s\n"
    command = shlex.join([terry, "--repo", str(repo), "schedule", "run", schedule.name])
    service = (
        "[Unit]\n"
        f"Description=Terry schedule {schedule.name} ({schedule.run})\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n" + (f"User={user}\n" if user else "") + f"WorkingDirectory={repo}\n"
        f"ExecStart={command}\n"
    )
    unit_timer = (
        "[Unit]\n"
        f"Description=Run Terry schedule {schedule.name}\n\n"
        "[Timer]\n"
        f"{timer}"
        "Persistent=true\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return {f"terry-{schedule.name}.service": service, f"terry-{schedule.name}.timer": unit_timer}
