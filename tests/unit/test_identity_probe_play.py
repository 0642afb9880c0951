"""The identity probe written as the first play of a changing run (terry.appliers.ansible):
the play Ansible reads, parsed back, for what it must guarantee."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.appliers.ansible import (
    GO_TASK,
    HOLD_TASK,
    IDENTITY_TASK,
    _holds_in_play,
    _probe_then,
)
from terry.remedies.catalogue import load_catalogue
from terry.remedies.render import render


class _Unsafe(str):
    """A scalar tagged ``!unsafe``: Ansible never templates it."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: _Unsafe(loader.construct_scalar(node)))


def _plays(hosts: list[str], strategy: str = "linear") -> list[dict[str, Any]]:
    text = _probe_then(hosts, Path("/tree/playbooks/remediations/00001-x.yml"), strategy)
    plays: list[dict[str, Any]] = yaml.load(text, Loader=_Loader)
    return plays


def test_the_probe_stops_every_host_before_the_proposals_playbook() -> None:
    probe, imported = _plays(["lab-01", "lab-02"])
    assert probe["any_errors_fatal"] is True
    assert probe["tags"] == ["always"]  # also under --tags apply,verify and rollback
    assert probe["gather_facts"] is False
    [task] = probe["tasks"]
    assert task["name"] == IDENTITY_TASK
    assert task["ansible.builtin.raw"] == "uname -n"
    assert task["check_mode"] is False and task["changed_when"] is False
    assert "terry_hostname | default(inventory_hostname)" in task["failed_when"]
    assert task["when"] == "inventory_hostname in terry_identity_hosts"
    assert imported == {
        "ansible.builtin.import_playbook": "/tree/playbooks/remediations/00001-x.yml"
    }


@pytest.mark.parametrize(
    ("configured", "probe"),
    [
        ("linear", "linear"),
        ("free", "linear"),  # free ignores any_errors_fatal
        ("mitogen_linear", "mitogen_linear"),
        ("mitogen_free", "mitogen_linear"),
    ],
)
def test_the_probe_play_runs_on_a_strategy_that_honours_any_errors_fatal(
    configured: str, probe: str
) -> None:
    assert _plays(["lab-01"], configured)[0]["strategy"] == probe


def test_host_names_are_data_never_template_text() -> None:
    names = ["lab-01", 'we"ird{{ lookup("pipe", "id") }}', "ünï:cøde"]
    [probe, _imported] = _plays(names)
    listed = probe["vars"]["terry_identity_hosts"]
    assert listed == names
    assert all(isinstance(n, _Unsafe) for n in listed)


def test_a_held_run_waits_in_the_probe_play_for_go_before_the_proposals_playbook() -> None:
    hold = Path("/ops/.terry/runs/holds/3-1-{{ lookup('pipe', 'id') }}")
    text = _probe_then(
        ["lab-01"], Path("/tree/playbooks/remediations/00001-x.yml"), "free", hold=hold, wait=60
    )
    probe, imported = yaml.load(text, Loader=_Loader)
    assert probe["any_errors_fatal"] is True and probe["strategy"] == "linear"
    first, held, go = probe["tasks"]
    assert first["name"] == IDENTITY_TASK  # the probe first: a wrong machine never waits
    assert (held["name"], go["name"]) == (HOLD_TASK, GO_TASK)
    path = probe["vars"]["terry_hold_file"]
    assert isinstance(path, _Unsafe) and path == str(hold)  # data, never template text
    for task in (held, go):
        assert task["run_once"] is True and task["check_mode"] is False
        assert task["when"] == "terry_hold_file is defined"
    # actions on the controller: no connection
    assert "ansible.builtin.debug" in held and "ansible.builtin.assert" in go
    assert held["until"].endswith("in ['go', 'stop']")  # waits for a word, any word
    assert held["retries"] == "{{ terry_hold_retries | int }}"
    assert probe["vars"]["terry_hold_retries"] * held["delay"] == 60  # then fails: no word
    [that] = go["ansible.builtin.assert"]["that"]
    assert that.endswith("== 'go'")  # only go goes on
    assert imported == {
        "ansible.builtin.import_playbook": "/tree/playbooks/remediations/00001-x.yml"
    }


