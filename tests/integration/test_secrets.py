"""Secrets never leave their place (DESIGN.md, invariant 9), for real.

- Ansible gets an allow-listed environment: with a credential in Terry's environment whose
  name no deny-list knew (``FOO_API_KEY``) and a database URL with a password, a real fix
  on the example hosts (dry run, apply, verify) leaves neither anywhere in the runs'
  private directories (artifacts, the ``command`` file with ansible's environment, facts)
  nor in the store.
- What ansible prints is redacted where it enters Terry: a task that prints a configured
  secret (read from a file) leaves ``[redacted]`` in the events, the failure message and
  every artifact.
- An AI endpoint whose error echoes the API key: the incident's attention, its audit trail,
  the CLI's text and JSON, and the log hold ``[redacted]``.
- GitHub (or a proxy in front of it) echoing the token: the ``ForgeError`` does not.

Real ansible-playbook (local connection), real git, the real anthropic client and PyGithub
against local servers on loopback, the real store.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from terry.app import build_pipeline
from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.config import Config, GitHubConfig
from terry.demo import example
from terry.errors import ForgeError
from terry.forges.github import Credentials, GitHubForge
from terry.gitops.repo import Repo
from terry.redact import REDACTED
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from terry.store.models import Base
from tests.conftest import Cli, alert, config_for, make_cli, payload
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.local_server import LocalServer

pytestmark = pytest.mark.integration

API_KEY = "canary-foo-api-key-7f3a9c"
DB_PASSWORD = "canarypw-41d7"
DB_URL = f"postgresql://u:{DB_PASSWORD}@h/db"
CLAUDE_KEY = "sk-ant-api03-CANARY-secrets-0000"
GITHUB_TOKEN = "ghp_CANARYsecretsTokenValue0000"


def _files_holding(directory: Path, *needles: str) -> list[str]:
    """Every file under ``directory`` whose bytes hold one of ``needles``."""
    found = []
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {n}" for n in needles if n.encode() in data]
    return found


def _store_text(store: Store) -> str:
    """Every row of every table of the store, as text."""
    rows = []
    with store.session() as session:
        for table in Base.metadata.sorted_tables:
            rows += [repr(tuple(row)) for row in session.execute(select(table))]
    return "\n".join(rows)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    repo = tmp_path_factory.mktemp("secrets") / "ops"
    cli = make_cli(repo)
    cli.ok("init", str(repo))
    cli.ok("example", "up")
    yield cli
    example.down(config_for(repo))


def test_a_real_fix_leaves_no_credential_in_artifacts_or_the_store(
    fleet: Cli, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.ok("example", "break", "web-01", "disk")
    monkeypatch.setenv("FOO_API_KEY", API_KEY)
    monkeypatch.setenv("TERRY_DATABASE_URL", DB_URL)  # Terry's own store: not ansible's
    config = config_for(fleet.repo)  # the store is the test's, not the URL above
    pipeline = build_pipeline(config, store)
    body = alert(
        "DiskUsageHigh",
        fingerprint="secrets-disk",
        host="web-01",
        mountpoint="/srv/data",
        starts=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    result = pipeline.ingest(parse_payload(payload([body])))
    [outcome] = result.outcomes
    assert outcome.state == "verified", outcome

    runs = config.state_dir / "runs"
    commands = sorted(runs.rglob("command"))
    assert len(commands) >= 3  # check, apply, verify: ansible-runner's record of each run
    for command in commands:
        env = json.loads(command.read_text())["env"]
        assert "PATH" in env and "HOME" in env  # what ansible needs passes
        assert "FOO_API_KEY" not in env and "TERRY_DATABASE_URL" not in env
    assert _files_holding(config.state_dir, API_KEY, DB_PASSWORD) == []
    stored = _store_text(store)
    assert API_KEY not in stored and DB_PASSWORD not in stored


def test_what_a_task_prints_of_a_secret_is_redacted_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOO_API_KEY", API_KEY)
    secret_file = tmp_path / "found-on-the-host"
    secret_file.write_text(API_KEY)
    project = tmp_path / "project"
    project.mkdir()
    (project / "hosts.ini").write_text(
        f"here ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    tasks: list[dict[str, Any]] = [
        {"name": "read", "ansible.builtin.command": f"cat {secret_file}", "register": "out"},
        {"name": "show", "ansible.builtin.debug": {"msg": "it is {{ out.stdout }}"}},
        {"name": "refuse", "ansible.builtin.fail": {"msg": "refused {{ out.stdout }}"}},
    ]
    play = [{"hosts": "all", "gather_facts": False, "tasks": tasks}]
    (project / "play.yml").write_text(yaml.safe_dump(play))
    private = tmp_path / "run"
    result = AnsibleRunnerApplier().run(
        RunRequest(
            project_dir=project,
            playbook="play.yml",
            private_dir=private,
            inventory=("hosts.ini",),
            hosts=(),
            withhold=Config().secret_env_names,
        )
    )
    assert result.status.value == "failed"
    assert result.failure_messages() == [f"here: refuse: refused {REDACTED}"]
    shown = [e.message for e in result.events if e.task == "show" and e.message]
    assert shown == [f"it is {REDACTED}"]
    assert API_KEY not in json.dumps([e.raw for e in result.events])  # what the store keeps
    assert _files_holding(private, API_KEY) == []  # events, stdout, everything


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(api_key=CLAUDE_KEY)
    server.start()
    yield server
    server.stop()


def test_an_ai_error_echoing_the_key_is_stored_shown_and_logged_redacted(
    tmp_path: Path, claude: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tmp_path / "ops"
    cli = make_cli(repo, f"sqlite:///{tmp_path / 'terry.db'}")
    cli.ok("init", str(repo))
    config = yaml.safe_load((repo / "terry.yml").read_text())
    config["ai"] = {"base_url": claude.base_url, "timeout": 5, "max_retries": 0}
    (repo / "terry.yml").write_text(yaml.safe_dump(config))
    Repo(repo).commit_paths(["terry.yml"], "ask Claude")
    cli.env["ANTHROPIC_API_KEY"] = CLAUDE_KEY
    # a gateway that repeats the request's key in its refusal
    claude.reset()
    claude.error(400, "invalid_request_error", f"key {CLAUDE_KEY} may not use this model")
    caplog.set_level(logging.DEBUG)
    body = payload([alert("AppCannotWritePid", fingerprint="secrets-ai", host="web-01")])
    ingested = cli("alert", "ingest", "-", input=body)
    assert ingested.exit_code == 0, ingested.stdout + ingested.stderr
    assert claude.requests, "Claude was not asked"

    story = cli.json("incidents", "show", "1")
    attention = story["incident"]["attention"]
    assert f"key {REDACTED} may not use this model" in attention
    shown = cli("incidents", "show", "1")
    seen = [
        json.dumps(story),
        shown.stdout,
        shown.stderr,
        ingested.stdout,
        ingested.stderr,
        cli("explain", "1", "--no-ai").stdout,
        caplog.text,
    ]
    for text in seen:
        assert CLAUDE_KEY not in text
    assert f"key {REDACTED} may not use this model" in shown.stdout
    stored = Store(f"sqlite:///{tmp_path / 'terry.db'}")
    try:
        assert CLAUDE_KEY not in _store_text(stored)
    finally:
        stored.dispose()


class _EchoingGitHub(LocalServer):
    """A GitHub API (or a proxy before it) that repeats the request's credentials in its
    refusal, as GitHub's error bodies are shaped."""

    label = "echoing GitHub"

    def _app(self) -> Starlette:
        async def refuse(request: Request) -> JSONResponse:
            given = request.headers.get("authorization", "")
            return JSONResponse(
                {"message": f"Bad credentials: {given}", "documentation_url": "https://x"},
                401,
            )

        return Starlette(routes=[Route("/{path:path}", refuse, methods=["GET", "POST"])])


def test_a_forge_error_echoing_the_token_does_not_carry_it() -> None:
    server = _EchoingGitHub()
    server.start()
    try:
        settings = GitHubConfig(repository="acme/ops", api_url=server.base_url, retries=0)
        forge = GitHubForge(settings, Credentials(token=GITHUB_TOKEN))
        with pytest.raises(ForgeError) as raised:
            _ = forge.bot
    finally:
        server.stop()
    message = str(raised.value)
    assert GITHUB_TOKEN not in message
    assert message == f"github: read the token's user: HTTP 401 Bad credentials: token {REDACTED}"
