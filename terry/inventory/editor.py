"""Edit YAML inventories in place: add a host to a group, remove a host, set or unset a
host's variables, keeping each file's comments, key order and quoting (ruamel.yaml).

Where a change goes is decided the way a person would: a variable already written for the
host is changed where it is written (its ``host_vars`` file or its entry under a group);
a new one goes to the host's ``host_vars`` file when it has one, else to its first entry.
Values are data: parsed as YAML scalars, lists or mappings, never as Jinja2 (a ``{{``
would be evaluated by Ansible on every run, so it is refused).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from terry.errors import InputError
from terry.gitops.yaml_edit import dump_all, round_trip, split_head
from terry.inventory.hosts import Host

__all__ = [
    "Assignment",
    "EditAction",
    "InventoryEdit",
    "apply_edit",
    "parse_assignment",
    "parse_var_path",
]

_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_GROUP = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_YAML_SUFFIXES = (".yml", ".yaml", ".json")
_TEMPLATE = ("{{", "{%", "{#")


class EditAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    SET = "set"


@dataclass(frozen=True)
class Assignment:
    """``path = value``: ``path`` is a variable, or a key inside a mapping variable
    (``terry_labels.role``)."""

    path: tuple[str, ...]
    value: Any

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class InventoryEdit:
    action: EditAction
    host: str
    group: str | None = None
    assignments: tuple[Assignment, ...] = ()
    unset: tuple[tuple[str, ...], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_host(self.host)
        if self.action is EditAction.ADD and (self.group is None or not _GROUP.match(self.group)):
            raise InputError(f"group {self.group!r}: a group name is letters, digits and _")
        if self.action is EditAction.SET and not (self.assignments or self.unset):
            raise InputError("nothing to set: give KEY=VALUE or --unset KEY")

    def describe(self) -> str:
        if self.action is EditAction.ADD:
            extra = (
                f" with {', '.join(a.name for a in self.assignments)}" if self.assignments else ""
            )
            return f"add {self.host} to {self.group}{extra}"
        if self.action is EditAction.REMOVE:
            return f"remove {self.host}"
        parts = [a.name for a in self.assignments] + [f"-{'.'.join(p)}" for p in self.unset]
        return f"set {', '.join(parts)} on {self.host}"

    def as_params(self) -> dict[str, Any]:
        """What the proposal records (its parameters)."""
        return {
            "action": self.action.value,
            "host": self.host,
            "group": self.group,
            "set": {a.name: a.value for a in self.assignments},
            "unset": [".".join(p) for p in self.unset],
        }


def check_host(name: str) -> str:
    if not _HOST.match(name):
        raise InputError(f"host {name[:80]!r}: a host name is letters, digits, '.', '_' and '-'")
    return name


def parse_var_path(text: str) -> tuple[str, ...]:
    """``name`` or ``name.key.key``: an Ansible variable, or keys inside a mapping."""
    head, *rest = text.split(".")
    if not _VAR.match(head):
        raise InputError(f"{text[:80]!r}: a variable name is letters, digits and _")
    for key in rest:
        if not _KEY.match(key):
            raise InputError(f"{text[:80]!r}: {key[:40]!r} is not a mapping key")
    return (head, *rest)


def parse_assignment(text: str) -> Assignment:
    """``KEY=VALUE``; VALUE is YAML (``32``, ``true``, ``[a, b]``, ``{role: web}``)."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise InputError(f"{text[:80]!r}: expected KEY=VALUE")
    path = parse_var_path(name.strip())
    if any(t in raw for t in _TEMPLATE):
        _refuse_templates(path, raw)
    if "&" in raw or "*" in raw:
        _refuse_aliases(path, raw)
    try:
        value = pyyaml.safe_load(raw) if raw.strip() else ""
    except pyyaml.YAMLError as exc:
        raise InputError(f"{name}: the value is not valid YAML: {exc}") from exc
    _refuse_templates(path, value)
    _refuse_connection(path, value)
    return Assignment(path, value)


