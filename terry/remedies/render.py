"""Render a remedy into a playbook and its parameters file.

Two renderings, one trust boundary: Terry writes the playbook, then Ansible templates it
again on the controller. So nothing from an alert goes into the playbook text. The playbook
is built as Python data from trusted names (remedy, role, inventory hosts) and dumped with
``yaml.safe_dump``; the parameters go into a separate extra-vars file where every string is
tagged ``!unsafe``, which Ansible never templates. ``{{ lookup('pipe', ...) }}`` in a label
stays text.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

import yaml

from terry.appliers.base import host_pattern
from terry.appliers.hold import wait_tasks
from terry.remedies.catalogue import Remedy

__all__ = [
    "Rendered",
    "Unsafe",
    "branch_name",
    "dump_unsafe_vars",
    "render",
    "render_reconcile",
    "slug",
]


class Unsafe(str):
    """A string Ansible must treat as data: dumped with the ``!unsafe`` tag."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    pass


def _unsafe(dumper: yaml.SafeDumper, value: Unsafe) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(value), style='"')


_Dumper.add_representer(Unsafe, _unsafe)


def _mark(value: Any) -> Any:
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, list):
        return [_mark(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _mark(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Rendered:
    playbook_path: str  # relative to the repository
    vars_path: str
    playbook: str
    vars_text: str


def slug(text: str, *, limit: int = 48) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].strip("-") or "fix"


def branch_name(incident_id: int, remedy: str, host: str) -> str:
    """``terry/<incident>-<slug>``; built from an id and checked names, never a leading '-'."""
    return f"terry/{incident_id}-{slug(f'{remedy}-{host}')}"


def _play(
    name: str, hosts: str, role: str, tasks_from: str, tags: list[str], *, look: str | None = None
) -> dict[str, Any]:
    """One play of the role's ``tasks_from``. With ``look`` (the fix play of a remedy that
    declares one): the look first, then the tasks a held run waits in (``hold.wait_tasks``,
    skipped unless the run is held), then the change."""
    tasks: list[dict[str, Any]] = []
    if look is not None:
        tasks += [_import(role, look), *wait_tasks()]
    return {
        "name": name,
        "hosts": hosts,
        "gather_facts": False,
        "tags": tags,
        "tasks": [*tasks, _import(role, tasks_from)],
    }


def _import(role: str, tasks_from: str) -> dict[str, Any]:
    return {
        "name": f"{role}: {tasks_from}",
        "ansible.builtin.import_role": {"name": role, "tasks_from": tasks_from},
    }


def render(
    *,
    remedy: Remedy,
    proposal_id: int,
    incident_id: int,
    hosts: tuple[str, ...],
    params: dict[str, Any],
    directory: str = "playbooks/remediations",
) -> Rendered:
    """The playbook (apply, then verify and rollback plays that run only when asked by tag)."""
    base = f"{directory}/{proposal_id:05d}-{slug(remedy.name)}"
    pattern = host_pattern(hosts)
    plays = [
        _play(
            f"Fix: {remedy.name}", pattern, remedy.role, remedy.apply, ["apply"], look=remedy.look
        ),
        _play(f"Verify: {remedy.name}", pattern, remedy.role, remedy.verify, ["never", "verify"]),
        _play(
            f"Roll back: {remedy.name}",
            pattern,
            remedy.role,
            remedy.rollback,
            ["never", "rollback"],
        ),
    ]
    header = (
        f"# Rendered by Terry for proposal {proposal_id} (incident {incident_id}).\n"
        f"# Remedy {remedy.name} from {remedy.source}; parameters: {base}.vars.yml\n"
        "# Run: ansible-playbook THIS -e @VARS          (fix)\n"
        "#      ansible-playbook THIS -e @VARS --tags verify | --tags rollback\n"
    )
    playbook = header + yaml.safe_dump(plays, sort_keys=False, width=100)
    vars_text = dump_unsafe_vars(
        {"terry_proposal_id": proposal_id, **params},
        "# Parameters taken from the alert. Every string is !unsafe: Ansible uses it as data\n"
        "# and never templates it.\n",
    )
    return Rendered(f"{base}.yml", f"{base}.vars.yml", playbook, vars_text)


def dump_unsafe_vars(variables: dict[str, Any], header: str) -> str:
    """An extra-vars file with every string tagged ``!unsafe`` (never templated)."""
    return header + yaml.dump(
        _mark(variables), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=False
    )


def render_reconcile(
    *,
    proposal_id: int,
    incident_id: int,
    site: str,
    directory: str = "playbooks/remediations",
    name: str = "reconcile-drift",
) -> Rendered:
    """The playbook of a drift fix (or an inventory edit that converges): the desired state
    itself (``site``), imported; the runner limits it to the proposal's hosts."""
    base = f"{directory}/{proposal_id:05d}-{name}"
    relative = posixpath.relpath(site, directory)
    header = (
        f"# Rendered by Terry for proposal {proposal_id} (incident {incident_id}): bring the\n"
        f"# drifted hosts back to the desired state, {site}, run on them only.\n"
    )
    playbook = header + yaml.safe_dump(
        [{"ansible.builtin.import_playbook": relative}], sort_keys=False
    )
    vars_text = yaml.safe_dump({"terry_proposal_id": proposal_id}, sort_keys=False)
    return Rendered(f"{base}.yml", f"{base}.vars.yml", playbook, vars_text)