def test_a_playbook_that_holds_in_its_fix_play_is_given_the_word_not_held_in_the_probe() -> None:
    """A remedy with a look has the wait rendered between its look and its change: the
    probe play then only probes, and the imported playbook gets the word's file."""
    hold = Path("/ops/.terry/runs/holds/3-1-{{ lookup('pipe', 'id') }}")
    text = _probe_then(
        ["lab-01"],
        Path("/tree/playbooks/remediations/00001-x.yml"),
        "linear",
        hold=hold,
        wait=60,
        hold_in_play=True,
    )
    probe, imported = yaml.load(text, Loader=_Loader)
    assert [t["name"] for t in probe["tasks"]] == [IDENTITY_TASK]
    assert "terry_hold_file" not in probe["vars"]
    given = imported["vars"]
    assert isinstance(given["terry_hold_file"], _Unsafe) and given["terry_hold_file"] == str(hold)
    assert given["terry_hold_retries"] == 240


def _rendered(tmp_path: Path, look: str | None) -> Path:
    remedy = replace(_disk_remedy(), look=look)
    out = render(remedy=remedy, proposal_id=3, incident_id=1, hosts=("a", "b"), params={})
    path = tmp_path / "p.yml"
    path.write_text(out.playbook)
    return path


def test_only_a_rendered_wait_in_the_playbook_makes_the_run_hold_there(tmp_path: Path) -> None:
    """The applier holds in the fix play only when the playbook it runs is the rendering of
    a remedy with a look the catalogue declares: that look, then the wait tasks exactly.
    An older rendering, an edited branch, a playbook that names a task like the wait after
    a change (an AI-written one), or text that is not a playbook is held in the probe play,
    before any task of the proposal's."""
    looks = {("disk_cleanup", "look")}
    assert _holds_in_play(_rendered(tmp_path, "look"), looks)
    assert not _holds_in_play(_rendered(tmp_path, "look"), set())  # the catalogue says no look
    assert not _holds_in_play(_rendered(tmp_path, None), looks)
    edited = tmp_path / "edited.yml"
    rendered = yaml.safe_load(_rendered(tmp_path, "look").read_text())
    fix = rendered[0]["tasks"]
    change = {"name": fix[0]["name"], "ansible.builtin.file": {"path": "/srv", "state": "absent"}}
    for tasks in (
        [t for t in fix if t["name"] != GO_TASK],  # half the wait
        [fix[3], *fix],  # the change first, then the look and the wait
        [{**fix[0], "ansible.builtin.import_role": {"name": "disk_cleanup"}}, *fix[1:]],
        [fix[0], fix[1], {**fix[2], "when": "false"}, fix[3]],  # a wait that never waits
        [change, *fix[1:]],  # named like the look, but a change
    ):
        edited.write_text(yaml.safe_dump([{**rendered[0], "tasks": tasks}]))
        assert not _holds_in_play(edited, looks), tasks
    for text in ("- hosts: all\n  tasks: {{ x }\n", "just text", "[1, 2]", "- 3\n"):
        edited.write_text(text)
        assert not _holds_in_play(edited, looks)
    assert not _holds_in_play(tmp_path / "missing.yml", looks)


def test_a_run_not_held_has_no_hold_task() -> None:
    [probe, _imported] = _plays(["lab-01"])
    assert [t["name"] for t in probe["tasks"]] == [IDENTITY_TASK]


def _disk_remedy() -> Any:
    roles = Path(__file__).resolve().parents[2] / "roles"
    remedy = load_catalogue(roles).get("disk-usage-high")
    assert remedy is not None and remedy.look == "look"
    return remedy
