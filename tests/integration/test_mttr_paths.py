"""Faster to fixed (issue 19): a remedy's verify in the apply's own ansible run.

Real ansible-playbook (local connection to the example hosts' scratch roots), real git,
real regorus, SQLite. A remedy that says ``verify_in_apply_run: true`` is applied and
verified by one ansible run; the record still shows the fix and its verification apart
(an apply run and a verify run, each with its own tasks and status), a verify that fails
in that run still rolls the fix back, and a verify that cannot tell is still not healthy.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from terry.appliers.ansible import split_verify
from terry.appliers.base import RunnerEvent, RunResult, RunStatus
from terry.verify.judge import Outcome, judge_run
from tests.conftest import Cli, alert, example_fleet, payload

pytestmark = pytest.mark.integration

VERIFY_TASK = "Check the usage against the threshold"  # roles/disk_cleanup/tasks/verify.yml
# roles/disk_cleanup/tasks/change.yml
FIX_TASK = "Write the manifest, then remove old files and compress logs"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with example_fleet(tmp_path_factory.mktemp("mttr") / "ops") as cli:
        yield cli


def _disk(cli: Cli, host: str, fingerprint: str, **labels: str) -> dict[str, Any]:
    body = payload(
        [
            alert(
                "DiskUsageHigh",
                fingerprint=fingerprint,
                host=host,
                mountpoint="/srv/data",
                **labels,
            )
        ]
    )
    [outcome] = cli.json("alert", "ingest", "-", input=body)["proposals"]
    return outcome


def _runs(cli: Cli, proposal_id: int) -> dict[str, dict[str, Any]]:
    detail = cli.json("proposals", "show", str(proposal_id), "--events")
    return {r["kind"]: r for r in detail["runs"]}


def _tasks(run: dict[str, Any]) -> set[str]:
    return {e["task"] for e in run["events"] if e["host"] and e["task"]}


def _data(cli: Cli, host: str) -> Path:
    return cli.repo / ".terry" / "hosts" / host / "srv" / "data"


def test_a_fix_verified_in_its_apply_run_records_apply_and_verify_apart(fleet: Cli) -> None:
    fleet("example", "break", "web-02", "disk")
    outcome = _disk(fleet, "web-02", "mttr-together")
    assert outcome["state"] == "verified", outcome
    detail = fleet.json("proposals", "show", str(outcome["proposal_id"]), "--events")
    assert [r["kind"] for r in detail["runs"]] == ["check", "apply", "verify"]
    runs = {r["kind"]: r for r in detail["runs"]}
    # one ansible run: the verify run is the apply run's verify play, same artifacts
    assert runs["verify"]["artifact_dir"] == runs["apply"]["artifact_dir"]
    assert runs["apply"]["status"] == runs["verify"]["status"] == "successful"
    assert FIX_TASK in _tasks(runs["apply"]) and VERIFY_TASK not in _tasks(runs["apply"])
    assert VERIFY_TASK in _tasks(runs["verify"]) and FIX_TASK not in _tasks(runs["verify"])
    assert "verify tasks passed" in detail["outcome"]
    assert "ran in the apply's run" in detail["outcome"]
    states = [h["what"] for h in detail["history"]]
    assert states.index("applying → applied") < states.index("applied → verified")


def test_a_fix_whose_verify_fails_in_the_same_run_is_rolled_back(fleet: Cli) -> None:
    fleet("example", "break", "web-01", "disk")
    keep = _data(fleet, "web-01") / "keep.bin"  # 4 MiB the cleanup never touches
    keep.write_bytes(os.urandom(4 * 1024 * 1024))
    logs = _data(fleet, "web-01") / "log"
    before = sorted(p.name for p in logs.iterdir() if not p.name.endswith(".gz"))
    try:
        # threshold 1%: the fix cannot get there; approved anyway, its verify fails
        outcome = _disk(fleet, "web-01", "mttr-rollback", threshold="1")
        assert outcome["state"] == "awaiting_review", outcome
        pid = str(outcome["proposal_id"])
        approved = fleet.as_("erin").json("proposals", "approve", pid)
        assert approved["state"] == "rolled_back", approved
    finally:
        keep.unlink()
    detail = fleet.json("proposals", "show", pid, "--events")
    assert [r["kind"] for r in detail["runs"]] == ["check", "apply", "verify", "rollback"]
    runs = {r["kind"]: r for r in detail["runs"]}
    assert runs["verify"]["artifact_dir"] == runs["apply"]["artifact_dir"]
    assert runs["apply"]["status"] == "successful"  # the fix itself went through
    assert runs["verify"]["status"] == "failed"  # its verification did not
    assert any(
        e["task"] == VERIFY_TASK and e["status"] == "failed" for e in runs["verify"]["events"]
    )
    assert "verification failed" in detail["outcome"]
    assert "still at or above the threshold of 1%" in detail["outcome"]
    states = [h["what"] for h in detail["history"]]
    assert "applying → applied" in states
    assert "applied → failed" in states and "failed → rolled_back" in states
    after = sorted(p.name for p in logs.iterdir() if not p.name.endswith(".gz"))
    assert set(before) <= set(after)  # the rollback decompressed what the fix compressed


def test_a_remedy_without_the_flag_verifies_in_a_run_of_its_own(fleet: Cli) -> None:
    remedies = fleet.repo / "roles" / "disk_cleanup" / "remedies.yml"
    text = remedies.read_text()
    assert "verify_in_apply_run: true" in text
    remedies.write_text(text.replace("verify_in_apply_run: true", "verify_in_apply_run: false"))
    git = ["git", "-C", str(fleet.repo)]
    env = {**os.environ, **fleet.env}
    subprocess.run([*git, "commit", "-qam", "disk: verify apart"], check=True, env=env)
    try:
        fleet("example", "break", "db-01", "disk")
        outcome = _disk(fleet, "db-01", "mttr-apart")
        assert outcome["state"] in ("verified", "awaiting_review"), outcome
        pid = str(outcome["proposal_id"])
        if outcome["state"] == "awaiting_review":  # production: a person approves
            assert fleet.as_("erin").json("proposals", "approve", pid)["state"] == "verified"
        runs = _runs(fleet, int(pid))
        assert runs["verify"]["artifact_dir"] != runs["apply"]["artifact_dir"]
        assert VERIFY_TASK in _tasks(runs["verify"]) and VERIFY_TASK not in _tasks(runs["apply"])
    finally:
        remedies.write_text(text)
        subprocess.run([*git, "commit", "-qam", "disk: verify in the apply run"], env=env)


# -- the split itself: what cannot be told is not healthy ----------------------------------


def _event(seq: int, host: str | None, play: str, task: str, event: str) -> RunnerEvent:
    res = {"msg": "no"} if event == "runner_on_failed" else {}
    raw = {
        "counter": seq,
        "event": event,
        "created": f"2026-12-04T10:00:0{seq}.000000",
        "event_data": {"host": host, "play": play, "task": task, "res": res},
    }
    return RunnerEvent.from_runner(raw)


def _result(status: RunStatus, *events: RunnerEvent) -> RunResult:
    return RunResult(status, 0, {}, events, None, 9.0)


def test_a_host_the_verify_never_reached_cannot_be_told() -> None:
    ran = _result(
        RunStatus.SUCCESSFUL,
        _event(1, "a", "Fix: x", "fix", "runner_on_ok"),
        _event(2, "b", "Fix: x", "fix", "runner_on_ok"),
        _event(3, "a", "Verify: x", "check", "runner_on_ok"),
    )
    fixed, verified = split_verify(ran, ("a", "b"))
    assert fixed.ok
    assert judge_run(verified).outcome is Outcome.UNKNOWN


def test_a_run_that_timed_out_in_the_verify_play_is_not_verified() -> None:
    ran = _result(
        RunStatus.TIMEOUT,
        _event(1, "a", "Fix: x", "fix", "runner_on_ok"),
        _event(2, None, "Verify: x", "check", "playbook_on_task_start"),
    )
    fixed, verified = split_verify(ran, ("a",))
    assert fixed.ok  # the fix play had ended: rolling back is for a failed verify
    assert judge_run(verified).outcome is Outcome.UNKNOWN


def test_a_fix_that_failed_is_failed_whatever_the_verify_said() -> None:
    ran = _result(
        RunStatus.FAILED,
        _event(1, "a", "Fix: x", "fix", "runner_on_failed"),
        _event(2, "b", "Fix: x", "fix", "runner_on_ok"),
        _event(3, "b", "Verify: x", "check", "runner_on_ok"),
    )
    fixed, _verified = split_verify(ran, ("a", "b"))
    assert not fixed.ok and fixed.failed_hosts == ("a",)
