"""``terry inventory validate``: what policies and roles rely on, checked for every host.

- every host has an environment (``terry_environment``), one of the allowed ones;
- no host sits in two environment groups, or in one that contradicts its environment;
- no host takes its environment from one of two groups that set it differently (``db``
  says production, ``web`` staging): Ansible picks one by group precedence, and a
  production host would be gated as staging without anyone writing "staging" for it
  (``environment_conflicts``; set it on the host, or in one group);
- tenants and labels are from the allowed sets, when ``inventory_rules`` names them;
- when the repository defines tenants (``policies/tenants.yml``), every host is in exactly
  one, and a ``terry_tenant`` names a defined one;
- every variable the desired-state roles declare as required (their
  ``meta/argument_specs.yml``, Ansible's own role argument specs) is set;
- a target applied by Argo CD names its application and manifest;
- no host takes a connection variable (``ansible_connection``, ``ansible_host``,
  ``ansible_user``, ``ansible_python_interpreter``...) from an inventory source it is not
  defined in: ``all: vars: ansible_connection: local`` of ``inventories/example`` would
  otherwise reach the hosts of ``inventories/lab`` listed beside it, and "fixing lab-02"
  would run on the machine Terry runs on (``connection_leaks``).

Every problem is listed, not just the first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from terry.appliers.base import APPLIERS
from terry.config import Config
from terry.environments import environment_name
from terry.errors import ConfigError
from terry.inventory.hosts import ANSIBLE_LOADER, Inventory, ansible_inventory
from terry.tenants.loader import load_tenants

__all__ = [
    "Leak",
    "Problem",
    "connection_leaks",
    "is_connection_variable",
    "required_variables",
    "site_roles",
    "validate",
]

_TARGET_APPLIERS = tuple(name for name, r in APPLIERS.items() if r.targets)


@dataclass(frozen=True)
class Problem:
    host: str
    rule: str
    message: str


def site_roles(site: Path) -> list[str]:
    """The roles a desired-state playbook applies, in order."""
    try:
        plays = yaml.safe_load(site.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError):
        return []
    roles: list[str] = []
    for play in plays if isinstance(plays, list) else []:
        for entry in (play or {}).get("roles") or []:
            name = (entry.get("role") or entry.get("name")) if isinstance(entry, dict) else entry
            if isinstance(name, str) and name not in roles:
                roles.append(name)
    return roles


def required_variables(tree: Path, config: Config) -> dict[str, list[str]]:
    """{role: [required variable]} from the site roles' ``meta/argument_specs.yml``."""
    required: dict[str, list[str]] = {}
    for role in site_roles(tree / config.playbooks_path / "site.yml"):
        spec = tree / config.roles_path / role / "meta" / "argument_specs.yml"
        if not spec.is_file():
            continue
        data = yaml.safe_load(spec.read_text(encoding="utf-8")) or {}
        options = ((data.get("argument_specs") or {}).get("main") or {}).get("options") or {}
        names = [name for name, o in options.items() if isinstance(o, dict) and o.get("required")]
        if names:
            required[role] = names
    return required


# A host whose applier has no server to go to: every fix of it would fail at the dry run.
_NO_URL = (
    "terry_applier {name}, but {name}.url is not set (terry.yml, or TERRY_{upper}_URL): "
    "every fix of this host would fail"
)


