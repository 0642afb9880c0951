"""``terry serve``: the webhook's contract with Alertmanager, over real HTTP on loopback.

Real uvicorn processes (started and killed like in production), real SQLite/PostgreSQL,
and the real pipeline behind the worker.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from terry.demo import example
from terry.gitops.init import init_repository
from terry.ports import free_port
from terry.store import Store
from terry.store.models import AlertRow, InboxRow, IncidentRow, ProposalRow, RunRow
from tests.conftest import (
    POSTGRES,
    _postgres_database,
    alert,
    config_for,
    count_rows,
    make_cli,
    payload,
)
from tests.webhook_bodies import bodies

pytestmark = pytest.mark.integration
TOKEN = "s3cret-webhook-token"
READ_TOKEN = "s3cret-reader-token-of-ops"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
# uvicorn shuts down gracefully on SIGTERM, then re-raises the signal: -15 is a clean exit.
CLEAN = (0, -signal.SIGTERM)
PER_HOST = 30  # incidents per host in the one-notification storm


class Serve:
    """One ``terry serve`` process."""

    def __init__(
        self, repo: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = repo.parent / f"serve-{self.port}.log"
        environ = {
            **os.environ,
            "TERRY_WEBHOOK_TOKEN": TOKEN,
            "TERRY_READ_TOKENS": f"ops:{READ_TOKEN}",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "terry",
                "--repo",
                str(repo),
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
                *args,
            ],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            env=environ,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"terry serve did not come up:\n{self.log.read_text()}")

    def post(
        self, body: str | bytes, *, token: str | None = TOKEN, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(
            f"{self.url}/api/v1/alerts",
            content=body,
            headers={"Content-Type": "application/json", **auth, **(headers or {})},
            timeout=10,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def wait_for(predicate: Callable[[], Any], timeout: float = 90, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


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


def test_webhook_refuses_bad_requests_and_stores_nothing(repo: Path, store_for: Store) -> None:
    server = Serve(repo, args=("--no-worker",))
    try:
        good = payload([alert("DiskUsageHigh", fingerprint="srv-1", host="web-01")])
        assert server.post(good, token=None).status_code == 401
        wrong = server.post(good, token="guess")
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        big = server.post(b"{" + b" " * 2_000_000 + b"}")
        assert big.status_code == 413
        bad = server.post(b"{not json")
        assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
        missing = server.post(json.dumps({"version": "4", "status": "firing", "alerts": []}))
        assert missing.status_code == 400 and "groupKey" in missing.json()["error"]
        assert count_rows(store_for, InboxRow) == 0

        accepted = server.post(good)
        assert accepted.status_code == 202
        assert accepted.json() == {"accepted": 1, "stored": True}
        # committed before the 202: another connection sees it at once
        assert count_rows(store_for, InboxRow) == 1
        wait_for(lambda: count_rows(store_for, AlertRow) == 1, 10, "the alert to be folded")
        for _ in range(20):  # Alertmanager re-sends the group on every group_interval
            assert server.post(good).status_code == 202
        assert count_rows(store_for, InboxRow) == 21
        wait_for(
            lambda: count_rows(store_for, InboxRow, InboxRow.folded_at.is_(None)) == 0,
            10,
            "the inbox to be folded",
        )
        assert count_rows(store_for, AlertRow) == 1
        assert count_rows(store_for, IncidentRow) == 1

        metrics = httpx.get(f"{server.url}/metrics", headers=READ).text
        assert 'terry_alerts_received_total{status="firing"} 1.0' in metrics
        assert 'terry_webhook_requests_total{code="401"} 2.0' in metrics
        assert "terry_alert_to_verified_fix_seconds_bucket" in metrics
        incidents = httpx.get(f"{server.url}/api/v1/incidents", headers=READ).json()
        assert incidents[0]["title"] == "DiskUsageHigh"
        assert httpx.get(f"{server.url}/api/v1/proposals/999", headers=READ).status_code == 404
    finally:
        assert server.stop() in CLEAN


def test_store_unavailable_answers_503_never_4xx(repo: Path) -> None:
    from starlette.testclient import TestClient

    from terry.service.server import create_app

    port = free_port()
    dead = Store(f"postgresql+psycopg://terry:pw-in-url@127.0.0.1:{port}/terry")  # nothing listens
    app = create_app(config_for(repo), dead, token=TOKEN)
    with TestClient(app) as client:
        response = client.post(
            "/api/v1/alerts",
            content=payload([alert("X", fingerprint="u")]),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert health.json()["store"] == "cannot take a write: the database cannot be reached"
        for secret in ("127.0.0.1", str(port), "postgres", "terry@", "pw-in-url"):
            assert secret not in health.text, health.text  # no URL, host or credential


def test_every_read_and_a_stored_token_answer_503_while_the_store_is_down(repo: Path) -> None:
    """Not 401, not 404, not 500: a page or an API read the store failed under says so (503,
    Retry-After), and a stored API token (tk_...) that cannot be checked is not refused: a
    client that sees a 4xx gives up, one that sees 503 retries."""
    from starlette.testclient import TestClient

    from terry.service.server import create_app

    port = free_port()
    dead = Store(f"postgresql+psycopg://terry:pw-in-url@127.0.0.1:{port}/terry")  # nothing listens
    app = create_app(config_for(repo), dead, token=TOKEN, readers={"ops": READ_TOKEN})
    stored = {"Authorization": "Bearer tk_0a1b2c3d_" + "x" * 43}
    reads = [
        ("/api/v1/incidents", READ),
        ("/api/v1/incidents/1", READ),
        ("/api/v1/proposals", READ),
        ("/api/v1/proposals/1", READ),
        ("/api/v1/incidents", stored),
        ("/console", READ),
        ("/incidents/1", READ),
        ("/incidents/1/report", READ),
        ("/proposals/1", READ),
        ("/console/drift/report", READ),
        ("/console/weekly/report", READ),
    ]
    with TestClient(app, raise_server_exceptions=False) as client:
        wrong = []
        for path, headers in reads:
            answer = client.get(path, headers=headers)
            said = answer.status_code, answer.headers.get("retry-after")
            if said != (503, "5"):
                wrong.append(f"{path}: {said} {answer.text[:200]}")
            elif path.startswith("/api/"):
                if answer.json() != {"error": "store unavailable; retry"}:
                    wrong.append(f"{path}: {answer.text[:200]}")
            elif "store cannot be reached just now" not in answer.text:
                wrong.append(f"{path}: the page does not say why: {answer.text[:300]}")
            for secret in ("127.0.0.1", str(port), "pw-in-url", "psycopg"):
                if secret in answer.text:
                    wrong.append(f"{path} shows {secret!r}")
    assert wrong == [], "\n".join(wrong)


def test_hostile_bodies_are_refused_with_the_reason_or_folded_never_500_never_lost(
    repo: Path, store_url: str
) -> None:
    """Each body of tests/webhook_bodies.py posted to a real server, on SQLite and
    PostgreSQL: a 400 naming the reason and nothing stored, or a 202 and its alerts folded."""
    table = bodies()
    store = Store(store_url)
    server = Serve(repo, env={"TERRY_DATABASE_URL": store_url}, args=("--no-worker",))
    try:
        answers = {body.name: server.post(body.raw) for body in table}
        wait_for(
            lambda: count_rows(store, InboxRow, InboxRow.folded_at.is_(None)) == 0,
            30,
            "the inbox to be folded",
        )
        with store.session() as session:
            errors = [e for e in session.scalars(select(InboxRow.error)) if e is not None]
            folded = set(session.scalars(select(AlertRow.fingerprint)))
    finally:
        assert server.stop() in CLEAN
        store.dispose()
    wrong = []
    for body in table:
        answer = answers[body.name]
        if body.refused is not None:
            if answer.status_code != 400 or body.refused not in answer.json().get("error", ""):
                wrong.append(f"{body.name}: {answer.status_code} {answer.text[:200]}")
        elif answer.status_code != 202:
            wrong.append(f"{body.name}: {answer.status_code} {answer.text[:200]}")
        elif not set(body.fingerprints) <= folded:
            wrong.append(f"{body.name}: 202, then lost")
    assert wrong == [], "\n".join(wrong)
    assert errors == []  # every row the webhook took folded
    assert count_rows(store, InboxRow) == sum(1 for b in table if b.refused is None)


def test_killed_after_202_the_alert_is_kept_and_the_restart_finishes_the_work(
    repo: Path, store_for: Store
) -> None:
    cli = make_cli(repo)
    cli.ok("example", "up")
    cli("example", "break", "web-01", "disk")
    server = Serve(repo, args=("--no-worker",))  # accepts, remediates nothing
    response = server.post(
        payload(
            [alert("DiskUsageHigh", fingerprint="srv-kill", host="web-01", mountpoint="/srv/data")]
        )
    )
    assert response.status_code == 202
    server.stop(signal.SIGKILL)
    assert count_rows(store_for, InboxRow) == 1  # durable before the 202
    assert count_rows(store_for, ProposalRow) == 0

    restarted = Serve(repo)
    try:
        wait_for(
            lambda: count_rows(store_for, ProposalRow, ProposalRow.state == "verified") == 1,
            what="the restarted server to fix the disk",
        )
    finally:
        assert restarted.stop() in CLEAN
    host = example.example_hosts(config_for(repo))["web-01"]
    assert example.disk_percent(host) < 80


SLOW_REMEDY = """remedies:
  - name: slow-fix
    summary: A fix that takes a while (test)
    match: {alertname: [SlowThing]}
    risk: low
    apply: main
    verify: main
    rollback: main
