"""The notifier (issue 15): people told what Terry did, in their chat, at least once.

Real delivery through apprise to local receivers that follow Slack's and Discord's
incoming-webhook shapes and a generic JSON endpoint (tests/fakes/chat_receivers.py),
including receivers that answer 500 or hang; the real pipeline (ansible-playbook in check
mode on the example hosts, git, regorus); the real CLI; SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from terry.config import load_config
from terry.notify.deliver import Notifier
from terry.notify.outbox import claim
from terry.service.server import create_app
from terry.store import Store
from terry.store.models import NotificationRow
from tests.conftest import Cli, alert, make_cli, payload
from tests.fakes.chat_receivers import DISCORD_PATH, JSON_PATH, SLACK_PATH, ChatReceivers
from tests.fakes.local_server import LocalServer

pytestmark = pytest.mark.integration

SECRETS = [p.rsplit("/", 1)[1] for p in (SLACK_PATH, DISCORD_PATH, JSON_PATH)]
PUBLIC = "https://terry.example.org"


@pytest.fixture
def receivers() -> Iterator[ChatReceivers]:
    r = ChatReceivers()
    r.start()
    yield r
    r.stop()


def _configure(repo: Path, routes: list[dict[str, Any]], **settings: Any) -> None:
    config = yaml.safe_load((repo / "terry.yml").read_text())
    config["notifications"] = {
        "routes": routes,
        "group_window": 0,
        "retry_seconds": 0.2,
        "timeout": 5,
        **settings,
    }
    config["server"] = {**config.get("server", {}), "public_url": PUBLIC}
    (repo / "terry.yml").write_text(yaml.safe_dump(config))


def _cli(repo: Path, store_url: str, receivers: ChatReceivers) -> Cli:
    cli = make_cli(repo, store_url)
    cli.env.update(
        {
            "CHAT_SLACK_URL": receivers.slack_url,
            "CHAT_DISCORD_URL": receivers.discord_url,
            "CHAT_JSON_URL": receivers.json_url,
        }
    )
    return cli


THREE = [
    {"name": "slack", "url_env": "CHAT_SLACK_URL", "format": "slack"},
    {"name": "discord", "url_env": "CHAT_DISCORD_URL", "format": "discord"},
    {"name": "json", "url_env": "CHAT_JSON_URL"},  # auto: a plain URL gets generic JSON
]


def _deliver(cli: Cli) -> dict[str, Any]:
    done = cli("notifications", "deliver", "--output", "json")
    assert done.exit_code in (0, 1), done.stderr
    return json.loads(done.stdout)


def _review(cli: Cli, fingerprint: str = "n-disk") -> dict[str, Any]:
    """A production disk fix: dry-run, then waiting for a person's review."""
    cli.ok("example", "break", "db-01", "disk")
    body = payload([alert("DiskUsageHigh", fingerprint=fingerprint, host="db-01")])
    [outcome] = cli.json("alert", "ingest", "-", input=body)["proposals"]
    assert outcome["state"] == "awaiting_review", outcome
    return outcome


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def _store_text(store_url: str) -> str:
    store = Store(store_url)
    try:
        with store.session() as session:
            rows = session.scalars(select(NotificationRow)).all()
            return json.dumps([[r.payload, r.last_error, r.route, r.dedupe_key] for r in rows])
    finally:
        store.dispose()


