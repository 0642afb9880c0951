"""``terry forecast``: when disks will fill, which memory leaks and which hosts stand out,
before any alert fires."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from terry.cli.context import open_config, open_pipeline
from terry.cli.output import console, emit_json, err_console, output_option
from terry.config import MAX_HORIZON
from terry.durations import format_duration, parse_duration
from terry.errors import InputError
from terry.gitops.repo import Repo
from terry.inventory.hosts import load_inventory, match_hosts
from terry.proposals.state import WENT_WRONG

if TYPE_CHECKING:
    from terry.forecast.findings import Action
    from terry.forecast.nodes import AnomalyScan
    from terry.forecast.prometheus import DiskForecast, FleetForecast

_WHAT = {"leak": "memory", "anomaly": "node metrics"}


def _duration(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InputError(f"{flag}: {exc}") from exc


@click.command("forecast")
@click.option(
    "--horizon",
    metavar="DURATION",
    help="How far ahead crossings are reported, e.g. 7d (default: forecast.horizon).",
)
@click.option(
    "--lead-time",
    metavar="DURATION",
    help="Crossings sooner than this are prevented, e.g. 2d (default: forecast.lead_time).",
)
@click.option("--limit", "-l", metavar="PATTERN", help="Ansible host pattern (default: all).")
@click.option(
    "--propose/--no-propose",
    default=None,
    help="Open preventive incidents and proposals (default: forecast.propose, on).",
)
@click.option("--no-apply", is_flag=True, help="Stop proposals after the gate (and merge).")
@output_option
@click.pass_context
def command(
    ctx: click.Context,
    horizon: str | None,
    lead_time: str | None,
    limit: str | None,
    propose: bool | None,
    no_apply: bool,
    output: str,
) -> None:
    """Forecast disks and memory from Prometheus, flag odd hosts, prevent what is coming.

    \b
    For every inventory host and filesystem Terry reads forecast.lookback of history from
    prometheus.url (used = 1 - avail / size, as DiskUsageHigh measures it), fits a robust
    trend (outliers, level shifts after a clean-up, daily cycles) and says when it will
    reach forecast.disk_threshold, with an interval. Used memory that grows steadily, with
    no reset, is flagged as a suspected leak. Hosts whose node metrics (load per CPU, CPU,
    memory, disk IO, network, fullest filesystem: forecast.anomaly.features) stand out from
    the fleet's and from their own history are listed with the metrics that do.
      terry forecast                          report, and prevent crossings within the lead time
      terry forecast --no-propose -o json     report only, for scripts
      terry forecast --horizon 30d --lead-time 3d --limit staging
    \b
    Prevention: a crossing sooner than the lead time (still below the threshold) opens an
    incident of source 'forecast' labelled like a DiskWillFillSoon alert, and the disk
    remedy's proposal takes the usual path: dry run, gate, review or merge, apply, verify.
    A second run opens nothing while that incident is open. Suspected leaks open an
    incident kept for a human (no remedy), and so does each host that stands out (source
    'anomaly', alertname HostAnomaly: for review only, never a proposal), resolved when a
    later run finds it ordinary. Approve a reviewed proposal with
    'terry proposals approve N'.
    \b
    Exit codes: 0 forecast made (crossings or not), 1 a proposal failed, was denied or
    could not be verified, 2 bad flag or --limit, 3 configuration problem (no
    prometheus.url, a query Prometheus refuses), 8 Prometheus could not be queried.
    """
    from terry.forecast.prometheus import forecast_fleet

    config = open_config(ctx)
    horizon_s = _duration(horizon, "--horizon")
    if horizon_s is not None and not 0 < horizon_s <= MAX_HORIZON:
        raise InputError(
            f"--horizon: {horizon} is beyond what a trend can say (at most "
            f"{format_duration(MAX_HORIZON)})"
        )
    lead_s = _duration(lead_time, "--lead-time")
    proposing = config.forecast.propose if propose is None else propose
    if limit is not None and (not limit.strip() or limit.startswith("-")):
        raise InputError(f"--limit {limit!r} is not an Ansible host pattern")
    pipeline = None
    if proposing:
        _config, _store, pipeline = open_pipeline(ctx, output)
        sha, _catalogue, inventory = pipeline.ctx.main.view()
        tree = pipeline.ctx.repo.tree(sha)
    else:
        repo = Repo(config.repo, main_branch=config.main_branch)
        tree = repo.tree(repo.head())
        inventory = load_inventory(tree, config.inventory)
    hosts = None
    if limit is not None:
        hosts = match_hosts(tree, config.inventory, limit)
        if not hosts:
            raise InputError(f"--limit {limit!r} matches no host in the inventory")
    fleet = forecast_fleet(config, inventory, hosts=hosts, horizon=horizon_s, lead_time=lead_s)
    actions: tuple[Action, ...] | None = None
    if pipeline is not None:
        from terry.sources.forecast import act

        actions = act(pipeline, fleet, apply=not no_apply)
    if output == "json":
        from terry.forecast.report import to_report

        emit_json(to_report(fleet, actions))
    else:
        _print(fleet)
        _print_actions(fleet, actions)
    if actions and any(a.state in WENT_WRONG for a in actions):
        ctx.exit(1)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def _crossing(d: DiskForecast) -> str:
    f = d.forecast
    if f.projected_at is None:
        return ""
    ahead = f.projected_at - f.now
    beyond = ", beyond the horizon" if f.crossing_at is None else ""
    return f"{_when(f.projected_at)} (in {format_duration(ahead)}{beyond})"


def _interval(d: DiskForecast) -> str:
    f = d.forecast
    if f.earliest is None or f.latest is None:
        return ""
    early = format_duration(max(f.earliest - f.now, 0.0))
    return f"{early} – {format_duration(f.latest - f.now)}"


def _why(d: DiskForecast) -> str:
    """The crossing's columns say when; this says how sure, or why there is none."""
    f = d.forecast
    stale = f"stale: last sample {_when(d.last_sample)}; " if d.stale else ""
    if f.projected_at is None or f.trend is None:
        return stale + f.reason
    fit = {
        "whole": "",
        "segment": ", after a level shift",
        "recent": ", recent rate",
        "bend": ", since the rate changed",
    }
    return (
        f"{stale}confidence {f.confidence:.0%} ({f.trend.points} points"
        f"{fit.get(f.trend.model, ', ' + f.trend.model)})"
    )


