"""Shared fixtures: real git repositories, the real store, the real CLI.

PostgreSQL: set TERRY_TEST_POSTGRES_URL (``.ci/run`` does) and every test using ``store_url``
runs against it as well as SQLite.

In parallel (``-n 2``, as ``scripts/test.sh`` runs the suite; pytest-xdist): a module's
tests run in order on one worker (its module fixtures are made once), and every lab test
runs on one worker, one after another, first: two labs at once would share two CPUs and
the loop devices, and the lab is the longest unit of work.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from terry.cli import main
from terry.config import load_config
from terry.demo import example
from terry.gitops.init import init_repository
from terry.store import Store

POSTGRES = os.environ.get("TERRY_TEST_POSTGRES_URL")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _in_lab(path: str) -> bool:
    return path.startswith("tests/lab/")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scheduler by scope, the scope being a test's module, or the lab for
    every lab test. (``--dist loadgroup`` would do it by marks, but its group names ride on
    ``item._nodeid``, which pytest 9.2 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class Grouped(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/lab" if _in_lab(path) else path

    return Grouped(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: the lab's tests first (the workers hand out work in this order)."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: not _in_lab(item.nodeid))


def _postgres_database() -> str:
    """A fresh database on the test server, so tests never see each other's rows."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    assert POSTGRES
    name = f"terry_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    _CREATED.append(name)
    return make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)


_CREATED: list[str] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The test databases this process made are dropped (a server kept between runs grew
    by one database per test); anything still connected is disconnected."""
    if not (POSTGRES and _CREATED):
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in _CREATED:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except SQLAlchemyError as exc:  # (FORCE) is PostgreSQL 13's: the results stand as they are
        print(f"\nthe test databases were not all dropped: {exc}", file=sys.stderr)
    finally:
        admin.dispose()
    _CREATED.clear()


@pytest.fixture(params=["sqlite", "postgresql"] if POSTGRES else ["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'terry.db'}"
    return _postgres_database()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    s.migrate()
    yield s
    s.dispose()


@dataclass
class Cli:
    """The real ``terry`` command, in process, against one GitOps repository."""

    repo: Path
    env: dict[str, str]

    def __call__(self, *args: str, input: str | bytes | None = None) -> Any:
        runner = CliRunner()
        return runner.invoke(
            main,
            ["--repo", str(self.repo), *args],
            input=input,
            env=self.env,
            catch_exceptions=False,
        )

    def ok(self, *args: str, input: str | bytes | None = None) -> Any:
        """``self(*args)``, which must exit 0: what it printed is the failure's message."""
        result = self(*args, input=input)
        assert result.exit_code == 0, f"terry {' '.join(args)}: exit {result.exit_code}\n" + (
            result.stdout + result.stderr
        )
        return result

    def as_(self, actor: str) -> Cli:
        """This CLI run by ``actor`` (TERRY_ACTOR): ``--as`` names only yourself now."""
        return Cli(self.repo, {**self.env, "TERRY_ACTOR": actor})

    def json(self, *args: str, input: str | bytes | None = None) -> Any:
        return json.loads(self.ok(*args, "--output", "json", input=input).stdout)


def make_cli(repo: Path, store_url: str | None = None) -> Cli:
    env = {
        "TERRY_ACTOR": "",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    if store_url:
        env["TERRY_DATABASE_URL"] = store_url
    return Cli(repo, env)


def ingest_then_kill(cli: Cli, body: str, ready: Callable[[], bool], what: str) -> None:
    """``terry alert ingest`` of ``body`` in a process of its own, killed outright (SIGKILL:
    no handler runs) once ``ready()`` (a store not made yet is not ready); at most a minute."""
    import subprocess
    import sys
    import time

    from terry.errors import StoreError

    terry = subprocess.Popen(
        [sys.executable, "-m", "terry", "--repo", str(cli.repo), "alert", "ingest", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **cli.env},
    )
    assert terry.stdin is not None
    terry.stdin.write(body.encode())
    terry.stdin.close()

    def now_ready() -> bool:
        try:
            return ready()
        except StoreError:
            return False

    try:
        deadline = time.monotonic() + 60
        while not now_ready():
            assert terry.poll() is None, f"terry ended before {what}"
            assert time.monotonic() < deadline, f"no {what} within a minute"
            time.sleep(0.1)
    finally:
        terry.kill()
        terry.wait()


@contextmanager
def example_fleet(repo: Path) -> Iterator[Cli]:
    """A GitOps repository made by ``terry init`` at ``repo`` with its example hosts up (local
    connection, scratch roots); they are taken down afterwards."""
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    cli = make_cli(repo)
    up = cli("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    try:
        yield cli
    finally:
        example.down(config_for(repo))


@pytest.fixture
def gitops(tmp_path: Path) -> Path:
    """A fresh GitOps repository made by ``terry init`` (example hosts not started)."""
    return init_repository(tmp_path / "ops").path


def payload(
    alerts: list[dict[str, Any]],
    *,
    status: str = "firing",
    truncated: int = 0,
    group: str = "{}:{}",
) -> str:
    return json.dumps(
        {
            "version": "4",
            "groupKey": group,
            "truncatedAlerts": truncated,
            "status": status,
            "receiver": "terry",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": alerts,
        }
    )


def alert(
    alertname: str,
    *,
    fingerprint: str,
    status: str = "firing",
    starts: str = "2026-11-24T10:00:00Z",
    ends: str = "0001-01-01T00:00:00Z",
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, **labels},
        "annotations": annotations or {"summary": f"{alertname} test"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def count_rows(store: Store, model: type, *where: Any) -> int:
    """Rows of ``model`` in ``store`` matching ``where``: what the tests check the store by."""
    from sqlalchemy import func, select

    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def config_for(repo: Path):
    return load_config(repo, environ={})


def stored_proposal(
    store: Store,
    *,
    fingerprint: str,
    hosts: list[str],
    source: str = "alert",
    title: str = "DiskUsageHigh",
    **proposal: Any,
) -> int:
    """A proposal row as the propose and dry-run steps leave it (``checked``, its dry run
    fine), with its incident, for tests of the steps after them; ``proposal`` sets or
    overrides its columns (remedy, risk, plan, state...). Its id."""
    from terry.store.models import IncidentRow, ProposalRow, utcnow

    now = utcnow()
    with store.session() as session:
        incident = IncidentRow(
            fingerprint=fingerprint,
            source=source,
            title=title,
            host=hosts[0],
            state="open",
            opened_at=now,
        )
        session.add(incident)
        session.flush()
        columns: dict[str, Any] = {
            "remedy": "disk-usage-high",
            "role": "disk_cleanup",
            "params": {},
            "risk": "low",
            "state": "checked",
            "check_summary": {
                "ok": True,
                "changed": 1,
                "failed_hosts": [],
                "unreachable_hosts": [],
            },
            "modules": ["ansible.builtin.file"],
            "created_at": now,
            "updated_at": now,
            **proposal,
        }
        row = ProposalRow(incident_id=incident.id, hosts=hosts, **columns)
        session.add(row)
        session.flush()
        return row.id