def test_a_review_request_reaches_slack_discord_and_json_once_with_the_approve_command(
    gitops: Path, store_url: str, receivers: ChatReceivers
) -> None:
    routes = [{**r, "events": ["needs-review", "kept-for-human"]} for r in THREE]
    routes[0]["environments"] = ["production"]
    routes.append(  # filtered out: staging only
        {"name": "staging", "url_env": "CHAT_JSON_URL", "environments": ["staging"]}
    )
    _configure(gitops, routes)
    cli = _cli(gitops, store_url, receivers)
    outcome = _review(cli)
    pid = outcome["proposal_id"]
    ref = cli.json("incidents", "show", str(outcome["incident_id"]))["incident"]["ref"]
    done = _deliver(cli)
    assert done["messages"] == 3 and done["failed"] == 0, done

    [slack] = receivers.texts("slack")
    [discord] = receivers.bodies("discord")
    [generic] = receivers.bodies("json")
    for text in (slack, discord["content"], generic["title"] + "\n" + generic["message"]):
        assert text.startswith(f"[Terry] {ref} needs review: "), text
        assert "on db-01 (production)" in text.splitlines()[0]
        assert f"terry proposals approve {pid}" in text
        assert "Decision: review" in text
        assert f"Web: {PUBLIC}/incidents/{ref}" in text
    assert discord["allowed_mentions"] == {"parse": []}
    assert set(generic) >= {"title", "message", "type"}  # apprise's generic JSON
    assert not receivers.refused

    # Delivered once: later rounds (and a re-read of the audit log) send nothing again.
    again = _deliver(cli)
    assert again["messages"] == 0 and again["collected"] == 0, again
    assert len(receivers.received) == 3
    listed = cli.json("notifications", "list")
    assert {(n["route"], n["event"], n["state"]) for n in listed} == {
        ("slack", "needs-review", "delivered"),
        ("discord", "needs-review", "delivered"),
        ("json", "needs-review", "delivered"),
    }
    assert all(n["incident"] == ref for n in listed)

    # A test message, by hand.
    tested = cli.json("notifications", "test", "discord")
    assert tested == {"route": "discord", "delivered": True, "to": "http://127.0.0.1"}
    assert "test message for route discord" in receivers.texts("discord")[-1]
    missing = cli("notifications", "test", "nope")
    assert missing.exit_code == 4 and "no notification route 'nope'" in missing.stderr


def test_hostile_alert_text_stays_text_in_chat(
    gitops: Path, store_url: str, receivers: ChatReceivers
) -> None:
    _configure(gitops, [{**r, "events": ["incident-opened"]} for r in THREE])
    cli = _cli(gitops, store_url, receivers)
    hostile = alert(
        "Odd <!channel> @everyone `x` <@U123|boss> \x1b[31mred",
        fingerprint="n-hostile",
        host="web-01",
    )
    cli.ok("alert", "ingest", "-", "--no-remediate", input=payload([hostile]))
    assert _deliver(cli)["messages"] == 3
    [slack] = receivers.texts("slack")
    assert "<!channel>" not in slack and "<@U123" not in slack
    assert "&lt;!channel&gt;" in slack
    [discord] = receivers.texts("discord")
    assert "@everyone" not in discord and "@\u200beveryone" in discord
    assert "`" not in discord
    [generic] = receivers.bodies("json")
    for text in (slack, discord, generic["title"]):
        assert "\x1b" not in text and "\\x1b[31mred" in text


def test_a_storm_of_200_incidents_is_a_handful_of_messages(
    gitops: Path, store_url: str, receivers: ChatReceivers
) -> None:
    _configure(gitops, [{**THREE[0], "events": ["incident-opened"]}], max_items=10)
    cli = _cli(gitops, store_url, receivers)
    storm = [alert(f"Storm{n}", fingerprint=f"storm-{n}", host="web-02") for n in range(200)]
    cli.ok("alert", "ingest", "-", "--no-remediate", input=payload(storm))
    done = _deliver(cli)
    assert done["collected"] == 200 and done["delivered"] == 200, done
    [text] = receivers.texts("slack")
    lines = text.splitlines()
    assert lines[0] == "[Terry] 200 incidents opened"
    assert len([line for line in lines if line.startswith("- INC-")]) == 10
    assert "and 190 more: terry incidents list" in text
    assert len(text) < 4000


