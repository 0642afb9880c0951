"""The web console in a real browser: headless Chromium (``tests/browser.py``) against a real
``terry serve``, a real GitOps repository, real ansible on the example hosts, real regorus.

Log in, find the incident by its INC reference, approve, watch it applied and verified;
reject with a reason; forged posts refused; anonymous people sent to the login page; readers
read only; hostile alert text stays text; a phone's screen needs no sideways scrolling.
``TERRY_UPDATE_SCREENSHOT=1`` also writes the proposal page to ``docs/console.png``.
"""

from __future__ import annotations

import os
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from terry.demo import example
from tests.browser import Browser, require_chromium
from tests.conftest import Cli, alert, config_for, make_cli, payload
from tests.integration.test_server import Serve
from tests.integration.test_tenant_scope import served  # noqa: F401  (a fixture, issue 17)

pytestmark = pytest.mark.integration

OPERATOR = "alice"
OPERATOR_TOKEN = "s3cret-operator-token-alice"
READER_TOKEN = "s3cret-reader-token-of-ops"  # test_server.Serve's reader "ops"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass
class Console:
    cli: Cli
    server: Serve
    approve_id: int  # production service down on db-01: waits for review
    reject_id: int  # config drift on web-02: waits for review
    hostile_incident: int
    hostile_proposal: int  # waits for review; nobody may decide it here
    tmp: Path

    @property
    def url(self) -> str:
        return self.server.url


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _ingest(cli: Cli, item: dict[str, Any]) -> dict[str, Any]:
    [outcome] = cli.json("alert", "ingest", "-", input=payload([item]))["proposals"]
    return outcome


# SQLite only: these flows are the console's; the store's code they use runs on PostgreSQL in
# the store's, server's and notifier's own tests (conftest's store_url), and running every
# page on both doubled the CI time this module took (session 27).
@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("console")
    repo = tmp / "ops"
    store_url = f"sqlite:///{tmp / 'terry.db'}"
    init = make_cli(repo, store_url)
    from click.testing import CliRunner

    from terry.cli import main

    created = CliRunner().invoke(main, ["init", str(repo)], env=init.env)
    assert created.exit_code == 0, created.stdout
    cli = make_cli(repo, store_url)
    cli.ok("example", "up")
    try:
        cli("example", "break", "db-01", "service")
        approve = _ingest(
            cli, alert("ServiceDown", fingerprint="console-svc", host="db-01", service="web")
        )
        assert approve["state"] == "awaiting_review", approve
        cli("example", "break", "web-02", "config")
        reject = _ingest(
            cli, alert("ConfigDrift", fingerprint="console-drift", host="web-02", file="app.conf")
        )
        assert reject["state"] == "awaiting_review", reject
        hostile = _ingest(
            cli,
            alert(
                "ConfigDrift",
                fingerprint="console-hostile",
                host="web-01",
                file="app.conf",
                team=HOSTILE,
                annotations={"summary": f"disk {HOSTILE}", "description": HOSTILE},
            ),
        )
        assert hostile["state"] == "awaiting_review", hostile
        server = Serve(
            repo,
            env={
                "TERRY_DATABASE_URL": store_url,
                "TERRY_OPERATOR_TOKENS": f"{OPERATOR}:{OPERATOR_TOKEN}",
                "TERRY_CONSOLE_SECRET": "a-console-secret-of-the-test-suite-0123456789",
            },
            args=("--no-worker",),
        )
        try:
            yield Console(
                cli,
                server,
                approve["proposal_id"],
                reject["proposal_id"],
                hostile["incident_id"],
                hostile["proposal_id"],
                tmp,
            )
        finally:
            server.stop()
    finally:
        example.down(config_for(repo))


@pytest.fixture
def browser(console: Console, tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path / "chromium")
    try:
        yield b
    finally:
        b.close()


def log_in(browser: Browser, console: Console, token: str, path: str = "/console") -> None:
    browser.goto(console.url + path)
    assert "/console/login" in browser.url
    browser.fill("#token", token)
    browser.click("form.login button[type=submit]")


def state_of(console: Console, proposal_id: int) -> str:
    return console.cli.json("proposals", "show", str(proposal_id))["summary"]["state"]


