"""The lab's typed pieces: what to build (:class:`LabConfig`) and what was built
(:class:`LabState`, persisted as JSON so ``status`` and ``down`` work from another process).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from terry.errors import InputError, NotFound, StateError, TerryError

__all__ = [
    "DATA_VOLUMES",
    "DEFAULT_STATE_DIR",
    "DEFAULT_WEBHOOK_URL",
    "BreakResult",
    "ComponentStatus",
    "DownReport",
    "HostStatus",
    "LabConfig",
    "LabError",
    "LabHost",
    "LabProcess",
    "LabService",
    "LabState",
    "LabStatus",
    "load_state",
    "save_state",
]

DEFAULT_STATE_DIR = Path("/var/lib/terry-lab")
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:9180/api/v1/alerts"
STATE_FILE = "state.json"
MAX_HOSTS = 40
DATA_VOLUMES = ("loop", "tmpfs")  # what a lab host's /srv/data is (LabConfig.data_volume)

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")


class LabError(TerryError):
    """A lab step failed (a command, a process that would not start)."""

    exit_code = 1


@dataclass(frozen=True, kw_only=True)
class LabConfig:
    """Where the lab lives and which names and addresses it may take.

    The defaults are one lab per machine; a second lab (the test suite's, next to a
    developer's) needs its own state dir, bridge, subnet and name prefixes.

    ``addresses`` gives chosen hosts an address of their own, in interface form
    (``{"lab-03": "10.0.1.13/24"}``), so a lab can look like a fleet whose teams own
    address ranges (docs/tenants.md); the bridge then also carries each such network's
    first address as that host's gateway. ``tenant`` is every host's ``terry_tenant``;
    "" writes none, so a tenants file's selectors place the hosts.
    """

    state_dir: Path = DEFAULT_STATE_DIR
    bridge: str = "terrylab0"
    subnet: str = "10.77.0.0/24"
    netns_prefix: str = "terry-"
    veth_prefix: str = "tlab"
    first_host: int = 11
    tenant: str = "blue"
    data_size_mib: int = 64
    # "loop": an ext4 image on a loop device (tmpfs when the machine has no loop devices);
    # "tmpfs": a size-limited tmpfs always, as on machines without loop devices (CI's).
    data_volume: str = "loop"
    service_name: str = "web"
    service_port: int = 8080
    node_exporter_port: int = 9100
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    addresses: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.state_dir, Path):
            object.__setattr__(self, "state_dir", Path(self.state_dir))
        if not self.state_dir.is_absolute():
            object.__setattr__(self, "state_dir", self.state_dir.absolute())
        for label, value, limit in (
            ("bridge", self.bridge, 15),
            ("veth_prefix", self.veth_prefix, 12),
            ("netns_prefix", self.netns_prefix, 32),
        ):
            if not _NAME_RE.match(value) or len(value) > limit:
                raise InputError(f"lab {label} {value!r}: lowercase name of at most {limit}")
        try:
            net = ipaddress.IPv4Network(self.subnet)
        except ValueError as exc:
            raise InputError(f"lab subnet {self.subnet!r}: {exc}") from exc
        if net.num_addresses < self.first_host + MAX_HOSTS + 1 or self.first_host < 2:
            raise InputError(f"lab subnet {self.subnet} is too small for the lab hosts")
        if self.data_size_mib < 16:
            raise InputError("lab data volume must be at least 16 MiB")
        if self.data_volume not in DATA_VOLUMES:
            raise InputError(
                f"lab data volume {self.data_volume!r}: one of {', '.join(DATA_VOLUMES)}"
            )
        object.__setattr__(self, "addresses", dict(self.addresses))
        for host, value in self.addresses.items():
            self._interface(host, value)

    def _interface(self, host: str, value: str) -> ipaddress.IPv4Interface:
        where = f"lab address of {host} {value!r}"
        if not re.fullmatch(r"lab-\d{2}", host):
            raise InputError(f"{where}: hosts are named lab-01, lab-02, ...")
        try:
            interface = ipaddress.IPv4Interface(value)
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from exc
        net = interface.network
        if "/" not in value or net.num_addresses < 4:
            raise InputError(f"{where}: give the host's network too, e.g. 10.0.1.13/24")
        if interface.ip in (net.network_address, net.network_address + 1, net.broadcast_address):
            raise InputError(f"{where}: the network's first address is the lab's gateway")
        if net != self.network and net.overlaps(self.network):
            raise InputError(f"{where}: overlaps the lab subnet {self.subnet}")
        return interface

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway(self) -> str:
        """The machine's address on the lab bridge (Prometheus, Alertmanager listen here)."""
        return str(self.network.network_address + 1)

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def host_name(self, index: int) -> str:
        return f"lab-{index:02d}"

    def host_interface(self, index: int) -> ipaddress.IPv4Interface:
        """Host ``index``'s address and network: its own from ``addresses``, else the
        subnet's ``first_host + index - 1``."""
        name = self.host_name(index)
        if name in self.addresses:
            return self._interface(name, self.addresses[name])
        address = self.network.network_address + self.first_host + index - 1
        return ipaddress.IPv4Interface(f"{address}/{self.network.prefixlen}")

    def host_address(self, index: int) -> str:
        return str(self.host_interface(index).ip)

    def host_gateway(self, index: int) -> str:
        """The machine's address on host ``index``'s network (its default route)."""
        return str(self.host_interface(index).network.network_address + 1)

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network, ...]:
        """Every network on the bridge: the lab subnet first, then the hosts' own."""
        found = [self.network]
        for host, value in sorted(self.addresses.items()):
            net = self._interface(host, value).network
            if net not in found:
                found.append(net)
        return tuple(found)

    def netns(self, host: str) -> str:
        return f"{self.netns_prefix}{host}"

    def veth(self, index: int) -> str:
        return f"{self.veth_prefix}{index:02d}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state_dir"] = str(self.state_dir)
        out["addresses"] = dict(self.addresses)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LabConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass(frozen=True)
