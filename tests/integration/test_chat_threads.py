"""A Slack app route (issue 16): the review request with buttons, its outcome in a thread.

A real ``terry serve`` (its notifier thread and its chat routes, verifying with slack_sdk's
SignatureVerifier), a real GitOps repository, real ansible on the example hosts, real
regorus. The far side is a local Slack Web API (``tests/fakes/slack_api.py``:
``chat.postMessage`` with a bot token, ``ok: false`` refusals, 429 with ``Retry-After``,
and the ``response_url`` a button's answer goes to). Button presses are signed here with
the signing secret, as Slack signs them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from sqlalchemy import select

from terry.demo import example
from terry.store import Store
from terry.store.models import NotificationRow, NotificationThreadRow, ProposalRow
from tests.conftest import Cli, alert, config_for, make_cli, payload
from tests.fakes.chat_platforms import slack_headers
from tests.fakes.slack_api import TOKEN, FakeSlackApi, Posted
from tests.integration.test_server import Serve

pytestmark = pytest.mark.integration

SECRET = "slack-signing-secret-of-the-thread-tests"
TEAM, ALICE = "T123", "U456"
CHANNEL = "C0TERRY01"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: the flows here are the server's and its clients'; the store's code runs
    on PostgreSQL in the store's, server's and notifier's own tests (conftest's store_url),
    and both stores doubled this module's CI time (session 27)."""
    return f"sqlite:///{tmp_path / 'terry.db'}"


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    fake = FakeSlackApi(channels=(CHANNEL, "C0OTHER02"), member_of=(CHANNEL,))
    fake.start()
    yield fake
    fake.stop()


def _configure(repo: Path, slack: FakeSlackApi, *, channel: str = CHANNEL) -> None:
    settings = yaml.safe_load((repo / "terry.yml").read_text())
    settings["notifications"] = {
        "routes": [
            {
                "name": "ops-slack",
                "slack_app": {
                    "token_env": "TERRY_SLACK_BOT_TOKEN",
                    "channel": channel,
                    "api_url": slack.api_url,
                },
                "events": ["needs-review", "applied", "verified", "failed", "rolled-back"],
            }
        ],
        "group_window": 0,
        "retry_seconds": 0.2,
        "max_retry_seconds": 0.5,
        "timeout": 3,
        "poll_seconds": 0.3,
    }
    settings["chat"] = {
        "users": {f"slack:{TEAM}/{ALICE}": "alice"},
        "writers": ["alice"],
        "slack": {"response_urls": [slack.base_url + "/actions/"]},
    }
    (repo / "terry.yml").write_text(yaml.safe_dump(settings, sort_keys=False))


def _review(cli: Cli, fingerprint: str) -> dict[str, Any]:
    """A production disk fix on db-01: dry-run, then waiting for a person's review."""
    cli.ok("example", "break", "db-01", "disk")
    body = payload([alert("DiskUsageHigh", fingerprint=fingerprint, host="db-01")])
    [outcome] = cli.json("alert", "ingest", "-", input=body)["proposals"]
    assert outcome["state"] == "awaiting_review", outcome
    return outcome


