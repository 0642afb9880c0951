"""Manifest remedies: edits made on the parsed YAML, the rest of the file left as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from terry.errors import ConfigError
from terry.remedies.catalogue import load_catalogue
from terry.remedies.manifests import ManifestEdit, ManifestError, edit_manifest, parse_path

TWO = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  replicas: 1
"""


def _edit(kind: str, **sets: object) -> ManifestEdit:
    return ManifestEdit(kind, tuple((parse_path(k), v) for k, v in sets.items()))


def test_only_the_edited_line_changes() -> None:
    text = (
        "# keep me\n---\nkind: Deployment   # the app\nmetadata:\n  name: x\n"
        "spec:\n  replicas: 2 # floor\n  paused: 'no'\n  template:\n    spec:\n"
        '      containers:\n        - name: app\n          image: "a:1"\n'
    )
    out = edit_manifest(text, _edit("Deployment", **{"spec.replicas": "{n}"}), {"n": 7})
    assert out == text.replace("replicas: 2 # floor", "replicas: 7 # floor")


def test_a_list_item_is_chosen_by_a_field_and_missing_maps_are_created() -> None:
    text = (
        "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n"
        "      - name: side\n        image: s\n      - name: app\n        image: a\n"
    )
    edit = _edit("Deployment", **{"spec.template.spec.containers[name={c}].resources.cpu": "2"})
    out = yaml.safe_load(edit_manifest(text, edit, {"c": "app"}))
    side, app = out["spec"]["template"]["spec"]["containers"]
    assert app["resources"] == {"cpu": "2"} and "resources" not in side


def test_the_resource_must_be_exactly_one() -> None:
    edit = _edit("Deployment", **{"spec.replicas": 3})
    with pytest.raises(ManifestError, match="2 resources of kind Deployment"):
        edit_manifest(TWO, edit, {})
    out = list(yaml.safe_load_all(edit_manifest(TWO, edit, {}, name="worker")))
    assert [d["spec"]["replicas"] for d in out] == [1, 3]
    with pytest.raises(ManifestError, match="0 resources of kind StatefulSet"):
        edit_manifest(TWO, _edit("StatefulSet", **{"spec.replicas": 3}), {})
    with pytest.raises(ManifestError, match="not valid YAML"):
        edit_manifest("kind: [unclosed\n", edit, {})


def test_a_hostile_string_value_stays_one_scalar() -> None:
    hostile = "1Gi\n---\nkind: Secret\nstringData: {token: x}  # {{ lookup('pipe','id') }}"
    edit = _edit("Deployment", **{"metadata.annotations.reason": "{why}"})
    out = list(yaml.safe_load_all(edit_manifest(TWO, edit, {"why": hostile}, name="web")))
    assert len(out) == 2 and [d["kind"] for d in out] == ["Deployment", "Deployment"]
    assert out[0]["metadata"]["annotations"]["reason"] == hostile


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("    apply: main\n", "applied by Argo CD; remove apply"),
        ('        spec.replicas: "x{n}"\n', "a value is a literal or {param}"),
        ('        spec.replicas: "{other}"\n', "undeclared params other"),
        ('        "spec..replicas": 1\n', "field path"),
    ],
)
def test_the_catalogue_refuses_broken_manifest_remedies(
    tmp_path: Path, body: str, error: str
) -> None:
    role = tmp_path / "roles" / "apps"
    role.mkdir(parents=True)
    sets = body if body.startswith("        ") else '        spec.replicas: "{n}"\n'
    extra = body if not body.startswith("        ") else ""
    (role / "remedies.yml").write_text(
        "remedies:\n  - name: scale\n    match: {alertname: [X]}\n"
        "    params: {n: {type: int, default: 2}}\n"
        f"{extra}    manifest:\n      kind: Deployment\n      set:\n{sets}"
    )
    with pytest.raises(ConfigError, match=error.replace("{", r"\{").replace("}", r"\}")):
        load_catalogue(tmp_path / "roles")