def test_a_receiver_that_hangs_or_fails_slows_nothing_and_loses_nothing(
    gitops: Path, store_url: str, receivers: ChatReceivers
) -> None:
    _configure(
        gitops,
        [{**THREE[0], "events": ["incident-opened", "needs-review"]}],
        timeout=30,
        poll_seconds=0.2,
    )
    cli = _cli(gitops, store_url, receivers)
    config = load_config(gitops, environ={"TERRY_DATABASE_URL": store_url})
    store = Store(config.store_url)
    store.migrate()
    receivers.mode = "hang"
    notifier = Notifier(config, store, environ=cli.env)  # terry serve's delivery thread
    notifier.start()
    try:
        first = payload([alert("Warmup", fingerprint="n-warm", host="web-01")])
        cli.ok("alert", "ingest", "-", "--no-remediate", input=first)
        deadline = time.monotonic() + 20
        while receivers.attempts == 0:  # the notifier is now stuck in a send
            assert time.monotonic() < deadline, "the notifier never sent"
            time.sleep(0.05)
        began = time.monotonic()
        outcome = _review(cli)  # diagnose, propose, dry run (ansible), gate: the pipeline
        took = time.monotonic() - began
        assert receivers.attempts == 1, "the send was still hanging all along"
        assert took < 30, f"the pipeline waited for the hanging receiver ({took:.1f}s)"
        receivers.mode = "500"
        receivers.release()  # the hanging request fails; the row is retried
        deadline = time.monotonic() + 30
        while receivers.attempts < 3:
            assert time.monotonic() < deadline, "no retries"
            time.sleep(0.05)
        receivers.mode = "ok"
        approve = f"terry proposals approve {outcome['proposal_id']}"
        while True:  # every event, however the rounds grouped them
            joined = "\n".join(receivers.texts("slack"))
            left = cli.json("notifications", "list", "--state", "pending")
            if "Warmup" in joined and approve in joined and not left:
                break
            assert time.monotonic() < deadline + 30, joined
            time.sleep(0.1)
    finally:
        receivers.release()
        notifier.stop()
        store.dispose()
    joined = "\n".join(receivers.texts("slack"))
    assert "Warmup" in joined and f"terry proposals approve {outcome['proposal_id']}" in joined
    listed = cli.json("notifications", "list")
    assert {n["state"] for n in listed} == {"delivered"}
    assert max(n["attempts"] for n in listed) >= 2  # failed first, then delivered


def test_undelivered_messages_survive_a_restart_and_are_delivered_once(
    gitops: Path, store_url: str, receivers: ChatReceivers
) -> None:
    _configure(gitops, [{**THREE[2], "events": ["incident-opened"]}])
    cli = _cli(gitops, store_url, receivers)
    body = payload([alert("Restart", fingerprint="n-restart", host="web-01")])
    cli.ok("alert", "ingest", "-", "--no-remediate", input=body)
    receivers.mode = "500"
    failed = cli("notifications", "deliver")
    assert failed.exit_code == 1 and "answered 500" in failed.stdout
    # A round that claimed the row and died mid-send (its lease runs out) ...
    config = load_config(gitops, environ={"TERRY_DATABASE_URL": store_url})
    store = Store(config.store_url)
    try:
        time.sleep(0.3)  # past the retry backoff
        assert [c.event.title for c in claim(store, ["json"], lease=0.5)] == ["Restart"]
        assert _deliver(cli)["messages"] == 0  # held by the dead round
    finally:
        store.dispose()
    receivers.mode = "ok"
    time.sleep(0.6)
    # ... the next process (a new store, a new CLI) delivers it, once.
    assert _deliver(cli)["delivered"] == 1
    assert _deliver(cli)["messages"] == 0
    [sent] = receivers.bodies("json")
    assert sent["title"].endswith("incident opened: Restart on web-01")


