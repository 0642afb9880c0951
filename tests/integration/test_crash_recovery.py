"""A crash mid-apply, for real: ``terry serve`` killed with SIGKILL while ansible-playbook
changes a host, then started again (issue 13, items 6 and 7).

Real processes (``terry serve`` as a subprocess, ansible-playbook on the example hosts with
the local connection), real git, real SQLite. The slow remedy's apply sleeps far longer than
the test lasts; the old lock would have stayed for ``runner.timeout * 3 + 60`` seconds (46
minutes) and a fix waiting behind it for ``runner.lock_wait`` (600 s): every wait here is far
below both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import git
import httpx
import pytest
import yaml
from sqlalchemy import select

from terry.app import build_pipeline
from terry.demo import example
from terry.gitops.init import init_repository
from terry.ports import free_port
from terry.service.worker import Worker
from terry.store import Store
from terry.store.locks import host_locks
from terry.store.models import HostLockRow, IncidentRow, ProposalRow, RunRow
from tests.conftest import alert, config_for, make_cli, payload

pytestmark = pytest.mark.integration

TOKEN = "crash-webhook-token-0123456789"
READER = "crash-reader-token-0123456789"

ROLES = {
    # An apply that is still running when the server is killed: it marks its start, then
    # sleeps; verify and the precheck look for what it writes last.
    "slow_fix": {
        "remedies.yml": """remedies:
  - name: slow-fix
    summary: A fix that takes a long while (test)
    match: {alertname: [SlowThing]}
    risk: low
    apply: main
    verify: verify
    rollback: rollback
""",
        "tasks/main.yml": """- name: Mark the start
  ansible.builtin.copy:
    dest: "{{ terry_root }}/srv/data/slow-started"
    content: "started\\n"
    mode: "0644"
- name: Take a long while
  ansible.builtin.command:
    argv: [sleep, "900"]
  when: not ansible_check_mode
  changed_when: false
- name: Mark the end
  ansible.builtin.copy:
    dest: "{{ terry_root }}/srv/data/slow-applied"
    content: "applied\\n"
    mode: "0644"
""",
        "tasks/verify.yml": """- name: Look for the end mark
  ansible.builtin.stat:
    path: "{{ terry_root }}/srv/data/slow-applied"
  register: slow_fix_mark
- name: The fix took
  ansible.builtin.assert:
    that: slow_fix_mark.stat.exists
""",
        "tasks/rollback.yml": """- name: Undo the fix
  ansible.builtin.copy:
    dest: "{{ terry_root }}/srv/data/slow-rolled-back"
    content: "rolled back\\n"
    mode: "0644"
""",
    },
    # A quick fix writing the file its alert names.
    "quick_fix": {
        "remedies.yml": """remedies:
  - name: quick-fix
    summary: A quick fix (test)
    match:
      alertname: [QuickThing]
      labels: {marker: '[a-z0-9-]{1,32}'}
    risk: low
    params:
      marker: {from: label:marker, type: name}
    apply: main
    verify: verify
    rollback: rollback
""",
        "tasks/main.yml": """- name: Write the mark
  ansible.builtin.copy:
    dest: "{{ terry_root }}/srv/data/{{ marker }}"
    content: "fixed\\n"
    mode: "0644"
""",
        "tasks/verify.yml": """- name: Look for the mark
  ansible.builtin.stat:
    path: "{{ terry_root }}/srv/data/{{ marker }}"
  register: quick_fix_mark
- name: The fix took
  ansible.builtin.assert:
    that: quick_fix_mark.stat.exists
""",
        "tasks/rollback.yml": """- name: Remove the mark
  ansible.builtin.file:
    path: "{{ terry_root }}/srv/data/{{ marker }}"
    state: absent
""",
    },
}


class Serve:
    """One ``terry serve`` process, as an operator starts it."""

    def __init__(self, repo: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = repo.parent / f"serve-{self.port}.log"
        env = {
            **os.environ,
            "TERRY_WEBHOOK_TOKEN": TOKEN,
            "TERRY_READ_TOKENS": f"test:{READER}",
        }
        listen = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "terry", "--repo", str(repo), "serve", "--listen", listen],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            wait_for(self._up, 60, "terry serve to answer")
        except AssertionError as exc:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"terry serve did not come up:\n{self.log.read_text()}") from exc

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def post(self, *alerts: dict[str, Any]) -> None:
        response = httpx.post(
            f"{self.url}/api/v1/alerts",
            content=payload(list(alerts)),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text

    def metrics(self) -> str:
        response = httpx.get(
            f"{self.url}/metrics", headers={"Authorization": f"Bearer {READER}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.text

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    path = init_repository(tmp_path / "ops").path
    cli = make_cli(path)
    up = cli("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    written = []
    for role, files in ROLES.items():
        for name, text in files.items():
            target = path / "roles" / role / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            written.append(str(target))
    repository = git.Repo(path)
    repository.index.add(written)
    repository.index.commit("test remedies: a slow fix and a quick one")
    yield path
    _stop_what_is_left(config_for(path).state_dir / "runs")
    example.down(config_for(path))


def _stop_what_is_left(runs_dir: Path) -> None:
    """A failed test must not leave the slow apply's ansible (and its sleep) running."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    doomed = {pid for run in runs_dir.glob("*") for pid in ansible_of_run(run)}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in doomed and pid not in doomed:
                doomed.add(pid)
                grew = True
    for pid in doomed:
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def store(repo: Path) -> Iterator[Store]:
    store = Store(config_for(repo).store_url)
    store.migrate()
    yield store
    store.dispose()


