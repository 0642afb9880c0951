"""A storm whose hosts AWX applies (issue 18: storms, canary waves and the awx applier),
through the real CLI, Terry's AWX client and the local AWX stand-in that runs each job's
playbook with ansible-runner. Four staging hosts (local connection, 4 MiB quotas) fold into
one proposal: one check job over all four, then a canary wave and the rest, each its own
job limited to its hosts.

What a job that stopped before the proposal's playbook did is nothing: AWX's inventory is
its own, so a host can be gone, or another machine can answer at its address, at a later
job than the dry run; the entry playbook's identity probe (playbooks/terry-awx.yml) then
ends the whole job (any_errors_fatal) before any play of the proposal runs. Such a job is
refused as the ansible applier refuses a run: no host is called fixed or verified on a
play that never began, and nothing is rolled back where nothing changed. The same for a job
AWX ended before any play (a failed project sync, a cancel), with AWX's explanation.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from terry.appliers.awx import PROBE_PLAY
from terry.cli import main
from terry.demo import example
from tests.conftest import REPO_ROOT, Cli, alert, config_for, make_cli, payload
from tests.fakes.awx_api import FakeAWX

pytestmark = pytest.mark.integration

TOKEN = "awx-storm-token-5678"
HOSTS = ["s-01", "s-02", "s-03", "s-04"]
REST = "s-02,s-03,s-04"  # the wave after the canary (s-01)
# Another machine at s-03's address (its node name is not db-99), and s-03 gone.
IMPOSTOR = {"terry_hostname": "db-99"}
DOWN = {
    "ansible_connection": "ssh",
    "ansible_host": "127.0.0.1",
    "ansible_port": 1,
    "ansible_ssh_common_args": "-o ConnectTimeout=2 -o BatchMode=yes",
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Cli, FakeAWX]]:
    repo = tmp_path / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    hosts = repo / "inventories" / "example" / "hosts.yml"
    inventory = yaml.safe_load(hosts.read_text())
    inventory["all"]["children"] = {
        "staging": {
            "vars": {"terry_environment": "staging", "terry_applier": "awx"},
            "hosts": {
                name: {
                    "terry_root": str(repo / ".terry" / "hosts" / name),
                    "terry_disk_quota_mb": 4,
                }
                for name in HOSTS
            },
        }
    }
    hosts.write_text(yaml.safe_dump(inventory, sort_keys=False))
    fake = FakeAWX(repo, token=TOKEN)
    fake.add_template("terry-disk-usage-high")
    settings = yaml.safe_load((repo / "terry.yml").read_text())
    settings["canary"] = {"min_hosts": 3, "percent": 10, "watch": 0}
    settings["awx"] = {"url": fake.base_url, "poll_interval": 0.05, "timeout": 120}
    (repo / "terry.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    cli = make_cli(repo)
    cli.env["TERRY_AWX_TOKEN"] = TOKEN
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo), **cli.env}
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "AWX hosts"], check=True, env=env)
    config = config_for(repo)
    for name in HOSTS:
        (repo / ".terry" / "hosts" / name / "srv" / "data").mkdir(parents=True)
        example.break_host(config, name, example.Fault.DISK)
    fake.start()
    yield cli, fake
    fake.stop()


def _jobs(fake: FakeAWX) -> list[tuple[str, str, str]]:
    return [(j["job_type"], j["job_tags"], j["limit"]) for j in fake.launches()]


def _logs(cli: Cli, name: str) -> list[str]:
    return sorted(p.name for p in (cli.repo / ".terry/hosts" / name / "srv/data/log").iterdir())


def _storm(cli: Cli, tag: str) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    body = payload(
        [
            alert("DiskUsageHigh", fingerprint=f"{tag}-{n}", host=n, mountpoint="/srv/data")
            for n in HOSTS
        ]
    )
    outcomes = cli.json("alert", "ingest", "-", input=body)["proposals"]
    [pid] = {o["proposal_id"] for o in outcomes}  # one proposal for the storm
    detail = cli.json("proposals", "show", str(pid))
    return detail, {h["host"]: (h["state"], h["detail"]) for h in detail["host_outcomes"]}


def _run(tags: str, limit: str) -> Any:
    return lambda launch: launch.get("job_tags") == tags and launch.get("limit") == limit


def test_the_probe_is_the_first_play_of_the_awx_entry_playbook() -> None:
    plays = yaml.safe_load((REPO_ROOT / "playbooks" / "terry-awx.yml").read_text())
    assert plays[0]["name"] == PROBE_PLAY and plays[0]["any_errors_fatal"] is True


def test_a_storm_through_awx_is_one_check_job_then_a_job_per_wave(
    world: tuple[Cli, FakeAWX],
) -> None:
    cli, fake = world
    detail, states = _storm(cli, "plain")
    assert detail["summary"]["state"] == "verified", detail["summary"]
    assert {s for s, _ in states.values()} == {"verified"}
    runs = [j for j in _jobs(fake) if j[1] in ("apply", "rollback")]
    assert runs == [
        ("check", "apply", ",".join(HOSTS)),
        ("run", "apply", "s-01"),
        ("run", "apply", REST),
    ]


@pytest.mark.parametrize("trouble", [IMPOSTOR, DOWN], ids=["another-machine", "gone"])
def test_a_wave_stopped_at_the_probe_changed_nothing_and_is_not_rolled_back(
    world: tuple[Cli, FakeAWX], trouble: dict[str, Any]
) -> None:
    cli, fake = world
    fake.awx_host_vars("s-03", trouble, _run("apply", REST))
    before = {h: _logs(cli, h) for h in HOSTS[1:]}
    detail, states = _storm(cli, "probe-apply")
    assert states["s-01"][0] == "verified"  # the canary, before s-03 went wrong
    for host in HOSTS[1:]:
        assert _logs(cli, host) == before[host]  # the job never reached the fix
        state, said = states[host]
        assert state not in ("verified", "rolled_back"), (host, states[host])
        assert "refused, nothing was changed" in said and "s-03" in said, (host, said)
    # nothing changed on the wave: no rollback job, and no host said to fail verification
    assert [j for j in _jobs(fake) if j[1] == "rollback"] == []
    assert not any("verification failed" in said for _s, said in states.values())
    assert detail["summary"]["state"] != "verified"


def test_a_verify_job_stopped_at_the_probe_verifies_no_host(
    world: tuple[Cli, FakeAWX],
) -> None:
    """The wave's fix ran; its verify job stopped at the probe (s-03 gone): the verify tasks
    ran on no host, so none of the wave is verified: each is unknown, not fixed."""
    cli, fake = world
    fake.awx_host_vars("s-03", DOWN, _run("verify", REST))
    detail, states = _storm(cli, "probe-verify")
    assert states["s-01"][0] == "verified"
    for host in HOSTS[1:]:
        assert states[host][0] == "unknown", (host, states[host])
    assert detail["summary"]["state"] != "verified"


@pytest.mark.parametrize("status", ["error", "canceled"])
def test_a_canary_job_awx_ended_before_any_play_is_not_rolled_back(
    world: tuple[Cli, FakeAWX], status: str
) -> None:
    cli, fake = world
    why = 'Previous Task Failed: {"job_type": "project_update", "job_name": "ops"}'
    fake.end_early(status, why, _run("apply", "s-01"))
    before = {h: _logs(cli, h) for h in HOSTS}
    detail, states = _storm(cli, f"early-{status}")
    assert detail["summary"]["state"] != "verified"
    state, said = states["s-01"]
    assert state not in ("verified", "rolled_back"), states["s-01"]
    assert f"ended {status} before any play began" in said and "Previous Task Failed" in said
    assert {states[h][0] for h in HOSTS[1:]} == {"held"}
    changing = [j for j in _jobs(fake) if j[1] in ("apply", "rollback") and j[0] == "run"]
    assert changing == [("run", "apply", "s-01")]  # no rollback, and the rest never launched
    assert {h: _logs(cli, h) for h in HOSTS} == before