def http_ok(console: Console, host: str) -> bool:
    inventory = example.example_hosts(config_for(console.cli.repo))
    port = inventory[host].variables["terry_services"]["web"]["port"]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Http:
    """A person's browser session without a browser: cookies, and the Origin a browser
    sends with a form."""

    def __init__(self, console: Console, token: str) -> None:
        self.base = console.url
        self.client = httpx.Client(base_url=console.url, timeout=30, follow_redirects=False)
        answer = self.client.post(
            "/console/login",
            data={"token": token, "next": "/console"},
            headers={"Origin": console.url},
        )
        assert answer.status_code == 303, answer.text
        assert "terry_session" in self.client.cookies

    def csrf(self, path: str) -> str:
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, page.text
        return found[1]

    def post(self, path: str, data: dict[str, str], origin: str | None = "own") -> httpx.Response:
        headers = {} if origin is None else {"Origin": self.base if origin == "own" else origin}
        return self.client.post(path, data=data, headers=headers)


# -- tests ----------------------------------------------------------------------------------
def test_anonymous_people_are_sent_to_the_login_page(console: Console, browser: Browser) -> None:
    browser.goto(f"{console.url}/proposals/{console.approve_id}")
    assert "/console/login?next=%2Fproposals%2F" in browser.url
    assert "Approve" not in browser.text("main")
    html = {"Accept": "text/html"}
    for path in ("/", "/console", "/incidents/1", f"/proposals/{console.approve_id}"):
        answer = httpx.get(console.url + path, headers=html, follow_redirects=True)
        assert answer.url.path == "/console/login", path  # a browser: to the login page
        assert "ServiceDown" not in answer.text and "db-01" not in answer.text
        script = httpx.get(console.url + path)  # anything else: 401, as the API answers
        assert script.status_code == 401, path
        assert script.headers["www-authenticate"] == 'Bearer realm="terry"'
    assert httpx.get(console.url + "/console/drift/report", headers=html).status_code == 303
    assert httpx.get(console.url + "/healthz").status_code == 200
    # a reader's bearer token reads the pages too (scripts), and only reads
    reader = {"Authorization": f"Bearer {READER_TOKEN}"}
    assert "ServiceDown" in httpx.get(console.url + "/console", headers=reader).text
    wrong = {"Authorization": "Bearer not-a-token-anyone-holds"}
    assert httpx.get(console.url + "/console", headers=wrong).status_code == 401
    # a wrong token is refused and logs nobody in
    log_in(browser, console, "not-a-token-anyone-holds")
    assert "not a reader's or an operator's token" in browser.text("main")
    assert "/console/login" in browser.url


def test_operator_logs_in_finds_the_incident_and_approves_it(
    console: Console, browser: Browser
) -> None:
    assert not http_ok(console, "db-01")
    log_in(browser, console, OPERATOR_TOKEN)
    assert browser.url.endswith("/console")
    ref = console.cli.json("proposals", "show", str(console.approve_id))["summary"]["incident_id"]
    story = console.cli.json("incidents", "show", str(ref))
    inc_ref = story["incident"]["ref"]
    assert inc_ref.startswith("INC-")
    assert inc_ref in browser.text("main")  # shown next to the number

    # filter the list to production, then open the incident by its link
    browser.goto(f"{console.url}/console?environment=production&state=open")
    assert inc_ref in browser.text("main")
    assert "ConfigDrift" not in browser.text("table")  # web-02 is staging
    browser.click(f'a[href="/incidents/{ref}"]')
    assert f"({inc_ref})" in browser.text("h1")
    browser.goto(f"{console.url}/incidents/{inc_ref.lower()}")  # the reference works too
    assert f"incident {ref}" in browser.text("h1")
    assert "alert firing" in browser.text("#main")
    report = Http(console, READER_TOKEN).client.get(f"/incidents/{inc_ref}/report")
    assert report.status_code == 200 and inc_ref in report.text  # the incident report, framed
    assert "sandbox" in report.headers["content-security-policy"]
    browser.click(f'a[href="/proposals/{console.approve_id}"]')
    page = browser.text("main")
    assert "awaiting_review" in page and "production host" in page
    assert "Playbook" in page

    browser.click("button.approve")
    page = browser.wait_for_text("Status: verified", "#status", timeout=240)
    assert http_ok(console, "db-01")
    assert f"console:{OPERATOR}" in browser.text("main")  # approved by, in the history
    detail = console.cli.json("proposals", "show", str(console.approve_id))
    assert detail["approved_by"] == f"console:{OPERATOR}"
    assert [r["kind"] for r in detail["runs"]][-2:] == ["apply", "verify"]
    assert "apply run" in browser.text("#main")  # runs per host
    assert "db-01" in browser.text(".stats")

    # deciding again is the pipeline's refusal, shown as a message
    http = Http(console, OPERATOR_TOKEN)
    token = http.csrf(f"/proposals/{console.approve_id}")
    again = http.post(f"/proposals/{console.approve_id}/approve", {"csrf": token})
    assert again.status_code == 409
    assert "cannot approve proposal" in again.text and "Traceback" not in again.text

    if os.environ.get("TERRY_UPDATE_SCREENSHOT"):
        browser.viewport(1100, 900)
        browser.goto(f"{console.url}/proposals/{console.approve_id}")
        browser.screenshot(DOCS / "console.png")


