"""What GitHub sends and what Terry writes there: signatures, /terry commands, PR bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from terry.forges.body import ReviewPacket, fenced, planned_tasks, pr_body, pr_title
from terry.forges.commands import Command, Verb, parse_command
from terry.forges.signature import sign, verify_signature
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

# GitHub's published example ("Validating webhook deliveries").
SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
EXPECTED = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_test_vector_verifies() -> None:
    assert sign(SECRET, BODY) == EXPECTED
    assert verify_signature(SECRET, BODY, EXPECTED)


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        (SECRET, b"Hello, World?", EXPECTED),  # body changed
        (SECRET, BODY + b"\n", EXPECTED),  # one byte more
        ("It's a secret to everybody", BODY, EXPECTED),  # secret changed
        (SECRET, BODY, EXPECTED[:-1] + "f"),  # header changed
        (SECRET, BODY, EXPECTED.replace("sha256=", "sha1=")),  # other algorithm
        (SECRET, BODY, None),  # header missing
        (SECRET, BODY, ""),
        ("", BODY, sign("", BODY)),  # no secret configured: never verifies
    ],
)
def test_any_change_to_body_secret_or_header_fails(
    secret: str, body: bytes, header: str | None
) -> None:
    assert not verify_signature(secret, body, header)


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("/terry apply", Command(Verb.APPLY)),
        ("LGTM\n/terry apply\nthanks", Command(Verb.APPLY)),
        ("  /terry REJECT   disk is fine now ", Command(Verb.REJECT, "disk is fine now")),
        ("/terry reject", Command(Verb.REJECT, "")),
        ("/terry rollback please", Command(Verb.ROLLBACK)),
        ("/terry explain", Command(Verb.EXPLAIN)),
        ("/terry rm -rf /", Command(Verb.UNKNOWN, "rm")),
        ("/terry", Command(Verb.UNKNOWN, "")),
        ("/terryapply", None),
        ("please /terry apply", None),  # only a line that starts with it
        ("looks good", None),
    ],
)
def test_comment_commands(comment: str, expected: Command | None) -> None:
    assert parse_command(comment) == expected


def test_a_reject_reason_is_one_bounded_line() -> None:
    command = parse_command("/terry reject " + "x" * 1000 + "\x1b[31m")
    assert command is not None and command.verb is Verb.REJECT
    assert len(command.argument) == 300 and "\x1b" not in command.argument


def _packet(**over: object) -> ReviewPacket:
    base: dict[str, object] = {
        "proposal_id": 7,
        "incident_id": 3,
        "incident_ref": "INC-2026-11-25-003",
        "remedy": "service-restart",
        "hosts": ("web-01",),
        "environments": ("production",),
        "tenants": (),
        "risk": "medium",
        "decision": "review",
        "reasons": ("production hosts need a person", "risk medium"),
        "policy_commit": "abc123",
        "commit": "f" * 40,
        "branch": "terry/3-service-restart",
        "alertname": "ServiceDown",
        "labels": {"alertname": "ServiceDown", "host": "web-01"},
        "annotations": {"summary": "terry-svc is down"},
        "opened_at": datetime(2026, 11, 25, 3, 0, tzinfo=UTC),
        "recurrence": 2,
        "diagnosis": "fix(web-01): service-restart\n\nWhy: alert ServiceDown",
        "playbook_path": "playbooks/remediations/00007-service-restart.yml",
        "playbook": "- hosts: web-01\n  tags: [apply]\n",
        "check_summary": {"ok": True, "changed": 1},
        "check_diff": "-stopped\n+started",
    }
    base.update(over)
    return ReviewPacket(**base)  # type: ignore[arg-type]


def test_the_body_holds_everything_a_reviewer_decides_from() -> None:
    body = pr_body(_packet())
    for needle in (
        "<!-- terry:proposal:7 -->",
        "ServiceDown",
        "`web-01`",
        "production",
        "**medium**",
        "**review**",
        "- production hosts need a person",
        "abc123",
        '"summary": "terry-svc is down"',
        "Why: alert ServiceDown",
        "- hosts: web-01",
        "+started",
        "### Rollback plan",
        "/terry apply",
        "/terry reject <reason>",
        "passed: 1 change(s)",
    ):
        assert needle in body, needle
    assert pr_title(_packet()) == "terry #7: service-restart on web-01 (ServiceDown)"


def test_hostile_alert_text_stays_inside_its_fence() -> None:
    hostile = "````\n@everyone closes #1 <img src=x onerror=alert(1)>\n````"
    body = pr_body(_packet(annotations={"summary": hostile}, alertname="X|`@y`<b>"))
    alert_block = body.split("### The alert (as received; untrusted)\n", 1)[1].lstrip("\n")
    fence = alert_block.split("\n", 1)[0]
    assert fence.startswith("`````")  # longer than the longest run inside
    inside, _, _after = alert_block[len(fence) :].partition("\n" + fence.rstrip("json") + "\n")
    assert "@everyone" in inside and "@everyone" not in body.replace(inside, "")
    assert "X|`@y`<b>" not in body  # the table cell lost the pipe, backticks and markup


def test_fenced_text_cannot_close_its_fence() -> None:
    text = "a ``` b ```` c"
    block = fenced(text)
    assert block.startswith("\n`````\n") and block.endswith("\n`````\n")


@pytest.mark.parametrize(
    "comment",
    [
        # how Terry's pull request comments put a block after their own words
        lambda block: f"Result: **rolled_back**. {block}",
        lambda block: f"Rejected by alice: {block}\nClosing.",
        lambda block: f"Refused /terry apply: {block}",
    ],
)
def test_a_fence_opens_and_closes_on_its_own_line_after_any_text(comment: Any) -> None:
    """A fence that does not start a line is no fence (CommonMark): the text after it would
    be read as markup, mentions and keywords included."""
    text = "apply failed: web-01: @everyone closes #1 ``` <b>x</b>"
    lines = comment(fenced(text)).splitlines()
    fences = [n for n, line in enumerate(lines) if line.startswith("`")]
    assert len(fences) == 2 and lines[fences[0]] == lines[fences[1]] == "````"
    assert lines[fences[0] + 1 : fences[1]] == [text]  # everything untrusted is inside


def _read(path: str) -> str | None:
    """A file of the commit under review: here, the repository's own roles."""
    found = REPO_ROOT / path
    return found.read_text(encoding="utf-8") if found.is_file() else None