def validate(config: Config, tree: Path, inventory: Inventory) -> list[Problem]:
    rules = config.inventory_rules
    allowed = set(rules.environments)
    required = required_variables(tree, config)
    ansible_hosts = [n for n, h in inventory.hosts.items() if h.applier != "argocd"]
    leaks = connection_leaks(tree, config.inventory, ansible_hosts)
    problems: list[Problem] = []
    problems += _tenant_problems(config, tree, inventory)
    conflicts = environment_conflicts(tree, config.inventory)
    for name, host in sorted(inventory.hosts.items()):
        env = host.environment
        if not env:
            problems.append(Problem(name, "environment", "no terry_environment"))
        elif env not in allowed:
            problems.append(
                Problem(
                    name,
                    "environment",
                    f"terry_environment {env!r} is not one of {', '.join(rules.environments)}",
                )
            )
        if name in conflicts:
            said = ", ".join(f"{g}: {v}" for g, v in sorted(conflicts[name].items()))
            problems.append(
                Problem(
                    name,
                    "environment",
                    f"its groups set terry_environment differently ({said}); Ansible takes "
                    f"{env!r} by group precedence: set it on the host, or in one group",
                )
            )
        env_groups = sorted(g for g in host.groups if environment_name(g) in allowed)
        if len(env_groups) > 1:
            problems.append(
                Problem(name, "environment", f"in two environments: {', '.join(env_groups)}")
            )
        elif env_groups and env and environment_name(env_groups[0]) != env:
            problems.append(
                Problem(
                    name,
                    "environment",
                    f"in group {env_groups[0]} but terry_environment is {env!r}",
                )
            )
        if rules.tenants is not None and host.tenant not in rules.tenants:
            problems.append(
                Problem(name, "tenant", f"tenant {host.tenant!r} is not one of {rules.tenants}")
            )
        if rules.labels is not None:
            for key, value in sorted(host.labels.items()):
                if key not in rules.labels:
                    problems.append(Problem(name, "labels", f"label {key!r} is not allowed"))
                elif rules.labels[key] and value not in rules.labels[key]:
                    problems.append(
                        Problem(
                            name,
                            "labels",
                            f"label {key}={value!r} is not one of {rules.labels[key]}",
                        )
                    )
        if name in leaks:
            problems.append(Problem(name, "connection", leaks[name].message))
        if host.applier == "argocd":
            for var in ("terry_argocd_app", "terry_manifest"):
                if var not in host.var_names:
                    problems.append(Problem(name, "argocd", f"Argo CD target without {var}"))
            if not config.argocd.url:
                problems.append(
                    Problem(name, "argocd", _NO_URL.format(name="argocd", upper="ARGOCD"))
                )
            continue
        if host.applier == "awx" and not config.awx.url:
            problems.append(Problem(name, "awx", _NO_URL.format(name="awx", upper="AWX")))
        if host.applier not in _TARGET_APPLIERS:
            known = " or ".join(_TARGET_APPLIERS)
            problems.append(Problem(name, "applier", f"terry_applier {host.applier!r}: {known}"))
        for role, names in required.items():
            for var in names:
                if var not in host.var_names:
                    problems.append(
                        Problem(name, "variables", f"role {role} requires {var}, not set")
                    )
    return problems


def _tenant_problems(config: Config, tree: Path, inventory: Inventory) -> list[Problem]:
    """When the repository defines tenants: every host in exactly one (docs/tenants.md).
    A tenants file that cannot be read is a ConfigError naming the file and the key."""
    routes = [r.name for r in config.notifications.routes]
    tenancy = load_tenants(tree, config.policy.path, routes=routes)
    if tenancy is None:
        return []
    problems: list[Problem] = []
    for name, host in sorted(inventory.hosts.items()):
        placed = tenancy.place(host)
        if placed.explicit and placed.tenants[0] not in tenancy.tenants:
            message = f"terry_tenant {host.tenant!r} is not defined in {tenancy.source}"
            problems.append(Problem(name, "tenant", message))
        elif not placed.tenants:
            message = f"in no tenant: no selector of {tenancy.source} matches it"
            problems.append(Problem(name, "tenant", message))
        elif len(placed.tenants) > 1:
            message = (
                f"in two tenants: {', '.join(placed.tenants)} (their selectors in "
                f"{tenancy.source} both match; narrow one, or set terry_tenant)"
            )
            problems.append(Problem(name, "tenant", message))
    return problems


# -- connection variables that leak across inventory sources ---------------------------------
# Ansible merges every source it is given into one inventory: the ``all`` group (and any
# group name two sources share) is one group, so ``all: vars:`` of one source applies to the
# hosts of every other. For connection variables that decides which machine a host is.
_CONNECTION_PREFIXES = (
    "ansible_ssh_",
    "ansible_paramiko_",
    "ansible_winrm_",
    "ansible_psrp_",
    "ansible_become",
    "ansible_control_path",
)
_INTERPRETER = re.compile(r"ansible_\w+_interpreter")
_NONE = object()


@functools.cache
def _ansible_connection_names() -> frozenset[str]:
    import ansible.constants

    return frozenset(
        n for names in ansible.constants.MAGIC_VARIABLE_MAPPING.values() for n in names
    )


def is_connection_variable(name: str) -> bool:
    """Whether ``name`` says how (and where) Ansible reaches a host: Ansible's own list of
    connection, become and shell variables, the interpreters, and connection plugin
    settings."""
    return (
        name in _ansible_connection_names()
        or bool(_INTERPRETER.fullmatch(name))
        or name.startswith(_CONNECTION_PREFIXES)
    )


