"""``terry proposals list|show|approve|reject|apply|rollback``."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from terry.cli.context import actor_name, open_config, open_pipeline, open_store
from terry.cli.ids import RowId
from terry.cli.output import console, emit_json, err_console, inert, output_option
from terry.cli.remote import remote_for
from terry.errors import InputError
from terry.proposals.confidence import describe
from terry.proposals.state import ProposalState
from terry.proposals.view import list_proposals, proposal_detail

STATES = [s.value for s in ProposalState]


@click.group("proposals")
def command() -> None:
    """Proposals: concrete fixes (playbook + branch + dry run + decision) and their review."""


@command.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only proposals in this state.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@output_option
@click.pass_context
def list_(ctx: click.Context, state: str | None, limit: int, output: str) -> None:
    """List proposals, newest first."""
    remote = remote_for(ctx)  # TERRY_SERVER: ask terry serve's API
    if remote is not None:
        rows = remote.proposals(state=state, limit=limit)
    else:
        rows = list_proposals(open_store(open_config(ctx)), state=state, limit=limit)
    if output == "json":
        emit_json(rows)
        return
    table = Table(
        "id", "incident", "remedy", "hosts", "risk", "state", "decision", "confidence", "branch"
    )
    for r in rows:
        table.add_row(
            str(r.id),
            str(r.incident_id),
            inert(r.remedy),
            inert(",".join(r.hosts)),
            r.risk,
            r.state,
            r.decision or "-",
            "-" if r.confidence is None else str(r.confidence),
            inert(r.branch or "-"),
        )
    console.print(table)


@command.command("show")
@click.argument("proposal_id", type=RowId("proposal"))
@click.option("--events", is_flag=True, help="Include every runner event of every run.")
@output_option
@click.pass_context
def show(ctx: click.Context, proposal_id: int, events: bool, output: str) -> None:
    """State, risk, decision with reasons, the playbook and the check-mode diff.

    \b
    Also its confidence (0-100, with its parts: the remedy's record, the dry run, the
    diagnosis, the canary), its runs, and for a proposal over several hosts (a storm)
    each host's own outcome: its wave, its state (pending, queued, verified, failed,
    unknown, rolled_back, rollback_failed, held, moved, not_applied), why, and the incident
    that brought it (host_outcomes in --output json).
    Exit codes: 0 · 4 no such proposal · 6 the store cannot be reached"""
    remote = remote_for(ctx)
    if remote is not None and events:
        raise InputError("--events is not served by the API yet: run it on Terry's machine")
    if remote is not None:
        d = remote.proposal(proposal_id)
    else:
        d = proposal_detail(open_store(open_config(ctx)), proposal_id, events=events)
    if output == "json":
        emit_json(d)
        return
    s = d.summary
    console.print(
        f"[bold]Proposal {s.id}[/bold] (incident {s.incident_id}): {escape(inert(s.remedy))} on "
        f"{escape(inert(', '.join(s.hosts)))}",
        markup=True,
    )
    console.print(f"  state     [bold]{s.state}[/bold]\n  risk      {s.risk}", markup=True)
    if s.confidence is not None:
        said = describe(s.confidence, s.confidence_parts)
        console.print(f"  confidence {said} (docs/architecture.md: Confidence)")
    if d.follows:
        console.print(f"  follows   proposal {d.follows} (its next wave: hosts that joined late)")
    if d.ai:
        console.print(
            f"  author    AI-authored ({inert(d.ai['model'] or 'Claude')}, confidence "
            f"{d.ai['confidence']}%): review with care",
            markup=False,
        )
        console.print(f"  diagnosis {inert(d.ai['diagnosis'])}", markup=False)
    console.print(
        f"  decision  {d.summary.decision or '-'} (policy commit {(d.policy_commit or '-')[:10]})"
    )
    for reason in d.reasons:
        console.print(f"            · {inert(reason)}", markup=False)
    console.print(
        f"  branch    {inert(s.branch)}  commit {(d.commit or '-')[:10]}  merge "
        f"{(d.merge_commit or '-')[:10]}"
    )
    if d.pull_request:
        pr = d.pull_request
        where = f"#{pr['number']} {inert(pr['url'])}" if pr["number"] else "not opened yet"
        error = f" (last GitHub error: {inert(pr['error'])})" if pr["error"] else ""
        console.print(f"  review    pull request {where}, {pr['state']}{error}", markup=False)
    if d.approved_by:
        console.print(f"  approved  by {inert(d.approved_by)}", markup=False)
    if d.outcome:
        console.print(f"  outcome   {inert(d.outcome)}", markup=False)
    console.print(f"  params    {inert(d.params)}", markup=False)
    console.print(f"  modules   {inert(', '.join(d.modules))}")
    console.print(f"  applier   {inert(d.applier)}", markup=False)
    if d.playbook:
        what = f"Manifest (Argo CD app {d.target})" if d.applier == "argocd" else "Playbook"
        console.print(
            f"\n[bold]{escape(inert(what))}[/bold] {escape(inert(d.playbook_path or ''))}",
            markup=True,
        )
        playbook = inert(d.playbook, multiline=True)  # Syntax bypasses the console's strings
        console.print(Syntax(playbook, "yaml", theme="ansi_dark", background_color="default"))
    console.print(
        "\n[bold]Check-mode diff[/bold] "
        f"({d.check_summary.get('changed', '?')} change(s), ok="
        f"{d.check_summary.get('ok', '?')})",
        markup=True,
    )
    console.print(
        Syntax(
            inert(d.check_diff or "(no changes reported)", multiline=True),
            "diff",
            theme="ansi_dark",
            background_color="default",
        )
    )
    if len(d.host_outcomes) > 1:
        hosts = Table("host", "environment", "wave", "state", "incident", "detail", title="Hosts")
        for h in d.host_outcomes:
            hosts.add_row(
                inert(h["host"]),
                inert(h["environment"] or "-"),
                "-" if h["wave"] is None else str(h["wave"]),
                h["state"],
                str(h["incident_id"] or "-"),
                inert((h["detail"] or "")[:120]),
            )
        console.print(hosts)
    if d.runs:
        table = Table("run", "kind", "status", "rc", "started", "commit", title="Runs")
        for r in d.runs:
            table.add_row(
                str(r.id),
                r.kind,
                r.status,
                str(r.rc),
                r.started_at.strftime("%H:%M:%S"),
                inert((r.commit or "-")[:10]),
            )
        console.print(table)
    if events:
        for r in d.runs:
            for e in r.events:
                if e["status"]:
                    console.print(
                        f"  run {r.id} #{e['seq']:<4} {inert(e['host']):<10} "
                        f"{e['status']:<10} {inert(e['task'])}",
                        markup=False,
                    )
    table = Table("time", "change", "actor", "reason", title="History")
    for h in d.history:
        table.add_row(h.at.strftime("%H:%M:%S"), inert(h.what), inert(h.actor), inert(h.detail))
    console.print(table)


def _finish(ctx: click.Context, proposal_id: int, output: str) -> str:
    """Print the proposal's state after a verb; that state."""
    remote = remote_for(ctx)
    if remote is not None:
        d = remote.proposal(proposal_id)
    else:
        d = proposal_detail(open_store(open_config(ctx)), proposal_id)
    if output == "json":
        emit_json(
            {
                "id": d.summary.id,
                "state": d.summary.state,
                "decision": d.summary.decision,
                "approved_by": d.approved_by,
                "outcome": d.outcome,
                "merge_commit": d.merge_commit,
            }
        )
        return d.summary.state
    console.print(
        f"proposal {proposal_id}: [bold]{d.summary.state}[/bold]"
        + (f" — {escape(inert(d.outcome))}" if d.outcome else ""),
        markup=True,
    )
    return d.summary.state


