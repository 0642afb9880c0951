"""``terry chaos``: chaos experiments (Chaos Toolkit files in experiments/ on main) that
prove Terry fixes what breaks, and the resilience report over their runs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click
from rich.table import Table

from terry.cli.context import open_config, open_store
from terry.cli.output import (
    console,
    emit_json,
    emit_report,
    err_console,
    output_option,
    report_options,
)
from terry.config import Config
from terry.errors import InputError, TerryError
from terry.gitops.repo import Repo

LIST_SCHEMA = "terry.chaos-experiments/v1"
RUN_SCHEMA = "terry.chaos-run/v1"


class NotResolved(TerryError):
    """A run's fault was not fixed by Terry (undetected, unresolved, or a false fix): the
    outcome is printed; the fault itself was removed (exit 1)."""

    exit_code = 1


@click.group("chaos")
def command() -> None:
    """Chaos experiments: break a host on purpose and time how Terry fixes it.

    \b
      terry chaos list                          experiments in experiments/ on main
      terry chaos validate disk-fill            chaostoolkit-lib's checks, then Terry's
      terry chaos run disk-fill --dry-run       which host would be broken, and why not others
      terry chaos run disk-fill                 inject, wait for Terry, remove, record
      terry chaos run disk-fill --target web-02
      terry chaos report --format html --out resilience.html
      terry chaos recover                       remove faults an interrupted run left
    Experiments are Chaos Toolkit files; Terry's actions (terry.chaos.actions) inject faults
    through the chaos role, its probes (terry.chaos.probes) read Prometheus and Terry's own
    record. Targets are drawn among hosts the experiment selects, never in an environment
    chaos.environments leaves out (production by default), never with an open incident,
    never while a service on it has an error budget under chaos.min_budget_percent (or one
    Prometheus cannot tell).
    A schedule with 'run: chaos' and 'experiment: NAME' runs one on time (docs/chaos.md).
    """


def _dir(config: Config) -> Path:
    repo = Repo(config.repo, main_branch=config.main_branch)
    return repo.tree(repo.head()) / config.chaos.path


@command.command("list")
@output_option
@click.pass_context
def list_command(ctx: click.Context, output: str) -> None:
    """Every experiment file on main: its fault, target selector, and whether it is valid."""
    from terry.chaos.experiment import list_experiments

    config = open_config(ctx)
    found = list_experiments(_dir(config))
    rows = [
        {
            "name": name,
            "valid": exp is not None,
            "title": exp.title if exp else None,
            "fault": exp.fault.value if exp else None,
            "params": exp.params if exp else None,
            "environments": list(exp.selector.environments) if exp else None,
            "count": exp.selector.count if exp else None,
            "resolve_within": exp.resolve_within if exp else None,
            "error": problem or None,
        }
        for name, exp, problem in found
    ]
    if output == "json":
        emit_json({"schema": LIST_SCHEMA, "experiments": rows})
        return
    if not rows:
        console.print(f"no experiments in {config.chaos.path}/ on main (examples/experiments/)")
        return
    table = Table("experiment", "fault", "targets", "within", "title / problem")
    for row in rows:
        targets = ", ".join(row["environments"] or []) or "any allowed"
        table.add_row(
            row["name"],
            row["fault"] or "invalid",
            f"{row['count'] or '-'} of {targets}" if row["valid"] else "-",
            f"{row['resolve_within']:.0f}s" if row["valid"] else "-",
            row["title"] or row["error"],
        )
    console.print(table)


@command.command("validate")
@click.argument("experiment")
@output_option
@click.pass_context
def validate(ctx: click.Context, experiment: str, output: str) -> None:
    """Check EXPERIMENT (a name on main, or a path to a file not yet committed).

    chaostoolkit-lib validates the format (title, method, activities, providers); Terry then
    checks that the method injects exactly one known fault with valid parameters, that a
    rollback removes it, and its 'terry' extension. Exit codes: 0 valid, 2 invalid, 4 no
    such experiment.
    """
    from terry.chaos.experiment import find_experiment

    config = open_config(ctx)
    exp = find_experiment(_dir(config), experiment)
    if output == "json":
        emit_json({"name": exp.name, "valid": True, "fault": exp.fault.value, "params": exp.params})
    else:
        console.print(f"{exp.name}: valid ({exp.fault} {exp.params})")


@command.command("run")
@click.argument("experiment")
@click.option(
    "--dry-run", is_flag=True, help="Draw the target and say what would be done; inject nothing."
)
@click.option(
    "--target", metavar="HOST", help="Break this host (it must pass the same rules as a drawn one)."
)
@output_option
@click.pass_context
def run(
    ctx: click.Context, experiment: str, dry_run: bool, target: str | None, output: str
) -> None:
    """Run EXPERIMENT: inject its fault, wait for Terry, remove the fault, record the run.

    \b
    Progress is printed as it happens (to stderr with -o json). Interrupted runs of earlier
    processes are cleaned up first. Exit codes: 0 resolved (or --dry-run), 1 not resolved
    (undetected, unresolved, or a false fix: Terry said verified and the host disagreed),
    2 invalid experiment, 3 configuration, 4 no such experiment or host, 5 no host may be
    a target now, 8 ansible could not run.
    """
    from terry.chaos.run import run_experiment

    config = open_config(ctx)
    store = open_store(config)
    out = err_console if output == "json" else console
    reports = run_experiment(
        config,
        store,
        experiment,
        target=target,
        dry_run=dry_run,
        progress=lambda line: out.print(f"  {line}", markup=False, highlight=False),
    )
    if output == "json":
        emit_json({"schema": RUN_SCHEMA, "runs": reports})
    else:
        for r in reports:
            mttr = r.phases.get("mttr")
            split = ", ".join(
                f"{k} {v:.0f}s" for k, v in r.phases.items() if k != "mttr" and v is not None
            )
            console.print(
                f"{r.target}: {r.outcome}"
                + (f", MTTR {mttr:.0f}s ({split})" if mttr is not None else "")
                + (f", incident {r.incident_id}" if r.incident_id else "")
                + (f", proposal {r.proposal_id}" if r.proposal_id else "")
                + (", team notified" if r.notified else "")
            )
            if dry_run:
                console.print(f"  candidates: {', '.join(r.candidates)}")
                for host, why in r.excluded.items():
                    console.print(f"  not {host}: {why}")
    bad = [r for r in reports if r.outcome not in ("resolved", "dry-run")]
    if bad:
        raise NotResolved(", ".join(f"{r.target}: {r.outcome}" for r in bad))


@command.command("recover")
@click.pass_context
def recover_command(ctx: click.Context) -> None:
    """Remove the faults of runs that never finished (their process died); each is marked
    interrupted. 'terry chaos run' does this first on its own."""
    from terry.chaos.run import recover

    config = open_config(ctx)
    store = open_store(config)
    cleaned = recover(config, store, lambda line: console.print(line, markup=False))
    console.print(f"{len(cleaned)} interrupted run(s) cleaned up")


@command.command("report")
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=90,
    show_default=True,
    help="Runs of the last DAYS days.",
)
@report_options("a chart of MTTR per fault type")
@click.pass_context
def report(ctx: click.Context, days: int, fmt: str, out: Path | None) -> None:
    """The resilience report: MTTR per fault type over time, auto-resolution rate, false
    fixes, undetected faults and the slowest phase.

    \b
      terry chaos report                       Markdown, a text chart per fault type
      terry chaos report --format html --out resilience.html   inline SVG charts
      terry chaos report --format json         schema terry.chaos-report/v1
    """
    from terry.chaos import journal
    from terry.chaos.report import build_report, to_html, to_json, to_markdown
    from terry.store.models import utcnow

    if days < 1:
        raise InputError("--days must be at least 1")
    config = open_config(ctx)
    store = open_store(config)
    rows = journal.runs(store, since=utcnow() - timedelta(days=days))
    built = build_report(rows, threshold=config.chaos.mttr_threshold)
    text = {"md": to_markdown, "html": to_html, "json": to_json}[fmt](built)
    emit_report(text, out, f"{built.runs} chaos run(s)")