def test_dead_letters_show_in_the_cli_and_metrics_and_no_url_leaks(
    gitops: Path,
    store_url: str,
    receivers: ChatReceivers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _configure(gitops, [{**r, "events": ["incident-opened"]} for r in THREE], max_attempts=2)
    cli = _cli(gitops, store_url, receivers)
    body = payload([alert("Dead", fingerprint="n-dead", host="web-01")])
    cli.ok("alert", "ingest", "-", "--no-remediate", input=body)
    receivers.mode = "500"
    outputs = [cli("notifications", "deliver")]
    time.sleep(0.5)
    outputs.append(cli("notifications", "deliver"))
    assert [o.exit_code for o in outputs] == [1, 1]
    dead = cli.json("notifications", "list", "--state", "dead")
    assert sorted(n["route"] for n in dead) == ["discord", "json", "slack"]
    assert all(n["attempts"] == 2 and "answered 500" in n["last_error"] for n in dead)
    outputs.append(cli("notifications", "list", "--state", "dead"))
    assert "answered 500" in outputs[-1].stdout

    config = load_config(gitops, environ={"TERRY_DATABASE_URL": store_url})
    store = Store(config.store_url)
    try:
        client = TestClient(create_app(config, store, token="t", readers={"r": "rtoken"}))
        metrics = client.get("/metrics", headers={"Authorization": "Bearer rtoken"}).text
        assert 'terry_notifications_dead{route="slack"} 1.0' in metrics
        assert 'terry_notifications_pending{route="slack"} 0.0' in metrics
        assert 'terry_notifications_delivered_total{route="slack"} 0.0' in metrics
        retried = cli.json("notifications", "retry", "--dead")
        assert len(retried["retried"]) == 3
        receivers.mode = "ok"
        assert _deliver(cli)["delivered"] == 3
        metrics = client.get("/metrics", headers={"Authorization": "Bearer rtoken"}).text
        assert 'terry_notifications_dead{route="json"} 0.0' in metrics
        assert 'terry_notifications_delivered_total{route="json"} 1.0' in metrics
    finally:
        store.dispose()
    delivered_again = cli("notifications", "retry", str(dead[0]["id"]))
    assert delivered_again.exit_code == 5
    assert cli("notifications", "retry").exit_code == 2

    # The routes' URLs are secrets: in no output, stored row or log record.
    for out in outputs:
        _no_secret(out.stdout + out.stderr)
    _no_secret(_store_text(store_url))
    _no_secret("\n".join(r.getMessage() for r in caplog.records))


def test_a_refusal_retrying_cannot_mend_is_dead_at_once_and_a_conflict_is_retried(
    gitops: Path, store_url: str, receivers: ChatReceivers
) -> None:
    # A 4xx is the service refusing the message itself (a removed webhook answers 404): the
    # outbox must not send it max_attempts times over hours. 408, 409, 425 and 429 may
    # still get through later.
    json_route = [{**THREE[2], "events": ["incident-opened"]}]
    _configure(gitops, json_route, max_attempts=5)
    cli = _cli(gitops, store_url, receivers)
    body = payload([alert("Gone", fingerprint="n-gone", host="web-01")])
    cli.ok("alert", "ingest", "-", "--no-remediate", input=body)
    receivers.mode = "404"
    assert cli("notifications", "deliver").exit_code == 1
    [dead] = cli.json("notifications", "list", "--state", "dead")
    assert dead["attempts"] == 1
    assert "answered 404 (no_service)" in dead["last_error"]
    assert "not retried" in dead["last_error"]

    body = payload([alert("Busy", fingerprint="n-busy", host="web-01")])
    cli.ok("alert", "ingest", "-", "--no-remediate", input=body)
    receivers.mode = "409"
    assert cli("notifications", "deliver").exit_code == 1
    [pending] = cli.json("notifications", "list", "--state", "pending")
    assert pending["attempts"] == 1 and "answered 409" in pending["last_error"]
    assert "not retried" not in pending["last_error"]
    receivers.mode = "ok"
    time.sleep(0.5)  # retry_seconds 0.2, jittered
    assert _deliver(cli)["delivered"] == 1
    assert cli.json("notifications", "list", "--state", "dead")[0]["id"] == dead["id"]


def test_a_backoff_cap_below_the_first_wait_is_refused(gitops: Path, store_url: str) -> None:
    _configure(gitops, [], retry_seconds=600, max_retry_seconds=60)
    bad = make_cli(gitops, store_url)("notifications", "list")
    assert bad.exit_code == 3
    assert "max_retry_seconds (60) is below retry_seconds (600)" in bad.stderr


def test_routes_are_checked_with_clear_errors(gitops: Path, store_url: str) -> None:
    cli = make_cli(gitops, store_url)
    _configure(gitops, [{"name": "x", "url_env": "X", "events": ["lunch"]}])
    bad = cli("notifications", "list")
    assert bad.exit_code == 3 and "notifications.routes.0.events.0" in bad.stderr
    _configure(gitops, [{"name": "x", "url_env": "X"}, {"name": "x", "url_env": "Y"}])
    twice = cli("notifications", "list")
    assert twice.exit_code == 3 and "route names used twice: x" in twice.stderr
    _configure(gitops, [{"name": "x", "url_env": "UNSET_URL"}])
    unset = cli("notifications", "test", "x")
    assert unset.exit_code == 3 and "$UNSET_URL is not set" in unset.stderr


class Scripted(LocalServer):
    """Slack- and Discord-shaped webhooks on loopback giving the answers in ``script[kind]``
    first (status, body, headers), then their services' "delivered" (Slack ``200 ok``,
    Discord ``204``)."""

    label = "scripted webhooks"

    def __init__(self) -> None:
        super().__init__()
        self.script: dict[str, list[tuple[int, Any, dict[str, str]]]] = {"slack": [], "discord": []}
        self.received: list[tuple[str, dict[str, Any]]] = []

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.received if k == kind)

    async def _answer(self, request: Request) -> Response:
        kind = "slack" if request.url.path.startswith("/services/") else "discord"
        self.received.append((kind, json.loads(await request.body())))
        if self.script[kind]:
            status, content, headers = self.script[kind].pop(0)
            if isinstance(content, dict):
                return JSONResponse(content, status_code=status, headers=headers)
            return PlainTextResponse(content, status_code=status, headers=headers)
        return PlainTextResponse("ok") if kind == "slack" else Response(status_code=204)

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/services/{a}/{b}/{c}", self._answer, methods=["POST"]),
                Route("/api/webhooks/{id}/{token}", self._answer, methods=["POST"]),
            ]
        )


