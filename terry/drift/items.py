"""Drift items: what a check-mode run of the desired state and the facts probe say.

An item is one resource on one host that differs from what the repository declares: a task
of ``site.yml`` that would change something (a file, a service, a sysctl...), or a fact
that contradicts the inventory (the host answers with another name, runs another OS, has
another package version). An unreachable host is not drifted: it is unknown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from terry.appliers.base import EventStatus, RunnerEvent, RunResult, last_line, render_diffs
from terry.inventory.hosts import Host

__all__ = [
    "OS_TASK",
    "PROBE_TASK",
    "DriftItem",
    "HostScan",
    "HostStatus",
    "ItemKind",
    "items_from_run",
]

# The probe play's task names (terry/drift/probe.py writes the play).
PROBE_TASK = "terry drift probe: facts"
OS_TASK = "terry drift probe: os"
PACKAGES_TASK = "terry drift probe: packages"

_TYPES = {
    "file": "file",
    "copy": "file",
    "template": "file",
    "lineinfile": "file",
    "blockinfile": "file",
    "replace": "file",
    "service": "service",
    "systemd": "service",
    "systemd_service": "service",
    "package": "package",
    "apt": "package",
    "dnf": "package",
    "yum": "package",
    "pip": "package",
    "user": "user",
    "group": "group",
    "sysctl": "sysctl",
    "cron": "cron",
    "mount": "mount",
}


class ItemKind(StrEnum):
    TASK = "task"  # a desired-state task would change something
    ERROR = "error"  # a desired-state task failed: the host cannot be judged there
    IDENTITY = "identity"  # the host answers with another name
    OS = "os"  # another distribution or version than declared
    PACKAGE = "package"  # another package version than declared (or missing)


class HostStatus(StrEnum):
    CLEAN = "clean"
    DRIFTED = "drifted"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class DriftItem:
    host: str
    kind: ItemKind
    role: str
    task: str
    resource: str
    diff: str = ""
    detail: str = ""

    @property
    def key(self) -> str:
        """Stable identity across scans: the same resource drifting again is persisting."""
        text = "\x1f".join((self.host, self.kind.value, self.role, self.task, self.resource))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class HostScan:
    host: str
    status: HostStatus
    items: tuple[DriftItem, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def _short(action: str | None) -> str:
    return (action or "").rsplit(".", 1)[-1]


def _strip_root(text: str, root: str) -> str:
    """Paths as the host knows them: example hosts live under a scratch ``terry_root``."""
    return text.replace(root, "", 1) if root else text


def _resource(action: str | None, result: dict[str, Any], root: str) -> str:
    """``<type> <name>``: from the loop label when the role gives one ("sysctl a.b: 1 → 0"
    names "sysctl a.b"), else from the module's arguments."""
    label = result.get("_ansible_item_label")
    if isinstance(label, str) and label:
        return _strip_root(label.split(": ", 1)[0], root)
    args = (result.get("invocation") or {}).get("module_args") or {}
    kind = _TYPES.get(_short(action), _short(action) or "task")
    for name in ("path", "dest", "name", "key"):
        value = args.get(name)
        if isinstance(value, str) and value:
            return f"{kind} {_strip_root(value, root)}"
    return kind


def _detail(result: dict[str, Any]) -> str:
    label = result.get("_ansible_item_label")
    if isinstance(label, str) and ": " in label:
        return label.split(": ", 1)[1]
    return str(result.get("msg") or "")[:500]


def _task_items(event: RunnerEvent, root: str) -> list[DriftItem]:
    data = event.raw.get("event_data") or {}
    result = data.get("res") if isinstance(data.get("res"), dict) else {}
    role = str(data.get("role") or "")
    task = str(event.task or "")
    host = str(event.host)
    if event.status is EventStatus.FAILED:
        message = event.message or "failed"
        return [DriftItem(host, ItemKind.ERROR, role, task, f"task {task}", detail=message)]
    results = result.get("results") if isinstance(result.get("results"), list) else [result]
    items = []
    for one in results:
        if not isinstance(one, dict) or not one.get("changed"):
            continue
        raw = one.get("diff") or ()
        raw = (raw,) if isinstance(raw, dict) else tuple(d for d in raw if isinstance(d, dict))
        # Headers that say which side is which (Ansible's name a temporary file).
        diffs = [{**d, "before_header": "live", "after_header": "desired"} for d in raw]
        items.append(
            DriftItem(
                host,
                ItemKind.TASK,
                role,
                task,
                _resource(event.action, one, root),
                diff=render_diffs(diffs),
                detail=_detail(one),
            )
        )
    return items


