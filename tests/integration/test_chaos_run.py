"""A chaos run end to end on the example hosts (no root): ``terry chaos run`` injects a
fault through the real ``chaos`` role (ansible-playbook, local connection), prints its
progress live, waits for Terry, removes the fault, records the run; the run is undetected
(nothing watches CPU on the example hosts), so the team is told through the notifier, a real
delivery to a local receiver of Slack's incoming-webhook shape, and the resilience report
counts it. The journal on PostgreSQL is tested in tests/unit/test_chaos.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from terry.gitops.repo import Repo
from terry.service.schedules import run_schedule
from terry.store import Store
from terry.store.models import ChaosRunRow
from tests.conftest import REPO_ROOT, config_for, make_cli
from tests.fakes.chat_receivers import ChatReceivers

pytestmark = pytest.mark.integration


def test_an_undetected_fault_is_removed_recorded_reported_and_told(gitops: Path) -> None:
    cpu = json.loads((REPO_ROOT / "examples" / "experiments" / "cpu-stress.json").read_text())
    cpu["extensions"][0]["resolve_within"] = 1  # nothing will come: do not wait a minute
    cpu["method"][0]["provider"]["arguments"]["params"] = {"workers": 1, "seconds": 60}
    (gitops / "experiments").mkdir()
    (gitops / "experiments" / "cpu-stress.json").write_text(json.dumps(cpu))
    Repo(gitops).commit_paths(["experiments"], "a chaos experiment")
    settings = yaml.safe_load((gitops / "terry.yml").read_text())
    settings["notifications"] = {
        "routes": [
            {
                "name": "team",
                "url_env": "CHAT_SLACK_URL",
                "format": "slack",
                "events": ["chaos-slow"],
            }
        ],
        "group_window": 0,
    }
    (gitops / "terry.yml").write_text(yaml.safe_dump(settings))
    receivers = ChatReceivers()
    receivers.start()
    try:
        cli = make_cli(gitops)  # the default store: three ansible runs are enough per test
        cli.env["CHAT_SLACK_URL"] = receivers.slack_url

        done = cli("chaos", "run", "cpu-stress", "-o", "json")
        assert done.exit_code == 1, done.stderr  # not resolved
        [run] = json.loads(done.stdout)["runs"]
        assert run["outcome"] == "undetected" and run["environment"] == "staging"
        assert run["notified"] is True and run["incident_id"] is None
        host = run["target"]
        progress = done.stderr  # live lines, in the order things happened
        steps = [
            f"cpu-stress on {host} (staging)",
            f"injecting cpu-stress on {host}",
            "record: incident -, proposal -",
            "Terry verified nothing; on the host the fault is faulty",
            f"removed cpu-stress from {host}",
            "undetected",
        ]
        at = [progress.find(step) for step in steps]
        assert -1 not in at and at == sorted(at), progress
        # the fault's own trace on the host is gone: its workers were killed on remove
        traces = gitops / ".terry" / "hosts" / host / "var" / "tmp" / "terry-chaos"
        assert not (traces / "cpu-stress.pids").exists()

        delivered = cli("notifications", "deliver", "-o", "json")
        assert delivered.exit_code == 0, delivered.stderr
        [text] = receivers.texts("slack")
        assert "chaos run too slow" in text
        assert f"cpu-stress on {host}: undetected, no verified fix" in text
    finally:
        receivers.stop()

    report = cli("chaos", "report", "--format", "json")
    assert report.exit_code == 0, report.stderr
    body = json.loads(report.stdout)
    assert body["judged"] == 1 and body["auto_resolution_rate"] == 0.0
    assert [p["target"] for p in body["undetected"]] == [host]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_run_stopped_by_a_signal_removes_its_fault_and_says_interrupted(
    gitops: Path, sig: signal.Signals
) -> None:
    """docs/chaos.md: stopped (Ctrl-C, SIGTERM), the run removes its fault before it exits
    and is recorded as interrupted. ansible-runner's own signal handlers (installed for the
    whole process at its first run) used to swallow both until resolve_within ran out."""
    cpu = json.loads((REPO_ROOT / "examples" / "experiments" / "cpu-stress.json").read_text())
    cpu["extensions"][0]["resolve_within"] = 300  # stopped long before
    cpu["method"][0]["provider"]["arguments"]["params"] = {"workers": 1, "seconds": 600}
    (gitops / "experiments").mkdir()
    (gitops / "experiments" / "cpu-stress.json").write_text(json.dumps(cpu))
    Repo(gitops).commit_paths(["experiments"], "a chaos experiment")
    env = {**os.environ, **make_cli(gitops).env}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "terry", "--repo", str(gitops), "chaos", "run", "cpu-stress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # as from a terminal: a background job (CI's nohup) inherits SIGINT ignored, and
        # Python then never turns it into KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        traces = gitops / ".terry" / "hosts"
        while not list(traces.glob("*/var/tmp/terry-chaos/cpu-stress.pids")):
            assert proc.poll() is None and time.monotonic() - started < 120, "no fault went in"
            time.sleep(0.2)
        time.sleep(1.0)  # in Terry's wait for a fix
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - started < 200, "the signal was not heeded"
    assert proc.returncode != 0, out
    assert "removed cpu-stress from" in out, out
    assert not list(traces.glob("*/var/tmp/terry-chaos/cpu-stress.pids"))  # no worker left
    store = Store(config_for(gitops).store_url)
    try:
        with store.session() as session:
            [run] = session.scalars(select(ChaosRunRow)).all()
            assert (run.outcome, run.state) == ("interrupted", "finished"), (run.outcome, out)
            assert run.removed_at is not None
    finally:
        store.dispose()


def test_a_chaos_schedule_runs_in_terry_serves_scheduler_thread(gitops: Path) -> None:
    """terry serve runs schedules in a thread of its own, where Python allows no signal
    handlers: chaostoolkit-lib's are left out there, and the run goes to its end."""
    cpu = json.loads((REPO_ROOT / "examples" / "experiments" / "cpu-stress.json").read_text())
    cpu["extensions"][0]["resolve_within"] = 1
    cpu["method"][0]["provider"]["arguments"]["params"] = {"workers": 1, "seconds": 60}
    (gitops / "experiments").mkdir()
    (gitops / "experiments" / "cpu-stress.json").write_text(json.dumps(cpu))
    Repo(gitops).commit_paths(["experiments"], "a chaos experiment")
    settings = yaml.safe_load((gitops / "terry.yml").read_text())
    settings["schedules"] = [
        {"name": "weekly-chaos", "cron": "0 2 * * 1", "run": "chaos", "experiment": "cpu-stress"}
    ]
    (gitops / "terry.yml").write_text(yaml.safe_dump(settings))
    config = config_for(gitops)
    store = Store(config.store_url)
    store.migrate()
    done: list[Any] = []
    try:
        thread = threading.Thread(
            target=lambda: done.append(run_schedule(config, store, "weekly-chaos"))
        )
        thread.start()
        thread.join(timeout=180)
        assert not thread.is_alive() and done, "the schedule did not finish"
        [ran] = done
        assert ran.status in ("done", "failed"), ran
        with store.session() as session:
            [run] = session.scalars(select(ChaosRunRow)).all()
            assert (run.outcome, run.state) == ("undetected", "finished"), run.detail
            assert run.removed_at is not None
    finally:
        store.dispose()


def test_stopping_a_service_that_is_not_running_is_refused_and_starts_nothing(
    gitops: Path,
) -> None:
    """A fault's reverse removes exactly what the fault made: stopping a service that was
    not running is refused (the run fails, saying why), and its rollback starts nothing."""
    stop = yaml.safe_load(
        (REPO_ROOT / "examples" / "experiments" / "service-stop.yaml").read_text()
    )
    stop["extensions"][0]["resolve_within"] = 1
    stop["method"][0]["provider"]["arguments"]["params"]["service"] = "nosuch"
    (gitops / "experiments").mkdir()
    (gitops / "experiments" / "nosuch.yaml").write_text(yaml.safe_dump(stop))
    Repo(gitops).commit_paths(["experiments"], "a chaos experiment")
    cli = make_cli(gitops)
    cli.ok("example", "up")
    try:
        done = cli("chaos", "run", "nosuch", "-o", "json")
        [run] = json.loads(done.stdout)["runs"]
        assert run["outcome"] == "failed", run
        assert "service nosuch is not running: nothing to stop or kill" in done.stderr
        host = gitops / ".terry" / "hosts" / run["target"]
        assert not list(host.glob("run/terry/nosuch*"))  # no service of that name started
    finally:
        cli("example", "down")
