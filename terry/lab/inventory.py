"""The Ansible inventory of the lab, written into the GitOps repository."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from terry.lab.model import LabHost

__all__ = ["INVENTORY_PATH", "inventory_data", "write_inventory"]

INVENTORY_PATH = Path("inventories") / "lab" / "hosts.yml"

# The lab's host keys are new on every `lab up`: trust them without a known_hosts file.
# Keepalives: a multiplexed master connection to a host whose link went down would
# otherwise hang every session through it until TCP gives up (many minutes); with them it
# dies within ~10 s and the host is reported unreachable.
SSH_COMMON_ARGS = (
    "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
    "-o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR "
    "-o ServerAliveInterval=3 -o ServerAliveCountMax=3"
)

_HEADER = """\
# Written by 'terry lab up': the lab hosts (network + mount namespaces on this machine).
# Rewritten on every 'terry lab up'; put desired state in group_vars/ and host_vars/.
"""


def _host_vars(host: LabHost, ssh_key: Path, control_path_dir: Path | None) -> dict[str, Any]:
    extra: dict[str, str] = {}
    if control_path_dir is not None:
        # SSH multiplexing sockets live and die with the lab, so a lab brought up again
        # on the same addresses never talks to a dead master connection of the last one.
        extra["ansible_control_path_dir"] = str(control_path_dir.resolve())
    return {
        "ansible_host": host.address,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(ssh_key.resolve()),
        "ansible_ssh_common_args": SSH_COMMON_ARGS,
        "ansible_python_interpreter": "/usr/bin/python3",
        **extra,
        "terry_root": "",
        "terry_environment": host.environment,
        # none when the lab names no tenant: a tenants file's selectors place the host
        **({"terry_tenant": host.tenant} if host.tenant else {}),
        "terry_services": {s.name: {"port": s.port, "bind": s.bind} for s in host.services},
    }


def inventory_data(
    hosts: Sequence[LabHost], ssh_key: Path, *, control_path_dir: Path | None = None
) -> dict[str, Any]:
    """YAML inventory: every host under its environment group (``production``/``staging``)."""
    groups: dict[str, dict[str, Any]] = {}
    for host in hosts:
        group = groups.setdefault(host.environment, {"hosts": {}})
        group["hosts"][host.name] = _host_vars(host, ssh_key, control_path_dir)
    ordered = {name: groups[name] for name in sorted(groups, key=lambda g: g != "production")}
    # Lab hosts share this machine's /var: never vacuum its journal from a lab fix.
    # Desired state the drift scan checks: each host is its own network namespace, so its
    # net.* kernel parameters are its own.
    lab_vars = {
        "disk_cleanup_vacuum_journal": False,
        "terry_sysctls": {"net.ipv4.ip_forward": "0", "net.ipv4.tcp_syncookies": "1"},
    }
    return {"all": {"children": {"lab": {"vars": lab_vars, "children": ordered}}}}


def write_inventory(
    repo: Path, hosts: Sequence[LabHost], ssh_key: Path, *, control_path_dir: Path | None = None
) -> Path:
    path = repo / INVENTORY_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _HEADER + yaml.safe_dump(
        inventory_data(hosts, ssh_key, control_path_dir=control_path_dir),
        sort_keys=False,
        width=200,
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path.resolve()
