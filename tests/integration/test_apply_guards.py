"""Re-check before acting, for real: the example fleet (ansible-playbook on scratch roots),
git and regorus.

- The problem still holds: a fix whose alert resolved before it was applied, and an alert
  posted on a disk that is fine, are withdrawn and their incidents closed as resolved by
  themselves; the weekly report counts them so, not as fixes (DESIGN.md invariant 10).
- The host reached is the host meant: a host whose connection comes from another inventory
  source (the example's ``ansible_connection: local`` reaching a lab host listed beside it)
  is refused before anything changes, and a host whose ``terry_hostname`` matches is
  applied (invariant 11).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.demo import example
from terry.gitops.repo import Repo
from terry.reports import weekly_report
from terry.store import Store
from tests.conftest import Cli, alert, config_for, example_fleet, payload

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with example_fleet(tmp_path_factory.mktemp("guards") / "ops") as cli:
        yield cli


def _now(offset: float = 0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


def _disk(fingerprint: str, host: str, *, starts: str = "", **extra: Any) -> dict[str, Any]:
    return alert(
        "DiskUsageHigh",
        fingerprint=fingerprint,
        host=host,
        mountpoint="/srv/data",
        starts=starts or _now(-60),
        **extra,
    )


def _ingest(cli: Cli, *alerts: dict[str, Any], args: tuple[str, ...] = ()) -> dict[str, Any]:
    return cli.json("alert", "ingest", "-", *args, input=payload(list(alerts)))


def _show(cli: Cli, proposal_id: int) -> dict[str, Any]:
    return cli.json("proposals", "show", str(proposal_id))


def _percent(cli: Cli, host: str) -> float:
    return example.disk_percent(example.example_hosts(config_for(cli.repo))[host])


def test_a_fix_whose_alert_resolved_before_the_apply_is_withdrawn(fleet: Cli) -> None:
    fleet("example", "break", "web-02", "disk")
    starts = _now(-60)
    firing = _disk("guard-resolved", "web-02", starts=starts)
    [outcome] = _ingest(fleet, firing, args=("--no-apply",))["proposals"]
    assert outcome["state"] == "merged", outcome
    # The alert resolves (the disk was cleaned by someone else) before anyone applies.
    resolved = _disk("guard-resolved", "web-02", starts=starts, status="resolved", ends=_now())
    _ingest(fleet, resolved)
    before = _percent(fleet, "web-02")

    applied = fleet("proposals", "apply", str(outcome["proposal_id"]), "--output", "json")
    assert applied.exit_code == 1, applied.stdout + applied.stderr
    shown = _show(fleet, outcome["proposal_id"])
    assert shown["summary"]["state"] == "rejected"
    assert shown["outcome"].startswith("withdrawn: healed before apply: alert 'DiskUsageHigh'")
    assert [r["kind"] for r in shown["runs"]] == ["check"]  # nothing ran on the host
    assert _percent(fleet, "web-02") == before
    story = fleet.json("incidents", "show", str(outcome["incident_id"]))
    assert story["incident"]["state"] == "resolved" and story["incident"]["fixed_at"] is None


def test_an_alert_on_a_disk_that_is_fine_is_not_fixed(fleet: Cli) -> None:
    assert _percent(fleet, "web-01") < 80  # nothing to fix: the alert was posted by hand
    [outcome] = _ingest(fleet, _disk("guard-healthy", "web-01"))["proposals"]
    assert outcome["decision"] == "merge"
    assert outcome["state"] == "rejected", outcome
    assert outcome["note"].startswith("withdrawn: healed before apply: the remedy's own checks")
    shown = _show(fleet, outcome["proposal_id"])
    assert [r["kind"] for r in shown["runs"]] == ["check"]
    story = fleet.json("incidents", "show", str(outcome["incident_id"]))
    assert story["incident"]["state"] == "resolved" and story["incident"]["fixed_at"] is None
    assert any("resolved by itself" in e["detail"] for e in story["timeline"]), story["timeline"]


def test_a_problem_that_still_holds_is_fixed(fleet: Cli) -> None:
    fleet("example", "break", "web-01", "disk")
    [outcome] = _ingest(fleet, _disk("guard-holds", "web-01"))["proposals"]
    assert outcome["state"] == "verified", outcome
    assert _percent(fleet, "web-01") < 80


def test_the_weekly_report_counts_what_healed_by_itself_apart_from_fixes(fleet: Cli) -> None:
    store = Store(config_for(fleet.repo).store_url)
    try:
        report = weekly_report(store)
    finally:
        store.dispose()
    s = report.summary
    # three disk alerts above: two healed before any apply, one fixed by Terry
    assert (s.incidents_opened, s.fixed, s.auto_fixed) == (3, 1, 1)
    assert s.resolved_by_itself == 2
    assert s.needed_person == 0
    assert s.auto_resolution_rate == pytest.approx(1 / 3, abs=1e-4)
    assert s.time_saved_minutes == 30.0  # the one fix only
    assert s.proposals_by_state["rejected"] == 2 and s.proposals_by_state["verified"] == 1
    markdown = fleet("report", "weekly").stdout
    assert "| resolved by itself | 2 |" in markdown


def _lab_beside_the_example(cli: Cli) -> None:
    """README §6 as it was: inventories/lab listed beside inventories/example. lab-02 sets its
    address and user but no connection: the example's `all: vars:` gives it `local`."""
    root = cli.repo / ".terry" / "hosts" / "lab-02"
    lab = {
        "all": {
            "children": {
                "lab": {
                    "children": {
                        "staging": {
                            "hosts": {
                                "lab-02": {
                                    "ansible_host": "10.77.0.12",
                                    "ansible_user": "root",
                                    "terry_environment": "staging",
                                    "terry_root": str(root),
                                    "terry_disk_quota_mb": 32,
                                    "terry_services": {},
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (cli.repo / "inventories" / "lab").mkdir()
    (cli.repo / "inventories" / "lab" / "hosts.yml").write_text(yaml.safe_dump(lab))
    config = yaml.safe_load((cli.repo / "terry.yml").read_text())
    config["inventory"] = ["inventories/example", "inventories/lab"]
    # web-02 says what its name is: this machine's (it is reached with the local connection)
    example_hosts = cli.repo / "inventories" / "example" / "hosts.yml"
    data = yaml.safe_load(example_hosts.read_text())
    web = data["all"]["children"]["staging"]["hosts"]["web-02"]
    web["terry_hostname"] = os.uname().nodename
    example_hosts.write_text(yaml.safe_dump(data, sort_keys=False))
    (cli.repo / "terry.yml").write_text(yaml.safe_dump(config))
    Repo(cli.repo).commit_paths(
        ["terry.yml", "inventories/lab", "inventories/example"], "lab beside the example"
    )


def test_a_host_reached_on_another_machine_is_refused(fleet: Cli) -> None:
    _lab_beside_the_example(fleet)
    invalid = fleet("inventory", "validate", "--output", "json")
    assert invalid.exit_code == 1
    [problem] = [p for p in yaml.safe_load(invalid.stdout)["problems"] if p["host"] == "lab-02"]
    assert problem["rule"] == "connection"
    assert problem["message"].startswith("ansible_connection=local, ansible_python_interpreter=")
    assert problem["message"].endswith(
        "come from inventories/example, not from the host's own inventory (inventories/lab): "
        "set them there, or move them out of the shared group (all: vars:)"
    )

    fleet("example", "break", "lab-02", "disk")
    full = _percent(fleet, "lab-02")
    [outcome] = _ingest(fleet, _disk("guard-lab", "lab-02"))["proposals"]
    assert outcome["decision"] == "merge"
    assert outcome["state"] == "failed", outcome
    shown = _show(fleet, outcome["proposal_id"])
    why = shown["outcome"]
    assert why.startswith("refused, nothing was changed: lab-02 answers as ")
    assert (
        f"{os.uname().nodename!r}, but its inventory name (its ansible_connection=local comes "
        "from inventories/example) says 'lab-02': Terry reached another machine"
    ) in why
    assert _percent(fleet, "lab-02") == full  # nothing ran on the wrong machine
    assert [(r["kind"], r["status"]) for r in shown["runs"]] == [
        ("check", "successful"),
        ("apply", "error"),
    ]

    # A host whose name is what its inventory says is applied as before.
    fleet("example", "break", "web-02", "disk")
    [fixed] = _ingest(fleet, _disk("guard-named", "web-02", starts=_now()))["proposals"]
    assert fixed["state"] == "verified", fixed
    assert _percent(fleet, "web-02") < 80


def test_one_host_refused_stops_the_whole_run_before_any_change(fleet: Cli) -> None:
    """The probe is the run's first play: a storm over web-02 (its name checks out) and
    lab-02 (another machine) changes neither; the refusal names lab-02 only."""
    fleet("example", "break", "web-02", "disk")
    fleet("example", "break", "lab-02", "disk")
    before = {h: _percent(fleet, h) for h in ("web-02", "lab-02")}
    outcomes = _ingest(
        fleet,
        _disk("guard-both-web", "web-02", starts=_now()),
        _disk("guard-both-lab", "lab-02", starts=_now()),
    )["proposals"]
    [pid] = {o["proposal_id"] for o in outcomes}  # one proposal over both hosts
    shown = _show(fleet, pid)
    assert sorted(shown["summary"]["hosts"]) == ["lab-02", "web-02"]
    assert shown["summary"]["state"] == "failed"
    why = shown["outcome"]
    assert "refused, nothing was changed: lab-02 answers as " in why, why
    assert "web-02 answers as" not in why
    assert {h: _percent(fleet, h) for h in before} == before  # neither host was touched
    # nothing changed, so nothing is rolled back: each host failed with the reason
    hosts = {h["host"]: h for h in _show(fleet, pid)["host_outcomes"]}
    assert {h["state"] for h in hosts.values()} == {"failed"}
    assert all("refused, nothing was changed" in h["detail"] for h in hosts.values())
    assert [(r["kind"], r["status"]) for r in shown["runs"]] == [
        ("check", "successful"),
        ("apply", "error"),
    ]


def test_identity_probe_runs_only_where_there_is_a_name_to_check(fleet: Cli) -> None:
    # web-01: local connection from its own inventory, no terry_hostname: this machine
    # itself, nothing to compare; its apply runs no probe.
    fleet("example", "break", "web-01", "disk")
    [outcome] = _ingest(fleet, _disk("guard-local", "web-01", starts=_now()))["proposals"]
    assert outcome["state"] == "verified", outcome
    runs = Path(config_for(fleet.repo).state_dir) / "runs"
    probed = sorted(p.parent.name for p in runs.glob("*/identity"))
    shown = _show(fleet, outcome["proposal_id"])
    [apply_run] = [r for r in shown["runs"] if r["kind"] == "apply"]
    assert str(apply_run["id"]) not in probed


def test_a_fix_judged_for_one_applier_is_not_applied_by_it_once_the_host_moved(
    fleet: Cli,
) -> None:
    # web-02's fix is dry-run and merged for Ansible; then web-02 moves to AWX on main. The
    # apply must not change it with the applier it left: withdrawn, nothing ran, the
    # incident kept for a person, whose retry judges the fix anew.
    fleet("example", "break", "web-02", "disk")
    firing = _disk("guard-moved", "web-02", starts=_now())
    [outcome] = _ingest(fleet, firing, args=("--no-apply",))["proposals"]
    assert outcome["state"] == "merged", outcome
    full = _percent(fleet, "web-02")
    path = fleet.repo / "inventories" / "example" / "hosts.yml"
    before = path.read_text()
    inventory = yaml.safe_load(before)
    inventory["all"]["children"]["staging"]["hosts"]["web-02"]["terry_applier"] = "awx"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    repo = Repo(fleet.repo)
    repo.commit_paths(["inventories"], "web-02 is AWX's now")
    try:
        applied = fleet("proposals", "apply", str(outcome["proposal_id"]), "-o", "json")
        assert applied.exit_code == 1, applied.stdout + applied.stderr
        shown = _show(fleet, outcome["proposal_id"])
        assert shown["summary"]["state"] == "rejected"
        assert shown["outcome"] == (
            "withdrawn: applier changed since judged: web-02: ansible on the proposal's "
            "commit, awx on main"
        )
        assert [r["kind"] for r in shown["runs"]] == ["check"]  # nothing ran on the host
        assert _percent(fleet, "web-02") == full
        story = fleet.json("incidents", "show", str(outcome["incident_id"]))
        assert story["incident"]["state"] == "open"
        attention = story["incident"]["attention"]
        assert attention.endswith(
            "to have its fix judged for the applier they have now, retry it: "
            f"`terry incidents retry {outcome['incident_id']}`"
        ), attention
    finally:
        path.write_text(before)
        repo.commit_paths(["inventories"], "web-02 is Ansible's again")
    # back on Ansible, the retry's new proposal is judged and applied as usual
    again = fleet.json("incidents", "retry", str(outcome["incident_id"]), "--reason", "back")
    [fixed] = again["proposals"]
    assert fixed["state"] == "verified", fixed
    assert _percent(fleet, "web-02") < 80
