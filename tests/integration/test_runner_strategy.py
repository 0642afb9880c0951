"""runner.strategy (issue 19): Terry's runs under Mitogen's strategy for Ansible.

Real ansible-playbook with Mitogen's ``mitogen_linear`` strategy (local connection to the
example hosts' scratch roots), real git, real regorus, SQLite: a disk fix is checked,
applied, verified and recorded exactly as under Ansible's own strategy, and the recorded
run says which strategy ran it. The gain is measured by ``bench/mttr.py --strategy``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from terry.config import RunnerConfig
from tests.conftest import Cli, alert, example_fleet, payload

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    mp = pytest.MonkeyPatch()
    mp.setenv("TERRY_RUNNER_STRATEGY", "mitogen_linear")
    with example_fleet(tmp_path_factory.mktemp("strategy") / "ops") as cli:
        yield cli
    mp.undo()


def _recorded_env(run: dict[str, object]) -> dict[str, str]:
    [command] = Path(str(run["artifact_dir"])).glob("**/command")
    return json.loads(command.read_text())["env"]


def test_a_fix_under_mitogen_is_checked_applied_verified_and_says_so(fleet: Cli) -> None:
    fleet("example", "break", "web-01", "disk")
    body = payload(
        [alert("DiskUsageHigh", fingerprint="mitogen-1", host="web-01", mountpoint="/srv/data")]
    )
    [outcome] = fleet.json("alert", "ingest", "-", input=body)["proposals"]
    assert outcome["state"] == "verified", outcome
    detail = fleet.json("proposals", "show", str(outcome["proposal_id"]), "--events")
    runs = {r["kind"]: r for r in detail["runs"]}
    assert {"check", "apply", "verify"} <= set(runs)
    for kind in ("check", "apply"):
        env = _recorded_env(runs[kind])
        assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
        assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()
    cleanup = [e for e in runs["apply"]["events"] if e["task"] and "remove old files" in e["task"]]
    assert [e["status"] for e in cleanup if e["status"]] == ["changed"]


def test_an_unknown_strategy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="mitogen_linear"):
        RunnerConfig.model_validate({"strategy": "mitogen"})
