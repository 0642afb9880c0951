"""What GitHub sends and what Terry writes there: signatures, /terry commands, PR bodies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from terry.forges.body import ReviewPacket, fenced, pr_body, pr_title
from terry.forges.commands import Command, Verb, parse_command
from terry.forges.signature import sign, verify_signature

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
    alert_block = body.split("### The alert (as received; untrusted)\n", 1)[1]
    fence = alert_block.split("\n", 1)[0]
    assert fence.startswith("`````")  # longer than the longest run inside
    inside, _, _after = alert_block[len(fence) :].partition("\n" + fence.rstrip("json") + "\n")
    assert "@everyone" in inside and "@everyone" not in body.replace(inside, "")
    assert "X|`@y`<b>" not in body  # the table cell lost the pipe, backticks and markup


def test_fenced_text_cannot_close_its_fence() -> None:
    text = "a ``` b ```` c"
    block = fenced(text)
    assert block.startswith("`````\n") and block.endswith("\n`````")


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
