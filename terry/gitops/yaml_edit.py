"""Round-trip YAML: edit a file's parsed documents and write them back keeping its
comments, key order, quoting and list style (ruamel.yaml). Used for Kubernetes manifests
(``terry.remedies.manifests``) and YAML inventories (``terry.inventory.editor``)."""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML

__all__ = ["dump_all", "round_trip", "split_head"]


def round_trip(text: str) -> YAML:
    """A ruamel loader/dumper matched to ``text``'s style."""
    yaml = YAML()  # round trip: comments, order and quotes survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    # Keep the file's list style: "key:\n  - item" (indented) or "key:\n- item".
    indented = re.search(r"^( *)[^\s#-][^\n]*:\n\1 +- ", text, re.MULTILINE) is not None
    yaml.indent(mapping=2, sequence=4 if indented else 2, offset=2 if indented else 0)
    return yaml


def split_head(text: str) -> tuple[str, str]:
    """Leading comments, blank lines and the first ``---`` (ruamel drops comments that come
    before a document start), and the rest."""
    lines = text.splitlines(keepends=True)
    cut = 0
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped == "---":
            cut = index + 1
        break
    return "".join(lines[:cut]), "".join(lines[cut:])


def dump_all(yaml: YAML, documents: list[Any]) -> str:
    out = io.StringIO()
    yaml.dump_all(documents, out)
    return out.getvalue()
