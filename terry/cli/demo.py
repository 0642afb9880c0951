"""``terry demo``: the end-to-end loop, narrated."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from terry.cli.context import RichReporter
from terry.cli.output import console, emit_json, err_console, output_option

if TYPE_CHECKING:
    from terry.demo.local import DemoRow


@click.command("demo")
@click.option(
    "--lab/--local",
    "use_lab",
    default=None,
    help="The SSH lab with Prometheus and Alertmanager (default when root and "
    "installed), or the local example fleet.",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to create the demo's GitOps repository (default: a new temp dir).",
)
@click.option("--keep", is_flag=True, help="Leave the lab (or example services) up to explore.")
@click.option(
    "--timeout",
    type=click.FloatRange(10, 3600),
    default=240,
    show_default=True,
    help="Lab mode: seconds to wait for each stage (alerts, fixes, resolution).",
)
@output_option
def command(
    use_lab: bool | None, workdir: Path | None, keep: bool, timeout: float, output: str
) -> None:
    """Run the whole loop and print a timeline per incident.

    \b
    Lab (as root): brings the lab up, fills a staging host's disk and stops the production
    host's service; Prometheus fires, Alertmanager posts to Terry's webhook, Terry
    proposes, dry-runs, gates (staging merges, production waits), the demo approves as
    demo-operator, Terry applies over SSH, verifies against Prometheus, and the alerts
    resolve. Then the lab is torn down (--keep leaves it up).
    Local: the same loop on the example fleet, with the alerts fed by the demo.

    Exit code 0 only if every incident ends verified (and, in the lab, resolved).
    """
    out = err_console if output == "json" else console
    from terry.lab import missing_prerequisites

    why_not = missing_prerequisites()
    if use_lab is None:
        use_lab = why_not is None
        if why_not:
            out.print(
                f"[yellow]the lab cannot run here ({why_not}): running the local "
                "example fleet instead[/yellow]",
                markup=True,
            )
    elif use_lab and why_not:
        raise click.UsageError(f"--lab: {why_not}; try --local")
    target = workdir or Path(tempfile.mkdtemp(prefix="terry-demo-")) / "ops"
    reporter = RichReporter(out)

    def narrate(text: str) -> None:
        out.print(f"[bold cyan]{escape(text)}[/bold cyan]", highlight=False, markup=True)

    extra: dict[str, object] = {}
    if use_lab:
        from terry.demo.lab import run_lab_demo

        result = run_lab_demo(
            target, reporter=reporter, narrate=narrate, keep=keep, timeout=timeout
        )
        repo, rows = result.repo, result.rows
        extra["prometheus_firing_after"] = result.firing_after
        ok = bool(rows) and all(r.state == "verified" and r.resolved for r in rows)
    else:
        from terry.demo.local import run_demo

        repo, rows = run_demo(target, reporter=reporter, narrate=narrate, keep=keep)
        ok = bool(rows) and all(r.state == "verified" for r in rows)
    if output == "json":
        emit_json(
            {
                "mode": "lab" if use_lab else "local",
                "repository": repo,
                "incidents": rows,
                "ok": ok,
                **extra,
            }
        )
    else:
        _table(rows)
        console.print(
            f"GitOps repository: {repo}\n  terry --repo {repo} incidents list\n"
            f"  git -C {repo} log --graph --oneline main"
        )
    if not ok:
        raise click.exceptions.Exit(1)


def _table(rows: list[DemoRow]) -> None:
    table = Table(
        "incident",
        "alert",
        "host",
        "env",
        "decision",
        "approved by",
        "state",
        "alert → verified fix",
        "alert resolved",
        title="Timeline",
    )
    for r in rows:
        table.add_row(
            str(r.incident_id),
            r.alert,
            r.host,
            r.environment,
            r.decision or "-",
            r.approved_by or "-",
            r.state or "-",
            f"{r.seconds_to_fix:.1f}s" if r.seconds_to_fix is not None else "-",
            "yes" if r.resolved else "no",
        )
    console.print(table)