def _remote_act(
    ctx: click.Context, verb: str, proposal_id: int, as_: str | None, **body: object
) -> bool:
    """In remote mode, ``verb`` through the API (as the token's user; ``--as`` another name
    only for an admin's token), waiting while the server applies; False in local mode."""
    remote = remote_for(ctx)
    if remote is None:
        return False
    remote.act(verb, proposal_id, {**body, **({"as": as_} if as_ else {})})
    return True


@command.command("approve")
@click.argument("proposal_id", type=RowId("proposal"))
@click.option(
    "--as",
    "as_",
    metavar="NAME",
    help="Who approves: yourself (default), another only for an admin.",
)
@click.option("--no-apply", is_flag=True, help="Merge only; apply later with 'apply'.")
@output_option
@click.pass_context
def approve(
    ctx: click.Context, proposal_id: int, as_: str | None, no_apply: bool, output: str
) -> None:
    """Approve a proposal awaiting review: merge it into main, then apply and verify it.

    \b
      terry proposals approve 12 --output json     {"id", "state", "approved_by", ...}
      TERRY_SERVER=https://terry.example.org TERRY_TOKEN=tk_... terry proposals approve 12
    Remotely the token's role decides (an operator: up to medium risk) and the token's user
    is who approved; locally the caller (TERRY_ACTOR, git's user.name). --as names someone
    else only for an admin (terry.yml admins:, or an admin's token).

    When the proposal touches hosts of several tenants, each approves (policies/tenants.yml):
    an approval that leaves a tenant missing is recorded, says which tenant must still
    approve, and exits 0 with the proposal still awaiting review.

    Exit codes: 0 the approval is recorded (what the apply it ran then did is the printed
    state: verified, or rolled_back after a failed canary...; 'terry proposals apply' is the
    verb whose exit code is the apply's), 4 no such proposal, 5 its state does not allow it
    (approved already), 11 not permitted (the role, --as), 12 the server cannot be reached."""
    if _remote_act(ctx, "approve", proposal_id, as_, apply=not no_apply):
        _finish(ctx, proposal_id, output)
        return
    from terry.proposals.tenant_approvals import ApprovalPending

    config, _store, pipeline = open_pipeline(ctx, output)
    try:
        pipeline.approve(proposal_id, actor=actor_name(config, as_), apply=not no_apply)
    except ApprovalPending as exc:  # recorded: another tenant still has to approve
        err_console.print(f"terry: {exc}", markup=False)
    _finish(ctx, proposal_id, output)


