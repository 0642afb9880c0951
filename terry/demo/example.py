"""The example fleet: local hosts with scratch roots, for the walkthrough and the tests.

``up`` applies the desired state (``playbooks/site.yml``) to them with ansible-runner;
``break_host`` injects a fault the remedy catalogue knows how to fix; ``down`` stops their
services. Nothing here needs root or any service.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.appliers.base import RunnerEvent, RunResult
from terry.config import Config
from terry.errors import ConfigError, InputError, NotFound
from terry.gitops.repo import Repo
from terry.inventory.hosts import Host, load_inventory

__all__ = ["Fault", "HostStatus", "break_host", "down", "example_hosts", "status", "up"]


class Fault(StrEnum):
    DISK = "disk"
    SERVICE = "service"
    CONFIG = "config"


@dataclass(frozen=True)
class HostStatus:
    name: str
    environment: str | None
    root: str
    disk_percent: float
    services: dict[str, bool]


def example_hosts(config: Config) -> dict[str, Host]:
    """Inventory hosts with a local scratch root (``terry_root`` set, not empty)."""
    inventory = load_inventory(config.repo, config.inventory)
    hosts = {n: h for n, h in inventory.hosts.items() if h.variables.get("terry_root")}
    if not hosts:
        raise ConfigError("no example hosts (with a terry_root) in the inventory")
    return hosts


def _root(host: Host) -> Path:
    return Path(str(host.variables["terry_root"]))


def _svc(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    script = _root(host) / "opt" / "terry" / "bin" / "terry-svc"
    if not script.exists():
        raise ConfigError(f"{host.name}: terry-svc is not installed; run 'terry example up'")
    return subprocess.run(
        [sys.executable, str(script), *args, "--root", str(_root(host))],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def up(config: Config, *, on_event: Callable[[RunnerEvent], None] | None = None) -> RunResult:
    """Apply ``playbooks/site.yml`` from main to the example hosts."""
    hosts = example_hosts(config)
    for host in hosts.values():
        _root(host).mkdir(parents=True, exist_ok=True)
    repo = Repo(config.repo, main_branch=config.main_branch)
    tree = repo.tree(repo.head())
    private = config.state_dir / "runs" / f"example-up-{int(time.time() * 1000)}"
    return AnsibleRunnerApplier().run(
        RunRequest(
            project_dir=tree,
            playbook="playbooks/site.yml",
            private_dir=private,
            inventory=tuple(config.inventory),
            hosts=tuple(hosts),
            forks=config.runner.forks,
            timeout=config.runner.timeout,
        ),
        on_event=on_event,
    )


def disk_percent(host: Host) -> float:
    """Usage of the host's /srv/data against its quota (example hosts) or its filesystem."""
    data = _root(host) / "srv" / "data"
    if not data.exists():
        return 0.0
    quota = host.variables.get("terry_disk_quota_mb")
    if quota:
        used = sum(p.stat().st_blocks * 512 for p in data.rglob("*") if p.is_file())
        return round(100.0 * used / (int(quota) * 1024 * 1024), 1)
    stat = os.statvfs(data)
    return round(100.0 * (1 - stat.f_bavail / stat.f_blocks), 1)


def _fill(host: Host, percent: int) -> None:
    data = _root(host) / "srv" / "data"
    logs, tmp = data / "log", data / "tmp"
    logs.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    month_ago = time.time() - 30 * 86400
    for n in range(1, 4):
        old = tmp / f"upload-{n}.tmp"
        old.write_bytes(b"\0" * 256 * 1024)
        os.utime(old, (month_ago, month_ago))
    line = b"2026-11-24T00:00:00Z INFO request served path=/ status=200 bytes=512\n"
    # a quarter MiB at a time: under 1% of the example's 32 MiB quota, so the fill stops
    # just past --percent (4 MiB steps overshot 92% by up to 12 points)
    chunk = line * (256 * 1024 // len(line))
    # Continue numbering after earlier logs (plain or compressed): like logrotate, never
    # reuse a name that a compressed copy already has.
    taken = [
        int(p.name.split(".")[2]) for p in logs.glob("app.log.*") if p.name.split(".")[2].isdigit()
    ]
    n = max(taken, default=0) + 1
    first = n
    while disk_percent(host) < percent:
        target = logs / f"app.log.{n}"
        with target.open("ab") as handle:
            handle.write(chunk)
        if target.stat().st_size >= 8 * 1024 * 1024:
            n += 1
        if n - first > 64:
            raise InputError(f"{host.name}: could not reach {percent}% usage")


def break_host(config: Config, name: str, fault: Fault, *, percent: int = 92) -> str:
    """Inject ``fault`` on example host ``name``; returns what was done."""
    hosts = example_hosts(config)
    host = hosts.get(name)
    if host is None:
        raise NotFound(f"no example host {name!r} (have: {', '.join(sorted(hosts))})")
    match fault:
        case Fault.DISK:
            if not 1 <= percent <= 99:
                raise InputError("--percent must be between 1 and 99")
            _fill(host, percent)
            return f"{name}: /srv/data at {disk_percent(host)}% of its quota"
        case Fault.SERVICE:
            result = _svc(host, "stop", "web")
            if result.returncode != 0:
                raise InputError(f"{name}: terry-svc stop failed: {result.stderr.strip()}")
            return f"{name}: service web stopped"
        case Fault.CONFIG:
            conf = _root(host) / "etc" / "app" / "app.conf"
            if not conf.exists():
                raise ConfigError(f"{name}: {conf} missing; run 'terry example up'")
            with conf.open("a", encoding="utf-8") as handle:
                handle.write("debug_backdoor = true  # edited by hand\n")
            return f"{name}: /etc/app/app.conf edited by hand"
    raise InputError(f"unknown fault {fault}")  # pragma: no cover


def status(config: Config) -> list[HostStatus]:
    out = []
    for host in example_hosts(config).values():
        services = {}
        for service in host.variables.get("terry_services") or {}:
            try:
                services[str(service)] = _svc(host, "status", str(service)).returncode == 0
            except ConfigError:
                services[str(service)] = False
        out.append(
            HostStatus(host.name, host.environment, str(_root(host)), disk_percent(host), services)
        )
    return out


def down(config: Config) -> list[str]:
    """Stop every example service; files stay for inspection."""
    stopped = []
    for host in example_hosts(config).values():
        for service in host.variables.get("terry_services") or {}:
            try:
                if _svc(host, "stop", str(service)).returncode == 0:
                    stopped.append(f"{host.name}/{service}")
            except ConfigError:
                continue
    return stopped
