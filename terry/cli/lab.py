"""``terry lab up|down|status|break|heal|ssh``: real SSH hosts, Prometheus and
Alertmanager on this machine (root only)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from terry import lab
from terry.cli.output import console, emit_json, err_console, output_option
from terry.config import Config, find_repo, load_config
from terry.errors import ConfigError, StateError

__all__ = ["command"]

_CONFIG_KEY = "terry.lab.config"


def _lab_config(ctx: click.Context) -> lab.LabConfig:
    return ctx.meta[_CONFIG_KEY]


def _repository(ctx: click.Context, given: Path | None) -> tuple[Path, Config | None]:
    """Where the inventory goes: --repo-inventory, else --repo, else the nearest terry.yml."""
    repo = given or ctx.find_root().obj
    if repo is None:
        try:
            repo = find_repo(Path.cwd())
        except ConfigError:
            if not (Path.cwd() / "inventories").is_dir():
                raise ConfigError(
                    "no GitOps repository here: pass --repo-inventory DIR (or --repo), "
                    "or run inside a repository with terry.yml"
                ) from None
            repo = Path.cwd()
    repo = repo.resolve()
    config = load_config(repo) if (repo / "terry.yml").is_file() else None
    return repo, config


def _yes(up: bool) -> Text:
    return Text.from_markup("[green]up[/green]" if up else "[bold red]down[/bold red]")


def _state_json(state: lab.LabState) -> dict[str, Any]:
    return {
        "state_dir": str(state.config.state_dir),
        "prometheus_url": state.prometheus_url,
        "alertmanager_url": state.alertmanager_url,
        "webhook_url": state.webhook_url,
        "inventory": str(state.inventory) if state.inventory else None,
        "converged": state.converged or None,
        "ssh_key": str(state.ssh_key),
        "hosts": [
            {
                "name": h.name,
                "address": h.address,
                "environment": h.environment,
                "tenant": h.tenant,
                "netns": h.netns,
                "data_volume": h.loop_device or "tmpfs",
                "services": {s.name: {"port": s.port, "bind": s.bind} for s in h.services},
            }
            for h in state.hosts
        ],
    }


@click.group("lab")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TERRY_LAB_DIR",
    default=lab.DEFAULT_STATE_DIR,
    show_default=True,
    help="Where the lab keeps its state, keys, volumes and Prometheus data.",
)
@click.pass_context
def command(ctx: click.Context, state_dir: Path) -> None:
    """The lab: SSH hosts in namespaces with real Prometheus and Alertmanager (root).

    \b
      terry lab up                     3 hosts, inventory in inventories/lab/hosts.yml,
                                       playbooks/site.yml applied to them
      terry lab break lab-02 disk      fill lab-02's /srv/data: DiskUsageHigh fires
      terry lab break lab-03 service   stop lab-03's web service: ServiceDown fires
      terry lab status                 what runs; exit 1 when something is down
      terry lab down                   remove everything the lab made
    """
    ctx.meta[_CONFIG_KEY] = lab.LabConfig(state_dir=state_dir)


@command.command("up")
@click.option("--hosts", "-n", type=click.IntRange(1, 40), default=3, show_default=True)
@click.option(
    "--repo-inventory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Repository to write inventories/lab/hosts.yml into (default: --repo or cwd's).",
)
@click.option(
    "--webhook-url",
    help="Where Alertmanager posts alerts (default: the server.listen of terry.yml, "
    f"else {lab.DEFAULT_WEBHOOK_URL}).",
)
@click.option(
    "--converge/--no-converge",
    default=True,
    show_default=True,
    help="Apply the repository's playbooks/site.yml (from main) to the new hosts, so the "
    "lab starts without drift.",
)
@click.option(
    "--data-volume",
    type=click.Choice(lab.DATA_VOLUMES),
    default="loop",
    show_default=True,
    help="Each host's /srv/data: an ext4 image on a loop device (tmpfs where the machine "
    "has none), or tmpfs always, as CI machines without loop devices run it.",
)
@output_option
@click.pass_context
def up(
    ctx: click.Context,
    hosts: int,
    repo_inventory: Path | None,
    webhook_url: str | None,
    converge: bool,
    data_volume: str,
    output: str,
) -> None:
    """Start the lab hosts, Prometheus and Alertmanager; write the Ansible inventory, and
    apply playbooks/site.yml to the new hosts (--no-converge: leave them as they start).
    A lab already up is reused as it is."""
    repo, config = _repository(ctx, repo_inventory)
    if webhook_url is None:
        if config is not None:
            listen = config.server.listen.replace("0.0.0.0:", "127.0.0.1:")
            webhook_url = f"http://{listen}/api/v1/alerts"
        else:
            webhook_url = lab.DEFAULT_WEBHOOK_URL
    token_env = config.server.token_env if config else "TERRY_WEBHOOK_TOKEN"
    progress = err_console if output == "json" else console
    with progress.status(f"starting {hosts} lab hosts, Prometheus and Alertmanager"):
        state = lab.up(
            replace(_lab_config(ctx), data_volume=data_volume),
            hosts=hosts,
            repo=repo,
            webhook_url=webhook_url,
            webhook_token=os.environ.get(token_env) or None,
            converge=converge,
        )
    if output == "json":
        emit_json(_state_json(state))
        return
    table = Table("host", "address", "environment", "/srv/data", "services")
    for h in state.hosts:
        services = ", ".join(f"{s.name}:{s.port}" for s in h.services)
        table.add_row(h.name, h.address, h.environment, h.loop_device or "tmpfs", services)
    console.print(table)
    console.print(f"Prometheus    {state.prometheus_url}")
    console.print(f"Alertmanager  {state.alertmanager_url} → {state.webhook_url}")
    console.print(f"inventory     {state.inventory}")
    console.print(f"desired state {state.converged or 'not applied (--no-converge)'}")
    console.print(f"try           ansible -i {state.inventory} all -m ansible.builtin.ping")


@command.command("down")
@output_option
@click.pass_context
def down(ctx: click.Context, output: str) -> None:
    """Remove every process, namespace, link, loop device and file the lab made."""
    report = lab.down(_lab_config(ctx))
    if output == "json":
        emit_json(report)
    elif report.removed:
        for item in report.removed:
            console.print(f"removed {item}", markup=False)
    else:
        console.print("nothing to remove: the lab is down")
    if report.problems:
        raise lab.LabError("; ".join(report.problems))


@command.command("status")
@output_option
@click.pass_context
def status(ctx: click.Context, output: str) -> None:
    """Hosts, addresses and what answers. Exit 5 when no lab is up, 1 when a part is down."""
    current = lab.status(_lab_config(ctx))
    if output == "json":
        emit_json({"healthy": current.healthy, **lab_status_json(current)})
    elif not current.up:
        console.print("the lab is not up (terry lab up starts it)")
    else:
        table = Table(
            "host", "address", "environment", "pid 1", "sshd", "node_exporter", "services"
        )
        for h in current.hosts:
            by_name = {c.name: c.up for c in h.components}
            services = ", ".join(
                f"{c.name.removeprefix('service:')} {_yes(c.up)}"
                for c in h.components
                if c.name.startswith("service:")
            )
            table.add_row(
                h.name,
                h.address,
                h.environment,
                _yes(h.alive),
                _yes(by_name.get("sshd", False)),
                _yes(by_name.get("node_exporter", False)),
                services,
            )
        console.print(table)
        for c in current.components:
            console.print(f"{c.name:<13} {_yes(c.up)}  {c.detail}")
        console.print(f"inventory     {current.inventory or '-'}")
    if not current.up:
        ctx.exit(StateError.exit_code)
    if not current.healthy:
        ctx.exit(1)


def lab_status_json(current: lab.LabStatus) -> dict[str, Any]:
    return {
        "up": current.up,
        "state_dir": str(current.state_dir) if current.state_dir else None,
        "prometheus_url": current.prometheus_url,
        "alertmanager_url": current.alertmanager_url,
        "inventory": str(current.inventory) if current.inventory else None,
        "components": {c.name: c.up for c in current.components},
        "hosts": [
            {
                "name": h.name,
                "address": h.address,
                "environment": h.environment,
                "alive": h.alive,
                "healthy": h.healthy,
                "components": {c.name: c.up for c in h.components},
            }
            for h in current.hosts
        ],
    }


def _fault_output(result: lab.BreakResult, output: str) -> None:
    if output == "json":
        emit_json(result)
    else:
        console.print(f"{result.host}: {result.detail}", markup=False)


@command.command("break")
@click.argument("host")
@click.argument("fault", type=click.Choice([f.value for f in lab.FaultKind]))
@click.option(
    "--percent",
    type=click.FloatRange(1, 100),
    default=95.0,
    show_default=True,
    help="For disk: fill the host's /srv/data to this share.",
)
@output_option
@click.pass_context
def break_(ctx: click.Context, host: str, fault: str, percent: float, output: str) -> None:
    """Break HOST: disk (fill /srv/data with logs and stale tmp files), service (stop web),
    memory (web holds 200 MiB: ProcessMemoryHigh), or network (its link down: unreachable)."""
    state = lab.load_state(_lab_config(ctx))
    _fault_output(lab.break_host(state, host, fault, percent=percent), output)


@command.command("heal")
@click.argument("host")
@click.argument("fault", type=click.Choice([f.value for f in lab.FaultKind]))
@output_option
@click.pass_context
def heal(ctx: click.Context, host: str, fault: str, output: str) -> None:
    """Undo 'break': remove the filler files, start the web service again, or bring the
    link back up."""
    state = lab.load_state(_lab_config(ctx))
    _fault_output(lab.heal_host(state, host, fault), output)


@command.command(
    "ssh", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("host")
@click.argument("remote", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ssh(ctx: click.Context, host: str, remote: tuple[str, ...]) -> None:
    """Open a shell (or run REMOTE) on a lab host, with the lab's key, as Ansible would."""
    state = lab.load_state(_lab_config(ctx))
    argv = lab.ssh_argv(state, host)
    if not remote:
        argv.insert(1, "-t")
    os.execvp(argv[0], [*argv, *remote])
