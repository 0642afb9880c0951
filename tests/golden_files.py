"""Golden files: one small data file per case, one generic test per kind that runs them all.

A case of kind ``K`` is a pair in ``tests/golden/K/``: ``<case>.input.yml`` (what goes in)
and ``<case>.expected.<ext>`` (what must come out). Adding a case is adding a pair; see
``tests/golden/README.md``. With ``TERRY_GOLDEN_UPDATE=1`` the tests write what the code
produces into the expected files instead of comparing: read every file it changed before
committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

__all__ = ["GOLDEN", "UPDATE", "cases", "check", "load_input", "orphans"]

GOLDEN = REPO_ROOT / "tests" / "golden"
UPDATE = os.environ.get("TERRY_GOLDEN_UPDATE") == "1"
_INPUT = ".input.yml"


def cases(kind: str) -> list[Any]:
    """A ``pytest.param`` per ``<case>.input.yml`` of ``kind``, with the case's name as id."""
    found = sorted((GOLDEN / kind).glob(f"*{_INPUT}"))
    assert found, f"no cases in {GOLDEN / kind}"
    return [pytest.param(path, id=path.name[: -len(_INPUT)]) for path in found]


def load_input(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: a case's input is a mapping"
    return data


def orphans(kind: str, ext: str) -> list[str]:
    """Expected files of ``kind`` whose input file is missing (a renamed or deleted case)."""
    directory = GOLDEN / kind
    names = {p.name[: -len(_INPUT)] for p in directory.glob(f"*{_INPUT}")}
    suffix = f".expected.{ext}"
    return sorted(
        p.name for p in directory.glob(f"*{suffix}") if p.name[: -len(suffix)] not in names
    )


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so an expected playbook reads as one."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
_Dumper.add_multi_representer(str, _str)  # str subclasses too (Ansible's)


def _dump(path: Path, data: Any) -> str:
    if path.suffix == ".json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    # no folding: a reason or a line of a playbook stays on one line, as the code wrote it
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def check(input_path: Path, ext: str, actual: Any) -> None:
    """``actual`` equals the case's expected file (compared as data, so an expected file may
    be written by hand in any layout); with TERRY_GOLDEN_UPDATE=1, write it there instead."""
    expected_path = input_path.with_name(input_path.name[: -len(_INPUT)] + f".expected.{ext}")
    if UPDATE:
        expected_path.write_text(_dump(expected_path, actual), encoding="utf-8")
        # the file just written must read back as what was produced
        assert _load(expected_path) == actual, expected_path
        return
    if not expected_path.exists():
        pytest.fail(
            f"{expected_path.relative_to(REPO_ROOT)} is missing: write it, or run with "
            "TERRY_GOLDEN_UPDATE=1 and read what it wrote"
        )
    assert actual == _load(expected_path), f"differs from {expected_path.relative_to(REPO_ROOT)}"
