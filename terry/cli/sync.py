"""``terry sync``: poll the forge (GitHub) and act on what reviewers did."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from terry.cli.context import open_pipeline
from terry.cli.ids import RowId
from terry.cli.output import console, emit_json, output_option
from terry.errors import ConfigError, ForgeError
from terry.review.base import Reconciled


@click.command("sync")
@click.option("--proposal", "proposal_id", type=RowId("proposal"), help="Only this proposal.")
@output_option
@click.pass_context
def command(ctx: click.Context, proposal_id: int | None, output: str) -> None:
    """Read every open pull request of Terry's and act on it, as the webhook would.

    \b
    For installations that cannot receive GitHub webhooks (or to catch up after an outage):
      - a proposal whose pull request could not be opened is published now;
      - merged by an allowed reviewer → applied (if its head is the dry-run commit);
      - closed unmerged → rejected;
      - approved by enough allowed reviewers → merged on GitHub, then applied;
      - new `/terry apply|reject|rollback|explain` comments → done, each answered.
    Safe to run at any time and as often as you like (cron, a systemd timer).
    Exit codes: 0 ok, 3 no forge configured, 10 GitHub refused or unreachable.
    """
    _config, _store, pipeline = open_pipeline(ctx, output)
    if not pipeline.uses_forge:
        raise ConfigError("terry sync needs forge.kind: github in terry.yml")
    done = [pipeline.reconcile(proposal_id)] if proposal_id else pipeline.sync()
    failed = [r for r in done if r.error]
    if output == "json":
        emit_json(done)
    elif not done:
        console.print("nothing to sync: no proposal waits on a pull request")
    else:
        _table(done)
    if failed:
        raise ForgeError(
            f"{len(failed)} of {len(done)} proposal(s) could not be synced: {failed[0].error}"
        )


def _table(done: list[Reconciled]) -> None:
    table = Table("proposal", "pull request", "state", "what happened")
    for r in done:
        table.add_row(
            str(r.proposal_id),
            f"#{r.pr_number}" if r.pr_number else "-",
            r.state,
            escape("; ".join(r.notes) or "nothing new"),
        )
    console.print(table)