"""
SLOW_TASKS = """- name: Take a while
  ansible.builtin.command:
    argv: [sleep, "4"]
  check_mode: false
  changed_when: false
"""


def test_webhook_stays_fast_while_a_slow_playbook_runs_and_sigterm_is_clean(
    repo: Path, store_for: Store
) -> None:
    role = repo / "roles" / "slow_fix"
    (role / "tasks").mkdir(parents=True)
    (role / "remedies.yml").write_text(SLOW_REMEDY)
    (role / "tasks" / "main.yml").write_text(SLOW_TASKS)
    import git

    git.Repo(repo).index.add([str(role / "remedies.yml"), str(role / "tasks" / "main.yml")])
    git.Repo(repo).index.commit("a slow remedy")
    server = Serve(repo)
    try:
        first = server.post(payload([alert("SlowThing", fingerprint="slow-0", host="web-01")]))
        assert first.status_code == 202
        wait_for(lambda: count_rows(store_for, RunRow) >= 1, what="the slow run to start")
        latencies = []
        for n in range(1, 101):
            body = payload([alert("SlowThing", fingerprint=f"slow-{n}", host="web-02")])
            started = time.perf_counter()
            assert server.post(body).status_code == 202
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        p99 = latencies[98]
        assert p99 < 1.0, f"webhook p99 {p99:.3f}s while a playbook runs"
        assert count_rows(store_for, InboxRow) == 101
    finally:
        code = server.stop(signal.SIGTERM, timeout=120)
    assert code in CLEAN
    assert "Application shutdown complete" in server.log.read_text()
    assert "finishing the work in hand" in server.log.read_text()
    # work not begun stays queued in the store (undiagnosed), for the next start
    undone = count_rows(store_for, IncidentRow, IncidentRow.diagnosed_at.is_(None)) + count_rows(
        store_for, InboxRow, InboxRow.folded_at.is_(None)
    )
    assert undone > 0


# A fix whose problem holds until this very proposal is applied (its verify looks for the
# mark its own apply leaves), so each of several fixes on one host is applied: a fix whose
# problem is already gone is withdrawn before apply (terry.steps.precheck).
MARK_REMEDY = """remedies:
  - name: mark-fix
    summary: Leave this proposal's mark (test)
    match: {alertname: [MarkMissing]}
    risk: low
    apply: main
    verify: verify
    rollback: verify