def _root(host: Any) -> Path:
    return Path(str(host.variables["terry_root"]))


def proposal_of(store: Store, fingerprint: str) -> ProposalRow | None:
    with store.session() as session:
        return session.scalar(
            select(ProposalRow)
            .join(IncidentRow, IncidentRow.id == ProposalRow.incident_id)
            .where(IncidentRow.fingerprint == fingerprint)
        )


def state_of(store: Store, fingerprint: str) -> str | None:
    row = proposal_of(store, fingerprint)
    return row.state if row else None


def runs_of(store: Store, proposal_id: int) -> list[tuple[str, str, bool]]:
    """(kind, status, finished?) of each run of a proposal, in order."""
    with store.session() as session:
        return [
            (r.kind, r.status, r.finished_at is not None)
            for r in session.scalars(
                select(RunRow).where(RunRow.proposal_id == proposal_id).order_by(RunRow.id)
            )
        ]


def locks(store: Store) -> dict[str, int | None]:
    with store.session() as session:
        return {row.host: row.proposal_id for row in session.scalars(select(HostLockRow))}


def ansible_of_run(run_dir: Path) -> list[int]:
    """ansible-playbook processes still working for a run (found by the directory
    ansible-runner gives them in their environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if not any(arg.endswith(b"ansible-playbook") for arg in argv[:2]):
            continue
        marker = f"AWX_ISOLATED_DATA_DIR={run_dir}/".encode()
        if any(item.startswith(marker) for item in environ):
            found.append(int(entry.name))
    return found


def test_killed_mid_apply_the_restart_frees_the_host_and_nothing_is_left_behind(
    repo: Path, store: Store
) -> None:
    cli = make_cli(repo)
    web01 = _root(example.example_hosts(config_for(repo))["web-01"]) / "srv/data"
    server = Serve(repo)
    try:
        server.post(alert("SlowThing", fingerprint="crash-slow", host="web-01"))
        wait_for(lambda: (web01 / "slow-started").exists(), 180, "the slow apply to start")
        slow = proposal_of(store, "crash-slow")
        assert slow is not None and slow.state == "applying"
        [apply_run] = [run for kind, run in _run_ids(store, slow.id) if kind == "apply"]
        assert locks(store) == {"web-01": slow.id}

        # A second fix for the same host: its dry run waits for the host (item 7) instead of
        # judging a host that is being changed, and the proposal is queued for it.
        server.post(
            alert("QuickThing", fingerprint="crash-quick-1", host="web-01", marker="quick-1")
        )
        wait_for(lambda: proposal_of(store, "crash-quick-1"), 60, "the second proposal")
        waiting = proposal_of(store, "crash-quick-1")
        assert waiting is not None
        wait_for(lambda: f"queued:{waiting.id}" in locks(store), 60, "it to queue")
        assert state_of(store, "crash-quick-1") == "proposed"
        assert runs_of(store, waiting.id) == []  # no dry run while the host is changed
    finally:
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    run_dir = config_for(repo).state_dir / "runs" / str(apply_run)
    assert ansible_of_run(run_dir)  # the dead server's ansible goes on by itself

    restarted_at = time.monotonic()
    server = Serve(repo)
    try:
        # At once: the dead apply's leftovers stopped, its run finished, its lock released
        wait_for(lambda: state_of(store, "crash-slow") == "interrupted", 60, "interrupted")
        assert ansible_of_run(run_dir) == []
        assert ("apply", "interrupted", True) in runs_of(store, slow.id)
        assert ("apply", "running", False) not in runs_of(store, slow.id)
        assert slow.id not in locks(store).values()
        metrics = server.metrics()
        assert 'terry_runs_total{kind="apply",outcome="interrupted"} 1.0' in metrics
        assert 'kind="apply",outcome="running"' not in metrics
        assert 'terry_proposals_in_state{state="interrupted"} 1.0' in metrics

        # The proposal that was waiting is carried on, not left behind
        wait_for(lambda: state_of(store, "crash-quick-1") == "verified", 240, "it to be fixed")
        assert (web01 / "quick-1").exists()
        # and the next fix for that host applies without waiting for the old lock
        server.post(
            alert("QuickThing", fingerprint="crash-quick-2", host="web-01", marker="quick-2")
        )
        wait_for(lambda: state_of(store, "crash-quick-2") == "verified", 240, "the next fix")
        assert time.monotonic() - restarted_at < 480  # far below the lock's 46 minutes
        assert not (web01 / "slow-applied").exists()  # the killed apply never finished

        # The interrupted proposal rolls back
        rolled = cli.as_("alice").json("proposals", "rollback", str(slow.id))
        assert rolled["state"] == "rolled_back"
        assert (web01 / "slow-rolled-back").exists()
        assert locks(store) == {}
    finally:
        assert server.stop() in (0, -signal.SIGTERM)


def _run_ids(store: Store, proposal_id: int) -> list[tuple[str, int]]:
    with store.session() as session:
        return [
            (r.kind, r.id)
            for r in session.scalars(
                select(RunRow).where(RunRow.proposal_id == proposal_id).order_by(RunRow.id)
            )
        ]


def _lock_wait(repo: Path, seconds: int) -> None:
    config = repo / "terry.yml"
    settings = yaml.safe_load(config.read_text())
    assert "lock_wait" not in (settings.get("runner") or {})
    settings.setdefault("runner", {})["lock_wait"] = seconds  # beside the runner's others
    config.write_text(yaml.safe_dump(settings, sort_keys=False))


def test_a_check_waits_for_a_busy_host_and_a_proposal_that_gave_up_is_carried_on(
    repo: Path, store: Store
) -> None:
    """Another proposal holds web-02 (here: this test, as proposal 999 would). A dry run
    does not run on it meanwhile; a proposal that gave up waiting stays queued, not left
    behind, and the worker carries it on once the host is free."""
    _lock_wait(repo, 3)
    cli = make_cli(repo)
    config = config_for(repo)
    web02 = _root(example.example_hosts(config)["web-02"]) / "srv/data"
    # merged before the host is busy; applied later
    merged = ingest(cli, "wait-merged", "--no-apply")
    assert merged["state"] == "merged"
    later = merged["proposal_id"]

    busy, free = threading.Event(), threading.Event()

    def hold() -> None:
        with host_locks(store, ("web-02",), proposal_id=999, ttl=timedelta(minutes=30)):
            busy.set()
            free.wait(600)

    holder = threading.Thread(target=hold)
    holder.start()
    assert busy.wait(10)
    try:
        # the dry run waits 3 s, then the proposal stays proposed and queued: no check ran
        checked = ingest(cli, "wait-checked")
        assert checked["state"] == "proposed", checked
        first = checked["proposal_id"]
        assert runs_of(store, first) == []
        assert f"queued:{first}" in locks(store)

        # an apply that gave up waiting: the proposal stays merged, and queued
        refused = cli("proposals", "apply", str(later))
        said = refused.stderr + refused.stdout
        assert refused.exit_code == 5, said
        assert "host web-02 is busy: proposal 999 is running there" in said
        assert "stays queued" in said
        assert state_of(store, "wait-merged") == "merged"
        assert f"queued:{later}" in locks(store)

        worker = Worker(
            lambda: build_pipeline(config, store), store, poll_seconds=0.2, sweep_seconds=0.5
        )
        worker.start()
        try:
            time.sleep(3)  # the host is still busy: nothing is carried on meanwhile
            assert state_of(store, "wait-checked") == "proposed"
            assert state_of(store, "wait-merged") == "merged"
            free.set()
            holder.join(10)

            def done() -> bool:
                states = {state_of(store, f) for f in ("wait-checked", "wait-merged")}
                return states == {"verified"}

            try:
                wait_for(done, 240, "both to be carried on")
            except AssertionError as exc:
                states = [state_of(store, f) for f in ("wait-checked", "wait-merged")]
                raise AssertionError(f"{exc}: {states}, locks {locks(store)}") from exc
        finally:
            assert worker.stop(timeout=300)
        assert (web02 / "wait-checked").exists() and (web02 / "wait-merged").exists()
        assert [kind for kind, _s, _f in runs_of(store, first)] == ["check", "apply", "verify"]
        assert locks(store) == {}
    finally:
        free.set()
        holder.join(10)


def ingest(cli: Any, marker: str, *args: str) -> dict[str, Any]:
    """A QuickThing alert on web-02 writing ``marker``: its one proposal's outcome."""
    body = payload([alert("QuickThing", fingerprint=marker, host="web-02", marker=marker)])
    out = cli.json("alert", "ingest", "-", *args, input=body)
    [outcome] = out["proposals"]
    return outcome
