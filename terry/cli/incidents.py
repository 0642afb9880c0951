"""``terry incidents list|show|report|archive|retry`` and ``terry explain``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Column, Table

from terry.cli.context import actor_name, open_config, open_pipeline, open_store
from terry.cli.ids import IncidentKey
from terry.cli.output import (
    console,
    emit_json,
    emit_report,
    err_console,
    inert,
    output_option,
    report_options,
)
from terry.cli.remote import remote_for
from terry.reports.views import incident_story, list_incidents


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


@click.group("incidents")
def command() -> None:
    """Incidents: one problem on one target, built from alerts that share a fingerprint."""


@command.command("list")
@click.option("--state", type=click.Choice(["open", "resolved"]), help="Only this state.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@output_option
@click.pass_context
def list_(ctx: click.Context, state: str | None, limit: int, output: str) -> None:
    """List incidents, newest first."""
    remote = remote_for(ctx)  # TERRY_SERVER: ask terry serve's API
    if remote is not None:
        rows = remote.incidents(state=state, limit=limit)
    else:
        rows = list_incidents(open_store(open_config(ctx)), state=state, limit=limit)
    if output == "json":
        emit_json(rows)
        return
    table = Table(
        "id",
        Column("reference", no_wrap=True),
        "source",
        Column("alert", min_width=28),
        "host",
        "state",
        "opened",
        "fixed in",
        "proposals",
        "attention",
    )
    for r in rows:
        table.add_row(
            str(r.id),
            r.ref,
            r.source,
            inert(r.title),
            inert(r.host or "-"),
            r.state,
            r.opened_at.strftime("%Y-%m-%d %H:%M:%S"),
            _duration(r.seconds_to_fix),
            ",".join(map(str, r.proposals)) or "-",
            inert((r.attention or "")[:48]),
        )
    console.print(table)


@command.command("show")
@click.argument("incident_id", metavar="INCIDENT", type=IncidentKey())
@output_option
@click.pass_context
def show(ctx: click.Context, incident_id: int | str, output: str) -> None:
    """The whole story of an incident: alerts, proposals, runs, decisions, with timestamps.

    INCIDENT is its number or its reference: `terry incidents show 12` and
    `terry incidents show INC-2026-12-04-007` name the same incident.

    Exit codes: 0, 4 no such incident (remotely also 11 not permitted, 12 unreachable)."""
    remote = remote_for(ctx)
    if remote is not None:
        story = remote.incident(incident_id)
    else:
        story = incident_story(open_store(open_config(ctx)), incident_id)
    if output == "json":
        emit_json(story)
        return
    i = story.incident
    console.print(
        f"[bold]Incident {i.id}[/bold] ({i.ref}): {escape(inert(i.title))} on "
        f"{escape(inert(i.host or '?'))} — {i.state}",
        markup=True,
    )
    console.print(f"  opened   {i.opened_at.isoformat()}")
    if i.fixed_at:
        console.print(
            f"  fixed    {i.fixed_at.isoformat()}  (alert → verified fix: "
            f"{_duration(i.seconds_to_fix)})"
        )
    if i.resolved_at:
        console.print(f"  resolved {i.resolved_at.isoformat()}")
    if i.truncated:
        console.print(
            "  [yellow]Alertmanager truncated the payload: the picture may be incomplete[/yellow]",
            markup=True,
        )
    if i.attention:
        console.print(
            f"  [yellow]needs a human:[/yellow] {escape(inert(i.attention))}", markup=True
        )
    console.print(
        "  labels   " + ", ".join(f"{inert(k)}={inert(v)}" for k, v in story.labels.items()),
        markup=False,
    )
    if i.trace_id:
        console.print(f"  trace    {i.trace_id}  (Terry's own spans: docs/traces.md)")
    if story.traces:
        from terry.traces.evidence import TraceEvidence

        for line in TraceEvidence.from_json(story.traces).lines():
            console.print(f"  traces   {inert(line)}", markup=False)
    table = Table("time", "what", "actor", "detail", title="Timeline")
    for e in story.timeline:
        table.add_row(
            e.at.strftime("%H:%M:%S.%f")[:-3], inert(e.what), inert(e.actor), inert(e.detail)
        )
    console.print(table)


@command.command("report")
@click.argument("incident_id", metavar="INCIDENT", type=IncidentKey())
@report_options(html="the timeline and every section")
@click.pass_context
def report(ctx: click.Context, incident_id: int | str, fmt: str, out: Path | None) -> None:
    """An incident's report, to read in a minute: a summary line, the timeline (alert
    fired, received, diagnosed, proposed, dry run, decision and reasons, approved by,
    applied per host, verified and the evidence, resolved), the diagnosis (Claude's marked
    AI-authored, with its confidence), what changed (commit, branch, pull request), time to
    fix, the same remedy on the same host before, and what a person should still look at.

    \b
      terry incidents report 12                          Markdown on stdout
      terry incidents report INC-2026-12-04-007 --format html --out inc.html
      terry incidents report 12 --format json | jq .attention     schema terry.incident/v1
    INCIDENT is its number or its reference. The Markdown is what Terry commits to the
    repository as reports/incidents/INC-....md once the incident closes (terry incidents
    archive). Alert text, labels and Claude's words are shown as text, never markup.

    Exit codes: 0, 2 bad --format or --out, 4 no such incident, 6 the store cannot be
    reached (with --format json, errors are JSON on stderr)."""
    from terry.reports.incident_report import incident_report
    from terry.reports.incident_report_format import to_html, to_json, to_markdown

    found = incident_report(open_store(open_config(ctx)), incident_id)
    text = {"md": to_markdown, "html": to_html, "json": to_json}[fmt](found)
    emit_report(text, out, f"{fmt}, incident {found.id} ({found.ref})")


@command.command("archive")
@output_option
@click.pass_context
def archive(ctx: click.Context, output: str) -> None:
    """Commit the reports of closed incidents that have none yet to the repository, as
    reports/incidents/INC-....md on main (one commit; shared with the forge when there is
    one). Each report is committed once; `terry serve` does this by itself now and then.

    \b
      terry incidents archive                  prints the references committed
      terry incidents archive --output json    {"committed": ["INC-2026-12-04-007", ...]}
    A report changes no host: it has no dry run and no gate (its commit says so in the
    trailer Terry-Decision: none).

    Exit codes: 0 (also when there was nothing to commit), 6 store, 7 git."""
    from terry.cli.context import open_pipeline
    from terry.reports.incident_archive import archive_closed, report_path

    _config, _store, pipeline = open_pipeline(ctx, output)
    refs = archive_closed(pipeline.ctx, pipeline.review)
    if output == "json":
        emit_json({"committed": refs, "paths": [report_path(r) for r in refs]})
        return
    if not refs:
        console.print("nothing to commit: every closed incident's report is in the repository")
    for ref in refs:
        console.print(f"committed {report_path(ref)}")


@command.command("retry")
@click.argument("incident_id", metavar="INCIDENT", type=IncidentKey())
@click.option("--reason", help="Why (kept in the incident's audit trail).")
@click.option(
    "--as",
    "as_",
    metavar="NAME",
    help="Who asks: yourself (default), another only for an admin.",
)
@click.option("--no-apply", is_flag=True, help="Stop at the decision; apply later.")
@output_option
@click.pass_context
def retry(
    ctx: click.Context,
    incident_id: int | str,
    reason: str | None,
    as_: str | None,
    no_apply: bool,
    output: str,
) -> None:
    """Try an alert's incident again: diagnose it and propose a fix anew.

    For an incident still open whose proposal ended without fixing it (denied, rejected,
    failed, rolled back, escalated, interrupted), once what stood in the way changed (the
    policy, the catalogue, the host). Alertmanager's repeats of a firing alert join the open
    incident and change nothing; this asks for a new diagnosis, a new proposal, its dry run
    and the gate, as for a new alert.

    \b
      terry incidents retry INC-2026-12-04-007 --reason "policy fixed in #42"
      terry incidents retry 12 -o json        {"incident", "ref", "previous", "proposals"}
    Locally the new proposal is carried here, as `terry alert ingest` does (unless the
    server's worker takes it first); remotely (TERRY_SERVER, TERRY_TOKEN: an operator's or
    admin's) the server's worker carries it: follow it with `terry incidents show`.

    Refused: an incident that is resolved, one that did not come from an alert (drift and
    forecasts raise new ones: run their command), one with a proposal still under way.

    Exit codes: 0, 4 no such incident, 5 its state does not allow it, 11 not permitted,
    12 the server cannot be reached."""
    from terry.cli.alerts import print_outcomes
    from terry.incidents.retry import ask_retry

    why = " ".join((reason or "").split()) or "no reason given"
    remote = remote_for(ctx)
    if remote is not None:
        answer = remote.retry(incident_id, {"reason": why, **({"as": as_} if as_ else {})})
        if output == "json":
            emit_json(answer)
            return
        console.print(
            f"incident {answer.get('ref') or answer.get('incident')}: queued on the server; "
            f"follow it with: terry incidents show {answer.get('incident')}"
        )
        return
    config, store, pipeline = open_pipeline(ctx, output)
    asked = ask_retry(store, incident_id, actor=actor_name(config, as_), reason=why)
    outcomes = pipeline.remediate_many([asked.incident_id], apply=not no_apply)
    if output == "json":
        emit_json({**asked.as_json(), "proposals": outcomes})
        return
    print_outcomes(outcomes, asked.ref or f"incident {asked.incident_id}")


@click.command("explain")
@click.argument("incident_id", metavar="INCIDENT", type=IncidentKey())
@click.option("--no-ai", is_flag=True, help="Only the record's account; Claude is not asked.")
@output_option
@click.pass_context
def explain_command(ctx: click.Context, incident_id: int | str, no_ai: bool, output: str) -> None:
    """A plain-language account of an incident: what happened, what Terry (or Claude)
    concluded, what each proposal went through, and where it stands.

    INCIDENT is its number or its reference (INC-2026-12-04-007).

    With an Anthropic API key configured (see ai: in terry.yml), Claude is asked to tell the
    record in plain language first, labelled as written by Claude, with suggested next
    steps; its answer is untrusted: checked, stripped of escape sequences and printed as
    plain text, never markup. The account from the record always follows: the record is
    what happened. When Claude's account is missing (no key, the API failed, its answer was
    refused) one line on stderr says why, and the command still succeeds. --no-ai: the
    record's account only. JSON: incident_id, text (the record's account), claude (model,
    account, next_steps, or null) and claude_error (why it is missing, or null).

    Remote mode (TERRY_SERVER, TERRY_TOKEN): the record's account only, from the API.

    Exit codes: 0, 4 no such incident.
    """
    from terry.reports.explain import explain_incident  # the Anthropic client: only here

    remote = remote_for(ctx)
    if remote is not None:
        found = remote.explain(incident_id)
        if output == "json":
            emit_json(found)
        else:
            console.print(found.text, markup=False)
        return
    config = open_config(ctx)
    found = explain_incident(config, open_store(config), incident_id, ask_claude=not no_ai)
    if output == "json":
        emit_json(found)
        return
    if found.claude is not None:
        claude = found.claude
        console.print(
            f"Written by Claude ({inert(claude.model)}); the record below is what happened:"
        )
        console.print(claude.account, emoji=False)
        if claude.next_steps:
            console.print("Suggested next steps:")
            for step in claude.next_steps:
                console.print(f"  - {inert(step)}", emoji=False)
        console.print()
        console.print("From the record:")
    console.print(found.text, markup=False)
    if found.claude_error:
        err_console.print(f"No account from Claude: {inert(found.claude_error)}", emoji=False)