def test_operator_rejects_with_a_reason(console: Console, browser: Browser) -> None:
    conf = console.cli.repo / ".terry/hosts/web-02/etc/app/app.conf"
    drifted = conf.read_text()
    log_in(browser, console, OPERATOR_TOKEN, f"/proposals/{console.reject_id}")
    assert browser.url.endswith(f"/proposals/{console.reject_id}")  # back where I was going
    assert "debug_backdoor" in browser.text("#main")  # the dry run's diff
    browser.fill("#reason", "investigating by hand")
    browser.click("button.reject")
    browser.wait_for_text("Status: rejected", "#status")
    assert "investigating by hand" in browser.text("main")
    assert state_of(console, console.reject_id) == "rejected"
    assert conf.read_text() == drifted
    browser.click("form.who button")  # log out: the session is gone
    assert "/console/login" in browser.url
    browser.goto(f"{console.url}/console")
    assert "/console/login" in browser.url


def test_operator_retries_an_incident_whose_proposal_ended_unfixed(
    console: Console, browser: Browser
) -> None:
    if state_of(console, console.reject_id) != "rejected":  # run alone: reject it first
        console.cli("proposals", "reject", str(console.reject_id), "--reason", "by hand")
    incident = console.cli.json("proposals", "show", str(console.reject_id))["summary"][
        "incident_id"
    ]
    path = f"/incidents/{incident}"
    # a reader sees why it is not theirs to retry, and a post of theirs is refused
    reader = Http(console, READER_TOKEN)
    page = reader.client.get(path).text
    assert "may not retry it" in page and 'action="/incidents/' not in page
    refused = reader.post(f"{path}/retry", {"csrf": reader.csrf(path), "reason": "x"})
    assert refused.status_code == 403 and "may not retry" in refused.text
    # an incident whose proposal still waits for review offers no retry; a post is refused
    http = Http(console, OPERATOR_TOKEN)
    waiting = f"/incidents/{console.hostile_incident}"
    assert "Try again" not in http.client.get(waiting).text
    busy = http.post(f"{waiting}/retry", {"csrf": http.csrf(waiting)})
    assert busy.status_code == 409 and "is awaiting review; decide it" in busy.text
    assert http.post(f"{path}/retry", {}).status_code == 403  # no CSRF token

    log_in(browser, console, OPERATOR_TOKEN, path)
    browser.fill("#retry-reason", f"app.conf owner back <b>{HOSTILE}</b>")
    browser.click("button.retry")
    assert browser.url.endswith(path)
    timeline = browser.text(".timeline")
    assert "retry asked" in timeline and f"console:{OPERATOR}" in timeline
    assert f"<b>{HOSTILE}</b>" in timeline  # the reason, as the text it is
    assert browser.evaluate("window.__pwned === undefined")
    assert "Try again" not in browser.text("main")  # waiting for its diagnosis now
    assert "waiting for it" in browser.text(".facts")
    story = console.cli.json("incidents", "show", str(incident))
    assert story["incident"]["state"] == "open"
    again = http.post(f"{path}/retry", {"csrf": http.csrf(path)})
    assert again.status_code == 409 and "waiting for its diagnosis" in again.text