class LabProcess:
    """A process the lab started, known by pid *and* start time so a reused pid is not ours."""

    name: str
    pid: int
    start_time: int


@dataclass(frozen=True)
class LabService:
    name: str
    port: int
    bind: str


@dataclass(frozen=True)
class LabHost:
    """One lab host: a network, mount, pid and UTS namespace held by ``holder``.

    ``init_pid`` is the host's pid 1 as the machine sees it; entering its namespaces
    (``nsenter -t init_pid``) is being on the host. Killing the holder ends the host.
    """

    name: str
    address: str
    environment: str
    tenant: str
    netns: str
    veth: str
    holder: LabProcess
    init_pid: int
    image: Path
    loop_device: str
    services: tuple[LabService, ...] = ()

    @property
    def data_path(self) -> Path:
        """The host's ``/srv/data`` as seen from the machine (through its pid 1's root)."""
        return Path(f"/proc/{self.init_pid}/root/srv/data")


@dataclass(frozen=True)
class LabState:
    """Everything ``lab up`` made, so that ``down`` can take it apart from any process."""

    config: LabConfig
    ssh_key: Path
    webhook_url: str
    hosts: tuple[LabHost, ...] = ()
    prometheus: LabProcess | None = None
    alertmanager: LabProcess | None = None
    inventory: Path | None = None
    created_paths: tuple[str, ...] = ()
    started_at: str = ""
    converged: str = ""  # what applying site.yml to the fresh hosts did ("" when it did not)

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.config.gateway}:{self.config.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.config.gateway}:{self.config.alertmanager_port}"

    @property
    def addresses(self) -> dict[str, str]:
        return {h.name: h.address for h in self.hosts}

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in self.hosts) or "none"
        raise NotFound(f"no lab host {name!r} (lab hosts: {known})")


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    up: bool
    detail: str = ""


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    environment: str
    alive: bool
    components: tuple[ComponentStatus, ...]

    @property
    def healthy(self) -> bool:
        return self.alive and all(c.up for c in self.components)