def _rendered(case: str) -> dict[str, Any]:
    return yaml.safe_load(
        (REPO_ROOT / "tests/golden/playbook" / f"{case}.expected.yml").read_text()
    )


def test_the_body_lists_every_task_the_playbook_runs_with_module_and_arguments() -> None:
    rendered = _rendered("service-down-production")
    tasks = planned_tasks(rendered["playbook"], rendered["playbook_path"], _read)
    assert [(p.play, p.hosts, p.tags) for p in tasks] == [
        ("Fix: service-down", "db-01", ("apply",)),
        ("Verify: service-down", "db-01", ("never", "verify")),
        ("Roll back: service-down", "db-01", ("never", "rollback")),
    ]
    body = pr_body(_packet(playbook=rendered["playbook"], tasks=tasks))
    section = body.split("### What it runs (every task, from the proposal commit)\n", 1)[1]
    words, _blank, fence, *listing = section.split("\n### ", 1)[0].strip().splitlines()
    assert "module and arguments" in words and set(fence) == {"`"} and listing[-1] == fence
    block = "\n".join(listing)
    for needle in (
        "PLAY Fix: service-down on db-01 (tags: apply)",
        # the role's own tasks, from the files import_role and import_tasks name
        "1.1.1. Check the service parameter   [roles/service_restart/tasks/resolve.yml]",
        "1.2.1. Restart service {{ service }}   [roles/service_restart/tasks/restart.yml]",
        'ansible.builtin.command: {"argv": ["{{ ansible_python_interpreter }}", '
        '"{{ service_restart_svc_path }}", "restart", "{{ service }}"',
        "when: service_restart_result.rc | default(0) != 0",
        "PLAY Roll back: service-down on db-01 (tags: never, rollback)",
        "1.3. Start the service if it is not running   [roles/service_restart/tasks/rollback.yml]",
        "when: service_restart_status.rc != 0",
    ):
        assert needle in block, needle
    assert block.index("PLAY Fix") < block.index("PLAY Verify") < block.index("PLAY Roll back")


def test_the_task_list_follows_an_imported_playbook_and_keeps_the_body_within_githubs_limit() -> (
    None
):
    playbook = "- ansible.builtin.import_playbook: ../site.yml\n"
    path = "playbooks/remediations/00003-reconcile-drift.yml"
    tasks = planned_tasks(playbook, path, _read)
    [site] = tasks
    assert site.play == "Desired state" and not site.notes
    names = [t.name for t in site.tasks]
    assert names[:2] == ["role terry_service", "Create the managed layout"]
    assert "role app_config" in names and "Render app.conf" in names
    huge = "x" * 60_000
    body = pr_body(
        _packet(remedy="reconcile-drift", playbook=playbook, tasks=tasks, check_diff=huge)
    )
    assert len(body) <= 65_000
    assert "PLAY Desired state on all" in body  # what room is left goes to the task list


def test_what_cannot_be_followed_is_said_not_guessed() -> None:
    playbook = yaml.safe_dump(
        [
            {
                "name": "Fix",
                "hosts": "web-01",
                "tasks": [
                    {"ansible.builtin.import_role": {"name": "no_such_role"}},
                    {"name": "dynamic", "ansible.builtin.include_tasks": "{{ which }}.yml"},
                    {"name": "Shell", "ansible.builtin.shell": "echo " + "y" * 1000},
                ],
            }
        ]
    )
    [play] = planned_tasks(playbook, "playbooks/remediations/00001-x.yml", _read)
    assert play.notes == ("roles/no_such_role/tasks/main.yml is not in the commit",)
    assert [t.number for t in play.tasks] == ["1", "2", "3"]  # listed, not followed
    assert play.tasks[2].module == "ansible.builtin.shell" and len(play.tasks[2].args) == 300


def test_an_inventory_edit_says_nothing_runs_and_how_to_undo_it() -> None:
    body = pr_body(
        _packet(
            remedy="inventory-edit",
            applier="git",
            playbook=None,
            playbook_path=None,
            check_diff="+        web-03:",
        )
    )
    assert "### The inventory edit" in body and "the merge is the change" in body
    assert "+        web-03:" in body
    assert "git revert -m 1" in body and "terry drift fix --limit web-01" in body
    assert "tags `never, rollback`" not in body  # no rollback play to promise
