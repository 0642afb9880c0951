"""``terry inventory``: the inventory on main, read the way Ansible reads it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from terry.cli.context import actor_name, open_config, open_pipeline
from terry.cli.output import console, emit_json, err_console, output_option
from terry.config import Config
from terry.errors import NotFound
from terry.gitops.repo import Repo
from terry.inventory.check import validate
from terry.inventory.editor import EditAction, InventoryEdit, parse_assignment, parse_var_path
from terry.inventory.hosts import GroupNode, Host, Inventory, group_tree, load_inventory
from terry.inventory.platform import Platform, PlatformCache, local_platform, probe
from terry.proposals.state import WENT_WRONG

if TYPE_CHECKING:
    from terry.sources.inventory import EditOutcome


@click.group("inventory")
def command() -> None:
    """The inventory on main: hosts, their environment, tenant, labels and applier.

    \b
      terry inventory list                   every host, one line each
      terry inventory show web-01            one host's Terry variables, groups and platform
      terry inventory graph                  groups and their hosts, as a tree
      terry inventory validate               what policies and roles rely on; exit 1 if not
      terry inventory add web-03 --group staging --var terry_root=/srv
      terry inventory set web-01 terry_labels.tier=frontend --unset terry_disk_quota_mb
      terry inventory remove web-02
    Read with Ansible's own inventory loader, from main (not the working tree). Edits are
    GitOps: each one is a commit on a branch (YAML edited in place, comments and order
    kept) that goes through the dry run and the gate like any proposal; approve a reviewed
    one with 'terry proposals approve N'. Hosts may come from cloud inventory plugins
    (aws_ec2.yml...); each host's platform comes from terry_platform, the plugin's variables
    or, for 'show', a probe of the host (docs/clouds.md).
    """


def _inventory(ctx: click.Context) -> tuple[Config, Path, Inventory]:
    config = open_config(ctx)
    repo = Repo(config.repo, main_branch=config.main_branch)
    tree = repo.tree(repo.head())
    return config, tree, load_inventory(tree, config.inventory)


def _row(host: Host, platform: Platform | None = None) -> dict[str, object]:
    platform = platform or host.platform
    return {
        "name": host.name,
        "address": host.address,
        "environment": host.environment,
        "tenant": host.tenant,
        "labels": host.labels,
        "groups": list(host.groups),
        "applier": host.applier,
        "platform": platform.view() if platform else None,
    }


def _cache(config: Config) -> PlatformCache:
    return PlatformCache(config.state_dir / "platforms.json")


def _platform(config: Config, tree: Path, host: Host, *, probing: bool) -> Platform | None:
    """The host's platform: the inventory's word, else what a probe of the host says (this
    machine's firmware for a host Ansible reaches with its local connection)."""
    if host.platform is not None:
        return host.platform
    cache = _cache(config)
    if host.connection == "local":
        return local_platform()
    if not probing:
        return cache.get(host.name, host.address)
    return probe(
        tree=tree,
        inventory=list(config.inventory),
        host=host.name,
        address=host.address,
        cache=cache,
        state_dir=config.state_dir,
        env=config.runner.ansible_env(),
        withhold=config.secret_env_names,
    )


@command.command("list")
@click.option("--limit", "-l", help="Only hosts in this group or environment.")
@output_option
@click.pass_context
def list_(ctx: click.Context, limit: str | None, output: str) -> None:
    """Every host: address, environment, tenant, labels, groups, applier, platform.

    The platform is the inventory's word (terry_platform, a cloud plugin's variables) or an
    earlier probe's (terry inventory show); list itself never connects to a host.
    """
    config, tree, inventory = _inventory(ctx)
    chosen = [
        h
        for h in inventory.hosts.values()
        if limit is None or limit in h.groups or limit in (h.name, h.environment)
    ]
    platforms = {h.name: _platform(config, tree, h, probing=False) for h in chosen}
    if output == "json":
        emit_json([_row(h, platforms[h.name]) for h in chosen])
        return
    table = Table(
        "host", "address", "environment", "tenant", "labels", "groups", "applier", "platform"
    )
    for h in chosen:
        found = platforms[h.name]
        table.add_row(
            escape(h.name),
            escape(h.address or "-"),
            escape(h.environment or "-"),
            escape(h.tenant or "-"),
            escape(", ".join(f"{k}={v}" for k, v in h.labels.items()) or "-"),
            escape(", ".join(h.groups)),
            h.applier,
            escape(found.name if found else "-"),
        )
    console.print(table)


@command.command("show")
@click.argument("host")
@click.option(
    "--probe/--no-probe",
    default=True,
    help="When the inventory does not name the host's platform, ask the host (one SSH round "
    "trip reading its firmware's DMI strings; cached for a day in .terry/platforms.json).",
)
@output_option
@click.pass_context
def show(ctx: click.Context, host: str, probe: bool, output: str) -> None:
    """One host: its Terry variables (desired state), groups and platform.

    \b
      terry inventory show web-01
      terry inventory show i-0abc123 --output json     platform: {name, source, region...}
    The platform comes from the host variable terry_platform, else a cloud inventory
    plugin's variables (aws_ec2: instance_id, placement), else a probe of the host; a host
    that does not answer the probe has platform null ('-'). Exit codes: 0 shown, 4 no such
    host.
    """
    config, tree, inventory = _inventory(ctx)
    found = inventory.hosts.get(host)
    if found is None:
        raise NotFound(f"no host {host!r} in the inventory on main")
    platform = _platform(config, tree, found, probing=probe)
    data = {**_row(found, platform), "variables": found.variables}
    if output == "json":
        emit_json(data)
        return
    for key, value in data.items():
        if key == "platform":
            value = platform.describe() if platform else "-"
        console.print(f"{key:<12} {value}", markup=False)


@command.command("validate")
@output_option
@click.pass_context
def validate_(ctx: click.Context, output: str) -> None:
    """Check every host: environment (one, allowed), tenants and labels (allowed sets in
    terry.yml inventory_rules), variables the desired-state roles require (their
    meta/argument_specs.yml), and what Argo CD targets must name. When policies/tenants.yml
    defines tenants, every host must be in exactly one (docs/tenants.md).

    \b
      terry inventory validate
      terry inventory validate --output json   {"hosts", "valid", "problems": [...]}

    Exit codes: 0 valid, 1 problems (all of them listed), 3 the inventory or the tenants
    file cannot be read (the message names the file and the key).
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


@command.command("graph")
@click.argument("group", default="all")
@output_option
@click.pass_context
def graph(ctx: click.Context, group: str, output: str) -> None:
    """Groups and their hosts as a tree (from GROUP, default all), as Ansible reads them."""
    config = open_config(ctx)
    repo = Repo(config.repo, main_branch=config.main_branch)
    tree = group_tree(repo.tree(repo.head()), config.inventory, group)
    if output == "json":
        emit_json(tree)
        return
    for line in _tree_lines(tree):
        console.print(line, markup=False)


def _tree_lines(node: GroupNode, depth: int = 0) -> list[str]:
    """The tree the way ``ansible-inventory --graph`` draws it."""
    pad = "  |" * depth
    lines = [f"{pad}--@{node.name}:" if depth else f"@{node.name}:"]
    for child in node.children:
        lines.extend(_tree_lines(child, depth + 1))
    lines.extend(f"{pad}  |--{h}" for h in node.hosts)
    return lines


_CONVERGE = click.option(
    "--converge/--no-converge",
    default=None,
    help="Also run the desired state (site.yml) on the host: its dry run shows what the edit "
    "changes there, applying it brings the host along (default: on for set on a host Ansible "
    "applies, off otherwise).",
)
_NO_APPLY = click.option("--no-apply", is_flag=True, help="Stop after the gate (and merge).")


@command.command("add")
@click.argument("host")
@click.option("--group", "-g", required=True, help="The group the host joins (must exist).")
@click.option(
    "--var",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="A host variable (VALUE is YAML: 32, true, [a, b], {role: web}); repeatable.",
)
@_CONVERGE
@_NO_APPLY
@output_option
@click.pass_context
def add(
    ctx: click.Context,
    host: str,
    group: str,
    assignments: tuple[str, ...],
    converge: bool | None,
    no_apply: bool,
    output: str,
) -> None:
    """Propose adding HOST to a group of a YAML inventory, with its variables.

    Exit codes: 0 proposed (see its state), 1 the dry run failed or the gate denied it,
    2 bad input (unknown group, host already there, a template in a value).
    """
    edit = InventoryEdit(
        EditAction.ADD, host, group, tuple(parse_assignment(a) for a in assignments)
    )
    _propose(ctx, edit, converge=converge, no_apply=no_apply, output=output)


@command.command("set")
@click.argument("host")
@click.argument("assignments", nargs=-1, metavar="KEY=VALUE...")
@click.option(
    "--unset",
    multiple=True,
    metavar="KEY",
    help="Remove the host's own value (KEY or KEY.subkey); repeatable.",
)
@_CONVERGE
@_NO_APPLY
@output_option
@click.pass_context
def set_(
    ctx: click.Context,
    host: str,
    assignments: tuple[str, ...],
    unset: tuple[str, ...],
    converge: bool | None,
    no_apply: bool,
    output: str,
) -> None:
    """Propose setting HOST's variables (KEY=VALUE, KEY.subkey=VALUE for a mapping).

    A value is changed where the host's inventory writes it (its host_vars file or its entry
    under a group); a new one goes to its host_vars file if it has one, else its entry.
    Exit codes: 0 proposed, 1 the dry run failed or the gate denied it, 2 bad input.
    """
    edit = InventoryEdit(
        EditAction.SET,
        host,
        assignments=tuple(parse_assignment(a) for a in assignments),
        unset=tuple(parse_var_path(u) for u in unset),
    )
    _propose(ctx, edit, converge=converge, no_apply=no_apply, output=output)


@command.command("remove")
@click.argument("host")
@_NO_APPLY
@output_option
@click.pass_context
def remove(ctx: click.Context, host: str, no_apply: bool, output: str) -> None:
    """Propose removing HOST from every YAML inventory group (and its host_vars files).

    Nothing runs on the host: it leaves Terry's desired state once merged.
    Exit codes: 0 proposed, 1 the dry run failed or the gate denied it, 2 bad input.
    """
    _propose(
        ctx,
        InventoryEdit(EditAction.REMOVE, host),
        converge=False,
        no_apply=no_apply,
        output=output,
    )


def _propose(
    ctx: click.Context,
    edit: InventoryEdit,
    *,
    converge: bool | None,
    no_apply: bool,
    output: str,
) -> None:
    from terry.sources.inventory import propose_edit  # the pipeline: only for an edit

    config, _store, pipeline = open_pipeline(ctx, output)
    done = propose_edit(
        pipeline, edit, converge=converge, apply=not no_apply, author=actor_name(config, None)
    )
    if output == "json":
        emit_json(done)
    else:
        _print_edit(done)
    if done.state in WENT_WRONG:
        ctx.exit(1)


def _print_edit(done: EditOutcome) -> None:
    console.print(
        f"proposal {done.proposal_id}: {done.edit} (incident {done.incident_id}): {done.state}",
        markup=False,
    )
    console.print(
        f"  branch {done.branch} · commit {str(done.commit)[:10]} · {', '.join(done.files)}",
        markup=False,
    )
    if done.reasons:
        console.print(f"  gate: {done.decision} — {'; '.join(done.reasons)}", markup=False)
    if done.state == "awaiting_review":
        console.print(f"  approve with: terry proposals approve {done.proposal_id}", markup=False)
    if done.outcome:
        console.print(f"  {done.outcome}", markup=False)
