"""``terry incidents list|show``."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from terry.cli.context import open_config, open_store
from terry.cli.ids import IncidentKey
from terry.cli.output import console, emit_json, err_console, inert, output_option
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
    rows = list_incidents(open_store(open_config(ctx)), state=state, limit=limit)
    if output == "json":
        emit_json(rows)
        return
    table = Table(
        "id",
        "reference",
        "source",
        "alert",
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
            inert((r.attention or "")[:60]),
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

    Exit codes: 0, 4 no such incident."""
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
    table = Table("time", "what", "actor", "detail", title="Timeline")
    for e in story.timeline:
        table.add_row(
            e.at.strftime("%H:%M:%S.%f")[:-3], inert(e.what), inert(e.actor), inert(e.detail)
        )
    console.print(table)


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

    Exit codes: 0, 4 no such incident.
    """
    from terry.reports.explain import explain_incident  # the Anthropic client: only here

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
