"""YAML inventory edits in place (no git, no ansible run): where each change goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from terry.errors import InputError
from terry.inventory.editor import (
    EditAction,
    InventoryEdit,
    apply_edit,
    parse_assignment,
    parse_var_path,
)
from terry.inventory.hosts import load_inventory

pytestmark = pytest.mark.unit

INVENTORY = """\
# The fleet. Keep this comment.
all:
  children:
    web:
      vars:
        terry_labels: {role: web, tier: front}   # every web host
      hosts:
        web-01:
        web-02:
          port: 8080
    db:
      hosts:
        db-01: {}
"""


def _edit(tmp_path: Path, edit: InventoryEdit) -> dict[str, str | None]:
    inventory = load_inventory(tmp_path, ["hosts.yml"])
    return apply_edit(tmp_path, ["hosts.yml"], edit, inventory.hosts.get(edit.host))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    return tmp_path


def test_a_dotted_set_carries_the_inherited_mapping(tree: Path) -> None:
    # A host's mapping replaces the group's whole: the host keeps tier=front.
    out = _edit(
        tree,
        InventoryEdit(
            EditAction.SET, "web-01", assignments=(parse_assignment("terry_labels.role=cache"),)
        ),
    )
    text = out["hosts.yml"]
    assert text is not None and text.startswith("# The fleet. Keep this comment.\n")
    assert "# every web host" in text
    (tree / "hosts.yml").write_text(text)
    host = load_inventory(tree, ["hosts.yml"]).hosts["web-01"]
    assert host.labels == {"role": "cache", "tier": "front"}
    assert load_inventory(tree, ["hosts.yml"]).hosts["web-02"].labels["role"] == "web"


def test_removing_the_last_host_of_a_group_leaves_no_empty_hosts_key(tree: Path) -> None:
    out = _edit(tree, InventoryEdit(EditAction.REMOVE, "db-01"))
    assert out["hosts.yml"] is not None
    assert "db-01" not in out["hosts.yml"] and "hosts: {}" not in out["hosts.yml"]


def test_ini_hosts_are_not_edited(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text("[web]\nweb-01 terry_environment=test\n")
    inventory = load_inventory(tmp_path, ["hosts.ini"])
    with pytest.raises(InputError, match="not written out in a YAML inventory"):
        apply_edit(
            tmp_path,
            ["hosts.ini"],
            InventoryEdit(EditAction.REMOVE, "web-01"),
            inventory.hosts["web-01"],
        )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("n=32", 32),
        ("flag=true", True),
        ("ports=[80, 443]", [80, 443]),
        ("s=", ""),
        ("m={a: 1}", {"a": 1}),
        ("q='x=y'", "x=y"),
    ],
)
def test_values_are_yaml_data(text: str, value: object) -> None:
    assert parse_assignment(text).value == value


@pytest.mark.parametrize(
    "text",
    ["x={{ 1 }}", "x=[a, '{% if %}']", "x={k: '{# c #}'}", "x"],
)
def test_templates_and_malformed_assignments_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_assignment(text)


def test_var_paths() -> None:
    assert parse_var_path("terry_labels.role") == ("terry_labels", "role")
    for bad in ("1x", "a b", "a..b", "a.$(id)"):
        with pytest.raises(InputError):
            parse_var_path(bad)
