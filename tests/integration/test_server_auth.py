"""Who may use ``terry serve``, how much one read may take, and whether /healthz tells the truth.

Real ``terry serve`` processes on loopback (``Serve``), the real store, the real CLI.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import event, insert

from terry.demo import example
from terry.gitops.init import init_repository
from terry.store import Store
from terry.store.models import IncidentRow, ProposalRow, utcnow
from tests.conftest import alert, config_for, make_cli, payload
from tests.integration.test_server import CLEAN, READ, READ_TOKEN, TOKEN, Serve, wait_for

pytestmark = pytest.mark.integration

ALICE = "alice-reads-with-this-token"
BOB = "bob-reads-with-another-one"
WEBHOOK = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    path = init_repository(tmp_path / "ops").path
    yield path
    example.down(config_for(path))


@pytest.fixture
def store_for(repo: Path) -> Iterator[Store]:
    store = Store(config_for(repo).store_url)
    store.migrate()
    yield store
    store.dispose()


def _routes(repo: Path, store: Store) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, an id put in for ``{id}``."""
    from terry.service.server import create_app

    app = create_app(config_for(repo), store, token="t", readers={})
    found = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD":
                found.append((method, route.path.replace("{id}", "1")))  # type: ignore[attr-defined]
    return found


def test_serve_will_not_start_without_a_webhook_token_unless_told_and_then_says_so(
    repo: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TERRY_WEBHOOK_TOKEN"}
    refused = subprocess.run(
        [sys.executable, "-m", "terry", "--repo", str(repo), "serve", "--no-worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 3, refused.stderr
    assert "Traceback" not in refused.stderr
    [line] = [x for x in refused.stderr.splitlines() if x.startswith("terry: error:")]
    assert "no webhook token" in line and "--insecure-no-auth" in line

    server = Serve(
        repo,
        env={"TERRY_WEBHOOK_TOKEN": "", "TERRY_READ_TOKENS": ""},
        args=("--no-worker", "--insecure-no-auth"),
    )
    try:
        health = httpx.get(f"{server.url}/healthz")
        assert health.status_code == 200
        warnings = health.json()["warnings"]
        assert any("accepts alerts without a token" in w for w in warnings), warnings
        assert any("answer without a token" in w for w in warnings), warnings
        body = payload([alert("X", fingerprint="anon", host="web-01")])
        assert server.post(body, token=None).status_code == 202
        assert httpx.get(f"{server.url}/api/v1/incidents").status_code == 200
    finally:
        assert server.stop() in CLEAN
    log = server.log.read_text()
    assert "INSECURE: the webhook accepts alerts without a token" in log


def test_readers_and_alertmanager_are_different_principals_and_only_names_are_logged(
    repo: Path, store_for: Store
) -> None:
    routes = _routes(repo, store_for)
    assert ("GET", "/healthz") in routes and ("GET", "/api/v1/incidents/1") in routes
    server = Serve(
        repo, env={"TERRY_READ_TOKENS": f"alice:{ALICE}, bob:{BOB}"}, args=("--no-worker",)
    )
    try:
        for method, path in routes:  # nobody reads or writes anonymously, but /healthz
            anonymous = httpx.request(method, f"{server.url}{path}", content=b"{}")
            expected = 200 if path == "/healthz" else 401
            assert anonymous.status_code == expected, (method, path, anonymous.text)
        reads = [(m, p) for m, p in routes if m == "GET" and p != "/healthz"]
        for _method, path in reads:
            for wrong in (TOKEN, "not-a-token", READ_TOKEN):  # the webhook's token reads nothing
                refused = httpx.get(
                    f"{server.url}{path}", headers={"Authorization": f"Bearer {wrong}"}
                )
                assert refused.status_code == 401, (path, wrong)
                assert refused.headers["www-authenticate"] == 'Bearer realm="terry"'
            for token in (ALICE, BOB):
                read = httpx.get(
                    f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}
                )
                assert read.status_code in (200, 404), (path, read.text)
        body = payload([alert("X", fingerprint="who", host="web-01")])
        assert server.post(body, token=ALICE).status_code == 401  # a reader posts nothing
        assert server.post(body).status_code == 202
    finally:
        assert server.stop() in CLEAN
    log = server.log.read_text()
    assert "GET '/api/v1/incidents' by alice: 200" in log, log[-3000:]
    assert "by bob" in log
    for token in (ALICE, BOB, TOKEN):
        assert token not in log


def test_reader_tokens_from_a_file_and_a_public_metrics(repo: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "readers"
    tokens.write_text(f"# who reads\nalice:{ALICE}\n\ngrafana:{BOB}\n")
    tokens.chmod(0o600)
    settings = yaml.safe_load((repo / "terry.yml").read_text()) or {}
    settings["server"] = {**settings.get("server", {}), "metrics_public": True}
    (repo / "terry.yml").write_text(yaml.safe_dump(settings))
    server = Serve(repo, env={"TERRY_READ_TOKENS": f"@{tokens}"}, args=("--no-worker",))
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 200  # open, as configured
        assert httpx.get(f"{server.url}/api/v1/incidents").status_code == 401  # the API is not
        grafana = {"Authorization": f"Bearer {BOB}"}
        assert httpx.get(f"{server.url}/api/v1/incidents", headers=grafana).status_code == 200
    finally:
        assert server.stop() in CLEAN
    assert "grafana" in server.log.read_text()

    tokens.write_text(f"alice:{ALICE}\nmallory {BOB}\n")  # a bad line: no start, no token said
    env = {**os.environ, "TERRY_WEBHOOK_TOKEN": TOKEN, "TERRY_READ_TOKENS": f"@{tokens}"}
    refused = subprocess.run(
        [sys.executable, "-m", "terry", "--repo", str(repo), "serve", "--no-worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 3
    assert "entry 2 is not NAME:TOKEN" in refused.stderr
    assert BOB not in refused.stderr and ALICE not in refused.stderr


def _seed(store: Store, incidents: int, proposals: int) -> None:
    now = utcnow()
    rows = [
        {
            "fingerprint": f"seed-{n}",
            "source": "alert",
            "title": "Seeded",
            "host": None,
            "labels": {},
            "annotations": {},
            "state": "open" if n % 3 else "resolved",
            "opened_at": now,
            "resolved_at": None,
            "truncated": False,
            "recurrence": 0,
        }
        for n in range(incidents)
    ]
    with store.session() as session:
        session.execute(insert(IncidentRow.__table__), rows)
        session.execute(
            insert(ProposalRow.__table__),
            [
                {
                    "incident_id": 1,
                    "remedy": "disk-usage-high",
                    "role": "disk_cleanup",
                    "hosts": ["web-01"],
                    "params": {},
                    "risk": "low",
                    "state": "proposed",
                    "created_at": now,
                    "updated_at": now,
                }
                for _ in range(proposals)
            ],
        )


def _walk(url: str, first: str) -> tuple[list[int], int]:
    """Follow rel="next" links from ``first``: the ids read, and how many pages."""
    ids: list[int] = []
    pages = 0
    link: str | None = first
    while link is not None:
        page = httpx.get(f"{url}{link}", headers=READ)
        assert page.status_code == 200, page.text
        pages += 1
        ids += [row["id"] for row in page.json()]
        found = re.fullmatch(r'<([^>]+)>; rel="next"', page.headers.get("link", ""))
        link = found.group(1) if found else None
    return ids, pages


def test_lists_are_capped_and_their_pages_walk_every_row_once(repo: Path, store_for: Store) -> None:
    _seed(store_for, 1203, 7)
    server = Serve(repo, args=("--no-worker",))
    try:
        url = server.url
        assert len(httpx.get(f"{url}/api/v1/incidents", headers=READ).json()) == 50  # default
        for query in ("limit=501", "limit=0", "limit=-1", "limit=1e3", "limit=" + "9" * 5000):
            refused = httpx.get(f"{url}/api/v1/incidents?{query}", headers=READ)
            assert refused.status_code == 400, (query, refused.text)
            assert "limit must be a whole number from 1 to 500" in refused.json()["error"]
        for query in ("before_id=" + "9" * 5000, "before_id=0", "state=Open", "state=a%00b"):
            assert httpx.get(f"{url}/api/v1/proposals?{query}", headers=READ).status_code == 400

        ids, pages = _walk(url, "/api/v1/incidents?limit=500")
        assert ids == list(range(1203, 0, -1)) and pages == 3  # 500, 500, 203: each once
        open_ids, _pages = _walk(url, "/api/v1/incidents?limit=100&state=open")
        assert open_ids == [n for n in range(1203, 0, -1) if (n - 1) % 3]
        proposal_ids, pages = _walk(url, "/api/v1/proposals?limit=3")
        assert proposal_ids == [7, 6, 5, 4, 3, 2, 1] and pages == 3
        last = httpx.get(f"{url}/api/v1/proposals?limit=7", headers=READ)
        assert "link" not in last.headers  # a full page with nothing after it: no next

        cli = make_cli(repo)  # the API says what --output json says
        for path, args in (
            ("/api/v1/incidents?limit=5", ("incidents", "list", "--limit", "5")),
            ("/api/v1/incidents/3", ("incidents", "show", "3")),
            ("/api/v1/proposals?limit=5", ("proposals", "list", "--limit", "5")),
            ("/api/v1/proposals/2", ("proposals", "show", "2")),
        ):
            assert httpx.get(f"{url}{path}", headers=READ).json() == cli.json(*args), path
    finally:
        assert server.stop() in CLEAN


def test_huge_ids_answer_one_line_on_the_api_and_the_cli(repo: Path, store_for: Store) -> None:
    server = Serve(repo, args=("--no-worker",))
    try:
        for path, status, error in (
            (
                "/api/v1/incidents/99999999999999999999",
                404,
                "incident 99999999999999999999 does not exist",
            ),
            ("/api/v1/proposals/2147483648", 404, "proposal 2147483648 does not exist"),
            (
                "/api/v1/proposals/" + "9" * 5000,
                404,
                "proposal 999999999999999999999999… does not exist",
            ),
            ("/api/v1/incidents/0", 404, "incident 0 does not exist"),
            (
                "/api/v1/incidents/12a",
                400,
                "incident id must be a whole number or an INC reference",
            ),
        ):
            answer = httpx.get(f"{server.url}{path}", headers=READ)
            assert (answer.status_code, answer.json()) == (status, {"error": error}), path
    finally:
        assert server.stop() in CLEAN
    cli = make_cli(repo)
    huge = "99999999999999999999999"
    for args, what in (
        (("incidents", "show", huge), "incident"),
        (("explain", huge), "incident"),
        (("proposals", "show", huge), "proposal"),
        (("proposals", "approve", huge), "proposal"),
        (("proposals", "reject", huge, "--reason", "no"), "proposal"),
        (("sync", "--proposal", huge), "proposal"),
        (("drift", "report", "--scan", huge), "scan"),
    ):
        result = cli(*args)  # a traceback would raise here (catch_exceptions=False)
        assert result.exit_code == 4, (args, result.output)
        assert result.stderr.strip() == f"terry: error: {what} {huge} does not exist"


def test_healthz_is_503_while_another_process_holds_the_write_lock(
    repo: Path, store_for: Store
) -> None:
    db = config_for(repo).store_url.removeprefix("sqlite:///")
    server = Serve(repo, args=("--no-worker",))
    holder = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        assert httpx.get(f"{server.url}/healthz").json()["store"] == "takes writes"
        holder.execute("BEGIN IMMEDIATE")  # another process writing, and not letting go
        health = httpx.get(f"{server.url}/healthz", timeout=15)
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        # the lock itself, or the turn it keeps the server's own writers waiting for
        assert health.json()["store"] in (
            "cannot take a write: the database is locked",
            "cannot take a write: no write within 2 s",
        ), health.text
        assert db not in health.text and str(repo) not in health.text
        holder.execute("ROLLBACK")
        wait_for(
            lambda: httpx.get(f"{server.url}/healthz", timeout=15).status_code == 200,
            60,
            "health to come back once the lock is gone",
        )
    finally:
        holder.close()
        assert server.stop() in CLEAN


def _fill(db: str) -> None:
    """Take every free page the database has (rows marked folded: no folder wants them)."""
    filler = sqlite3.connect(db, timeout=30)
    pages = filler.execute("PRAGMA page_count").fetchone()[0]
    filler.execute(f"PRAGMA max_page_count = {pages}")
    at = utcnow().isoformat(" ")
    try:
        for size in (2000, 500, 100, 10):  # smaller and smaller, until not one page is left
            with pytest.raises(sqlite3.OperationalError, match="full"):
                for _ in range(10_000):
                    filler.execute(
                        "INSERT INTO inbox (received_at, body, folded_at) VALUES (?, ?, ?)",
                        (at, "f" * size, at),
                    )
                    filler.commit()
    finally:
        filler.close()


def test_healthz_is_503_when_the_database_is_full(repo: Path, store_for: Store) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL, as on a full disk): the
    database may not grow past its size now (``PRAGMA max_page_count`` on every connection)."""
    from starlette.testclient import TestClient

    from terry.service.server import create_app

    store = Store(config_for(repo).store_url)
    full = {"on": False}

    def cap(connection: sqlite3.Connection, _record: object) -> None:
        if full["on"]:
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(store.engine, "connect", cap)
    app = create_app(config_for(repo), store, token=TOKEN, readers={})
    try:
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            full["on"] = True
            store.engine.dispose()  # new connections, each capped
            _fill(config_for(repo).store_url.removeprefix("sqlite:///"))
            health = client.get("/healthz")
            assert health.status_code == 503, health.text
            assert health.json()["store"] == "cannot take a write: the disk is full"
            big = payload([alert("X", fingerprint="big", host="web-01", note="n" * 4000)])
            assert client.post("/api/v1/alerts", content=big, headers=WEBHOOK).status_code == 503
            full["on"] = False
            store.engine.dispose()
            assert client.get("/healthz").status_code == 200
            assert client.post("/api/v1/alerts", content=big, headers=WEBHOOK).status_code == 202
    finally:
        store.dispose()