@dataclass(frozen=True)
class Leak:
    """Connection variables a host takes from inventory sources it is not defined in."""

    host: str
    own: tuple[str, ...]  # the sources that define the host
    variables: dict[str, Any]  # name -> the value it ends up with
    sources: tuple[str, ...]  # the other sources that set them

    @property
    def message(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in sorted(self.variables.items()))
        one = len(self.variables) == 1
        return (
            f"{shown} {'comes' if one else 'come'} from "
            f"{', '.join(self.sources) or 'another inventory source'}, not from the host's "
            f"own inventory ({', '.join(self.own)}): set {'it' if one else 'them'} there, or "
            f"move {'it' if one else 'them'} out of the shared group (all: vars:)"
        )


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _connection_vars(
    base: Path, sources: Iterable[str], hosts: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """{host: its connection variables} with only ``sources`` loaded (hosts they define)."""
    from ansible.vars.manager import VariableManager

    loader, manager = ansible_inventory(base, sources)
    try:
        variables = VariableManager(loader=loader, inventory=manager)
        found: dict[str, dict[str, Any]] = {}
        for name in hosts:
            host = manager.get_host(name)
            if host is None:
                continue
            raw = variables.get_vars(host=host, include_hostvars=False)
            found[name] = {
                str(k): _plain(v) for k, v in raw.items() if is_connection_variable(str(k))
            }
        return found
    except Exception as exc:  # ansible raises AnsibleError subclasses and plain errors
        raise ConfigError(f"inventory: {exc}") from exc


def environment_conflicts(base: Path, sources: list[str]) -> dict[str, dict[str, str]]:
    """{host: {group: the terry_environment that group sets}} for the hosts that do not set
    their own and whose groups set it to two values or more (inline group vars and
    ``group_vars/`` files alike, as Ansible's vars plugins read them). A group that only
    overrides one of its ancestors (``all: staging``, its child ``prod: production``) is
    Ansible's intended precedence, not a conflict: only the most specific setters count."""
    from ansible.vars.plugins import get_vars_from_inventory_sources

    key = "terry_environment"
    paths = [str(base / s) for s in sources]
    with ANSIBLE_LOADER:  # Ansible's loader is process-global, not thread-safe
        loader, manager = ansible_inventory(base, sources)
        try:

            def own(entity: Any) -> dict[str, Any]:
                found = dict(entity.get_vars())
                for stage in ("inventory", "task"):  # group_vars/ files come at either
                    found.update(get_vars_from_inventory_sources(loader, paths, [entity], stage))
                return found

            by_group: dict[str, Any] = {}
            conflicts: dict[str, dict[str, str]] = {}
            for host in manager.get_hosts():
                if key in own(host):
                    continue
                setters = []
                for group in host.get_groups():
                    if group.name not in by_group:
                        by_group[group.name] = own(group).get(key)
                    if by_group[group.name] is not None:
                        setters.append(group)
                said = {
                    g.name: str(by_group[g.name])
                    for g in setters
                    if not any(g in other.get_ancestors() for other in setters)
                }
                if len({environment_name(v) for v in said.values()}) > 1:
                    conflicts[host.name] = said
            return conflicts
        except Exception as exc:  # ansible raises AnsibleError subclasses and plain errors
            raise ConfigError(f"inventory: {exc}") from exc


def _plain(value: Any) -> Any:
    """Ansible's own string and container types, as plain Python (for comparing, showing)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, str) else value


def _hosts_of(base: Path, source: str) -> set[str]:
    return {h.name for h in ansible_inventory(base, [source])[1].get_hosts()}


def connection_leaks(
    base: Path, sources: list[str], hosts: Iterable[str] | None = None
) -> dict[str, Leak]:
    """Hosts (of ``hosts``, default all) whose connection variables differ between the
    whole inventory and the sources that define the host: each leaked variable, and the
    other sources that set it. One source alone never leaks."""
    if len(sources) < 2:
        return {}
    with ANSIBLE_LOADER:  # Ansible's loader is process-global, not thread-safe
        defined = {s: _hosts_of(base, s) for s in sources}
        everyone = set().union(*defined.values())
        wanted = sorted(everyone if hosts is None else everyone & set(hosts))
        combined = _connection_vars(base, sources, wanted)
        by_own: dict[tuple[str, ...], list[str]] = {}
        for name in wanted:
            own = tuple(s for s in sources if name in defined[s])
            if len(own) < len(sources):
                by_own.setdefault(own, []).append(name)
        leaks: dict[str, Leak] = {}
        for own, names in by_own.items():
            alone = _connection_vars(base, own, names)
            leaked = {
                name: {
                    k: v
                    for k, v in combined.get(name, {}).items()
                    if alone.get(name, {}).get(k, _NONE) != v
                }
                for name in names
            }
            leaked = {name: found for name, found in leaked.items() if found}
            if not leaked:
                continue
            # Which other sources set them: the host's own sources plus one other at a time.
            setters: dict[str, list[str]] = {name: [] for name in leaked}
            for other in (s for s in sources if s not in own):
                with_other = _connection_vars(base, (*own, other), list(leaked))
                for name, found in leaked.items():
                    if any(k in with_other.get(name, {}) for k in found):
                        setters[name].append(other)
            for name, found in leaked.items():
                leaks[name] = Leak(name, own, found, tuple(setters[name]))
        return leaks