def _fact_items(host: Host, facts: dict[str, Any]) -> list[DriftItem]:
    items: list[DriftItem] = []
    declared_name = host.variables.get("terry_hostname")
    seen_name = str(facts.get("hostname") or "")
    if (declared_name or host.connection != "local") and seen_name:
        wanted = str(declared_name or host.name)
        if seen_name not in (wanted, wanted.split(".")[0]):
            items.append(
                DriftItem(
                    host.name,
                    ItemKind.IDENTITY,
                    "",
                    PROBE_TASK,
                    "hostname",
                    detail=f"answers as {seen_name!r}, inventory says {wanted!r}",
                )
            )
    declared_os = host.variables.get("terry_os")
    if declared_os:
        seen_os = f"{facts.get('distribution', '?')} {facts.get('distribution_major_version', '?')}"
        full = f"{facts.get('distribution', '?')} {facts.get('distribution_version', '?')}"
        if str(declared_os) not in (seen_os, full):
            items.append(
                DriftItem(
                    host.name,
                    ItemKind.OS,
                    "",
                    PROBE_TASK,
                    "os",
                    detail=f"runs {full}, inventory says {declared_os}",
                )
            )
    declared = host.variables.get("terry_packages")
    installed = facts.get("packages")
    if isinstance(declared, dict) and isinstance(installed, dict):
        for name, version in sorted(declared.items()):
            found = sorted({str(p.get("version")) for p in installed.get(name) or ()})
            if not found:
                detail = f"not installed, inventory says {version}"
            elif version not in (None, "", "present") and str(version) not in found:
                detail = f"{', '.join(found)} installed, inventory says {version}"
            else:
                continue
            items.append(
                DriftItem(
                    host.name, ItemKind.PACKAGE, "", PACKAGES_TASK, f"package {name}", detail=detail
                )
            )
    return items


def items_from_run(result: RunResult, hosts: dict[str, Host]) -> dict[str, HostScan]:
    """Per host the run reached or tried (its stats): clean, drifted (with its items) or
    unreachable, from one probe + site.yml run in check mode."""
    hosts = {name: host for name, host in hosts.items() if name in result.stats}
    facts: dict[str, dict[str, Any]] = {}
    items: dict[str, list[DriftItem]] = {}
    unreachable: dict[str, str] = {}
    for event in result.events:
        if event.host is None or event.host not in hosts:
            continue
        if event.status is EventStatus.UNREACHABLE:
            unreachable.setdefault(event.host, event.message or "unreachable")
            continue
        data = event.raw.get("event_data") or {}
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        if event.task == PROBE_TASK:  # raw "uname -n": the node name; its first label is
            # what Ansible calls ansible_hostname
            node = last_line(str(res.get("stdout") or "")).split(".")[0]
            if event.status is not EventStatus.FAILED and node:
                facts.setdefault(event.host, {})["hostname"] = node
            continue
        if event.task in (OS_TASK, PACKAGES_TASK):
            found = res.get("ansible_facts") or {}
            facts.setdefault(event.host, {}).update(
                {k.removeprefix("ansible_"): v for k, v in found.items()}
            )
            continue
        if event.status in (EventStatus.CHANGED, EventStatus.FAILED):
            root = str(hosts[event.host].variables.get("terry_root") or "")
            items.setdefault(event.host, []).extend(_task_items(event, root))
    scans: dict[str, HostScan] = {}
    for name, host in hosts.items():
        if name in unreachable:
            scans[name] = HostScan(name, HostStatus.UNREACHABLE, message=unreachable[name])
            continue
        found = items.get(name, []) + _fact_items(host, facts.get(name, {}))
        seen_facts = {
            k: facts.get(name, {}).get(k)
            for k in ("hostname", "distribution", "distribution_version")
            if k in facts.get(name, {})
        }
        status = HostStatus.DRIFTED if found else HostStatus.CLEAN
        scans[name] = HostScan(name, status, tuple(found), seen_facts)
    return scans