def test_a_post_without_the_csrf_token_or_from_another_site_is_refused(
    console: Console,
) -> None:
    http = Http(console, OPERATOR_TOKEN)
    path = f"/proposals/{console.hostile_proposal}"
    token = http.csrf(path)
    missing = http.post(f"{path}/approve", {})
    assert missing.status_code == 403 and "CSRF token" in missing.text
    wrong = http.post(f"{path}/approve", {"csrf": token[::-1]})
    assert wrong.status_code == 403
    elsewhere = http.post(f"{path}/reject", {"csrf": token, "reason": "x"}, "https://evil.test")
    assert elsewhere.status_code == 403 and "another site" in elsewhere.text
    no_origin = http.post(f"{path}/approve", {"csrf": token}, origin=None)
    assert no_origin.status_code == 403
    anonymous = httpx.post(
        console.url + f"{path}/approve", data={"csrf": token}, headers={"Origin": console.url}
    )
    assert anonymous.status_code == 401
    assert state_of(console, console.hostile_proposal) == "awaiting_review"
    # the cookie is HttpOnly and SameSite=Strict; the token is not in it
    login = httpx.post(
        console.url + "/console/login",
        data={"token": OPERATOR_TOKEN},
        headers={"Origin": console.url},
    )
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert OPERATOR_TOKEN.lower() not in cookie
    assert OPERATOR_TOKEN not in console.server.log.read_text()


