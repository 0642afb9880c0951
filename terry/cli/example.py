"""``terry example up|break|status|down``: the local example fleet."""

from __future__ import annotations

import click
from rich.table import Table

from terry.cli.context import RichReporter, open_config
from terry.cli.output import console, emit_json, err_console, output_option
from terry.demo import example
from terry.errors import RunnerError


@click.group("example")
def command() -> None:
    """The example hosts (local connection, scratch roots) the walkthrough runs on."""


@command.command("up")
@output_option
@click.pass_context
def up(ctx: click.Context, output: str) -> None:
    """Apply playbooks/site.yml to the example hosts: layout, config, services."""
    config = open_config(ctx)
    reporter = RichReporter(err_console if output == "json" else console)
    result = example.up(config, on_event=lambda e: reporter.event(0, "site", e))
    if output == "json":
        emit_json(result.summary())
    else:
        console.print(f"example hosts up: {result.status.value}, {result.changed} change(s)")
    if not result.ok:
        raise RunnerError("site.yml failed: " + "; ".join(result.failure_messages()[:3]))


@command.command("break")
@click.argument("host")
@click.argument("fault", type=click.Choice([f.value for f in example.Fault]))
@click.option(
    "--percent",
    type=int,
    default=92,
    show_default=True,
    help="For disk: fill /srv/data to this share of its quota.",
)
@output_option
@click.pass_context
def break_(ctx: click.Context, host: str, fault: str, percent: int, output: str) -> None:
    """Inject a fault on HOST: disk (fill /srv/data), service (stop web), config (edit)."""
    done = example.break_host(open_config(ctx), host, example.Fault(fault), percent=percent)
    if output == "json":
        emit_json({"host": host, "fault": fault, "done": done})
    else:
        console.print(done)


@command.command("status")
@output_option
@click.pass_context
def status(ctx: click.Context, output: str) -> None:
    """Disk usage and services of each example host."""
    rows = example.status(open_config(ctx))
    if output == "json":
        emit_json(rows)
        return
    table = Table("host", "environment", "/srv/data", "services", "root")
    for r in rows:
        services = ", ".join(f"{k}:{'up' if v else 'down'}" for k, v in r.services.items())
        table.add_row(r.name, r.environment or "-", f"{r.disk_percent}%", services, r.root)
    console.print(table)


@command.command("down")
@output_option
@click.pass_context
def down(ctx: click.Context, output: str) -> None:
    """Stop the example services (files stay for inspection)."""
    stopped = example.down(open_config(ctx))
    if output == "json":
        emit_json({"stopped": stopped})
    else:
        console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
