"""``terry inventory``: the inventory on main, read the way Ansible reads it."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from terry.cli.context import open_config
from terry.cli.output import console, emit_json, err_console, output_option
from terry.config import Config
from terry.errors import NotFound
from terry.gitops import Repo
from terry.inventory import Host, Inventory, load_inventory
from terry.inventory_check import validate


@click.group("inventory")
def command() -> None:
    """The inventory on main: hosts, their environment, tenant, labels and applier.

    \b
      terry inventory list                   every host, one line each
      terry inventory show web-01            one host's Terry variables and groups
      terry inventory validate               what policies and roles rely on; exit 1 if not
    Read with Ansible's own inventory loader, from main (not the working tree).
    """


def _inventory(ctx: click.Context) -> tuple[Config, Path, Inventory]:
    config = open_config(ctx)
    repo = Repo(config.repo, main_branch=config.main_branch)
    tree = repo.tree(repo.head())
    return config, tree, load_inventory(tree, config.inventory)


def _row(host: Host) -> dict[str, object]:
    return {
        "name": host.name,
        "address": host.address,
        "environment": host.environment,
        "tenant": host.tenant,
        "labels": host.labels,
        "groups": list(host.groups),
        "applier": host.applier,
    }


@command.command("list")
@click.option("--limit", "-l", help="Only hosts in this group or environment.")
@output_option
@click.pass_context
def list_(ctx: click.Context, limit: str | None, output: str) -> None:
    """Every host: address, environment, tenant, labels, groups, applier."""
    _config, _tree, inventory = _inventory(ctx)
    chosen = [
        h
        for h in inventory.hosts.values()
        if limit is None or limit in h.groups or limit in (h.name, h.environment)
    ]
    if output == "json":
        emit_json([_row(h) for h in chosen])
        return
    table = Table("host", "address", "environment", "tenant", "labels", "groups", "applier")
    for h in chosen:
        table.add_row(
            escape(h.name),
            escape(h.address or "-"),
            escape(h.environment or "-"),
            escape(h.tenant or "-"),
            escape(", ".join(f"{k}={v}" for k, v in h.labels.items()) or "-"),
            escape(", ".join(h.groups)),
            h.applier,
        )
    console.print(table)


@command.command("show")
@click.argument("host")
@output_option
@click.pass_context
def show(ctx: click.Context, host: str, output: str) -> None:
    """One host: its Terry variables (desired state) and groups."""
    _config, _tree, inventory = _inventory(ctx)
    found = inventory.hosts.get(host)
    if found is None:
        raise NotFound(f"no host {host!r} in the inventory on main")
    data = {**_row(found), "variables": found.variables}
    if output == "json":
        emit_json(data)
        return
    for key, value in data.items():
        console.print(f"{key:<12} {value}", markup=False)


@command.command("validate")
@output_option
@click.pass_context
def validate_(ctx: click.Context, output: str) -> None:
    """Check every host: environment (one, allowed), tenants and labels (allowed sets in
    terry.yml inventory_rules), variables the desired-state roles require (their
    meta/argument_specs.yml), and what Argo CD targets must name.

    Exit codes: 0 valid, 1 problems (all of them listed), 3 the inventory cannot be read.
    """
    config, tree, inventory = _inventory(ctx)
    problems = validate(config, tree, inventory)
    count = len(inventory.hosts)
    if output == "json":
        emit_json({"hosts": count, "valid": not problems, "problems": problems})
    elif not problems:
        console.print(f"{count} host(s): valid", markup=False)
    else:
        table = Table("host", "rule", "problem")
        for p in problems:
            table.add_row(escape(p.host), p.rule, escape(p.message))
        console.print(table)
    if problems:
        if output != "json":
            err_console.print(f"{len(problems)} problem(s) in the inventory", markup=False)
        ctx.exit(1)
