"""Issue 16's lab test: a review request in Slack, approved by its button, fixed on the lab.

The lab's lab-01 (production) loses its web service; Prometheus fires, Alertmanager posts
to a real ``terry serve`` (its worker, notifier thread and chat routes); the production
fix waits for review and the review request appears, with Approve / Reject buttons, in a
local Slack Web API (``tests/fakes/slack_api.py``) through a Slack app route. A signed
button press approves it; the fix is applied over SSH on lab-01 and verified against
Prometheus; the button's answer replaces the request and the thread gets the notifier's
applied and verified replies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from terry import lab
from terry.config import CONFIG_FILE
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.ports import free_port
from tests.fakes.slack_api import TOKEN, FakeSlackApi
from tests.integration.test_chat_threads import ALICE, SECRET, TEAM, _answered, _press
from tests.lab.helpers import TerryServe, wait_for

NEEDS = [
    "/usr/sbin/sshd",
    "/usr/bin/prometheus",
    "/usr/bin/prometheus-alertmanager",
    "/usr/bin/prometheus-node-exporter",
]
NAMES = {
    "bridge": "terrylabs0",
    "subnet": "10.83.0.0/24",
    "netns_prefix": "terryslk-",
    "veth_prefix": "tlabs",
}
CHANNEL = "C0LAB0001"
WEBHOOK_TOKEN = "lab-webhook-token-of-the-chat-test"
TIMEOUT = 240.0


def _configure(repo: Path, state: lab.LabState, slack: FakeSlackApi) -> None:
    path = repo / CONFIG_FILE
    settings = yaml.safe_load(path.read_text()) or {}
    settings["inventory"] = ["inventories/lab"]
    settings["prometheus"] = {"url": state.prometheus_url, "settle_seconds": 30, "timeout": 5}
    settings["notifications"] = {
        "routes": [
            {
                "name": "oncall",
                "slack_app": {"channel": CHANNEL, "api_url": slack.api_url},
                "events": ["needs-review", "applied", "verified", "failed", "rolled-back"],
                "environments": ["production"],
            }
        ],
        "group_window": 0,
        "poll_seconds": 0.5,
    }
    settings["chat"] = {
        "users": {f"slack:{TEAM}/{ALICE}": "alice"},
        "writers": ["alice"],
        "slack": {"response_urls": [slack.base_url + "/actions/"]},
    }
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    Repo(repo).commit_paths([CONFIG_FILE, "inventories/lab"], "lab: the chat test's settings")


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    fake = FakeSlackApi(channels=(CHANNEL,))
    fake.start()
    yield fake
    fake.stop()


def test_a_production_fix_is_approved_from_slack_and_its_thread_tells_the_outcome(
    tmp_path: Path, lab_config: lab.LabConfig, slack: FakeSlackApi
) -> None:
    repo = init_repository(tmp_path / "ops", example=False).path
    port = free_port()
    lab.down(lab_config)  # leftovers of an interrupted earlier run
    state = lab.up(
        lab_config,
        hosts=3,
        repo=repo,
        webhook_url=f"http://127.0.0.1:{port}/api/v1/alerts",
        webhook_token=WEBHOOK_TOKEN,
    )
    server = None
    try:
        _configure(repo, state, slack)
        server = TerryServe(
            repo,
            port,
            {
                "TERRY_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
                "TERRY_SLACK_SIGNING_SECRET": SECRET,
                "TERRY_SLACK_BOT_TOKEN": TOKEN,
            },
        )
        lab.break_host(state, "lab-01", "service")

        # Prometheus fires, Alertmanager posts, Terry proposes; production waits for review
        # and the request appears in the channel with its buttons.
        found = wait_for(lambda: slack.top(), TIMEOUT, interval=1)
        assert found, f"no review request in Slack; serve log:\n{server.log.read_text()[-3000:]}"
        [request] = found
        first = request.text.splitlines()[0]
        assert "needs review: ServiceDown on lab-01 (production)" in first, request.text
        assert "terry proposals approve " in request.text
        approve = next(b for b in request.buttons if b["text"]["text"].startswith("Approve"))

        # A signed press approves it; the fix is applied on lab-01 and verified.
        started = time.monotonic()
        _press(server.url, slack, request, approve)
        answer = _answered(slack, request)
        assert "approved by alice" in answer["text"] and "now verified" in answer["text"], answer
        address = state.host("lab-01").address
        assert httpx.get(f"http://{address}:8080/healthz", timeout=5).status_code == 200

        # The thread tells the outcome: applied, then verified.
        replies = wait_for(
            lambda: (r := slack.replies(request.ts)) and len(r) >= 2 and r, 60, interval=0.5
        )
        assert replies, f"thread: {slack.messages}"
        kinds = [r.text.splitlines()[0] for r in replies]
        assert "fix applied" in kinds[0] and "fix verified" in kinds[1], kinds
        print(f"\npress to verified thread reply: {time.monotonic() - started:.1f}s")
    finally:
        if server is not None:
            server.stop()
            assert TOKEN not in server.log.read_text()
        report = lab.down(lab_config)
        assert not report.problems, report.problems