# Connection variables an edit may set: where the host is and whom to log in as. Every other
# one (ssh arguments, executables, become, interpreters, ``ansible_connection``) can make
# Ansible run a command on this machine, and the edit's dry run runs before any review.
_ADDRESSING = {
    "ansible_host": re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:_-]{0,252}$"),  # a name or address
    "ansible_port": re.compile(r"^[0-9]{1,5}$"),
    "ansible_user": re.compile(r"^[A-Za-z_][A-Za-z0-9._-]{0,63}$"),
}


def _refuse_connection(path: tuple[str, ...], value: Any) -> None:
    from terry.inventory.check import is_connection_variable  # Ansible's own list

    name = path[0]
    if not is_connection_variable(name):
        return
    shape = _ADDRESSING.get(name)
    if shape is None:
        raise InputError(
            f"{name}: says how Ansible reaches or runs on the host, and can make it run a "
            "command on this machine; an edit's dry run runs before any review, so Terry "
            "does not write it (edit the inventory by hand, reviewed like any change)"
        )
    if len(path) > 1 or isinstance(value, bool) or not shape.match(str(value)):
        raise InputError(
            f"{name}: expected a plain {name.removeprefix('ansible_')}, got {str(value)[:60]!r}"
        )


def _refuse_aliases(path: tuple[str, ...], raw: str) -> None:
    """YAML anchors and aliases in a value: one node written under several names (a change
    to one would change the others) and, nested, a value that expands without bound."""
    try:
        events = list(pyyaml.parse(raw, Loader=pyyaml.SafeLoader))
    except pyyaml.YAMLError:
        return  # said by the loader, with its reason
    if any(isinstance(e, pyyaml.AliasEvent) or getattr(e, "anchor", None) for e in events):
        raise InputError(
            f"{'.'.join(path)}: values are plain data: no YAML anchors or aliases (& and *)"
        )