"""
MARK_TASKS = """- name: Leave the mark
  ansible.builtin.file:
    path: "{{ terry_root }}/mark-{{ terry_proposal_id }}"
    state: touch
"""
MARK_VERIFY = """- name: Look for the mark
  ansible.builtin.stat:
    path: "{{ terry_root }}/mark-{{ terry_proposal_id }}"
  register: mark_fix_found
- name: The mark is there
  ansible.builtin.assert:
    that: mark_fix_found.stat.exists
"""


def _mark_fleet(repo: Path, url: str | None = None) -> None:
    """The example fleet up, and the mark-fix remedy committed to the repository."""
    make_cli(repo, url).ok("example", "up")
    role = repo / "roles" / "mark_fix"
    (role / "tasks").mkdir(parents=True)
    (role / "remedies.yml").write_text(MARK_REMEDY)
    (role / "tasks" / "main.yml").write_text(MARK_TASKS)
    (role / "tasks" / "verify.yml").write_text(MARK_VERIFY)
    import git

    git.Repo(repo).index.add([str(role)])
    git.Repo(repo).index.commit("a remedy that leaves a mark")


def test_alerts_of_one_notification_fold_into_one_proposal_whatever_threads_are_idle(
    repo: Path, store_for: Store
) -> None:
    """Alertmanager sends a storm as one group: its incidents are diagnosed together by one
    worker thread, never split between idle threads (which gave a host a proposal of its
    own beside the storm's)."""
    _mark_fleet(repo)
    server = Serve(repo, args=("--threads", "8"))
    hosts = ("web-01", "web-02", "db-01")
    try:  # many incidents on three hosts in one notification, eight idle threads
        names = [(f"m{n}-{h}", h) for n in range(PER_HOST) for h in hosts]
        body = payload([alert("MarkMissing", fingerprint=f, host=h) for f, h in names])
        assert server.post(body).status_code == 202

        def diagnosed() -> bool:
            done = IncidentRow.diagnosed_at.is_not(None)
            return count_rows(store_for, IncidentRow, done) == 3 * PER_HOST

        wait_for(diagnosed, timeout=120, what="every incident diagnosed")
        with store_for.session() as session:
            made = [sorted(p.hosts) for p in session.scalars(select(ProposalRow))]
        assert made == [sorted(hosts)], (made, server.log.read_text()[-3000:])
    finally:
        server.stop()


@pytest.mark.postgres
@pytest.mark.skipif(
    not POSTGRES and not os.environ.get("CI"),
    reason="needs TERRY_TEST_POSTGRES_URL (scripts/test.sh starts PostgreSQL)",
)
def test_two_servers_on_one_postgres_never_double_apply_or_overlap_a_host(repo: Path) -> None:
    url = _postgres_database()
    _mark_fleet(repo, url)
    env = {"TERRY_DATABASE_URL": url}
    servers = [Serve(repo, env=env), Serve(repo, env=env)]
    store = Store(url)
    try:
        for n in range(6):
            host = ("web-01", "web-02")[n % 2]
            body = payload([alert("MarkMissing", fingerprint=f"pg-{n}", host=host)])
            for server in servers:  # both receive every notification, as with an HA pair
                assert server.post(body).status_code == 202

        def states() -> list[tuple[int, str, str | None]]:
            with store.session() as session:
                return [(p.id, p.state, p.outcome) for p in session.scalars(select(ProposalRow))]

        def all_fixed() -> bool:
            # Storm folding (terry.proposals.storm) may carry several incidents in one
            # proposal (or its next wave): what counts is every incident fixed by a verified
            # proposal, and every proposal verified.
            fixed = count_rows(store, IncidentRow, IncidentRow.fixed_at.is_not(None))
            proposals = count_rows(store, ProposalRow)
            verified = count_rows(store, ProposalRow, ProposalRow.state == "verified")
            return fixed == 6 and proposals == verified

        try:
            wait_for(all_fixed, timeout=240, what="six incidents fixed by verified proposals")
        except AssertionError as exc:
            logs = "\n".join(s.log.read_text()[-3000:] for s in servers)
            raise AssertionError(f"{exc}: {states()}\n{logs}") from exc
        assert count_rows(store, IncidentRow) == 6
        assert 1 <= count_rows(store, ProposalRow) <= 6  # each incident diagnosed once
        with store.session() as session:
            applies = session.execute(
                select(RunRow.proposal_id, RunRow.started_at, RunRow.finished_at, ProposalRow.hosts)
                .join(ProposalRow, ProposalRow.id == RunRow.proposal_id)
                .where(RunRow.kind == "apply")
            ).all()
        assert sorted(p for p, *_ in applies) == sorted({p for p, *_ in applies})  # once each
        by_host: dict[str, list[tuple[Any, Any]]] = {}
        for _pid, start, end, hosts in applies:
            for host in hosts:
                by_host.setdefault(host, []).append((start, end))
        for host, spans in by_host.items():
            spans.sort()
            for (_s1, e1), (s2, _e2) in itertools.pairwise(spans):
                assert e1 <= s2, f"two playbooks ran on {host} at once"
    finally:
        for server in servers:
            server.stop()
        store.dispose()
