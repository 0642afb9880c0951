"""The lab network: one bridge on the machine, one named network namespace per host,
joined by a veth pair. Nothing is routed off the machine.

The bridge carries the first address of every lab network (the lab subnet, and the
networks of hosts given their own address): each host's gateway. A network some route of
the machine already reaches is refused, so the lab never hides a real one.
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


def _routes_into(network: str) -> list[str]:
    """The machine's routes to ``network``, to part of it or to a network holding it
    (the default route aside), as ``ip route`` names them."""
    found: list[str] = []
    for selector in ("root", "match"):
        out = run(["ip", "-json", "route", "show", selector, network]).stdout
        for route in json.loads(out or "[]"):
            dst = str(route.get("dst", ""))
            shown = f"{dst} dev {route.get('dev', '?')}"
            if dst and dst != "default" and shown not in found:
                found.append(shown)
    return found


def create_bridge(config: LabConfig) -> None:
    for network in config.networks:
        taken = _routes_into(str(network))
        if taken:
            raise LabError(
                f"lab network {network} is already reached on this machine "
                f"({', '.join(taken)}); choose another subnet or addresses"
            )
    run(["ip", "link", "add", config.bridge, "type", "bridge", "stp_state", "0"])
    for network in config.networks:
        gateway = f"{network.network_address + 1}/{network.prefixlen}"
        run(["ip", "addr", "add", gateway, "dev", config.bridge])
    run(["ip", "link", "set", config.bridge, "up"])


def create_host_network(config: LabConfig, *, netns: str, veth: str, index: int) -> None:
    """A named netns with ``eth0`` at host ``index``'s address on the bridge and ``lo`` up."""
    address = config.host_interface(index)
    run(["ip", "netns", "add", netns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", veth, "master", config.bridge, "up"])
    inside = ["ip", "-n", netns]
    run([*inside, "addr", "add", str(address), "dev", "eth0"])
    run([*inside, "link", "set", "eth0", "up"])
    run([*inside, "link", "set", "lo", "up"])
    run([*inside, "route", "add", "default", "via", config.host_gateway(index)])


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