def _refuse_templates(path: tuple[str, ...], value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _refuse_templates(path, k)
            _refuse_templates(path, v)
    elif isinstance(value, list):
        for v in value:
            _refuse_templates(path, v)
    elif isinstance(value, str) and any(t in value for t in _TEMPLATE):
        raise InputError(
            f"{'.'.join(path)}: values are data; a Jinja2 template would be evaluated by "
            "Ansible on every run, so Terry does not write one (edit the file by hand)"
        )


# -- the files ----------------------------------------------------------------------------


@dataclass
class _File:
    path: str  # relative to the tree
    head: str
    documents: list[Any]
    text: str
    changed: bool = False

    def render(self) -> str:
        return self.head + dump_all(round_trip(self.text), self.documents)


def _yaml_sources(tree: Path, sources: list[str]) -> list[str]:
    """The YAML inventory files among the sources (a file, or a directory's own files),
    in the order Ansible reads them."""
    found: list[str] = []
    for source in sources:
        path = tree / source
        if path.is_file() and path.suffix in _YAML_SUFFIXES:
            found.append(source)
        elif path.is_dir():
            found.extend(
                f"{source.rstrip('/')}/{p.name}"
                for p in sorted(path.iterdir())
                if p.is_file() and p.suffix in _YAML_SUFFIXES
            )
    return found


def _host_vars_files(tree: Path, sources: list[str], host: str) -> list[str]:
    """The host's ``host_vars`` files next to the inventory sources."""
    found: list[str] = []
    for source in sources:
        path = tree / source
        base = path if path.is_dir() else path.parent
        rel = source.rstrip("/") if path.is_dir() else str(Path(source).parent)
        for suffix in (".yml", ".yaml"):
            if (base / "host_vars" / f"{host}{suffix}").is_file():
                found.append(f"{rel}/host_vars/{host}{suffix}")
    return sorted(set(found))


def _load(tree: Path, path: str) -> _File:
    text = (tree / path).read_text(encoding="utf-8")
    head, body = split_head(text)
    try:
        documents = list(round_trip(body).load_all(body))
    except YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from exc
    return _File(path, head, documents, body)


def _groups(node: Any) -> Iterator[tuple[str, CommentedMap]]:
    """Every group mapping in an inventory document, depth first."""
    if not isinstance(node, dict):
        return
    for name, body in node.items():
        if isinstance(body, dict):
            yield str(name), body
            children = body.get("children")
            if isinstance(children, dict):
                yield from _groups(children)


def _entries(file: _File, host: str) -> Iterator[tuple[str, CommentedMap]]:
    """(group, that group's ``hosts`` mapping) for each place the host is listed."""
    for document in file.documents:
        for group, body in _groups(document):
            hosts = body.get("hosts")
            if isinstance(hosts, dict) and host in hosts:
                yield group, hosts


# -- the edit -----------------------------------------------------------------------------


def apply_edit(
    tree: Path, sources: list[str], edit: InventoryEdit, before: Host | None
) -> dict[str, str | None]:
    """The files ``edit`` changes in ``tree``: path → new text (``None``: delete it).

    ``before`` is the host as Ansible reads it on main (``None`` when absent). Raises
    InputError when the edit cannot be made or changes nothing.
    """
    files = [_load(tree, p) for p in _yaml_sources(tree, sources)]
    host_vars = [_load(tree, p) for p in _host_vars_files(tree, sources, edit.host)]
    deleted: list[str] = []
    listed = [f for f in files if any(True for _ in _entries(f, edit.host))]
    if edit.action is EditAction.ADD:
        _add(files, edit, before)
    elif before is None:
        raise InputError(f"no host {edit.host!r} in the inventory on main")
    elif not listed:
        raise InputError(
            f"{edit.host} is not written out in a YAML inventory file (a host range, an INI "
            "file or a dynamic inventory?); Terry edits YAML entries only: edit it by hand"
        )
    elif edit.action is EditAction.REMOVE:
        for file in listed:
            _remove(file, edit.host)
        deleted = [f.path for f in host_vars]
    else:
        _set_vars(listed, host_vars, edit, before)
    out: dict[str, str | None] = {
        f.path: f.render() for f in [*files, *host_vars] if f.changed and f.path not in deleted
    }
    out.update(dict.fromkeys(deleted))
    if not out or all(text == (tree / p).read_text(encoding="utf-8") for p, text in out.items()):
        raise InputError(f"the inventory already says so: {edit.describe()} changes nothing")
    return out


def _add(files: list[_File], edit: InventoryEdit, before: Host | None) -> None:
    assert edit.group is not None
    if edit.group in ("all", "ungrouped"):
        raise InputError(
            f"--group {edit.group}: name a group of the inventory (every host is in all "
            "already; a group gives it its environment)"
        )
    if before is not None and edit.group in before.groups:
        raise InputError(f"{edit.host} is already in group {edit.group}")
    places = [
        (f, body) for f in files for d in f.documents for g, body in _groups(d) if g == edit.group
    ]
    if not places:
        known = sorted({g for f in files for d in f.documents for g, _ in _groups(d)} - {"all"})
        raise InputError(
            f"no group {edit.group!r} in the YAML inventory files"
            + (f" (groups: {', '.join(known)})" if known else "")
        )
    # The first place that already lists hosts, else the group's first definition.
    file, body = next(((f, b) for f, b in places if isinstance(b.get("hosts"), dict)), places[0])
    if not isinstance(body.get("hosts"), dict):
        body["hosts"] = CommentedMap()
    entry = CommentedMap()
    for a in edit.assignments:
        _put(entry, a.path, a.value)
    body["hosts"][_yaml11_safe(edit.host)] = entry if entry else None
    file.changed = True


def _remove(file: _File, host: str) -> None:
    for document in file.documents:
        for _group, body in _groups(document):
            hosts = body.get("hosts")
            if isinstance(hosts, dict) and host in hosts:
                del hosts[host]
                if not hosts:  # no "hosts: {}" left behind
                    del body["hosts"]
                file.changed = True


def _set_vars(
    listed: list[_File], host_vars: list[_File], edit: InventoryEdit, before: Host
) -> None:
    # Every place the host's own variables are written: host_vars files, then its entries.
    places: list[tuple[_File, CommentedMap, str | None]] = []
    for file in host_vars:
        if not file.documents or file.documents[0] is None:
            file.documents = [CommentedMap()]
        if isinstance(file.documents[0], dict):
            places.append((file, file.documents[0], None))
    for file in listed:
        for _group, hosts in _entries(file, edit.host):
            places.append((file, hosts, edit.host))
    for a in edit.assignments:
        holding = [p for p in places if _has(_mapping(p), a.path[:1])]
        targets = holding or places[:1]
        for place in targets:
            mapping = _mapping(place, create=True)
            assert mapping is not None
            if len(a.path) > 1 and a.path[0] not in mapping:
                mapping[a.path[0]] = _inherited(before, a.path)
            _put(mapping, a.path, a.value)
            place[0].changed = True
    for path in edit.unset:
        holding = [p for p in places if _has(_mapping(p), path)]
        if not holding:
            where = (
                " (it comes from a group or group_vars: edit that)"
                if path[0] in before.var_names
                else ""
            )
            raise InputError(f"{'.'.join(path)} is not set on {edit.host} itself{where}")
        for place in holding:
            mapping = _mapping(place)
            assert mapping is not None
            _drop(mapping, path)
            place[0].changed = True


def _mapping(
    place: tuple[_File, CommentedMap, str | None], *, create: bool = False
) -> CommentedMap | None:
    """The host's variables at ``place`` (a host_vars document, or its entry in ``hosts``)."""
    _file, container, host = place
    if host is None:
        return container
    entry = container.get(host)
    if entry is None and create:
        entry = container[host] = CommentedMap()
    return entry if isinstance(entry, dict) else None


def _inherited(before: Host, path: tuple[str, ...]) -> CommentedMap:
    """The mapping a dotted set starts from when the host has no value of its own: what it
    inherits (a host value replaces a group's mapping whole, so it must carry the rest)."""
    if path[0] in before.var_names and path[0] not in before.variables:
        raise InputError(
            f"{path[0]} comes from a group or group_vars; set the whole value on the host: "
            f"{path[0]}={{...}}"
        )
    value = before.variables.get(path[0])
    if value is not None and not isinstance(value, dict):
        raise InputError(f"{path[0]} is not a mapping; cannot set {'.'.join(path)}")
    return CommentedMap(copy.deepcopy(value or {}))


def _put(mapping: CommentedMap, path: tuple[str, ...], value: Any) -> None:
    _not_shared(mapping, path)  # a host's whole entry may be another's alias too
    node = mapping
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = CommentedMap()
        if not isinstance(child, dict):
            raise InputError(f"{'.'.join(path)}: {key} is not a mapping")
        _not_shared(child, path)
        node = child
    node[path[-1]] = _yaml11_safe(value)


# Plain scalars YAML 1.1 (Ansible's loader) reads as booleans or null, though the YAML 1.2
# writer leaves them unquoted: ``on:`` as a host name is the key True to Ansible.
_YAML11_SPECIAL = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|null|Null|NULL|~|)$"
)


def _yaml11_safe(value: Any) -> Any:
    """``value`` with every string YAML 1.1 would read as something else quoted."""
    if isinstance(value, str) and _YAML11_SPECIAL.match(value):
        return DoubleQuotedScalarString(value)
    if isinstance(value, dict):
        return {_yaml11_safe(k): _yaml11_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_yaml11_safe(v) for v in value]
    return value


def _not_shared(node: Any, path: tuple[str, ...]) -> None:
    """InputError when ``node`` carries a YAML anchor: other places of the file may be
    aliases of it, and changing it would change them too (another host, a group)."""
    anchor = getattr(getattr(node, "anchor", None), "value", None)
    if anchor:
        raise InputError(
            f"{'.'.join(path)}: the inventory shares this mapping through a YAML anchor "
            f"(&{anchor}): changing it here would change every place that uses it; edit "
            "the file by hand"
        )


def _has(mapping: CommentedMap | None, path: tuple[str, ...]) -> bool:
    node: Any = mapping
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _drop(mapping: CommentedMap, path: tuple[str, ...]) -> None:
    _not_shared(mapping, path)
    node: Any = mapping
    for key in path[:-1]:
        node = node[key]
        _not_shared(node, path)
    del node[path[-1]]
