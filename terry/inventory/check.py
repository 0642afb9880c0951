"""``terry inventory validate``: what policies and roles rely on, checked for every host.

- every host has an environment (``terry_environment``), one of the allowed ones;
- no host sits in two environment groups, or in one that contradicts its environment;
- tenants and labels are from the allowed sets, when ``inventory_rules`` names them;
- every variable the desired-state roles declare as required (their
  ``meta/argument_specs.yml``, Ansible's own role argument specs) is set;
- a target applied by Argo CD names its application and manifest.

Every problem is listed, not just the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from terry.appliers.base import APPLIERS
from terry.config import Config
from terry.inventory.hosts import Inventory

__all__ = ["Problem", "required_variables", "site_roles", "validate"]

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


def validate(config: Config, tree: Path, inventory: Inventory) -> list[Problem]:
    rules = config.inventory_rules
    allowed = set(rules.environments)
    required = required_variables(tree, config)
    problems: list[Problem] = []
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
        env_groups = sorted(g for g in host.groups if g in allowed)
        if len(env_groups) > 1:
            problems.append(
                Problem(name, "environment", f"in two environments: {', '.join(env_groups)}")
            )
        elif env_groups and env and env_groups[0] != env:
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
        if host.applier == "argocd":
            for var in ("terry_argocd_app", "terry_manifest"):
                if var not in host.var_names:
                    problems.append(Problem(name, "argocd", f"Argo CD target without {var}"))
            continue
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
