"""The inventory, read the way Ansible reads it (its own loader), for host labels.

Desired state lives in the inventory: each host's ``terry_environment``, ``terry_tenant``
and ``terry_labels`` are what policies decide on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terry.environments import PRODUCTION, UNKNOWN, environment_name
from terry.errors import ConfigError, InputError, NotFound
from terry.inventory.platform import Platform, from_variables

__all__ = [
    "GroupNode",
    "Host",
    "Inventory",
    "group_tree",
    "load_inventory",
    "match_hosts",
    "most_sensitive",
]

# Environments, the most sensitive first: what a proposal over several is judged (and
# labelled) as.
_SENSITIVITY = (PRODUCTION, "staging", "development", "test")


def most_sensitive(environments: Iterable[str | None]) -> str:
    """The environment a proposal over hosts of ``environments`` counts as: the most
    sensitive known one, else the first by name, else "unknown"."""
    found = {environment_name(e) or UNKNOWN for e in environments}
    for name in _SENSITIVITY:
        if name in found:
            return name
    return sorted(found)[0] if found else UNKNOWN


@dataclass(frozen=True)
class Host:
    name: str
    address: str | None
    environment: str | None
    tenant: str | None
    labels: dict[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    # The host's terry_* variables (desired state), for tools such as ``terry example``.
    variables: dict[str, Any] = field(default_factory=dict, compare=False)
    # ansible_connection when the inventory sets it (``local`` hosts have no identity of
    # their own to check).
    connection: str | None = field(default=None, compare=False)
    # Every variable the host has (names only): what roles' required arguments are checked
    # against by ``terry inventory validate``.
    var_names: frozenset[str] = field(default_factory=frozenset, compare=False)
    # Where it runs (terry.inventory.platform): from ``terry_platform`` or a cloud inventory
    # plugin's variables; None when the inventory does not say (a probe may tell).
    platform: Platform | None = field(default=None, compare=False)

    @property
    def applier(self) -> str:
        """Who applies changes to this target: ``ansible`` (default) or ``argocd``."""
        return str(self.variables.get("terry_applier") or "ansible")

    def policy_view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "environment": self.environment,
            "tenant": self.tenant,
            "labels": self.labels,
            "groups": list(self.groups),
            "applier": self.applier,
            "platform": self.platform.view() if self.platform else None,
        }


@dataclass(frozen=True)
class Inventory:
    hosts: dict[str, Host]

    def find(self, value: str) -> Host | None:
        """The host an alert label names: by inventory name or address, ``:port`` stripped."""
        candidates = {value, _strip_port(value)}
        for candidate in candidates:
            if candidate in self.hosts:
                return self.hosts[candidate]
        for host in self.hosts.values():
            if host.address and host.address in candidates:
                return host
        return None


def _strip_port(value: str) -> str:
    if value.startswith("[") and "]" in value:
        return value[1 : value.index("]")]
    head, sep, tail = value.rpartition(":")
    return head if sep and tail.isdigit() and ":" not in head else value


def _plain(value: Any) -> Any:
    """Ansible wraps strings in its own types; bring them back to plain Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _label(value: Any) -> str:
    """A label's value as text: a YAML list of names (``service: [checkout, search]``) is
    those names with commas, as ``service: checkout,search`` is written; ``str()`` of the
    list would be one name no service has (``['checkout'``)."""
    if isinstance(value, list):
        return ",".join(_label(v) for v in value)
    return "" if value is None else str(value)


