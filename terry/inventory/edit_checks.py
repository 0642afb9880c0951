"""The checks of an inventory edit: its dry run's inventory half (the edited inventory
loads, says what was asked, adds no ``validate`` problem on the host) and its verification
after the merge (the inventory on main says so)."""

from __future__ import annotations

from typing import Any

from terry.config import Config
from terry.errors import ConfigError
from terry.gitops.repo import Repo
from terry.inventory.check import validate
from terry.inventory.editor import EditAction, parse_var_path
from terry.inventory.hosts import Host, Inventory, load_inventory
from terry.verify.judge import Outcome, Verification

__all__ = ["check_edit", "verify_edit"]


def _says(inventory: Inventory, params: dict[str, Any]) -> list[str]:
    """What the inventory fails to say of what the edit asked (empty: it says it all)."""
    host = str(params["host"])
    found = inventory.hosts.get(host)
    action = EditAction(params["action"])
    if action is EditAction.REMOVE:
        return [f"{host} is still in the inventory"] if found else []
    if found is None:
        return [f"{host} is not in the inventory"]
    missing: list[str] = []
    if action is EditAction.ADD and params.get("group") not in found.groups:
        missing.append(f"{host} is not in group {params.get('group')}")
    for name, value in (params.get("set") or {}).items():
        seen = _value(found, parse_var_path(name))
        if seen != ("set", value) and seen[0] != "named":
            missing.append(f"{host}: {name} is not {value!r}")
    return missing


def _value(host: Host, path: tuple[str, ...]) -> tuple[str, Any]:
    """("set", value) for a Terry variable, ("named", None) for another one Ansible has
    (only Terry's variables are kept with their values), ("unset", None) when absent."""
    if path[0] not in host.variables:
        return ("named", None) if path[0] in host.var_names and len(path) == 1 else ("unset", None)
    node: Any = host.variables
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return ("unset", None)
        node = node[key]
    return ("set", node)


def check_edit(config: Config, repo: Repo, commit: str, params: dict[str, Any]) -> list[str]:
    """The dry run's inventory half: the edited inventory loads, says what was asked, and
    adds no ``validate`` problem on the host. Returns what is wrong."""
    host = str(params["host"])
    parent = repo.head(f"{commit}^")
    try:
        after = load_inventory(repo.tree(commit), config.inventory)
    except ConfigError as exc:
        return [f"the edited inventory does not load: {exc}"]
    wrong = _says(after, params)
    before_tree = repo.tree(parent)
    known = {
        (p.rule, p.message)
        for p in validate(config, before_tree, load_inventory(before_tree, config.inventory))
        if p.host == host
    }
    wrong.extend(
        f"inventory validate: {p.rule}: {p.message}"
        for p in validate(config, repo.tree(commit), after)
        if p.host == host and (p.rule, p.message) not in known
    )
    return wrong


def verify_edit(config: Config, repo: Repo, params: dict[str, Any]) -> Verification:
    """After the merge: the inventory on main, read by Ansible, says what was asked."""
    try:
        inventory = load_inventory(repo.tree(repo.head()), config.inventory)
    except ConfigError as exc:
        return Verification(Outcome.FAILED, (f"the inventory on main does not load: {exc}",))
    missing = _says(inventory, params)
    if missing:
        return Verification(Outcome.FAILED, tuple(missing))
    return Verification(Outcome.VERIFIED, (f"the inventory on main says so ({params['host']})",))