def test_refusals_are_kept_in_the_services_words_and_rate_limits_are_waited_out(
    gitops: Path, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack's ``404 no_service`` and Discord's ``429`` with ``retry_after`` (their documented
    answers): each row keeps the service's reason, the rate-limited one is not tried again
    before the service said, the removed webhook is dead at once (retrying cannot mend it)
    until a person retries it; no URL anywhere."""
    caplog.set_level(logging.DEBUG)
    hooks = Scripted()
    hooks.start()
    try:
        routes = [{**r, "events": ["incident-opened"]} for r in THREE[:2]]
        _configure(gitops, routes, retry_seconds=0.2, max_attempts=5)
        cli = make_cli(gitops, store_url)
        cli.env.update(
            {
                "CHAT_SLACK_URL": hooks.base_url + SLACK_PATH,
                "CHAT_DISCORD_URL": hooks.base_url + DISCORD_PATH,
            }
        )
        hooks.script["slack"] = [(404, "no_service", {})]
        limited = {"message": "You are being rate limited.", "retry_after": 120.0, "global": False}
        hooks.script["discord"] = [(429, limited, {"Retry-After": "120"})]
        body = payload([alert("Limited", fingerprint="n-429", host="web-01")])
        cli.ok("alert", "ingest", "-", "--no-remediate", input=body)
        outputs = [cli("notifications", "deliver")]
        assert outputs[0].exit_code == 1
        rows = {n["route"]: n for n in cli.json("notifications", "list")}
        assert "answered 404 (no_service) (not retried" in rows["slack"]["last_error"]
        assert rows["discord"]["last_error"].endswith(
            "answered 429 (rate limited, retry after 120s)"
        )
        assert (rows["slack"]["state"], rows["discord"]["state"]) == ("dead", "pending")
        cli.ok("notifications", "retry", "--dead")
        wait = datetime.fromisoformat(rows["discord"]["next_attempt_at"]) - datetime.fromisoformat(
            rows["discord"]["created_at"]
        )
        assert wait.total_seconds() >= 119, wait
        outputs.append(cli("notifications", "deliver", "--output", "json"))
        assert json.loads(outputs[-1].stdout)["delivered"] == 1
        assert (hooks.count("slack"), hooks.count("discord")) == (2, 1)
        rows = {n["route"]: n for n in cli.json("notifications", "list")}
        assert (rows["slack"]["state"], rows["discord"]["state"]) == ("delivered", "pending")
        outputs.append(cli("notifications", "list"))
    finally:
        hooks.stop()
    for out in outputs:
        _no_secret(out.stdout + out.stderr)
    _no_secret(_store_text(store_url))
    _no_secret("\n".join(r.getMessage() for r in caplog.records))


def test_a_route_whose_url_cannot_be_used_holds_up_no_other_route(
    gitops: Path, store_url: str, receivers: ChatReceivers, caplog: pytest.LogCaptureFixture
) -> None:
    routes = [
        {"name": "broken", "url_env": "BROKEN_URL", "events": ["incident-opened"]},
        {"name": "unset", "url_env": "UNSET_URL", "events": ["incident-opened"]},
        {"name": "unknown", "url_env": "UNKNOWN_URL", "events": ["incident-opened"]},
        {**THREE[2], "events": ["incident-opened"]},
    ]
    _configure(gitops, routes)
    cli = _cli(gitops, store_url, receivers)
    cli.env["BROKEN_URL"] = "http://[s3cr3t-broken/hook"
    cli.env["UNKNOWN_URL"] = "nosuchservice://s3cr3t-unknown-t0ken/x"
    # terry serve says what is wrong with each route when it starts
    caplog.set_level(logging.INFO)
    config = load_config(gitops, environ={"TERRY_DATABASE_URL": store_url})
    store = Store(config.store_url)
    store.migrate()
    try:
        notifier = Notifier(config, store, environ={**cli.env, "TERRY_DATABASE_URL": store_url})
        notifier.start()
        notifier.stop()
    finally:
        store.dispose()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "terry.notify")
    assert "route broken: $BROKEN_URL is not a URL that can be read" in logged
    assert "route unset: $UNSET_URL is not set" in logged
    assert (
        "route unknown: apprise does not know the URL in $UNKNOWN_URL (nosuchservice://)" in logged
    )

    body = payload([alert("Broken", fingerprint="n-broken", host="web-01")])
    cli.ok("alert", "ingest", "-", "--no-remediate", input=body)
    done = cli("notifications", "deliver", "--output", "json")
    assert done.exit_code == 1, done.stdout + done.stderr
    assert json.loads(done.stdout)["delivered"] == 1
    [sent] = receivers.bodies("json")
    assert sent["title"].endswith("incident opened: Broken on web-01")
    rows = {n["route"]: n for n in cli.json("notifications", "list")}
    assert rows["json"]["state"] == "delivered"
    assert "is not a URL that can be read" in rows["broken"]["last_error"]
    assert "$UNSET_URL is not set" in rows["unset"]["last_error"]
    assert "apprise does not know the URL" in rows["unknown"]["last_error"]
    shown = done.stdout + json.dumps(rows) + logged
    assert "s3cr3t" not in shown


def test_hostile_markup_stays_text_in_discord_and_slack(
    gitops: Path, store_url: str, receivers: ChatReceivers
) -> None:
    _configure(gitops, [{**r, "events": ["incident-opened"]} for r in THREE[:2]])
    cli = _cli(gitops, store_url, receivers)
    hostile = alert(
        "Disk [login](https://evil.example/x) **now** ||gone|| <http://evil.example|ok>",
        fingerprint="n-markup",
        host="web-01",
    )
    cli.ok("alert", "ingest", "-", "--no-remediate", input=payload([hostile]))
    assert _deliver(cli)["messages"] == 2
    [discord] = receivers.texts("discord")
    assert "\\[login](https://evil.example/x)" in discord and "](" not in discord.replace(
        "\\[login](", ""
    )
    assert "\\*\\*now\\*\\*" in discord and "\\|\\|gone\\|\\|" in discord
    [slack] = receivers.texts("slack")
    assert "<http://evil.example|ok>" not in slack and "&lt;http://evil.example|ok&gt;" in slack


def test_the_outbox_is_not_a_thread_hog(gitops: Path, store_url: str) -> None:
    """Without routes, terry serve starts no notifier thread."""
    config = load_config(gitops, environ={"TERRY_DATABASE_URL": store_url})
    store = Store(config.store_url)
    store.migrate()
    try:
        notifier = Notifier(config, store)
        notifier.start()
        assert not any(t.name == "terry-notifier" for t in threading.enumerate())
        notifier.stop()
    finally:
        store.dispose()


def test_routes_name_exactly_the_events_the_notifier_knows() -> None:
    from typing import get_args

    from terry.config import NotifyEvent
    from terry.notify.events import EventKind

    assert set(get_args(NotifyEvent)) == {kind.value for kind in EventKind}


def test_a_tenant_route_never_carries_another_tenants_event(
    gitops: Path, store_url: str, receivers: ChatReceivers
) -> None:
    """Issue 17: routes bound to a tenant (by the route's ``tenants`` or by the tenant's
    ``routes:``) get only events on that tenant's hosts, placed from the inventory, never by
    the alert's own ``tenant`` label; grouped messages and a Slack app's threads too."""
    from tests.fakes.slack_api import TOKEN, FakeSlackApi
    from tests.integration.test_tenants import ADDRESSES, ROADMAP, _place

    bound = ROADMAP.replace(
        "permissions: [read, write, auto-resolve]}",
        "permissions: [read, write, auto-resolve], routes: [platform]}",
    ).replace(
        "permissions: [read, manual-approval-only]}",
        "permissions: [read, manual-approval-only], routes: [data-app]}",
    )
    _place(gitops, bound, ADDRESSES)  # web-01: team-platform, web-02: team-data
    slack = FakeSlackApi(channels=("C0DATA01",))
    slack.start()
    try:
        events = ["incident-opened", "resolved", "needs-review"]
        _configure(
            gitops,
            [
                {**THREE[0], "name": "data", "events": events, "tenants": ["team-data"]},
                {**THREE[1], "name": "platform", "events": events},
                {**THREE[2], "name": "everyone", "events": events},
                {
                    "name": "data-app",
                    "slack_app": {
                        "token_env": "TERRY_SLACK_BOT_TOKEN",
                        "channel": "C0DATA01",
                        "api_url": slack.api_url,
                    },
                    "events": events,
                },
            ],
            max_items=1,
        )

        cli = _cli(gitops, store_url, receivers)
        cli.env["TERRY_SLACK_BOT_TOKEN"] = TOKEN
        firing = [
            alert("DiskA", fingerprint="t-1", host="web-01"),
            alert("DiskB", fingerprint="t-2", host="web-01", tenant="team-data"),  # a lie
            alert("DiskC", fingerprint="t-3", host="web-01"),
            alert("DiskD", fingerprint="t-4", host="web-02"),
            alert("DiskE", fingerprint="t-5", host="web-02"),
        ]
        body = payload(firing)
        cli.ok("alert", "ingest", "-", "--no-remediate", input=body)
        first = _deliver(cli)
        assert first["failed"] == 0, first
        resolved = [
            alert(
                a["labels"]["alertname"],
                fingerprint=fp,
                status="resolved",
                ends="2026-11-24T10:05:00Z",
                **{k: v for k, v in a["labels"].items() if k != "alertname"},
            )
            for a, fp in ((firing[0], "t-1"), (firing[3], "t-4"))
        ]
        body = payload(resolved)
        cli.ok("alert", "ingest", "-", "--no-remediate", input=body)
        second = _deliver(cli)
        assert second["failed"] == 0, second

        data = receivers.texts("slack")
        platform = receivers.texts("discord")
        everyone = [b["title"] + "\n" + b["message"] for b in receivers.bodies("json")]
        app = [m.text for m in slack.messages]
        assert data and platform and app
        for text in data + app:
            assert "web-02" in text and "web-01" not in text, text
        for text in platform:
            assert "web-01" in text and "web-02" not in text, text
        assert data[0].startswith("[Terry] 2 incidents opened") and "and 1 more" in data[0]
        assert platform[0].startswith("[Terry] 3 incidents opened"), platform[0]
        assert everyone[0].startswith("[Terry] 5 incidents opened"), everyone[0]
        # the Slack app: one thread per team-data incident, its resolution a reply in it
        tops = slack.top()
        assert len(tops) == 2, [m.text for m in tops]
        replies = [m for m in slack.messages if m.thread_ts]
        assert len(replies) == 1 and replies[0].thread_ts in {m.ts for m in tops}
        routes = {n["route"] for n in cli.json("notifications", "list")}
        assert routes == {"data", "platform", "everyone", "data-app"}

        # A proposal touching both tenants' hosts reaches both, each naming its own hosts.
        _proposal_on(store_url, ["web-01", "web-02"])
        assert _deliver(cli)["failed"] == 0
        [data_review] = [t for t in receivers.texts("slack") if "needs review" in t]
        [platform_review] = [t for t in receivers.texts("discord") if "needs review" in t]
        assert "web-02" in data_review and "web-01" not in data_review, data_review
        assert "web-01" in platform_review and "web-02" not in platform_review
    finally:
        slack.stop()


def _proposal_on(store_url: str, hosts: list[str]) -> None:
    """A proposal of incident 1 on ``hosts`` that waits for review, and its audit row."""
    from sqlalchemy import insert

    from terry.store.models import AuditRow, ProposalRow, utcnow

    store = Store(store_url)
    now = utcnow()
    try:
        with store.session() as session, session.begin():
            pid = session.execute(
                insert(ProposalRow)
                .values(
                    incident_id=1,
                    remedy="disk-usage-high",
                    role="disk_cleanup",
                    hosts=hosts,
                    params={},
                    risk="low",
                    state="awaiting_review",
                    created_at=now,
                    updated_at=now,
                )
                .returning(ProposalRow.id)
            ).scalar_one()
            session.execute(
                insert(AuditRow).values(
                    at=now,
                    actor="terry",
                    entity="proposal",
                    entity_id=pid,
                    from_state="checked",
                    to_state="awaiting_review",
                    reason="review",
                )
            )
    finally:
        store.dispose()
