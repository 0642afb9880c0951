"""``terry drift``: where live hosts differ from the desired state in git."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from terry.appliers.base import EventStatus, RunnerEvent
from terry.cli.context import open_config, open_pipeline, open_store
from terry.cli.ids import RowId
from terry.cli.output import (
    console,
    emit_json,
    emit_report,
    err_console,
    output_option,
    report_options,
)
from terry.drift.items import HostStatus
from terry.drift.ledger import ItemState
from terry.drift.report import DriftReport, load_report, to_html, to_json, to_markdown
from terry.errors import InputError
from terry.proposals.state import WENT_WRONG


@click.group("drift")
def command() -> None:
    """Drift: where live hosts differ from the desired state in the repository.

    \b
    The desired state is playbooks/site.yml with the roles and variables the inventory
    selects, on main. A scan runs it in check mode with diff and compares the hosts' facts
    with what the inventory declares (terry_hostname, terry_os, terry_packages).
      terry drift scan                    scan every host, record it, show what drifted
      terry drift scan --limit staging    an Ansible host pattern
      terry drift report --format html --out drift.html
    Each item is new, persisting (since when) or resolved against the host's last scan;
    an unreachable host is reported as unreachable, never as drifted.
    """


class _Progress:
    """One line per host and changed/failed task while the scan runs (stderr)."""

    def __call__(self, event: RunnerEvent) -> None:
        if event.status in (EventStatus.CHANGED, EventStatus.FAILED, EventStatus.UNREACHABLE):
            what = {"changed": "drift", "failed": "error", "unreachable": "unreachable"}
            err_console.print(
                f"  {event.host:<14} {what[event.status.value]:<11} {event.task or ''}",
                markup=False,
            )


@command.command("scan")
@click.option("--limit", "-l", help="Ansible host pattern (default: every host).")
@click.option("--forks", type=click.IntRange(1, 500), help="Parallel hosts (runner.forks).")
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when anything drifted (like 'git diff --exit-code'); 0 when clean.",
)
@output_option
@click.pass_context
def scan(
    ctx: click.Context, limit: str | None, forks: int | None, exit_code: bool, output: str
) -> None:
    """Scan hosts for drift and record the scan.

    \b
    Exit codes: 0 scanned (with --exit-code: and nothing drifted), 1 drift found (with
    --exit-code), 2 bad --limit, 3 configuration or inventory problem, 8 ansible could not
    run. Unreachable hosts are listed; they do not change the exit code.
    """
    from terry.drift.scan import run_scan  # ansible-runner: only when scanning

    config = open_config(ctx)
    store = open_store(config)
    if output != "json":
        err_console.print(f"scanning {limit or 'all hosts'} against main…", markup=False)
    outcome = run_scan(
        config, store, limit=limit, forks=forks, on_event=_Progress() if output != "json" else None
    )
    if not outcome.hosts:
        raise InputError(f"--limit {limit!r} matches no host in the inventory")
    report = load_report(store, config, outcome.scan_id)
    if output == "json":
        emit_json(report)
    else:
        _print(report, seconds=outcome.seconds)
    if exit_code and report.summary.hosts_drifted:
        ctx.exit(1)


@command.command("report")
@click.option("--scan", "scan_id", type=RowId("scan"), help="A scan id (default: the newest).")
@report_options(html="a chart")
@click.pass_context
def report(ctx: click.Context, scan_id: int | None, fmt: str, out: Path | None) -> None:
    """A drift report of the newest scan (or --scan N): summary first, then each host.

    The JSON form is documented in docs/drift.md (schema terry.drift/v1).
    """
    config = open_config(ctx)
    found = load_report(open_store(config), config, scan_id)
    text = {"md": to_markdown, "html": to_html, "json": to_json}[fmt](found)
    emit_report(text, out, f"{fmt}, scan {found.scan_id}")


@command.command("fix")
@click.option("--limit", "-l", help="Ansible host pattern (default: every drifted host).")
@click.option("--forks", type=click.IntRange(1, 500), help="Parallel hosts (runner.forks).")
@click.option("--no-apply", is_flag=True, help="Stop after the gate's decision (and merge).")
@output_option
@click.pass_context
def fix(
    ctx: click.Context, limit: str | None, forks: int | None, no_apply: bool, output: str
) -> None:
    """Scan, then propose one reconciliation of every host with drift.

    
    The proposal runs the desired state (playbooks/site.yml) on the drifted hosts only, and
    goes the way every fix goes: a branch, a dry run (the drift itself), the gate, review
    or merge, apply, and verification by a new scan of those hosts. Approve a reviewed one
    with 'terry proposals approve N'. What a playbook cannot change (another hostname, OS
    or package version) is listed for a human, not proposed.
    Exit codes: 0 proposed (or nothing to fix), 1 the proposal failed, was denied or could
    not be verified, 3 configuration problem, 8 ansible could not run.
    """
    from terry.sources.drift import fix_drift  # the pipeline: only when fixing

    _config, _store, pipeline = open_pipeline(ctx, output)
    done = fix_drift(
        pipeline,
        limit=limit,
        forks=forks,
        apply=not no_apply,
        on_event=_Progress() if output != "json" else None,
    )
    if output == "json":
        emit_json(done)
    elif not done.hosts:
        console.print(f"scan {done.scan_id}: nothing a playbook run would change", markup=False)
    else:
        console.print(
            f"scan {done.scan_id}: proposal {done.proposal_id} reconciles "
            f"{', '.join(done.hosts)} (incident {done.incident_id}): {done.state}",
            markup=False,
        )
        if done.reasons:
            console.print(f"  gate: {done.decision} — {'; '.join(done.reasons)}", markup=False)
        if done.state == "awaiting_review":
            console.print(
                f"  approve with: terry proposals approve {done.proposal_id}", markup=False
            )
    if output != "json":
        for host, what in done.left:
            console.print(f"  left for a human: {host}: {what}", markup=False)
        for host in done.unreachable:
            console.print(f"  unreachable, not judged: {host}", markup=False)
    if done.state in WENT_WRONG:
        ctx.exit(1)


def _print(report: DriftReport, *, seconds: float | None = None) -> None:
    s = report.summary
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    console.print(
        f"scan {report.scan_id}{took}: {s.hosts_scanned} host(s), {s.hosts_drifted} drifted, "
        f"{s.hosts_unreachable} unreachable; {s.items} item(s): {s.new} new, "
        f"{s.persisting} persisting, {s.resolved} resolved",
        markup=False,
    )
    table = Table("host", "status", "state", "since", "resource", "task / detail")
    for host in report.hosts:
        if host.status == HostStatus.UNREACHABLE.value:
            table.add_row(escape(host.host), "unreachable", "", "", "", escape(host.message or ""))
            continue
        if not host.items:
            table.add_row(escape(host.host), host.status, "", "", "", "")
        for item in host.items:
            style = {"new": "bold red", "resolved": "green"}.get(item.state, "")
            table.add_row(
                escape(host.host),
                host.status,
                f"[{style}]{item.state}[/{style}]" if style else item.state,
                item.since.strftime("%Y-%m-%d %H:%M") if item.state != ItemState.NEW else "",
                escape(item.resource),
                escape(item.task + (f" — {item.detail}" if item.detail else "")),
            )
        for commit in host.unapplied:
            table.add_row(
                escape(host.host),
                host.status,
                "in git",
                "",
                escape(commit["commit"][:12]),
                escape(f"not applied here: {commit['subject']}"),
            )
    console.print(table, markup=True)
