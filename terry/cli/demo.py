"""``terry demo``: the end-to-end loop, narrated."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
from rich.table import Table

from terry.cli.context import RichReporter
from terry.cli.output import console, emit_json, err_console, output_option
from terry.demo import run_demo


@click.command("demo")
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to create the demo's GitOps repository (default: a new temp dir).",
)
@click.option("--keep", is_flag=True, help="Leave the example services running to explore.")
@output_option
def command(workdir: Path | None, keep: bool, output: str) -> None:
    """Run the whole loop on the example fleet and print a timeline per incident.

    \b
    Alert fired → incident → proposal and branch → check-mode diff → decision (staging
    merges, production waits for review) → approval by a named user → applied → verified
    → alert resolved. Exit code 0 only if every incident ends verified.
    """
    out = err_console if output == "json" else console
    target = workdir or Path(tempfile.mkdtemp(prefix="terry-demo-")) / "ops"
    repo, rows = run_demo(
        target,
        reporter=RichReporter(out),
        narrate=lambda text: out.print(f"[bold cyan]{text}[/bold cyan]", highlight=False),
        keep=keep,
    )
    ok = bool(rows) and all(r.state == "verified" for r in rows)
    if output == "json":
        emit_json({"repository": repo, "incidents": rows, "ok": ok})
    else:
        table = Table(
            "incident",
            "alert",
            "host",
            "env",
            "decision",
            "approved by",
            "state",
            "alert → fix",
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
        console.print(
            f"The GitOps repository is {repo}: try 'terry --repo {repo} incidents "
            "list' or 'git -C {repo} log --graph --oneline main'".replace("{repo}", str(repo))
        )
    if not ok:
        raise click.exceptions.Exit(1)