@dataclass(frozen=True)
class LabStatus:
    """What is running now. ``up`` is False when no lab state exists at all."""

    up: bool
    hosts: tuple[HostStatus, ...] = ()
    components: tuple[ComponentStatus, ...] = ()
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    inventory: Path | None = None
    state_dir: Path | None = None

    @property
    def healthy(self) -> bool:
        return (
            self.up
            and bool(self.hosts)
            and all(h.healthy for h in self.hosts)
            and all(c.up for c in self.components)
        )


@dataclass(frozen=True)
class BreakResult:
    host: str
    kind: str
    detail: str
    used_percent_before: float | None = None
    used_percent_after: float | None = None
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class DownReport:
    removed: tuple[str, ...] = field(default_factory=tuple)
    problems: tuple[str, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------- persistence


def _process_json(proc: LabProcess | None) -> dict[str, Any] | None:
    if proc is None:
        return None
    return {"name": proc.name, "pid": proc.pid, "start_time": proc.start_time}


def _process_from(raw: dict[str, Any] | None) -> LabProcess | None:
    if not raw:
        return None
    return LabProcess(str(raw["name"]), int(raw["pid"]), int(raw["start_time"]))


def _host_json(host: LabHost) -> dict[str, Any]:
    return {
        "name": host.name,
        "address": host.address,
        "environment": host.environment,
        "tenant": host.tenant,
        "netns": host.netns,
        "veth": host.veth,
        "holder": _process_json(host.holder),
        "init_pid": host.init_pid,
        "image": str(host.image),
        "loop_device": host.loop_device,
        "services": [{"name": s.name, "port": s.port, "bind": s.bind} for s in host.services],
    }


def _host_from(raw: dict[str, Any]) -> LabHost:
    holder = _process_from(raw["holder"])
    if holder is None:
        raise ValueError("host without holder")
    return LabHost(
        name=str(raw["name"]),
        address=str(raw["address"]),
        environment=str(raw["environment"]),
        tenant=str(raw["tenant"]),
        netns=str(raw["netns"]),
        veth=str(raw["veth"]),
        holder=holder,
        init_pid=int(raw["init_pid"]),
        image=Path(raw["image"]),
        loop_device=str(raw["loop_device"]),
        services=tuple(
            LabService(str(s["name"]), int(s["port"]), str(s["bind"])) for s in raw["services"]
        ),
    )


def save_state(state: LabState) -> None:
    """Write the state atomically (a crash mid-write leaves the previous state)."""
    raw = {
        "version": 1,
        "config": state.config.to_json(),
        "ssh_key": str(state.ssh_key),
        "webhook_url": state.webhook_url,
        "hosts": [_host_json(h) for h in state.hosts],
        "prometheus": _process_json(state.prometheus),
        "alertmanager": _process_json(state.alertmanager),
        "prometheus_url": state.prometheus_url,
        "alertmanager_url": state.alertmanager_url,
        "inventory": str(state.inventory) if state.inventory else None,
        "created_paths": list(state.created_paths),
        "started_at": state.started_at,
        "converged": state.converged,
    }
    path = state.config.state_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_state(config: LabConfig | None = None) -> LabState:
    """The lab recorded in ``config.state_dir``; :class:`StateError` when there is none."""
    config = config or LabConfig()
    path = config.state_file
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StateError(f"the lab is not up (no {path}); run 'terry lab up'") from exc
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: unreadable lab state ({exc}); run 'terry lab down'") from exc
    try:
        return LabState(
            config=LabConfig.from_json(raw["config"]),
            ssh_key=Path(raw["ssh_key"]),
            webhook_url=str(raw["webhook_url"]),
            hosts=tuple(_host_from(h) for h in raw["hosts"]),
            prometheus=_process_from(raw.get("prometheus")),
            alertmanager=_process_from(raw.get("alertmanager")),
            inventory=Path(raw["inventory"]) if raw.get("inventory") else None,
            created_paths=tuple(str(p) for p in raw.get("created_paths", ())),
            started_at=str(raw.get("started_at", "")),
            converged=str(raw.get("converged", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"{path}: malformed lab state ({exc}); run 'terry lab down'") from exc
