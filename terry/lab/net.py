"""The lab network: one bridge on the machine, one named network namespace per host,
joined by a veth pair. Nothing is routed off the machine.
"""

from __future__ import annotations

import json

from terry.lab.model import LabConfig, LabError
from terry.lab.procs import run

__all__ = [
    "bridge_exists",
    "create_bridge",
    "create_host_network",
    "delete_link",
    "delete_netns",
    "link_names",
    "netns_names",
    "netns_pids",
]


def link_names() -> set[str]:
    out = run(["ip", "-json", "link", "show"]).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def bridge_exists(config: LabConfig) -> bool:
    return config.bridge in link_names()


def create_bridge(config: LabConfig) -> None:
    net = config.network
    run(["ip", "link", "add", config.bridge, "type", "bridge", "stp_state", "0"])
    run(["ip", "addr", "add", f"{config.gateway}/{net.prefixlen}", "dev", config.bridge])
    run(["ip", "link", "set", config.bridge, "up"])


def create_host_network(config: LabConfig, *, netns: str, veth: str, address: str) -> None:
    """A named netns with ``eth0`` at ``address`` on the bridge and ``lo`` up."""
    prefix = config.network.prefixlen
    run(["ip", "netns", "add", netns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", veth, "master", config.bridge, "up"])
    inside = ["ip", "-n", netns]
    run([*inside, "addr", "add", f"{address}/{prefix}", "dev", "eth0"])
    run([*inside, "link", "set", "eth0", "up"])
    run([*inside, "link", "set", "lo", "up"])
    run([*inside, "route", "add", "default", "via", config.gateway])


def netns_names() -> list[str]:
    out = run(["ip", "-json", "netns", "list"]).stdout.strip()
    return [ns["name"] for ns in json.loads(out or "[]")]


def netns_pids(netns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", netns], check=False)
    if proc.returncode != 0:
        return []
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def delete_netns(netns: str) -> bool:
    if netns not in netns_names():
        return False
    run(["ip", "netns", "delete", netns])
    return True


def delete_link(name: str) -> bool:
    if name not in link_names():
        return False
    proc = run(["ip", "link", "delete", name], check=False)
    if proc.returncode != 0 and name in link_names():
        raise LabError(f"ip link delete {name}: {proc.stderr.strip()}")
    return True
