"""Edit Kubernetes manifests in place: the proposal of a remedy applied by Argo CD.

A manifest remedy names a resource kind and the fields to set (``spec.replicas``,
``spec.template.spec.containers[name=app].resources.limits.memory``); values are literals
from the catalogue or exactly ``{param}``, the parameter's checked value with its type.
Nothing from an alert becomes YAML source: values are set on the parsed document and
dumped by ruamel.yaml, which keeps the file's comments, key order and quoting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.error import YAMLError

from terry.errors import TerryError
from terry.gitops.yaml_edit import dump_all, round_trip, split_head

__all__ = ["FieldPath", "ManifestEdit", "ManifestError", "edit_manifest", "parse_path"]

_SEGMENT = re.compile(
    r"^(?P<key>[A-Za-z0-9_.-]+?)(?:\[(?P<field>[A-Za-z0-9_-]+)=(?P<value>[^\]\[]+)\])?$"
)
_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class ManifestError(TerryError):
    """The manifest cannot take the edit (missing, ambiguous, not YAML); nothing is proposed."""


@dataclass(frozen=True)
class Segment:
    key: str
    # ``containers[name=app]``: pick the list item whose ``name`` is ``app``.
    select: tuple[str, str] | None = None


@dataclass(frozen=True)
class FieldPath:
    text: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class ManifestEdit:
    """What a manifest remedy changes: fields of the one resource of ``kind``."""

    kind: str
    sets: tuple[tuple[FieldPath, Any], ...]

    @property
    def params_used(self) -> set[str]:
        used: set[str] = set()
        for path, value in self.sets:
            for text in [value, *(s.select[1] for s in path.segments if s.select)]:
                if isinstance(text, str) and (m := _PLACEHOLDER.match(text)):
                    used.add(m.group(1))
        return used


def parse_path(text: str) -> FieldPath:
    """``a.b[name=x].c`` → segments; a ValueError names what is wrong."""
    parts = re.findall(r"[^.\[]+(?:\[[^\]]*\])?", text)
    if not parts or ".".join(parts) != text:
        raise ValueError(f"field path {text!r} must look like spec.a.b or spec.list[name=x].c")
    segments = []
    for part in parts:
        found = _SEGMENT.match(part)
        if found is None:
            raise ValueError(f"field path {text!r}: cannot read {part!r}")
        select = (found["field"], found["value"]) if found["field"] else None
        segments.append(Segment(found["key"], select))
    return FieldPath(text, tuple(segments))


def _fill(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str) and (m := _PLACEHOLDER.match(value)):
        if m.group(1) not in params:
            raise ManifestError(f"no parameter {m.group(1)!r} for the manifest edit")
        return params[m.group(1)]
    return value


def _set(document: Any, path: FieldPath, value: Any, params: dict[str, Any]) -> None:
    node = document
    for index, segment in enumerate(path.segments):
        last = index == len(path.segments) - 1 and segment.select is None
        if not isinstance(node, dict):
            raise ManifestError(f"{path.text}: {segment.key} is not inside a mapping")
        if last:
            node[segment.key] = value
            return
        if segment.select is None:
            if node.get(segment.key) is None:
                node[segment.key] = {}
            node = node[segment.key]
            continue
        items = node.get(segment.key)
        field, wanted = segment.select[0], str(_fill(segment.select[1], params))
        if not isinstance(items, list):
            raise ManifestError(f"{path.text}: {segment.key} is not a list")
        chosen = [i for i in items if isinstance(i, dict) and str(i.get(field)) == wanted]
        if len(chosen) != 1:
            raise ManifestError(
                f"{path.text}: {len(chosen)} items of {segment.key} have {field}={wanted!r}"
            )
        node = chosen[0]
        if index == len(path.segments) - 1:
            raise ManifestError(f"{path.text}: ends at a list item, not a field")


def edit_manifest(
    text: str, edit: ManifestEdit, params: dict[str, Any], *, name: str | None = None
) -> str:
    """``text`` with the edit made on the one resource of ``edit.kind`` (named ``name`` when
    given). Raises ManifestError when that resource is missing or ambiguous."""
    head, body = split_head(text)
    yaml = round_trip(body)
    try:
        documents = list(yaml.load_all(body))
    except YAMLError as exc:
        raise ManifestError(f"the manifest is not valid YAML: {exc}") from exc
    candidates = [
        d
        for d in documents
        if isinstance(d, dict)
        and d.get("kind") == edit.kind
        and (name is None or (d.get("metadata") or {}).get("name") == name)
    ]
    what = f"{edit.kind}" + (f" named {name!r}" if name else "")
    if len(candidates) != 1:
        raise ManifestError(f"the manifest has {len(candidates)} resources of kind {what}")
    for path, value in edit.sets:
        _set(candidates[0], path, _fill(value, params), params)
    return head + dump_all(yaml, documents)
