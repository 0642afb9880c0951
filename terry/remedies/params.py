"""Remedy parameters: where each value comes from, and the checks it must pass.

Values come from alert labels and annotations, which are untrusted. A value is accepted only
when it fits its declared type; otherwise the reason is returned and the incident waits for
a human. Accepted values still travel as data only (see ``terry.remedies.render``).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["ParamError", "ParamSpec", "ParamType", "resolve_params"]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_MAX_STRING = 256


class ParamType(StrEnum):
    PATH = "path"
    NAME = "name"
    INT = "int"
    STRING = "string"
    ENUM = "enum"


class ParamError(ValueError):
    """A value that cannot be valid for its parameter; the message says why."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: ParamType
    source: str | None = None  # "label:NAME" or "annotation:NAME"
    default: Any = None
    required: bool = False
    within: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None

    def check(self, raw: Any) -> Any:
        """The value converted to its type, or ParamError saying why it cannot be."""
        match self.type:
            case ParamType.INT:
                return self._check_int(raw)
            case ParamType.NAME:
                text = str(raw)
                if not NAME_RE.fullmatch(text):
                    raise ParamError(
                        f"{text!r} is not a valid name (letters, digits, '_.@-', up to 64, "
                        "no spaces)"
                    )
                return text
            case ParamType.PATH:
                return self._check_path(str(raw))
            case ParamType.ENUM:
                text = str(raw)
                if text not in self.values:
                    raise ParamError(f"{text!r} is not one of {', '.join(self.values)}")
                return text
            case ParamType.STRING:
                # Free text (e.g. an annotation) is only ever data: fold control characters
                # to spaces and bound its length instead of refusing the whole remedy.
                return _CONTROL_RE.sub(" ", str(raw))[:_MAX_STRING]
        raise ParamError(f"unknown parameter type {self.type}")  # pragma: no cover

    def _check_int(self, raw: Any) -> int:
        if isinstance(raw, bool):
            raise ParamError(f"{raw!r} is not an integer")
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, str) and re.fullmatch(r"-?[0-9]{1,12}", raw.strip()):
            value = int(raw.strip())
        else:
            raise ParamError(f"{str(raw)[:60]!r} is not an integer")
        if self.min is not None and value < self.min:
            raise ParamError(f"{value} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ParamError(f"{value} is above the maximum {self.max}")
        return value

    def _check_path(self, text: str) -> str:
        if _CONTROL_RE.search(text) or len(text) > 1024:
            raise ParamError("path holds control characters or is too long")
        if not text.startswith("/"):
            raise ParamError(f"{text[:80]!r} is not an absolute path")
        if not re.fullmatch(r"[A-Za-z0-9_.@/+-]+", text):
            raise ParamError(f"{text[:80]!r} holds characters not allowed in a path")
        normal = posixpath.normpath(text)
        if normal.startswith("//"):
            normal = "/" + normal.lstrip("/")
        for root in self.within:
            root = posixpath.normpath(root)
            if root == "/" or normal == root or normal.startswith(root + "/"):
                return normal
        raise ParamError(
            f"{normal!r} is outside the allowed roots {', '.join(self.within) or '(none)'}"
        )


def _lookup(source: str, labels: dict[str, str], annotations: dict[str, str]) -> str | None:
    kind, _, key = source.partition(":")
    table = labels if kind == "label" else annotations
    return table.get(key)


def resolve_params(
    specs: tuple[ParamSpec, ...], labels: dict[str, str], annotations: dict[str, str]
) -> dict[str, Any]:
    """Every parameter's checked value. Raises ParamError naming the parameter that failed."""
    values: dict[str, Any] = {}
    for spec in specs:
        raw = _lookup(spec.source, labels, annotations) if spec.source else None
        if raw is None:
            if spec.default is None:
                if spec.required:
                    raise ParamError(f"parameter {spec.name!r}: {spec.source} is missing")
                continue
            raw = spec.default
        try:
            values[spec.name] = spec.check(raw)
        except ParamError as exc:
            origin = spec.source or "default"
            raise ParamError(f"parameter {spec.name!r} ({origin}): {exc}") from exc
    return values
