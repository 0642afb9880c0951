"""Terry's lab: real SSH hosts, Prometheus and Alertmanager on one machine.

Each lab host (``lab-01`` ...) is a set of Linux namespaces (network, mount, pid, UTS,
IPC) with its own address on a private bridge, its own small ``/srv/data`` volume that
really fills up, an sshd Ansible reaches with a key the lab generates, a node_exporter
and the ``web`` toy service (``terry-svc``). Prometheus scrapes them every 2 seconds and
Alertmanager posts to Terry's webhook, so a fault made with :func:`break_host` becomes
a real alert within seconds. Everything needs root; nothing leaves the machine.

    state = up(repo=Path("ops"))          # writes ops/inventories/lab/hosts.yml
    break_host(state, "lab-02", "disk")   # DiskUsageHigh{host="lab-02"} fires
    down()
"""

from terry.lab.faults import FaultKind, break_host, heal_host, used_percent
from terry.lab.hosts import host_exec, nsenter_argv
from terry.lab.inventory import INVENTORY_PATH, inventory_data, write_inventory
from terry.lab.lifecycle import down, missing_prerequisites, service_script_source, status, up
from terry.lab.model import (
    DATA_VOLUMES,
    DEFAULT_STATE_DIR,
    DEFAULT_WEBHOOK_URL,
    BreakResult,
    ComponentStatus,
    DownReport,
    HostStatus,
    LabConfig,
    LabError,
    LabHost,
    LabProcess,
    LabService,
    LabState,
    LabStatus,
    load_state,
)
from terry.lab.ssh import ssh_argv

__all__ = [
    "DATA_VOLUMES",
    "DEFAULT_STATE_DIR",
    "DEFAULT_WEBHOOK_URL",
    "INVENTORY_PATH",
    "BreakResult",
    "ComponentStatus",
    "DownReport",
    "FaultKind",
    "HostStatus",
    "LabConfig",
    "LabError",
    "LabHost",
    "LabProcess",
    "LabService",
    "LabState",
    "LabStatus",
    "break_host",
    "down",
    "heal_host",
    "host_exec",
    "inventory_data",
    "load_state",
    "missing_prerequisites",
    "nsenter_argv",
    "service_script_source",
    "ssh_argv",
    "status",
    "up",
    "used_percent",
    "write_inventory",
]