@command.command("reject")
@click.argument("proposal_id", type=RowId("proposal"))
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@click.option(
    "--as",
    "as_",
    metavar="NAME",
    help="Who rejects: yourself (default), another only for an admin.",
)
@output_option
@click.pass_context
def reject(ctx: click.Context, proposal_id: int, reason: str, as_: str | None, output: str) -> None:
    """Reject a proposal awaiting review, or one approved whose merge did not happen (GitHub
    refused it or was down); nothing is merged or applied.

    Exit codes: 0, 4, 5 (its state), 11 not permitted, 12 the server cannot be reached."""
    if _remote_act(ctx, "reject", proposal_id, as_, reason=reason):
        _finish(ctx, proposal_id, output)
        return
    config, _store, pipeline = open_pipeline(ctx, output)
    pipeline.reject(proposal_id, actor=actor_name(config, as_), reason=reason)
    _finish(ctx, proposal_id, output)


@command.command("apply")
@click.argument("proposal_id", type=RowId("proposal"))
@click.option(
    "--as",
    "as_",
    metavar="NAME",
    help="Who applies: yourself (default), another only for an admin.",
)
@output_option
@click.pass_context
def apply(ctx: click.Context, proposal_id: int, as_: str | None, output: str) -> None:
    """(Re-)apply a merged proposal: run its merged playbook, verify, roll back on failure.

    Exit codes: 0 verified, 1 not verified, 4, 5 (its state), 11 not permitted, 12 the
    server cannot be reached."""
    if _remote_act(ctx, "apply", proposal_id, as_):
        if _finish(ctx, proposal_id, output) != ProposalState.VERIFIED:
            ctx.exit(1)
        return
    config, _store, pipeline = open_pipeline(ctx, output)
    state = pipeline.apply(proposal_id, actor=actor_name(config, as_))
    _finish(ctx, proposal_id, output)
    if state is not ProposalState.VERIFIED:
        ctx.exit(1)


@command.command("rollback")
@click.argument("proposal_id", type=RowId("proposal"))
@click.option(
    "--as",
    "as_",
    metavar="NAME",
    help="Who rolls back: yourself (default), another only for an admin.",
)
@output_option
@click.pass_context
def rollback(ctx: click.Context, proposal_id: int, as_: str | None, output: str) -> None:
    """Run a proposal's rollback (after it was applied).

    Exit codes: 0 rolled back, 1 not, 4, 5 (its state), 11 not permitted, 12 the server
    cannot be reached."""
    if _remote_act(ctx, "rollback", proposal_id, as_):
        if _finish(ctx, proposal_id, output) != ProposalState.ROLLED_BACK:
            ctx.exit(1)
        return
    config, _store, pipeline = open_pipeline(ctx, output)
    state = pipeline.rollback(proposal_id, actor=actor_name(config, as_))
    _finish(ctx, proposal_id, output)
    if state is not ProposalState.ROLLED_BACK:
        ctx.exit(1)