def test_logging_out_ends_the_session_for_a_copied_cookie_too(console: Console) -> None:
    """The session is a signed cookie; logging out must end it on the server as well, or a
    copy of the cookie (a shared machine, a proxy's log) keeps working until it expires."""
    http = Http(console, OPERATOR_TOKEN)
    cookie = http.client.cookies["terry_session"]
    token = http.csrf("/console")
    copied = httpx.Client(base_url=console.url, cookies={"terry_session": cookie}, timeout=30)
    assert copied.get("/console").status_code == 200
    out = http.post("/console/logout", {"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    again = copied.get("/console", headers={"Accept": "text/html"}, follow_redirects=True)
    assert again.url.path == "/console/login"  # the copied cookie is no session any more
    forged = copied.post("/console/logout", data={"csrf": token}, headers={"Origin": console.url})
    assert forged.status_code == 401  # ended: a second logout is no session either
    assert Http(console, OPERATOR_TOKEN).client.get("/console").status_code == 200  # a new one


def test_a_reader_reads_but_cannot_approve(console: Console, browser: Browser) -> None:
    log_in(browser, console, READER_TOKEN, f"/proposals/{console.hostile_proposal}")
    page = browser.text("main")
    assert "awaiting_review" in page and "may not approve: the viewer role does not" in page
    assert (
        browser.evaluate("document.querySelectorAll('button.approve, button.reject').length") == 0
    )
    http = Http(console, READER_TOKEN)
    path = f"/proposals/{console.hostile_proposal}"
    token = http.csrf(path)
    refused = http.post(f"{path}/approve", {"csrf": token})
    assert refused.status_code == 403 and "may not approve" in refused.text
    assert state_of(console, console.hostile_proposal) == "awaiting_review"


def test_hostile_alert_text_is_inert_in_the_page(console: Console, browser: Browser) -> None:
    log_in(browser, console, READER_TOKEN, f"/incidents/{console.hostile_incident}")
    assert HOSTILE in browser.text("main")  # shown as the text it is
    assert browser.evaluate("window.__pwned === undefined")
    assert browser.evaluate("document.querySelectorAll('main img, main script').length") == 0
    browser.goto(f"{console.url}/console")
    assert browser.evaluate("document.querySelectorAll('main img, main script').length") == 0
    assert browser.evaluate("window.__pwned === undefined")


def test_usable_by_keyboard_and_on_a_phone(console: Console, browser: Browser) -> None:
    log_in(browser, console, OPERATOR_TOKEN)
    browser.press_tab()
    assert browser.evaluate("document.activeElement.className") == "skip"
    landmarks = "['header', 'nav', 'main', 'footer'].every(t => document.querySelector(t))"
    assert browser.evaluate(landmarks)
    browser.viewport(375, 740, mobile=True)
    for path in (
        "/console",
        f"/incidents/{console.hostile_incident}",
        f"/proposals/{console.hostile_proposal}",
        f"/proposals/{console.approve_id}",
    ):
        browser.goto(console.url + path)
        width = browser.evaluate("document.documentElement.scrollWidth")
        inner = browser.evaluate("window.innerWidth")
        assert width <= inner, f"{path}: {width}px wide on a {inner}px screen"


def test_drift_and_weekly_reports_are_shown_framed(console: Console, browser: Browser) -> None:
    log_in(browser, console, READER_TOKEN, "/console/weekly")
    assert browser.evaluate("document.querySelector('iframe.report').title") == "Weekly report"
    http = Http(console, READER_TOKEN)
    weekly = http.client.get("/console/weekly/report")
    assert weekly.status_code == 200 and "<html" in weekly.text.lower()
    assert "sandbox" in weekly.headers["content-security-policy"]  # nothing in it runs
    drift = http.client.get("/console/drift/report")  # no scan yet: said, not a traceback
    assert drift.status_code == 404 and "no finished drift scan yet" in drift.text


def test_a_forged_or_expired_session_is_no_session() -> None:
    from terry.service.auth import Principal, Role
    from terry.service.console.session import Sessions

    sessions = Sessions("x" * 40, minutes=1)
    session, cookie = sessions.new(Principal("alice", Role.OPERATOR), now=1000)
    assert sessions.read(cookie, now=1030) == session
    assert sessions.read(cookie, now=1061) is None  # expired
    body, _, signature = cookie.partition(".")
    forged = body.replace(body[:4], "AAAA") + "." + signature
    assert sessions.read(forged, now=1030) is None
    assert Sessions("y" * 40, minutes=1).read(cookie, now=1030) is None  # another secret
    assert sessions.read("garbage", now=1030) is None


# -- tenants (issue 17): the console reads through the JSON API's Scope -------------------
def _tenant_session(client: Any, store: Any, tenant: str, role: Any = None) -> None:
    """Log ``client`` in (its cookie jar) with a new API token of ``tenant``."""
    from terry.access import Role
    from terry.store.api_tokens import create_token

    token = create_token(
        store,
        user=f"c-{tenant.strip('*') or 'all'}",
        role=role or Role.VIEWER,
        tenant=tenant,
        expires_in=None,
    )[1]
    login = client.post(
        "/console/login",
        data={"token": token, "next": "/console"},
        headers={"Origin": "http://terry.test"},
        follow_redirects=False,
    )
    assert login.status_code == 303, login.text


def _drift_scan(store: Any) -> None:
    from sqlalchemy import insert

    from terry.store.models import DriftHostRow, DriftScanRow, utcnow

    now = utcnow()
    with store.session() as session, session.begin():
        scan = session.execute(
            insert(DriftScanRow)
            .values(
                started_at=now,
                finished_at=now,
                commit_sha="0" * 40,
                limit=None,
                status="done",
                error=None,
                run_dir=None,
            )
            .returning(DriftScanRow.id)
        ).scalar_one()
        session.execute(
            insert(DriftHostRow),
            [
                {
                    "scan_id": scan,
                    "host": "web-01",
                    "status": "unreachable",
                    "facts": {},
                    "message": "platform-only words",
                },
                {
                    "scan_id": scan,
                    "host": "web-02",
                    "status": "clean",
                    "facts": {},
                    "message": None,
                },
            ],
        )


def test_a_tenant_logs_in_and_every_page_shows_its_tenant_only(served: Any) -> None:  # noqa: F811
    """A team-data token logs in to the console; its lists, pages, reports and forms see
    team-data's hosts only, and team-platform's ids answer as missing ones (404)."""
    from terry.access import Role

    client, store = served
    _drift_scan(store)
    _tenant_session(client, store, "team-data", Role.OPERATOR)
    listed = client.get("/console")
    assert listed.status_code == 200, listed.text
    assert "Disk on web-02" in listed.text and "web-01" not in listed.text
    assert client.get("/incidents/2").status_code == 200
    assert client.get("/proposals/2").status_code == 200
    assert 'action="/proposals/2/approve"' in client.get("/proposals/2").text  # may act
    for guessed, missing in (
        ("/incidents/1", "/incidents/999"),
        ("/incidents/1/report", "/incidents/999/report"),
        ("/proposals/1", "/proposals/999"),
    ):
        one, other = client.get(guessed), client.get(missing)
        assert one.status_code == other.status_code == 404, one.text
        assert "web-01" not in one.text
    page = client.get("/proposals/2")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    refused = client.post(
        "/proposals/1/approve", data={"csrf": csrf[1]}, headers={"Origin": "http://terry.test"}
    )
    assert refused.status_code == 404 and "proposal 1 does not exist" in refused.text
    weekly = client.get("/console/weekly/report")
    assert weekly.status_code == 200 and "web-02" in weekly.text and "web-01" not in weekly.text
    drift = client.get("/console/drift/report")
    assert drift.status_code == 200 and "web-02" in drift.text
    assert "web-01" not in drift.text and "platform-only" not in drift.text

    client.cookies.clear()
    _tenant_session(client, store, "*")
    weekly = client.get("/console/weekly/report")
    assert "web-01" in weekly.text and "web-02" in weekly.text
    assert "platform-only" in client.get("/console/drift/report").text
