"""``terry alert ingest``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, BinaryIO

import click
from rich.table import Table

from terry.cli.context import open_pipeline
from terry.cli.output import console, emit_json, output_option
from terry.errors import InputError
from terry.sources.alertmanager import parse_payload

if TYPE_CHECKING:
    from terry.pipeline import ProposalOutcome

MAX_PAYLOAD = 10 * 1024 * 1024


@click.group("alert")
def command() -> None:
    """Feed Alertmanager alerts to Terry."""


@command.command("ingest")
@click.argument("source", type=click.File("rb"))
@click.option("--no-apply", is_flag=True, help="Stop at the gate's decision; apply nothing.")
@click.option("--no-remediate", is_flag=True, help="Only store the alerts and incidents.")
@output_option
@click.pass_context
def ingest(
    ctx: click.Context, source: BinaryIO, no_apply: bool, no_remediate: bool, output: str
) -> None:
    """Ingest an Alertmanager webhook payload (version 4) from FILE, or - for stdin.

    \b
    Every alert is stored before anything else happens. Alerts with the same fingerprint
    join one incident; a resolved alert closes it; re-ingesting a payload creates nothing
    twice. For each new incident Terry diagnoses, proposes a fix on a branch, dry-runs it,
    asks the gate, and merges and applies it when the gate says merge.
    Incidents of one payload that need the same remedy with the same parameters (a storm)
    fold into one proposal over all their hosts, rolled out in canary waves; one that comes
    while such a proposal is still carried (within storm.window) joins it, or its next wave.

    \b
    Exit codes: 0 accepted · 2 bad payload (nothing stored) · 3 config · 6 store
    """
    raw = source.read(MAX_PAYLOAD + 1)
    if len(raw) > MAX_PAYLOAD:
        raise InputError(f"payload is larger than {MAX_PAYLOAD} bytes")
    payload = parse_payload(raw)
    _config, _store, pipeline = open_pipeline(ctx, output)
    result = pipeline.ingest(payload, remediate=not no_remediate, apply=not no_apply)
    if output == "json":
        emit_json(
            {
                "alerts": result.ingest.effects,
                "proposals": result.outcomes,
                "truncated_alerts": payload.truncated_alerts,
            }
        )
        return
    table = Table("alert", "status", "effect", "incident", "detail", title="Alerts")
    for e in result.ingest.effects:
        table.add_row(
            e.alertname, e.status.value, e.effect.value, str(e.incident_id or "-"), e.detail
        )
    console.print(table)
    if payload.truncated_alerts:
        console.print(
            f"[yellow]payload truncated {payload.truncated_alerts} alerts[/yellow]", markup=True
        )
    print_outcomes(result.outcomes)


def print_outcomes(outcomes: Iterable[ProposalOutcome], name: str | None = None) -> None:
    """Where each incident's proposal stopped, and what to do when it waits for review;
    ``name``: what to call the incident (default: ``incident N``)."""
    for o in outcomes:
        said = name or f"incident {o.incident_id}"
        if o.proposal_id is None:
            console.print(f"{said}: no proposal — {o.note}")
            continue
        console.print(
            f"{said}: proposal {o.proposal_id} is "
            f"[bold]{o.state}[/bold] (decision: {o.decision or '-'})",
            markup=True,
        )
        if o.note:  # folded into a storm, or joined: where its host went
            console.print(f"    {o.note}", markup=False)
        for reason in o.reasons:
            console.print(f"    · {reason}", markup=False)
        if o.state == "awaiting_review":
            console.print(
                f"    approve: terry proposals approve {o.proposal_id}   reject: "
                f"terry proposals reject {o.proposal_id} --reason TEXT"
            )
