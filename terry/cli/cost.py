"""``terry cost``: what the fleet costs, where it could cost less, and proposals to get there."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from terry.cli.context import actor_name, open_config, open_pipeline
from terry.cli.output import console, emit_json, emit_report, output_option, report_options
from terry.errors import TerryError
from terry.proposals.state import WENT_WRONG

if TYPE_CHECKING:
    from terry.cost.rules import Recommendation


class UtilisationUnknown(TerryError):
    """Prometheus is configured but gave no figures (exit 8, as for the other services Terry
    depends on): the report is written, without the recommendations that need them."""

    exit_code = 8


@click.group("cost")
def command() -> None:
    """Cost: prices as data (costs/prices.yml on main), utilisation from Prometheus.

    \b
      terry cost report                        per host, tenant, environment; recommendations
      terry cost report --format html --out cost.html    one page with a chart
      terry cost report --format json          schema terry.cost/v1 (docs/cost.md)
      terry cost propose downsize:web-01       the recommendation as an inventory edit
      terry cost propose requests:shop/app     a workload's requests as a manifest edit
    A host names its type with terry_instance_type (or a cloud inventory plugin's
    instance_type) and its volume with terry_volume_gb and terry_volume_type. The gate reads
    each proposal's monthly cost change: a raise above settings.cost.review_above
    (policies/data.json) waits for a person.
    """


@command.command("report")
@report_options(html="a chart of the cost over time")
@click.pass_context
def report(ctx: click.Context, fmt: str, out: Path | None) -> None:
    """Monthly cost per host, tenant and environment, recommendations with their monthly
    savings, and the cost per day over the last 30 days.

    \b
    Recommendations (thresholds under cost: in terry.yml, docs/cost.md):
      downsize   CPU under 20% in every hour of 30 days: the next smaller type of its family
      idle       CPU under 10% in every hour of 7 days: stop or remove it (advice)
      spot       labelled workload=batch: run it on spot (advice)
      volume     its filesystem under 30% full for 30 days: a smaller volume
      requests   an Argo CD target's container used under 30% of its CPU or memory request
                 in every hour of 30 days: smaller requests (with kubernetes: rates in the
                 price list; container metrics in Prometheus)
    Each is made only on 90% of the span's hours with samples; an unknown is no saving.
    --output json is --format json. Exit codes: 0 written, 2 bad --format or --out, 3 no or
    bad price list or terry.yml, 8 Prometheus configured but not answering (report written
    without utilisation and the recommendations that need it).
    """
    from terry.cost import format as formats  # jinja2 and the report: only when asked
    from terry.cost.report import cost_report

    config = open_config(ctx)
    found = cost_report(config)
    render = {"md": formats.to_markdown, "html": formats.to_html, "json": formats.to_json}[fmt]
    emit_report(render(found), out, f"cost report, {fmt}")
    if config.prometheus.url and found.utilisation_error:
        raise UtilisationUnknown(found.utilisation_error)


@command.command("propose")
@click.argument("rec_id", metavar="REC_ID")
@click.option(
    "--converge/--no-converge",
    default=False,
    show_default=True,
    help="Also run the desired state (playbooks/site.yml) on the host, in check mode first "
    "and after the merge: where a cloud role in site.yml applies the type or size.",
)
@click.option("--no-apply", is_flag=True, help="Stop after the gate; do not merge or apply.")
@output_option
@click.pass_context
def propose(ctx: click.Context, rec_id: str, converge: bool, no_apply: bool, output: str) -> None:
    """Propose recommendation REC_ID (from 'terry cost report', e.g. downsize:web-01) as an
    inventory edit: terry_instance_type or terry_volume_gb set on the host, on a branch,
    dry-run, gated (an inventory edit always waits for a person) and reviewed. A requests
    recommendation (requests:TARGET/CONTAINER) edits the Argo CD target's manifest instead
    (requests, and limits equal to them), dry-run by Argo CD, always reviewed, synced.

    The monthly saving is recorded with it; once applied it counts in the weekly report's
    savings against cost.savings_goal.
    Exit codes: 0 proposed, 1 the dry run failed or the gate denied it, 2 advice only (idle,
    spot), 3 no price list, 4 no such recommendation now.
    """
    from terry.cost.proposal import edit_for
    from terry.cost.report import cost_report, find_recommendation
    from terry.cost.savings import record_saving
    from terry.sources.inventory import propose_edit  # the pipeline: only for an edit

    config = open_config(ctx)
    found = cost_report(config, history=False)
    rec = find_recommendation(found, rec_id)
    if rec.kind.value == "requests":
        _propose_requests(ctx, rec, found.currency, no_apply, output)
        return
    edit = edit_for(rec)
    config, store, pipeline = open_pipeline(ctx, output)
    author = actor_name(config, None)
    done = propose_edit(pipeline, edit, converge=converge, apply=not no_apply, author=author)
    record_saving(store, done.proposal_id, rec, found.currency, author)
    if output == "json":
        emit_json({"recommendation": rec, "monthly_saving": rec.monthly_saving, **vars(done)})
    else:
        console.print(
            f"proposal {done.proposal_id}: {rec.id} ({rec.current} -> {rec.proposed}), saves "
            f"{rec.monthly_saving:,.2f} {found.currency} a month: {done.state}",
            markup=False,
        )
        for reason in done.reasons:
            console.print(f"  - {reason}", markup=False)
    if done.state in WENT_WRONG:
        ctx.exit(1)


def _propose_requests(
    ctx: click.Context, rec: Recommendation, currency: str, no_apply: bool, output: str
) -> None:
    """A Kubernetes requests recommendation through the pipeline (terry.cost.workload_proposal)."""
    from terry.cost.savings import record_saving
    from terry.cost.workload_proposal import requests_fix

    config, store, pipeline = open_pipeline(ctx, output)
    author = actor_name(config, None)
    sha, _catalogue, inventory = pipeline.ctx.main.view()
    incident_id, fix = requests_fix(
        store,
        pipeline.ctx.repo,
        sha=sha,
        inventory=inventory,
        rec=rec,
        author=author,
        holder=pipeline.ctx.holder,
    )
    done = pipeline.handle(incident_id, fix, apply=not no_apply)
    assert done.proposal_id is not None
    record_saving(store, done.proposal_id, rec, currency, author)
    state = str(done.state)
    if output == "json":
        emit_json(
            {
                "recommendation": rec,
                "monthly_saving": rec.monthly_saving,
                "incident_id": incident_id,
                "proposal_id": done.proposal_id,
                "state": state,
                "decision": done.decision,
                "reasons": list(done.reasons),
            }
        )
    else:
        console.print(
            f"proposal {done.proposal_id}: {rec.id} ({rec.current} -> {rec.proposed}), saves "
            f"{rec.monthly_saving:,.2f} {currency} a month: {state}",
            markup=False,
        )
        for reason in done.reasons:
            console.print(f"  - {reason}", markup=False)
    if state in WENT_WRONG:
        ctx.exit(1)
