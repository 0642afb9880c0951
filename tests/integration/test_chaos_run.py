"""A chaos run end to end on the example hosts (no root): ``terry chaos run`` injects a
fault through the real ``chaos`` role (ansible-playbook, local connection), prints its
progress live, waits for Terry, removes the fault, records the run; the run is undetected
(nothing watches CPU on the example hosts), so the team is told through the notifier, a real
delivery to a local receiver of Slack's incoming-webhook shape, and the resilience report
counts it. The journal on PostgreSQL is tested in tests/unit/test_chaos.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from terry.gitops.repo import Repo
from tests.conftest import REPO_ROOT, make_cli
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
