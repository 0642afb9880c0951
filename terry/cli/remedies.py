"""``terry remedies``: the remedy catalogue's variants and how each fared."""

from __future__ import annotations

import click
from rich.table import Table

from terry.cli.context import open_pipeline
from terry.cli.output import console, emit_json, output_option
from terry.errors import NotFound
from terry.remedies.variants import (
    Comparison,
    Proposed,
    WinnerRule,
    compare_variants,
    propose_winner,
)

SCHEMA = "terry.remedies-compare/v1"


@click.group("remedies")
def command() -> None:
    """Remedies: the catalogue (roles/*/remedies.yml) and how its variants compare."""


@command.command("compare")
@click.argument("remedy", required=False)
@click.option(
    "--environment",
    "-e",
    help=(
        "Only proposals judged in this environment (default: where the remedy tries its "
        "variants, try_variants_in; every one but production when it names none). "
        "Production runs only default_variant: it never names a winner."
    ),
)
@click.option(
    "--min-runs",
    type=click.IntRange(1, 10000),
    default=WinnerRule.min_runs,
    show_default=True,
    help="Finished runs every variant needs before a winner is named.",
)
@click.option(
    "--min-lead",
    type=click.FloatRange(0.0, 1.0),
    default=WinnerRule.min_lead,
    show_default=True,
    help="How much higher the winner's verified rate must be (0.10: ten points).",
)
@click.option(
    "--propose",
    is_flag=True,
    help="Commit each clear winner as its remedy's default_variant on a branch for review.",
)
@output_option
@click.pass_context
def compare(
    ctx: click.Context,
    remedy: str | None,
    environment: str | None,
    min_runs: int,
    min_lead: float,
    propose: bool,
    output: str,
) -> None:
    """Which variant of a remedy verifies more often and faster.

    \b
    A catalogue entry may declare variants (named parameter sets: the disk remedy's
    compress-only keeps every file and only gzips logs). Where its try_variants_in lists
    an environment, comparable incidents there (same remedy, same environment) take the
    variants in turn; production always runs default_variant. This command reads the
    finished proposals of each variant where they take turns: runs, the share verified,
    the median time from the start of the apply to verified (a review's wait not counted).
    \b
    A winner is named when every variant has --min-runs finished runs and the best one's
    verified rate leads the next by --min-lead, or (rates within --min-lead) its median
    time to verified is at least 20% shorter. --propose commits default_variant: WINNER
    in the remedy's remedies.yml on branch terry/variant-REMEDY-WINNER (a pull request
    with a forge); merging it is a person's decision. Proposing again finds the branch.
      terry remedies compare                        every remedy with variants
      terry remedies compare disk-usage-high -o json
      terry remedies compare --propose              commit the clear winners for review
    \b
    Exit codes: 0 compared (winners or none), 3 configuration, 4 no such remedy or none
    with variants, 6 store, 7 git; with --propose, 7 or 10 when a winner's branch was
    committed but could not be pushed or its pull request opened (the comparison is
    printed all the same, with the reason).
    """
    _config, store, pipeline = open_pipeline(ctx, output)
    sha, catalogue, _inventory = pipeline.ctx.main.view()
    if remedy is not None:
        found = catalogue.get(remedy)
        if found is None:
            raise NotFound(f"no remedy {remedy!r} in the catalogue on main")
        if not found.variants:
            raise NotFound(f"remedy {remedy} declares no variants (roles/*/remedies.yml)")
        chosen = [found]
    else:
        chosen = [r for r in catalogue.remedies if r.variants]
        if not chosen:
            raise NotFound("no remedy on main declares variants (roles/*/remedies.yml)")
    rule = WinnerRule(min_runs=min_runs, min_lead=min_lead)
    results: list[tuple[Comparison, Proposed | None]] = []
    for r in chosen:
        comparison = compare_variants(store, r, environment=environment, rule=rule)
        proposed = None
        if propose:
            proposed = propose_winner(
                pipeline.ctx.repo, comparison, base=sha, open_change=pipeline.review.open_change
            )
        results.append((comparison, proposed))
    if output == "json":
        emit_json(
            {
                "schema": SCHEMA,
                "rule": {
                    "min_runs": rule.min_runs,
                    "min_lead": rule.min_lead,
                    "faster": rule.faster,
                },
                "remedies": [
                    {**c.as_json(), "proposed": p.as_json() if p else None} for c, p in results
                ],
            }
        )
    else:
        for comparison, proposed in results:
            _print(comparison, proposed)
    refused = [p.pull_exit or 1 for _c, p in results if p is not None and p.pull_error]
    if refused:
        ctx.exit(max(refused))


def _print(comparison: Comparison, proposed: Proposed | None) -> None:
    table = Table(
        "variant",
        "runs",
        "verified",
        "median to verified",
        title=f"{comparison.remedy} ({comparison.where})",
    )
    for v in comparison.variants:
        rate = "-" if v.verified_rate is None else f"{v.verified_rate:.0%} ({v.verified})"
        median = v.median_seconds_to_verified
        table.add_row(
            v.name + (" (default)" if v.default else ""),
            str(v.runs),
            rate,
            "-" if median is None else f"{median:.0f}s",
        )
    console.print(table)
    verdict = f"winner: {comparison.winner}" if comparison.winner else "no winner"
    console.print(f"{verdict}: {comparison.why}", markup=False)
    if proposed is not None:
        again = " (already proposed)" if proposed.already_proposed else ""
        console.print(
            f"proposed on {proposed.branch}{again}: {proposed.pull_url or 'merge it to adopt'}",
            markup=False,
        )
        if proposed.pull_error:
            console.print(f"pull request not opened: {proposed.pull_error}", markup=False)