class _AnsibleLoader:
    """Ansible's plugin loader, one user at a time, with its collection loader installed.

    The loader is process-global and not thread-safe: two worker threads loading
    inventories at once fail with "Unable to load the cache plugin". And only Ansible's own
    CLIs install the finder for installed collections (``init_plugin_loader``): without it an
    inventory source of a collection's plugin (``amazon.aws.aws_ec2``) is "unknown", parsed
    as nothing and only warned about. Installed once, on first use.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            from ansible.utils.collection_loader import AnsibleCollectionConfig

            if AnsibleCollectionConfig.collection_finder is None:
                from ansible.plugins.loader import init_plugin_loader

                init_plugin_loader()
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


_ANSIBLE_LOADER = _AnsibleLoader()
# The same guard, for other readers of Ansible's inventory (terry.inventory.check).
ANSIBLE_LOADER = _ANSIBLE_LOADER


def ansible_inventory(
    base: Path, sources: Iterable[str], *, problem: str = "inventory"
) -> tuple[Any, Any]:
    """Ansible's ``DataLoader`` (based at ``base``) and its ``InventoryManager`` over
    ``sources`` (paths under ``base``), as Ansible's CLIs read them; call it under
    ``ANSIBLE_LOADER``. Whatever Ansible raises reading them is a ``ConfigError``
    (``"<problem>: <why>"``)."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    loader = DataLoader()
    loader.set_basedir(str(base))
    try:
        return loader, InventoryManager(loader=loader, sources=[str(base / s) for s in sources])
    except Exception as exc:  # ansible raises AnsibleError subclasses and plain errors
        raise ConfigError(f"{problem}: {exc}") from exc


def load_inventory(base: Path, sources: list[str]) -> Inventory:
    """Hosts and their Terry variables from the inventory sources under ``base``."""
    with _ANSIBLE_LOADER:
        return _load_inventory(base, sources)


def match_hosts(base: Path, sources: list[str], pattern: str) -> list[str]:
    """The inventory hosts an Ansible host pattern (``--limit``) selects, as Ansible does."""
    with _ANSIBLE_LOADER:
        _loader, manager = ansible_inventory(base, sources, problem="the inventory cannot be read")
        try:
            return sorted(h.name for h in manager.get_hosts(pattern=pattern))
        except Exception as exc:  # ansible raises AnsibleError subclasses for bad patterns
            raise InputError(f"host pattern {pattern!r}: {exc}") from exc


@dataclass(frozen=True)
class GroupNode:
    name: str
    hosts: tuple[str, ...]  # the group's own hosts (not its children's)
    children: tuple[GroupNode, ...]


def group_tree(base: Path, sources: list[str], group: str = "all") -> GroupNode:
    """``group`` and the groups under it, as Ansible reads the inventory."""
    with _ANSIBLE_LOADER:
        groups = ansible_inventory(base, sources)[1].groups
    if group not in groups:
        raise NotFound(f"no group {group!r} (groups: {', '.join(sorted(groups))})")

    def node(name: str) -> GroupNode:
        found = groups[name]
        children = sorted(c.name for c in found.child_groups)
        return GroupNode(
            name, tuple(sorted(h.name for h in found.hosts)), tuple(map(node, children))
        )

    return node(group)


def _load_inventory(base: Path, sources: list[str]) -> Inventory:
    from ansible.vars.manager import VariableManager

    missing = [str(base / s) for s in sources if not (base / s).exists()]
    if missing:
        raise ConfigError(f"inventory source not found: {', '.join(missing)}")
    loader, manager = ansible_inventory(base, sources)
    try:
        variables = VariableManager(loader=loader, inventory=manager)
    except Exception as exc:  # ansible raises AnsibleError subclasses and plain errors
        raise ConfigError(f"inventory: {exc}") from exc
    hosts: dict[str, Host] = {}
    for host in manager.get_hosts():
        raw = _plain(variables.get_vars(host=host, include_hostvars=False))
        labels = raw.get("terry_labels") if isinstance(raw.get("terry_labels"), dict) else {}
        address = raw.get("ansible_host")
        hosts[host.name] = Host(
            name=host.name,
            address=str(address) if address and "{{" not in str(address) else None,
            environment=environment_name(raw.get("terry_environment")),
            tenant=raw.get("terry_tenant"),
            labels={str(k): _label(v) for k, v in labels.items()},
            groups=tuple(sorted(g.name for g in host.get_groups() if g.name != "all")),
            variables={k: v for k, v in raw.items() if k.startswith("terry_")},
            connection=str(raw["ansible_connection"]) if raw.get("ansible_connection") else None,
            var_names=frozenset(str(k) for k in raw),
            platform=from_variables(raw),
        )
    return Inventory(hosts)
