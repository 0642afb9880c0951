"""A remedy's look (terry.remedies.catalogue, render): tasks that only read, rendered before
its change with a held run's wait between them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from terry.appliers.hold import GO_TASK, HOLD_TASK
from terry.errors import ConfigError
from terry.remedies.catalogue import load_catalogue
from terry.remedies.render import render


def _role(tmp_path: Path, entry: str, files: dict[str, str]) -> Path:
    role = tmp_path / "roles" / "fixer"
    (role / "tasks").mkdir(parents=True)
    for name, text in files.items():
        (role / "tasks" / f"{name}.yml").write_text(text)
    (role / "remedies.yml").write_text(
        "remedies:\n  - name: fix-it\n    match: {alertname: [X]}\n"
        f"    verify: verify\n    rollback: verify\n{entry}"
    )
    return tmp_path / "roles"


_TASKS = {
    "look": "- ansible.builtin.stat: {path: /srv}\n  register: seen\n",
    "change": "- ansible.builtin.file: {path: /srv/x, state: absent}\n",
    "verify": "- ansible.builtin.assert: {that: [true]}\n",
}


def test_the_fix_play_looks_then_waits_when_held_then_changes(tmp_path: Path) -> None:
    roles = _role(tmp_path, "    look: look\n    apply: change\n", _TASKS)
    remedy = load_catalogue(roles).get("fix-it")
    assert remedy is not None and (remedy.look, remedy.apply) == ("look", "change")
    assert "ansible.builtin.stat" in remedy.modules  # the look's modules are the remedy's too
    fix, verify, rollback = yaml.safe_load(
        render(remedy=remedy, proposal_id=4, incident_id=2, hosts=("a",), params={}).playbook
    )
    names = [t["name"] for t in fix["tasks"]]
    assert names == ["fixer: look", HOLD_TASK, GO_TASK, "fixer: change"]
    assert all(t["when"] == "terry_hold_file is defined" for t in fix["tasks"][1:3])
    for play in (verify, rollback):  # only the fix waits: the rest is one import, as before
        assert len(play["tasks"]) == 1


def test_a_remedy_without_a_look_renders_its_fix_as_one_import(tmp_path: Path) -> None:
    roles = _role(tmp_path, "    apply: change\n", _TASKS)
    remedy = load_catalogue(roles).get("fix-it")
    assert remedy is not None and remedy.look is None
    fix = yaml.safe_load(
        render(remedy=remedy, proposal_id=4, incident_id=2, hosts=("a",), params={}).playbook
    )[0]
    assert [t["name"] for t in fix["tasks"]] == ["fixer: change"]


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("    look: nowhere\n    apply: change\n", r"look: roles/fixer/tasks/nowhere.yml missing"),
        ("    look: ../look\n    apply: change\n", "look must name a task file of role fixer"),
        ("    look: [look]\n    apply: change\n", "look must name a task file of role fixer"),
    ],
)
def test_a_look_that_is_not_a_task_file_of_the_role_is_refused(
    tmp_path: Path, entry: str, error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        load_catalogue(_role(tmp_path, entry, _TASKS))


def test_a_manifest_remedy_has_no_look(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "apps"
    role.mkdir(parents=True)
    (role / "remedies.yml").write_text(
        "remedies:\n  - name: scale\n    match: {alertname: [X]}\n"
        "    params: {n: {type: int, default: 2}}\n    look: look\n"
        '    manifest:\n      kind: Deployment\n      set:\n        spec.replicas: "{n}"\n'
    )
    with pytest.raises(ConfigError, match="applied by Argo CD; remove look"):
        load_catalogue(tmp_path / "roles")