def _print(fleet: FleetForecast) -> None:
    hosts = {d.host for d in fleet.disks}
    console.print(
        f"{len(fleet.disks)} filesystem(s) on {len(hosts)} host(s), from Prometheus: "
        f"lookback {format_duration(fleet.lookback)}, step {format_duration(fleet.step)}, "
        f"horizon {format_duration(fleet.horizon)}, lead time "
        f"{format_duration(fleet.lead_time)}, threshold {fleet.threshold}%",
        markup=False,
    )
    table = Table(
        "host", "mountpoint", "used", "trend/day", "crosses at (in)", "interval", "outcome", "why"
    )
    for d in fleet.disks:
        slope = d.slope_percent_per_day
        outcome = d.forecast.outcome.value
        if d.preventive:
            outcome = f"[bold red]{outcome}: prevent[/bold red]"
        table.add_row(
            escape(d.host),
            escape(d.mountpoint),
            f"{d.used_percent:.1f}%",
            "" if slope is None else f"{slope:+.2f}%",
            _crossing(d),
            _interval(d),
            outcome,
            escape(_why(d)),
        )
    console.print(table, markup=True)
    if not fleet.disks:
        console.print("no filesystem series matched an inventory host", markup=False)
    from terry.forecast.findings import leak_summary

    quiet = 0
    for m in fleet.memory:
        if m.suspected:
            console.print(f"[bold red]leak?[/bold red] {escape(leak_summary(m))}", markup=True)
            for reason in m.leak.reasons:
                console.print(f"    {reason}", markup=False)
        else:
            quiet += 1
    if fleet.memory:
        console.print(f"memory: {quiet} host(s) with no leak suspected", markup=False)
    if fleet.anomalies is not None:
        _print_anomalies(fleet.anomalies)
    for line in fleet.unmatched:
        err_console.print(f"  skipped: {line}", markup=False)


def _print_anomalies(scan: AnomalyScan) -> None:
    from terry.forecast.findings import anomaly_summary

    report = scan.report
    compared = (
        f"{len(report.hosts)} host(s) compared on {len(scan.features)} metric(s), the last "
        f"{format_duration(scan.current)} against the fleet and {format_duration(scan.window)}"
        " of history"
    )
    if report.reason:
        console.print(f"anomalies: not judged: {report.reason}", markup=False)
    elif not scan.anomalous:
        console.print(f"anomalies: none; {compared}", markup=False)
    else:
        console.print(f"anomalies: {len(scan.anomalous)}; {compared}", markup=False)
    for a in scan.anomalous:
        console.print(f"[bold red]odd[/bold red] {escape(anomaly_summary(scan, a))}", markup=True)
        for e in a.evidence:
            console.print(f"    {e.describe()}", markup=False)
    if scan.stale:
        console.print(
            f"anomalies: no recent sample, not compared: {', '.join(scan.stale)}", markup=False
        )


def _print_actions(fleet: FleetForecast, actions: tuple[Action, ...] | None) -> None:
    if actions is None:
        if fleet.preventive:
            console.print(
                f"{len(fleet.preventive)} crossing(s) within the lead time; "
                "'terry forecast --propose' prevents them",
                markup=False,
            )
        return
    if not actions:
        console.print("nothing to prevent", markup=False)
    for a in actions:
        what = f"{a.host} {a.mountpoint or _WHAT.get(a.kind, a.kind)}"
        if a.effect == "opened" and a.proposal_id is not None:
            gate = f" (gate: {a.decision}: {'; '.join(a.reasons)})" if a.decision else ""
            console.print(
                f"{what}: incident {a.incident_id}, proposal {a.proposal_id}: {a.state}{gate}",
                markup=False,
            )
            if a.state == "awaiting_review":
                console.print(
                    f"  approve with: terry proposals approve {a.proposal_id}", markup=False
                )
        elif a.effect == "opened":
            console.print(
                f"{what}: incident {a.incident_id} kept for a human: {a.note}", markup=False
            )
        else:
            console.print(f"{what}: {a.effect}: {a.note}", markup=False)
