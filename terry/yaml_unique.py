"""YAML read as PyYAML reads it, except that a mapping key given twice is an error: PyYAML
keeps the last one silently, so a setting written twice (``canary:`` at the top and again at
the end of terry.yml, a variant declared twice) would quietly lose the first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

__all__ = ["DuplicateKey", "load", "load_all"]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKey(yaml.YAMLError):
    """A mapping with the same key twice."""


def _check(node: yaml.Node) -> None:
    stack = [node]
    while stack:
        at = stack.pop()
        if isinstance(at, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key, value in at.value:
                stack += [key, value]
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                name = (key.tag, key.value)
                if name in seen:
                    first = seen[name].start_mark.line + 1
                    raise DuplicateKey(
                        f"line {key.start_mark.line + 1}: key {key.value!r} given twice in one "
                        f"mapping (first at line {first}): YAML keeps only the last"
                    )
                seen[name] = key
        elif isinstance(at, yaml.SequenceNode):
            stack += at.value


def load_all(text: str, loader: Any = _Loader) -> Iterator[Any]:
    """Every document of ``text`` (a safe loader), refusing a key given twice."""
    reader = loader(text)
    try:
        while reader.check_node():
            node = reader.get_node()
            _check(node)
            yield reader.construct_document(node)
    except RecursionError:  # PyYAML's pure-Python loader (libyaml stops at its own depth)
        raise yaml.YAMLError("nested too deep to read") from None
    finally:
        reader.dispose()


def load(text: str, loader: Any = _Loader) -> Any:
    """The one document of ``text`` (None when empty), refusing a key given twice."""
    reader = loader(text)
    try:
        node = reader.get_single_node()
        if node is None:
            return None
        _check(node)
        return reader.construct_document(node)
    except RecursionError:
        raise yaml.YAMLError("nested too deep to read") from None
    finally:
        reader.dispose()
