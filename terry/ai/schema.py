"""A small JSON Schema checker for the subset Terry's tool schema uses.

The schema Claude is given is the schema its answer is checked against, keyword by
keyword: ``type``, ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``minItems``/``maxItems``, ``minLength``/``maxLength``,
``minimum``/``maximum``, ``pattern`` and a discriminated ``anyOf`` (branches told apart by
their ``const`` properties). A keyword outside this subset is a programming error, so the
two can never silently disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["SchemaError", "check", "show"]

_ANNOTATIONS = frozenset({"description", "title", "default", "examples"})
_KEYWORDS = _ANNOTATIONS | {
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "pattern",
    "anyOf",
}
_MISSING = object()


class SchemaError(ValueError):
    """The value does not fit the schema; the message names where and why."""


def show(value: Any, limit: int = 60) -> str:
    """An untrusted value for an error message: ``repr``, bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is(value: Any, kind: str) -> bool:
    match kind:
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)
        case "null":
            return value is None
    raise ValueError(f"schema type {kind!r} is not supported")  # pragma: no cover


def _type_name(value: Any) -> str:
    for kind in ("boolean", "integer", "number", "string", "object", "array", "null"):
        if _is(value, kind):
            return kind
    return type(value).__name__  # pragma: no cover


def _const_keys(branch: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: sub["const"]
        for key, sub in branch.get("properties", {}).items()
        if isinstance(sub, Mapping) and "const" in sub
    }


def _any_of(value: Any, branches: list[Mapping[str, Any]], where: str) -> None:
    consts = [_const_keys(b) for b in branches]
    if isinstance(value, dict) and all(consts):
        candidates = list(range(len(branches)))
        keys = list(dict.fromkeys(k for c in consts for k in c))
        for key in keys:
            allowed = [consts[i][key] for i in candidates if key in consts[i]]
            if not allowed:
                continue
            given = value.get(key, _MISSING)
            if given is _MISSING:
                raise SchemaError(f"{where}: {key} is required")
            if given not in allowed:
                choices = ", ".join(str(a) for a in dict.fromkeys(allowed))
                raise SchemaError(f"{where}.{key}: {show(given)} is not one of {choices}")
            candidates = [i for i in candidates if consts[i].get(key, given) == given]
        check(value, branches[candidates[0]], where)
        return
    kinds = {b.get("type") for b in branches}
    if len(kinds) == 1 and isinstance(kind := kinds.pop(), str) and not _is(value, kind):
        raise SchemaError(f"{where}: expected {kind}, got {_type_name(value)}")
    errors: list[str] = []
    for branch in branches:
        try:
            check(value, branch, where)
            return
        except SchemaError as exc:
            errors.append(str(exc))
    reasons = "; ".join(dict.fromkeys(errors))
    raise SchemaError(f"{where}: matches none of the allowed forms ({reasons})")


def check(value: Any, schema: Mapping[str, Any], where: str = "input") -> None:
    """Raise SchemaError unless ``value`` fits ``schema``."""
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise ValueError(f"schema keywords not supported: {', '.join(sorted(unknown))}")
    if "anyOf" in schema:
        _any_of(value, list(schema["anyOf"]), where)
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, k) for k in kinds):
            raise SchemaError(f"{where}: expected {' or '.join(kinds)}, got {_type_name(value)}")
    if "const" in schema and (value != schema["const"] or type(value) is not type(schema["const"])):
        raise SchemaError(f"{where}: {show(value)} is not {schema['const']!r}")
    if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
        choices = ", ".join(str(e) for e in schema["enum"])
        raise SchemaError(f"{where}: {show(value)} is not one of {choices}")
    if isinstance(value, str):
        _check_string(value, schema, where)
    elif _is(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaError(f"{where}: {value} is above the maximum {schema['maximum']}")
    elif isinstance(value, list):
        _check_array(value, schema, where)
    elif isinstance(value, dict):
        _check_object(value, schema, where)


def _check_string(value: str, schema: Mapping[str, Any], where: str) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        what = "must not be empty" if schema["minLength"] == 1 else "is too short"
        raise SchemaError(f"{where}: {what}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise SchemaError(f"{where}: longer than {schema['maxLength']} characters")
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        raise SchemaError(f"{where}: {show(value)} does not match {schema['pattern']}")


def _check_array(value: list[Any], schema: Mapping[str, Any], where: str) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        raise SchemaError(f"{where}: needs at least {schema['minItems']} item(s)")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise SchemaError(f"{where}: at most {schema['maxItems']} items")
    if "items" in schema:
        for index, item in enumerate(value):
            check(item, schema["items"], f"{where}[{index}]")


def _check_object(value: dict[str, Any], schema: Mapping[str, Any], where: str) -> None:
    properties: Mapping[str, Any] = schema.get("properties", {})
    for key in schema.get("required", ()):
        if key not in value:
            raise SchemaError(f"{where}: {key} is required")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            check(item, properties[key], f"{where}.{key}")
        elif extra is False:
            raise SchemaError(f"{where}: unexpected key {show(key)}")
        elif isinstance(extra, Mapping):
            check(item, extra, f"{where}.{key}")
