"""``terry policy``: the gate's policies, and what Terry's record says they should allow."""

from __future__ import annotations

import click
from rich.table import Table

from terry.cli.context import open_pipeline
from terry.cli.output import console, emit_json, output_option
from terry.sources.policy_learn import Change, Learned, learn, propose_learned


@click.group("policy")
def command() -> None:
    """The gate's policies (policies/ on main) and learning from outcomes."""


@command.command("learn")
@click.option(
    "--propose/--no-propose",
    default=True,
    show_default=True,
    help="Commit the changes on a branch for review (--no-propose: only show them).",
)
@output_option
@click.pass_context
def learn_command(ctx: click.Context, propose: bool, output: str) -> None:
    """Propose what may merge without review, from each remedy's record.

    \b
    The shipped gate lets a remedy merge without review where the static rules would not
    (medium risk, or a production host) only when it is listed for the environment in
    terry.settings.auto_merge (policies/data.json) AND its record there holds:
    proven_min_runs runs, proven_success_percent% verified, the last one verified. A
    listed remedy drops back to review on its first failure, before any data changes.
    \b
    This command reads every remedy's record per environment and proposes the edit of
    auto_merge the record supports: list what keeps succeeding, unlist what failed. Each
    change is tried on the gate first (a typical proposal: review -> merge). The edit is
    one commit on branch terry/policy-learn-<digest> (and a pull request when
    forge.kind is github); merging it is the approval. Proposing the same edit again
    finds the same branch.
      terry policy learn --no-propose          what the record says, nothing written
      terry policy learn                       propose the changes as a commit
      git log -p main..terry/policy-learn-...  review it; git merge it to take effect
    \b
    Exit codes: 0 done (changes or none), 3 configuration, 6 store, 7 git, 9 the policy
    data cannot hold the list or the edited policies do not evaluate.
    """
    _config, _store, pipeline = open_pipeline(ctx, output)
    learned = learn(pipeline)
    if propose:
        learned = propose_learned(pipeline, learned)
    if output == "json":
        emit_json(learned.as_json())
        return
    _print(learned, proposing=propose, repo=str(pipeline.ctx.config.repo))


def _print(learned: Learned, *, proposing: bool, repo: str) -> None:
    s = learned.settings
    console.print(
        f"policy data {s.path} at {learned.policy_commit[:10]}: merges without review "
        f"need {s.min_runs} runs at {s.success_percent:g}% verified, the last one verified"
    )
    if not learned.standings:
        console.print("no remedy has a record per environment yet: nothing to learn")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("remedy", "environment", "risk", "record", "listed", "change", "gate"):
        table.add_column(column)
    for st in learned.standings:
        gate = f"{st.gate_before} -> {st.gate_after}" if st.gate_after else ""
        table.add_row(
            st.remedy,
            st.environment,
            st.risk or "-",
            st.history.describe(),
            "yes" if st.listed else "no",
            st.change.value if st.change is not Change.NONE else "",
            gate,
        )
    console.print(table)
    if not learned.changes:
        console.print("nothing to change: the listing agrees with the record")
        return
    for st in learned.changes:
        console.print(f"{st.change.value} {st.remedy} in {st.environment}: {st.why}")
    if not proposing:
        console.print("not proposed (--no-propose)")
        return
    said = "already proposed on" if learned.already_proposed else "proposed on"
    console.print(f"{said} branch {learned.branch} ({(learned.commit or '')[:10]})")
    if learned.pull_url:
        console.print(f"pull request: {learned.pull_url}")
    elif learned.pull_error:
        console.print(f"pull request not opened: {learned.pull_error}")
    else:
        console.print(
            f"review: git -C {repo} log -p main..{learned.branch}\n"
            f"take effect: git -C {repo} merge --no-ff {learned.branch}"
        )