def _press(server_url: str, slack: FakeSlackApi, message: Posted, button: dict[str, Any]) -> None:
    """Alice presses ``button`` on ``message``: Slack's signed block_actions form body."""
    interaction = {
        "type": "block_actions",
        "user": {"id": ALICE, "username": "alice", "team_id": TEAM},
        "team": {"id": TEAM, "domain": "ops"},
        "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
        "channel": {"id": message.channel, "name": "ops"},
        "message": {"type": "message", "ts": message.ts, "text": message.text},
        "response_url": f"{slack.response_url(1)}?ts={message.ts}",
        "trigger_id": "1.2.3",
        "actions": [
            {
                "type": "button",
                "block_id": "b1",
                "action_id": button["action_id"],
                "value": button["value"],
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(interaction)}).encode()
    response = httpx.post(
        f"{server_url}/api/v1/chat/slack/interactions",
        content=body,
        headers=slack_headers(SECRET, body),
        timeout=10,
    )
    assert response.status_code == 200, response.text  # Slack's ack; the answer follows


def _answered(slack: FakeSlackApi, message: Posted) -> dict[str, Any]:
    """The button's answer, posted to its response_url (once the approval is done)."""
    return slack.wait(lambda: message.replaced, what="the button's answer", timeout=180)[-1]


def _rows(store_url: str) -> list[NotificationRow]:
    store = Store(store_url)
    try:
        with store.session() as session:
            return list(session.scalars(select(NotificationRow).order_by(NotificationRow.id)))
    finally:
        store.dispose()


def test_a_review_request_is_approved_by_its_button_and_the_thread_gets_the_outcome(
    gitops: Path, store_url: str, slack: FakeSlackApi
) -> None:
    _configure(gitops, slack)
    cli = make_cli(gitops, store_url)
    cli.ok("example", "up")
    server = None
    try:
        outcome = _review(cli, "thread-disk")
        pid = outcome["proposal_id"]
        ref = cli.json("incidents", "show", str(outcome["incident_id"]))["incident"]["ref"]
        server = Serve(
            gitops,
            env={
                "TERRY_DATABASE_URL": store_url,
                "TERRY_SLACK_SIGNING_SECRET": SECRET,
                "TERRY_SLACK_BOT_TOKEN": TOKEN,
            },
            args=("--no-worker",),
        )
        # The review request: top-level in the channel, with the approve command and buttons.
        [request] = slack.wait(slack.top, what="the review request")
        assert request.channel == CHANNEL
        assert request.text.startswith(f"[Terry] {ref} needs review: "), request.text
        assert "on db-01 (production)" in request.text
        assert f"terry proposals approve {pid}" in request.text
        assert "Decision: review" in request.text
        labels = [b["text"]["text"] for b in request.buttons]
        assert labels == [f"Approve {pid}", f"Reject {pid}"]
        assert all(auth == f"Bearer {TOKEN}" for auth, _ in slack.requests)

        # Alice approves with the button; the fix is applied on db-01 and verified.
        approve = next(b for b in request.buttons if b["text"]["text"].startswith("Approve"))
        _press(server.url, slack, request, approve)
        answer = _answered(slack, request)
        assert f"Proposal {pid}" in answer["text"] and "approved by alice" in answer["text"]
        assert "now verified" in answer["text"], answer["text"]
        assert answer["replace_original"] is True

        # The thread gets the notifier's replies: applied, then verified.
        replies = slack.wait(
            lambda: (r := slack.replies(request.ts)) and len(r) >= 2 and r,
            what="applied and verified in the thread",
        )
        assert [r.text.split(":")[0] for r in replies[:2]] == [
            f"[Terry] {ref} fix applied",
            f"[Terry] {ref} fix verified",
        ]
        assert all(r.channel == CHANNEL and not r.buttons for r in replies)
        assert len(slack.top()) == 1  # nothing else started a thread of its own
        with Store(store_url).session() as session:
            assert session.get(ProposalRow, pid).state == "verified"
            [thread] = session.scalars(select(NotificationThreadRow)).all()
            assert (thread.channel, thread.ts) == (CHANNEL, request.ts)
    finally:
        if server is not None:
            server.stop()
            log = server.log.read_text()
            assert TOKEN not in log and TOKEN.split("-")[-1] not in log
        example.down(config_for(gitops))
    for row in _rows(store_url):
        assert row.state == "delivered", (row.event, row.last_error)
        assert TOKEN not in json.dumps(row.payload)


def _deliver(cli: Cli) -> dict[str, Any]:
    done = cli("notifications", "deliver", "--output", "json")
    assert done.exit_code in (0, 1), done.stderr
    assert TOKEN not in done.stdout + done.stderr
    return json.loads(done.stdout)


def test_slack_web_api_refusals_rate_limits_and_outages(
    gitops: Path, store_url: str, slack: FakeSlackApi
) -> None:
    _configure(gitops, slack)
    cli = make_cli(gitops, store_url)
    cli.env["TERRY_SLACK_BOT_TOKEN"] = TOKEN
    cli.ok("example", "up")
    try:
        _review(cli, "thread-limits")

        # 429 with a Retry-After that fits in the send's timeout: waited out, then sent.
        slack.script = ["429:1"]
        started = time.monotonic()
        done = _deliver(cli)
        assert done["messages"] == 1 and done["failed"] == 0, done
        assert time.monotonic() - started >= 1
        assert [what for _, what in slack.requests] == ["429", "ok"]
        assert len(slack.top()) == 1

        # Another review request: a long Retry-After and a 500 are retried by later rounds.
        _review(cli, "thread-limits-2")
        slack.script = ["429:30"]
        done = _deliver(cli)
        assert done["failed"] == 1 and "rate limited (Retry-After 30s)" in done["errors"][0]
        time.sleep(0.7)
        slack.script = ["500"]
        done = _deliver(cli)
        assert done["failed"] == 1 and "answered 500" in done["errors"][0], done
        time.sleep(0.7)
        done = _deliver(cli)
        assert done["delivered"] == 1 and done["dead"] == 0, done
        assert len(slack.top()) == 2

        # A refusal retrying cannot mend: dead at once, the error shown.
        _review(cli, "thread-limits-3")
        slack.script = ["not_in_channel"]
        done = _deliver(cli)
        assert done["dead"] == 1 and "Slack said not_in_channel" in done["errors"][0], done
        [dead] = [r for r in _rows(store_url) if r.state == "dead"]
        assert "not_in_channel" in (dead.last_error or "")
        [listed] = cli.json("notifications", "list", "--state", "dead")
        assert listed["attempts"] == 1 and "Slack said not_in_channel" in listed["last_error"]

        # A wrong token: Slack says invalid_auth; dead, and the token is nowhere.
        wrong = "xoxb-9999-8888-AnotherS3cretBotToken"
        cli.env["TERRY_SLACK_BOT_TOKEN"] = wrong
        cli("notifications", "retry", "--dead")
        done = _deliver(cli)
        assert done["dead"] == 1 and "Slack said invalid_auth" in done["errors"][0], done
        assert wrong not in json.dumps(done)
        for row in _rows(store_url):
            assert wrong not in (row.last_error or "") and TOKEN not in (row.last_error or "")

        # `terry notifications test` speaks to the app too.
        cli.env["TERRY_SLACK_BOT_TOKEN"] = TOKEN
        tested = cli.json("notifications", "test", "ops-slack")
        assert tested["delivered"] is True
        assert "test message for route ops-slack" in slack.top()[-1].text
    finally:
        example.down(config_for(gitops))
