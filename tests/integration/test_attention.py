"""What a person sees when Terry stops without a fix (issue 13, item 14): every way a
proposal can end or stop there keeps its incident with the reason and the next step, and
the reason is the real one: an unreachable host is unreachable (not a remedy to fix), and a
service that will not start again says why in its own words (not "non-zero return code").

Real ansible-playbook on the example hosts (local connection, scratch roots), one host
reached over SSH on a port nobody listens on, real git, real regorus, SQLite.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from terry.cli import main
from terry.demo import example
from terry.gitops.repo import Repo
from terry.ports import free_port
from terry.proposals.state import MERGED_STATES, ProposalState, transition
from terry.steps.rollback import interrupt_dead_applies
from terry.store import Store
from tests.conftest import Cli, alert, config_for, make_cli, payload

pytestmark = pytest.mark.integration

FAR = "web-09"  # in the inventory, reached over SSH on a port nobody listens on


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    repo = tmp_path_factory.mktemp("attention") / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    far = {
        "all": {
            "children": {
                "staging": {
                    "hosts": {
                        FAR: {
                            "ansible_connection": "ssh",
                            "ansible_host": "127.0.0.1",
                            "ansible_port": free_port(),
                            "ansible_user": "terry",
                            "terry_root": "",  # a real host's: not one of the example's
                            "terry_services": {"web": {"port": free_port()}},
                        }
                    }
                }
            }
        }
    }
    (repo / "inventories" / "example" / "far.yml").write_text(yaml.safe_dump(far))
    Repo(repo).commit_paths(["inventories/example/far.yml"], f"{FAR}: a host SSH cannot reach")
    cli = make_cli(repo)
    up = cli("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    yield cli
    example.down(config_for(repo))


def _ingest(cli: Cli, *alerts: dict[str, Any], args: tuple[str, ...] = ()) -> dict[str, Any]:
    [outcome] = cli.json("alert", "ingest", "-", *args, input=payload(list(alerts)))["proposals"]
    return outcome


def _attention(cli: Cli, incident_id: int) -> str:
    story = cli.json("incidents", "show", str(incident_id))
    return str(story["incident"]["attention"] or "")


def _root(cli: Cli, host: str) -> Path:
    return cli.repo / ".terry" / "hosts" / host


def _answers(cli: Cli, host: str) -> bool:
    port = example.example_hosts(config_for(cli.repo))[host].variables["terry_services"]["web"]
    try:
        url = f"http://127.0.0.1:{port['port']}/healthz"
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_an_unreachable_host_is_reported_unreachable_not_a_remedy_to_fix(fleet: Cli) -> None:
    outcome = _ingest(fleet, alert("ServiceDown", fingerprint="att-far", host=FAR, service="web"))
    assert outcome["state"] == "denied", outcome
    reasons = " ".join(outcome["reasons"])
    assert f"could not reach {FAR}" in reasons
    assert "fix the remedy" not in reasons  # the remedy is not what failed there
    pid = outcome["proposal_id"]
    attention = _attention(fleet, outcome["incident_id"])
    assert attention.startswith(f"proposal {pid} denied: the dry run could not reach {FAR}")
    assert "Connection refused" in attention  # what SSH said
    assert "nothing was applied" in attention
    assert f"check that {FAR} is up and that SSH reaches it" in attention
    assert f"ansible -i inventories/example {FAR} -m ansible.builtin.ping" in attention
    assert f"terry proposals show {pid} --events" in attention


def test_a_dry_run_that_fails_on_the_host_says_where_and_what_to_read(fleet: Cli) -> None:
    outcome = _ingest(
        fleet, alert("ServiceDown", fingerprint="att-nosuch", host="web-02", service="nosuch")
    )
    assert outcome["state"] == "denied", outcome
    attention = _attention(fleet, outcome["incident_id"])
    pid = outcome["proposal_id"]
    assert attention.startswith(f"proposal {pid} denied: its dry run failed on web-02")
    assert "service=nosuch is not one of the services of web-02" in attention
    assert f"terry proposals show {pid} --events" in attention


def test_a_restart_that_fails_says_what_the_service_said(fleet: Cli) -> None:
    """The service reads its managed config at start: a broken one keeps it down, and the
    failure Terry records is the service's own error, from its log."""
    conf = _root(fleet, "web-01") / "etc" / "app" / "app.conf"
    conf.write_text(conf.read_text().replace("max_connections = 100", "max_connections = lots"))
    fleet("example", "break", "web-01", "service")
    outcome = _ingest(
        fleet, alert("ServiceDown", fingerprint="att-restart", host="web-01", service="web")
    )
    pid = outcome["proposal_id"]
    assert outcome["decision"] == "merge" and outcome["state"] == "failed", outcome
    said = "max_connections = 'lots' is not a whole number from 1 to 100000"
    shown = fleet.json("proposals", "show", str(pid))
    assert shown["outcome"].startswith("apply failed: web-01: Check web started again: ")
    assert "web exited during start: web: cannot start: bad config:" in shown["outcome"]
    assert said in shown["outcome"] and "non-zero return code" not in shown["outcome"]
    attention = _attention(fleet, outcome["incident_id"])
    assert attention.startswith(f"proposal {pid}: apply failed: web-01: Check web started")
    assert said in attention
    assert "its rollback failed too, the same way" in attention  # it cannot start it either
    assert f"terry proposals rollback {pid}` tries the rollback again" in attention
    assert not _answers(fleet, "web-01")

    # The desired state renders the config before it starts the service: site.yml mends it.
    up = fleet("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    assert "max_connections = 100" in conf.read_text() and _answers(fleet, "web-01")


def test_a_fix_that_is_rolled_back_says_so_and_what_next(fleet: Cli) -> None:
    fleet("example", "break", "web-02", "disk")
    # 4 MiB the cleanup does not touch, and a threshold of 1%: verification fails.
    keep = _root(fleet, "web-02") / "srv" / "data" / "keep.bin"
    keep.write_bytes(os.urandom(4 * 1024 * 1024))
    try:
        outcome = _ingest(
            fleet,
            alert(
                "DiskUsageHigh",
                fingerprint="att-rollback",
                host="web-02",
                mountpoint="/srv/data",
                threshold="1",
            ),
        )
        pid = outcome["proposal_id"]
        assert outcome["state"] == "awaiting_review", outcome
        approved = fleet.as_("erin").json("proposals", "approve", str(pid))
        assert approved["state"] == "rolled_back", approved
    finally:
        keep.unlink()
    attention = _attention(fleet, outcome["incident_id"])
    assert attention.startswith(f"proposal {pid} was rolled back (verification failed: ")
    assert "its fix is undone and the problem is still there" in attention
    assert f"`terry proposals apply {pid}` applies it again" in attention
    assert "the incident closes when its alert resolves" in attention


def test_an_interrupted_apply_keeps_its_incident_for_a_person(fleet: Cli) -> None:
    fleet("example", "break", "web-02", "disk")
    outcome = _ingest(
        fleet,
        alert(
            "DiskUsageHigh", fingerprint="att-interrupted", host="web-02", mountpoint="/srv/data"
        ),
    )
    assert outcome["state"] == "verified", outcome
    pid = outcome["proposal_id"]
    # Its apply started again, and the process applying it died (no lock held): what the
    # worker's sweep finds after a crash.
    store = Store(config_for(fleet.repo).store_url)
    try:
        transition(
            store,
            pid,
            ProposalState.APPLYING,
            actor="test",
            reason="apply again",
            allowed_from=MERGED_STATES,
        )
        assert interrupt_dead_applies(store) == (pid,)
    finally:
        store.dispose()
    attention = _attention(fleet, outcome["incident_id"])
    assert attention.startswith(f"proposal {pid} was interrupted: the process applying it")
    assert f"`terry proposals rollback {pid}` (undo)" in attention
    assert f"`terry proposals apply {pid}` (apply again)" in attention


def test_every_incident_kept_here_names_its_next_step(fleet: Cli) -> None:
    listed = fleet.json("incidents", "list", "--limit", "100")
    kept = [i["attention"] for i in listed if i["attention"]]
    assert len(kept) == 5 and all("Next: " in text for text in kept), json.dumps(kept, indent=1)
