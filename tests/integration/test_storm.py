"""Storms become one proposal, rolled out in canary waves (issue 18), through the real CLI.

A fleet of 20 local hosts (Ansible's local connection, each its own scratch root with a
4 MiB quota): 18 in staging, 2 in production. One Alertmanager group with a DiskUsageHigh
alert for every host opens 20 incidents; they need the same remedy with the same
parameters, so they fold into one proposal: one branch, one check-mode dry run across the
hosts, one decision. Approved, it rolls out in waves — a staging canary, verified, then the
rest of staging, then production — and every host keeps its own outcome.

A canary that fails (a threshold no cleanup can reach) stops the rollout: the canary host
is rolled back and every other host is held for a person, untouched.

Real ansible-playbook, real git, real regorus, SQLite.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from terry.app import build_pipeline
from terry.appliers.ansible import GO_TASK, HOLD_TASK, IDENTITY_TASK
from terry.appliers.base import RunKind
from terry.cli import main
from terry.demo import example
from terry.errors import RunnerError
from terry.gitops.repo import Repo
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from tests.conftest import Cli, alert, config_for, make_cli, payload
from tests.integration.test_server import TOKEN, Serve

pytestmark = pytest.mark.integration

STAGING = [f"s-{n:02d}" for n in range(1, 19)]
PRODUCTION = ["p-01", "p-02"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    repo = tmp_path_factory.mktemp("storm") / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    groups: dict[str, Any] = {}
    for names, environment in ((STAGING, "staging"), (PRODUCTION, "production")):
        groups[environment] = {
            "vars": {"terry_environment": environment},
            "hosts": {
                name: {
                    "terry_root": str(repo / ".terry" / "hosts" / name),
                    "terry_disk_quota_mb": 4,
                }
                for name in names
            },
        }
    hosts = repo / "inventories" / "example" / "hosts.yml"
    inventory = yaml.safe_load(hosts.read_text())
    inventory["all"]["children"] = groups
    hosts.write_text(yaml.safe_dump(inventory, sort_keys=False))
    config = repo / "terry.yml"
    settings = yaml.safe_load(config.read_text())
    settings["canary"] = {"min_hosts": 3, "percent": 10, "watch": 0.2}
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    cli = make_cli(repo)
    git = ["git", "-C", str(repo)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo), **cli.env}
    subprocess.run([*git, "commit", "-qam", "a fleet of 20 hosts"], check=True, env=env)
    for name in (*STAGING, *PRODUCTION):
        (repo / ".terry" / "hosts" / name / "srv" / "data").mkdir(parents=True)
    yield cli


def _fill(cli: Cli, names: list[str]) -> None:
    config = config_for(cli.repo)
    for name in names:
        example.break_host(config, name, example.Fault.DISK)


def _logs(cli: Cli, name: str) -> list[str]:
    logs = cli.repo / ".terry" / "hosts" / name / "srv" / "data" / "log"
    return sorted(p.name for p in logs.iterdir())


def _storm(cli: Cli, names: list[str], tag: str, *args: str, **labels: str) -> list[dict[str, Any]]:
    body = payload(
        [
            alert(
                "DiskUsageHigh", fingerprint=f"{tag}-{n}", host=n, mountpoint="/srv/data", **labels
            )
            for n in names
        ]
    )
    outcomes: list[dict[str, Any]] = cli.json("alert", "ingest", "-", *args, input=body)[
        "proposals"
    ]
    return outcomes


def test_twenty_incidents_in_a_burst_become_one_proposal_with_one_dry_run(fleet: Cli) -> None:
    everyone = [*STAGING, *PRODUCTION]
    _fill(fleet, everyone)

    outcomes = _storm(fleet, everyone, "burst")
    assert len(outcomes) == 20
    assert len({o["incident_id"] for o in outcomes}) == 20
    [pid] = {o["proposal_id"] for o in outcomes}  # one proposal for the storm
    # production hosts and more than five hosts: a person decides, once
    assert {o["state"] for o in outcomes} == {"awaiting_review"}

    detail = fleet.json("proposals", "show", str(pid))
    assert sorted(detail["summary"]["hosts"]) == sorted(everyone)
    assert [r["kind"] for r in detail["runs"]] == ["check"]  # one dry run across the hosts
    assert set(detail["runs"][0]["stats"]) == set(everyone)
    assert 0 <= detail["summary"]["confidence"] <= 100
    parts = detail["summary"]["confidence_parts"]  # what the number is made of
    assert set(parts) == {"record", "dry_run", "diagnosis"}
    assert sum(parts.values()) == detail["summary"]["confidence"] and parts["diagnosis"] == 25
    shown = fleet("proposals", "show", str(pid)).stdout
    assert f"confidence {detail['summary']['confidence']}/100 (record {parts['record']}," in shown
    hosts = {h["host"]: h for h in detail["host_outcomes"]}
    assert len({h["incident_id"] for h in hosts.values()}) == 20  # each host its incident
    assert {h["state"] for h in hosts.values()} == {"pending"}
    # the plan the gate judged: a staging canary of 10% (two), staging, production last
    assert sorted(h for h, row in hosts.items() if row["wave"] == 0) == ["s-01", "s-02"]
    assert {hosts[h]["wave"] for h in STAGING[2:]} == {1}
    assert {hosts[h]["wave"] for h in PRODUCTION} == {2}
    listed = fleet.json("proposals", "list")
    assert [p["confidence"] for p in listed if p["id"] == pid] == [detail["summary"]["confidence"]]
    # every incident of the storm leads to the proposal carrying its fix, not only the first
    last = str(outcomes[-1]["incident_id"])
    assert fleet.json("incidents", "show", last)["incident"]["proposals"] == [pid]
    mine = [i for i in fleet.json("incidents", "list") if str(i["id"]) == last]
    assert [i["proposals"] for i in mine] == [[pid]]
    told = fleet("explain", last, "--no-ai")
    assert "No proposal yet" not in told.stdout and f"roposal {pid}" in told.stdout
    fleet.as_("erin").json("proposals", "reject", str(pid), "--reason", "test: not now")


def test_an_approved_storm_rolls_out_in_waves_each_host_verified(fleet: Cli) -> None:
    names = [*STAGING[:6], PRODUCTION[0]]
    _fill(fleet, names)
    outcomes = _storm(fleet, names, "waves")
    [pid] = {o["proposal_id"] for o in outcomes}
    assert {o["state"] for o in outcomes} == {"awaiting_review"}  # a production host

    # the settings change while it waits for a person: the apply still does the plan the
    # gate judged and the person approved, not a plan drawn again (one wave of everything)
    config = fleet.repo / "terry.yml"
    settings = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**settings, "canary": {"min_hosts": 50, "percent": 60}}))
    try:
        approved = fleet.as_("erin").json("proposals", "approve", str(pid))
    finally:
        config.write_text(yaml.safe_dump(settings, sort_keys=False))
    assert approved["state"] == "verified", approved

    detail = fleet.json("proposals", "show", str(pid))
    assert {h["host"]: h["state"] for h in detail["host_outcomes"]} == dict.fromkeys(
        names, "verified"
    )
    applies = [sorted(r["stats"]) for r in detail["runs"] if r["kind"] == "apply"]
    # the canary (10% of 7: one staging host), the rest of staging, then production
    assert applies == [["s-01"], STAGING[1:6], ["p-01"]]
    waves = {h["host"]: h["wave"] for h in detail["host_outcomes"]}
    assert waves == {"s-01": 0, **dict.fromkeys(STAGING[1:6], 1), "p-01": 2}
    for host in names:
        assert not [n for n in _logs(fleet, host) if not n.endswith(".gz")]
    incidents = {i["id"]: i for i in fleet.json("incidents", "list", "--limit", "200")}
    for outcome in outcomes:  # every host's own incident is fixed, none needs a person
        assert not incidents[outcome["incident_id"]].get("attention")


def test_a_failed_canary_stops_rolls_back_only_the_canary_and_holds_the_rest(
    fleet: Cli,
) -> None:
    names = [*STAGING[6:9], PRODUCTION[1]]
    _fill(fleet, names)
    before = {h: _logs(fleet, h) for h in names}

    # threshold 1%: no cleanup gets there; the canary's verify fails
    outcomes = _storm(fleet, names, "canary", threshold="1")
    [pid] = {o["proposal_id"] for o in outcomes}
    assert {o["state"] for o in outcomes} == {"awaiting_review"}
    approved = fleet.as_("erin").json("proposals", "approve", str(pid))
    assert approved["state"] == "rolled_back", approved

    detail = fleet.json("proposals", "show", str(pid))
    states = {h["host"]: h["state"] for h in detail["host_outcomes"]}
    assert states == {"s-07": "rolled_back", "s-08": "held", "s-09": "held", "p-02": "held"}
    assert "canary failed" in detail["outcome"]
    # its fix ran on the canary, then its verification failed: said so, not "0 of 1"
    said = [h for h in detail["history"] if "wave 0 applied" in (h["detail"] or "")]
    assert [(h["what"], h["detail"]) for h in said] == [
        ("applying → failed", "wave 0 applied on 1 of 1 host(s), 1 failed verification")
    ], detail["history"]
    kinds = [r["kind"] for r in detail["runs"] if r["kind"] in ("apply", "rollback")]
    assert kinds == ["apply", "rollback"]
    [applied] = [r for r in detail["runs"] if r["kind"] == "apply"]
    assert sorted(applied["stats"]) == ["s-07"]  # staging first, one host (10%, at least 1)
    for host in names[1:]:
        assert _logs(fleet, host) == before[host]  # never touched
    assert detail["summary"]["confidence"] <= 20
    parts = detail["summary"]["confidence_parts"]  # the failed canary took off what it says
    assert parts["canary"] <= 0 and sum(parts.values()) == detail["summary"]["confidence"]


def test_an_incident_arriving_after_the_decision_goes_in_the_next_wave(fleet: Cli) -> None:
    names = STAGING[9:12]
    late = STAGING[12]
    _fill(fleet, [*names, late])
    body = payload(
        [
            alert("DiskUsageHigh", fingerprint=f"next-{n}", host=n, mountpoint="/srv/data")
            for n in names
        ]
    )
    outcomes = fleet.json("alert", "ingest", "-", "--no-apply", input=body)["proposals"]
    [pid] = {o["proposal_id"] for o in outcomes}
    assert {o["state"] for o in outcomes} == {"merged"}  # decided, not applied yet

    [joined] = _storm(fleet, [late], "next")
    assert joined["proposal_id"] == pid and "next wave" in joined["note"], joined
    detail = fleet.json("proposals", "show", str(pid))
    assert {h["host"]: h["state"] for h in detail["host_outcomes"]}[late] == "queued"
    assert late not in detail["summary"]["hosts"]  # its dry run and decision never saw it

    applied = fleet.json("proposals", "apply", str(pid))
    assert applied["state"] == "verified", applied
    detail = fleet.json("proposals", "show", str(pid))
    moved = {h["host"]: h for h in detail["host_outcomes"]}[late]
    assert moved["state"] == "moved"
    follow = int(moved["detail"].rsplit(" ", 1)[1])
    wave = fleet.json("proposals", "show", str(follow))
    assert wave["follows"] == pid
    assert wave["summary"]["hosts"] == [late]
    assert wave["summary"]["state"] == "verified"  # its own dry run, decision and apply
    assert wave["runs"][0]["kind"] == "check"
    assert [h["incident_id"] for h in wave["host_outcomes"]] == [joined["incident_id"]]


def test_two_incidents_on_one_host_in_a_storm_are_both_fixed_by_its_proposal(
    fleet: Cli,
) -> None:
    """Two alerts for the same host in one burst (another rule, or a restarted exporter's
    new fingerprint) fold into the storm's one proposal: the second rides on the first's
    host, and both are fixed when that host verifies. Nothing accepted is left open."""
    names = STAGING[3:5]
    _fill(fleet, names)
    body = payload(
        [
            alert("DiskUsageHigh", fingerprint=f"twice-{n}-{k}", host=n, mountpoint="/srv/data")
            for n in names
            for k in (1, 2)
        ]
    )
    outcomes = fleet.json("alert", "ingest", "-", input=body)["proposals"]
    assert len({o["incident_id"] for o in outcomes}) == 4
    [pid] = {o["proposal_id"] for o in outcomes}
    assert {o["state"] for o in outcomes} == {"verified"}, outcomes
    detail = fleet.json("proposals", "show", str(pid))
    assert sorted(h["host"] for h in detail["host_outcomes"]) == names  # each host once
    listed = {i["id"]: i for i in fleet.json("incidents", "list", "--limit", "200")}
    for outcome in outcomes:
        incident = listed[outcome["incident_id"]]
        assert incident["seconds_to_fix"] is not None, incident
        assert not incident.get("attention"), incident

    # Two incidents on one host and no other: one proposal over that host fixes both.
    [host] = STAGING[5:6]
    _fill(fleet, [host])
    body = payload(
        [
            alert("DiskUsageHigh", fingerprint=f"alone-{k}", host=host, mountpoint="/srv/data")
            for k in (1, 2)
        ]
    )
    alone = fleet.json("alert", "ingest", "-", input=body)["proposals"]
    [pid] = {o["proposal_id"] for o in alone}
    assert {o["state"] for o in alone} == {"verified"}, alone
    listed = {i["id"]: i for i in fleet.json("incidents", "list", "--limit", "200")}
    assert [listed[o["incident_id"]]["seconds_to_fix"] is not None for o in alone] == [True] * 2


def test_a_canary_with_no_watch_is_not_verified_twice(fleet: Cli) -> None:
    """canary.watch 0 and no canary.queries: the canary's own verification is the whole
    check (a second one would only repeat it); the rollout still goes in waves."""
    config = fleet.repo / "terry.yml"
    settings = yaml.safe_load(config.read_text())
    settings["canary"]["watch"] = 0
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    names = STAGING[5:9]
    _fill(fleet, names)
    try:
        outcomes = _storm(fleet, names, "nowatch")
    finally:
        settings["canary"]["watch"] = 0.2
        config.write_text(yaml.safe_dump(settings, sort_keys=False))
    [pid] = {o["proposal_id"] for o in outcomes}
    assert {o["state"] for o in outcomes} == {"verified"}, outcomes
    detail = fleet.json("proposals", "show", str(pid), "--events")
    # still a canary first: the rest's run may start (held) beside it, and ends after it
    ended = sorted(
        (r for r in detail["runs"] if r["kind"] == "apply"), key=lambda r: r["finished_at"]
    )
    applies = [sorted(r["stats"]) for r in ended]
    assert applies == [["s-06"], ["s-07", "s-08", "s-09"]]
    verifies = sorted(sorted(r["stats"]) for r in detail["runs"] if r["kind"] == "verify")
    assert verifies == applies, verifies  # one verification per wave, none repeated
    assert not any("watching the canary" in str(e) for e in detail.get("events", []))


def _no_watch(fleet: Cli, watch: float) -> None:
    config = fleet.repo / "terry.yml"
    settings = yaml.safe_load(config.read_text())
    settings["canary"]["watch"] = watch
    config.write_text(yaml.safe_dump(settings, sort_keys=False))


def test_a_failed_canary_with_no_watch_stops_the_next_waves_held_run_before_any_change(
    fleet: Cli,
) -> None:
    """With no watch, the wave after the canary starts beside it, held (it probes, then
    waits for Terry's word): the canary failing stops it, and it changed nothing."""
    names = STAGING[12:16]
    _fill(fleet, names)
    before = {h: _logs(fleet, h) for h in names}
    _no_watch(fleet, 0)
    try:
        outcomes = _storm(fleet, names, "heldstop", threshold="1")  # no cleanup gets there
        [pid] = {o["proposal_id"] for o in outcomes}
        state = {o["state"] for o in outcomes}
        if state == {"awaiting_review"}:  # the remedy's record asks a person by now
            state = {fleet.as_("erin").json("proposals", "approve", str(pid))["state"]}
    finally:
        _no_watch(fleet, 0.2)
    assert state == {"rolled_back"}, outcomes
    detail = fleet.json("proposals", "show", str(pid), "--events")
    states = {h["host"]: h["state"] for h in detail["host_outcomes"]}
    assert states == {"s-13": "rolled_back", "s-14": "held", "s-15": "held", "s-16": "held"}
    runs = [(r["kind"], r["status"], sorted(r["stats"])) for r in detail["runs"]]
    assert ("apply", "canceled", []) in runs, runs  # the held run, told to stop
    changing = sorted((r[0], r[2]) for r in runs if r[0] in ("apply", "rollback"))
    assert changing == [("apply", []), ("apply", ["s-13"]), ("rollback", ["s-13"])], runs
    [held] = [r for r in detail["runs"] if r["status"] == "canceled"]
    ended = [(e["task"], e["status"]) for e in held["events"] if e["host"] and e["status"]]
    assert ended[-1] == (GO_TASK, "failed"), ended  # where it ended: told stop
    tasks = [task for task, _status in ended]
    # the remedy's look ran while the canary was judged (it only reads): every held host
    # looked, then waited; not one task of the change ran, and nothing reported a change
    look = "Look at what may go and what may be compressed"
    assert tasks.index(IDENTITY_TASK) < tasks.index(look) < tasks.index(HOLD_TASK), tasks
    assert {(task, status) for task, status in ended if task == look} == {(look, "ok")}
    looked = {e["host"] for e in held["events"] if e["task"] == look and e["status"] == "ok"}
    assert looked == set(names[1:]), held["events"]
    assert not any("manifest" in t or "Vacuum" in t for t in tasks), tasks
    assert "changed" not in {status for _task, status in ended}, ended
    for host in names[1:]:
        assert _logs(fleet, host) == before[host]  # never touched
    assert "canary failed" in detail["outcome"]
    assert not list((fleet.repo / ".terry" / "runs" / "holds").glob("*"))


def test_a_held_run_that_is_never_told_go_gives_up_having_changed_nothing(fleet: Cli) -> None:
    """A held run whose word never comes (Terry died, or never decided) ends at its hold
    when its wait runs out: refused, nothing changed, recorded as an error."""
    host = STAGING[16]
    _fill(fleet, [host])
    before = _logs(fleet, host)
    [outcome] = fleet.json(
        "alert", "ingest", "-", "--no-apply", input=_thresholded([host], "untold", "85")
    )["proposals"]
    assert outcome["state"] == "merged", outcome
    pid = outcome["proposal_id"]
    merge = fleet.json("proposals", "show", str(pid))["merge_commit"]
    config = config_for(fleet.repo)
    quick = config.model_copy(update={"runner": config.runner.model_copy(update={"timeout": 3})})
    pipeline = build_pipeline(quick, _store(quick.store_url))
    applier = pipeline.steps.apply.appliers.get("ansible")
    hold = fleet.repo / ".terry" / "untold-hold"
    with pytest.raises(RunnerError, match="before Terry said go"):
        pipeline.steps.record.run(applier, RunKind.APPLY, pid, merge, hold=hold)
    assert _logs(fleet, host) == before
    hold.write_text("go\n")  # too late: a run that gave up stays given up
    detail = fleet.json("proposals", "show", str(pid), "--events")
    [run] = [r for r in detail["runs"] if r["kind"] == "apply"]
    assert run["status"] == "error"
    assert _logs(fleet, host) == before


def test_a_storm_never_folds_hosts_of_two_tenants(fleet: Cli) -> None:
    """Tenants approve, review and read their own hosts: a storm over two tenants' hosts is
    one proposal per tenant, and a later incident joins its own tenant's proposal only."""
    team_a, team_b = STAGING[13:15], STAGING[15:17]
    tenants = {
        "tenants": {
            "team-a": {"hosts": [*STAGING[:15], *PRODUCTION]},
            "team-b": {"hosts": STAGING[15:]},
        }
    }
    (fleet.repo / "policies" / "tenants.yml").write_text(yaml.safe_dump(tenants))
    hosts = fleet.repo / "inventories" / "example" / "hosts.yml"
    inventory = yaml.safe_load(hosts.read_text())
    inventory["all"].get("vars", {}).pop("terry_tenant", None)  # it would win over the file
    hosts.write_text(yaml.safe_dump(inventory, sort_keys=False))
    git = ["git", "-C", str(fleet.repo)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(fleet.repo), **fleet.env}
    subprocess.run([*git, "add", "policies/tenants.yml", str(hosts)], check=True, env=env)
    subprocess.run([*git, "commit", "-qm", "two tenants"], check=True, env=env)
    _fill(fleet, [*team_a, *team_b, STAGING[17]])

    body = payload(
        [
            alert("DiskUsageHigh", fingerprint=f"tenants-{n}", host=n, mountpoint="/srv/data")
            for n in (*team_a, *team_b)
        ]
    )
    outcomes = fleet.json("alert", "ingest", "-", "--no-apply", input=body)["proposals"]
    by_host = {n: o["proposal_id"] for n, o in zip((*team_a, *team_b), outcomes, strict=True)}
    assert by_host[team_a[0]] == by_host[team_a[1]] != by_host[team_b[0]] == by_host[team_b[1]]
    for pid, names in ((by_host[team_a[0]], team_a), (by_host[team_b[0]], team_b)):
        assert sorted(fleet.json("proposals", "show", str(pid))["summary"]["hosts"]) == names

    [joined] = _storm(fleet, [STAGING[17]], "tenants-late")  # team-b's
    assert joined["proposal_id"] == by_host[team_b[0]], joined


def test_a_storm_arriving_as_one_webhook_per_host_is_one_proposal_in_terry_serve(
    fleet: Cli,
) -> None:
    """Alertmanager groups by host in many setups (the lab's too): a storm then comes as one
    webhook per host, a few hundred milliseconds apart. ``terry serve`` gathers them
    (``storm.gather``, 1.5 s of quiet by default) into one proposal, not one and a next
    wave."""
    names = STAGING[9:13]
    _fill(fleet, names)
    before = max((p["id"] for p in fleet.json("proposals", "list")), default=0)
    server = Serve(fleet.repo, env=fleet.env)
    try:
        for n in names:  # threshold 85: a fold key of its own (no open proposal to join)
            body = payload(
                [
                    alert(
                        "DiskUsageHigh",
                        fingerprint=f"webhooks-{n}",
                        host=n,
                        mountpoint="/srv/data",
                        threshold="85",
                    )
                ]
            )
            answer = httpx.post(
                f"{server.url}/api/v1/alerts",
                content=body,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                timeout=10,
            )
            assert answer.status_code == 202, answer.text
            time.sleep(0.3)

        def settled() -> list[dict[str, Any]] | None:
            mine = [
                fleet.json("proposals", "show", str(p["id"]))
                for p in fleet.json("proposals", "list")
                if p["id"] > before
            ]
            hosts = {h for d in mine for h in d["summary"]["hosts"]}
            done = all(d["summary"]["state"] == "verified" for d in mine)
            return mine if mine and done and hosts == set(names) else None

        deadline = time.monotonic() + 180
        shown = settled()
        while shown is None and time.monotonic() < deadline:
            time.sleep(1)
            shown = settled()
        assert shown, server.log.read_text()[-3000:]
        [one] = shown  # one proposal over the four hosts, no follow-up
        assert sorted(one["summary"]["hosts"]) == names and one["follows"] is None
        assert {h["host"]: h["state"] for h in one["host_outcomes"]} == dict.fromkeys(
            names, "verified"
        )
        # gathered at once; on a loaded machine a late webhook may miss the quiet time and
        # join the proposal before its decision instead: one proposal either way
        said = server.log.read_text()
        assert "gathered 4 incident(s)" in said or "joined before the decision" in said, said
    finally:
        server.stop()


def test_one_host_failing_verify_hides_no_other_and_is_rolled_back_alone(fleet: Cli) -> None:
    names = STAGING[:4]  # the canary is s-01; s-03 cannot get under the threshold
    bad = STAGING[2]
    _fill(fleet, names)
    keep = fleet.repo / ".terry" / "hosts" / bad / "srv" / "data" / "keep.bin"
    keep.write_bytes(b"\0" * (4 * 1024 * 1024))  # 4 MiB the cleanup never touches
    before = _logs(fleet, bad)
    # threshold 70: a fold key of its own (no open proposal of an earlier test to join)
    outcomes = _storm(fleet, names, "verify-one", threshold="70")
    [pid] = {o["proposal_id"] for o in outcomes}
    assert {o["state"] for o in outcomes} == {"awaiting_review"}  # s-03's estimate falls short
    fleet.as_("erin").json("proposals", "approve", str(pid))

    detail = fleet.json("proposals", "show", str(pid))
    hosts = {h["host"]: h for h in detail["host_outcomes"]}
    told = (detail["outcome"], hosts)
    # s-02 and s-04 shared the wave's verify run with s-03: its failure hides neither
    assert {h: row["state"] for h, row in hosts.items()} == {
        **dict.fromkeys(names, "verified"),
        bad: "rolled_back",
    }, told
    assert "still at or above the threshold of 70%" in hosts[bad]["detail"], told
    assert f"rolled_back: {bad}" in detail["outcome"], told
    rollbacks = [sorted(r["stats"]) for r in detail["runs"] if r["kind"] == "rollback"]
    assert rollbacks == [[bad]]  # rollback is per host: the others keep their fix
    assert _logs(fleet, bad) == before  # what it compressed is back
    for host in set(names) - {bad}:
        assert not [n for n in _logs(fleet, host) if not n.endswith(".gz")]
    incidents = {i["id"]: i for i in fleet.json("incidents", "list", "--limit", "200")}
    for host, row in hosts.items():  # each host's incident says what happened to it
        fixed = incidents[row["incident_id"]].get("fixed_at") is not None
        assert fixed == (host != bad), (host, incidents[row["incident_id"]])
    keep.unlink()

    # a person rolls the whole proposal back: the hosts whose fix is there, not s-03 again
    undone = fleet.as_("erin").json("proposals", "rollback", str(pid))
    assert undone["state"] == "rolled_back", undone
    detail = fleet.json("proposals", "show", str(pid))
    rollbacks = [sorted(r["stats"]) for r in detail["runs"] if r["kind"] == "rollback"]
    assert rollbacks == [[bad], sorted(set(names) - {bad})]
    assert {h["host"]: h["state"] for h in detail["host_outcomes"]} == dict.fromkeys(
        names, "rolled_back"
    )
    incidents = {i["id"]: i for i in fleet.json("incidents", "list", "--limit", "200")}
    for row in hosts.values():  # no longer fixed: each waits for a person again
        incident = incidents[row["incident_id"]]
        assert incident["fixed_at"] is None and incident["attention"], incident


def test_one_host_whose_fix_fails_hides_no_other(fleet: Cli) -> None:
    names = STAGING[4:8]  # the canary is s-05; the fix cannot write its manifest on s-07
    bad = STAGING[6]
    _fill(fleet, names)
    body = payload(
        [
            alert(
                "DiskUsageHigh",
                fingerprint=f"fix-one-{n}",
                host=n,
                mountpoint="/srv/data",
                threshold="75",  # a fold key of its own
            )
            for n in names
        ]
    )
    outcomes = fleet.json("alert", "ingest", "-", "--no-apply", input=body)["proposals"]
    [pid] = {o["proposal_id"] for o in outcomes}
    assert {o["state"] for o in outcomes} == {"merged"}, outcomes
    backups = fleet.repo / ".terry" / "hosts" / bad / "srv" / "data" / ".terry"
    kept = backups.with_name(".terry-kept")
    if backups.exists():
        backups.rename(kept)
    backups.write_text("a file where the fix keeps its manifests\n")
    try:
        result = fleet("proposals", "apply", str(pid), "--output", "json")
    finally:
        backups.unlink()
        if kept.exists():
            kept.rename(backups)
    detail = fleet.json("proposals", "show", str(pid))
    hosts = {h["host"]: h for h in detail["host_outcomes"]}
    assert result.exit_code != 0  # a host ended unfixed: the command says so
    told = (result.stdout, detail["outcome"], hosts)
    # s-06 and s-08 shared the wave's run with s-07: they are verified, not unknown
    assert {h: hosts[h]["state"] for h in names if h != bad} == dict.fromkeys(
        set(names) - {bad}, "verified"
    ), told
    assert hosts[bad]["state"] in ("rolled_back", "rollback_failed"), told
    assert hosts[bad]["detail"].startswith("apply failed"), told
    assert f"wave 1 failed on {bad}" in detail["outcome"] or bad in detail["outcome"], told
    rollbacks = [sorted(r["stats"]) for r in detail["runs"] if r["kind"] == "rollback"]
    assert rollbacks == [[bad]], told


def _store(url: str) -> Store:
    store = Store(url)
    store.migrate()  # at its head already, unless this test runs first
    return store


def _thresholded(hosts: list[str], tag: str, threshold: str, **fields: str) -> str:
    return payload(
        [
            alert(
                "DiskUsageHigh",
                fingerprint=f"{tag}-{n}",
                host=n,
                mountpoint="/srv/data",
                threshold=threshold,
                **fields,  # type: ignore[arg-type]
            )
            for n in hosts
        ]
    )


class _AlertDuringTheDryRun:
    """Terry's reporter, which lets a webhook in the moment the storm's dry run is reported
    (its decision not taken yet): the late host's alert, taken by another pipeline on the
    same store and repository, as a second worker thread of ``terry serve`` would."""

    def __init__(self, cli: Cli, body: str) -> None:
        self.cli, self.body = cli, body
        self.late: tuple[Any, ...] = ()
        self.steps: list[str] = []

    def step(self, proposal_id: int | None, message: str) -> None:
        self.steps.append(message)
        if message.startswith("check-mode diff") and not self.late:
            config = config_for(self.cli.repo)
            other = build_pipeline(config, _store(config.store_url))
            self.late = other.ingest(parse_payload(self.body)).outcomes

    def event(self, proposal_id: int, kind: str, event: object) -> None:
        return None


def test_an_incident_arriving_during_the_dry_run_goes_in_the_same_proposal(fleet: Cli) -> None:
    """A storm's host whose alert comes while the proposal is being decided joins it: one
    more commit on its branch, one dry run again over every host, then the one decision and
    the one apply; no second proposal (issue 18)."""
    names, late = STAGING[9:11], STAGING[11]
    _fill(fleet, [*names, late])
    before = max((p["id"] for p in fleet.json("proposals", "list")), default=0)

    def body(hosts: list[str]) -> str:
        return _thresholded(hosts, "during", "87")  # threshold 87: a fold key of its own

    reporter = _AlertDuringTheDryRun(fleet, body([late]))
    config = config_for(fleet.repo)
    pipeline = build_pipeline(config, _store(config.store_url), reporter=reporter)
    outcomes = pipeline.ingest(parse_payload(body(names))).outcomes
    [pid] = {o.proposal_id for o in outcomes}
    [joined] = reporter.late
    assert joined.proposal_id == pid, joined
    assert joined.note.startswith(f"joined proposal {pid}: {late} goes in it, before its decision")

    assert [p["id"] for p in fleet.json("proposals", "list") if p["id"] > before] == [pid]
    shown = fleet.json("proposals", "show", str(pid))
    assert shown["summary"]["state"] == "verified", reporter.steps
    assert shown["summary"]["hosts"] == [*names, late]
    outcome = {h["host"]: h for h in shown["host_outcomes"]}
    assert {h: o["state"] for h, o in outcome.items()} == dict.fromkeys([*names, late], "verified")
    assert outcome[late]["incident_id"] == joined.incident_id
    kinds = [r["kind"] for r in shown["runs"]]
    assert kinds[:2] == ["check", "check"] and "apply" in kinds  # the second over every host
    story = fleet.json("incidents", "show", str(joined.incident_id))["incident"]
    assert story["fixed_at"] is not None, story  # open until its alert resolves

    # git keeps the step: the branch's second commit adds the host; main has the whole play
    branch = shown["summary"]["branch"]
    git = ["git", "-C", str(fleet.repo)]
    log = subprocess.run(
        [*git, "log", "--format=%s%n%b", f"main..{branch}"], capture_output=True, text=True
    )
    assert log.stdout == ""  # merged: nothing on the branch that main lacks
    message = subprocess.run(
        [*git, "log", "-1", "--format=%B", f"{branch}"], capture_output=True, text=True
    ).stdout
    assert "1 more host(s) joined before the decision" in message
    assert f"Joined: {late} (incident {joined.incident_id})" in message
    playbook = subprocess.run(
        [*git, "show", f"main:{shown['playbook_path']}"], capture_output=True, text=True
    ).stdout
    assert f"hosts: {','.join([*names, late])}" in playbook


def test_a_host_joining_a_storm_whose_dry_run_failed_waits_for_its_next_wave(
    fleet: Cli,
) -> None:
    """A proposal whose dry run failed is decided as it is: a host joining it then is not
    taken in (it would share the failed proposal's fate); it goes out as its next wave, with
    its own dry run and decision."""
    names, late = STAGING[9:11], STAGING[11]
    _fill(fleet, [*names, late])
    data = fleet.repo / ".terry" / "hosts" / names[1] / "srv" / "data"
    aside = data.with_name("data-aside")
    reporter = _AlertDuringTheDryRun(fleet, _thresholded([late], "failed-check", "88"))
    config = config_for(fleet.repo)
    pipeline = build_pipeline(config, _store(config.store_url), reporter=reporter)
    data.rename(aside)  # its path is no directory: the dry run fails there
    try:
        outcomes = pipeline.ingest(
            parse_payload(_thresholded(names, "failed-check", "88"))
        ).outcomes
    finally:
        aside.rename(data)
    [pid] = {o.proposal_id for o in outcomes}
    [joined] = reporter.late
    assert joined.proposal_id == pid, joined
    assert joined.note == f"joined proposal {pid}: {late} goes in its next wave"
    shown = fleet.json("proposals", "show", str(pid))
    assert shown["summary"]["hosts"] == names  # not taken in
    assert [r["kind"] for r in shown["runs"]] == ["check"]
    assert shown["summary"]["state"] == "denied", shown["summary"]  # a failed dry run denies
    # every host of the denied storm: not applied, and its incident waits for a person
    hosts = {h["host"]: h for h in shown["host_outcomes"]}
    assert {hosts[h]["state"] for h in names} == {"not_applied"}
    for host in names:
        story = fleet.json("incidents", "show", str(hosts[host]["incident_id"]))["incident"]
        assert story["attention"].startswith(f"proposal {pid} denied"), story
    moved = {h["host"]: h for h in shown["host_outcomes"]}[late]
    assert moved["state"] == "moved", moved
    follow = int(moved["detail"].rsplit(" ", 1)[1])
    wave = fleet.json("proposals", "show", str(follow))
    assert wave["follows"] == pid and wave["summary"]["hosts"] == [late]
    assert wave["summary"]["state"] == "verified"


class _BranchMovesDuringTheDryRun(_AlertDuringTheDryRun):
    """As above, and someone commits on the proposal's branch at the same moment."""

    def step(self, proposal_id: int | None, message: str) -> None:
        first = message.startswith("check-mode diff") and not self.late
        super().step(proposal_id, message)
        if first and proposal_id is not None:
            shown = self.cli.json("proposals", "show", str(proposal_id))
            branch = shown["summary"]["branch"]
            repo = Repo(self.cli.repo)
            repo.commit_on(
                branch=branch, tip=repo.head(branch), files={"NOTE.txt": "mine\n"}, message="a"
            )


def test_a_host_that_cannot_be_taken_in_is_not_lost(fleet: Cli) -> None:
    """The proposal's branch moved under it (a person committed there): the joined host is
    not taken in (its commit would sit on top of one nobody dry-ran), it is queued again,
    and its next wave carries it."""
    names, late = STAGING[9:11], STAGING[11]
    _fill(fleet, [*names, late])
    reporter = _BranchMovesDuringTheDryRun(fleet, _thresholded([late], "moved", "86"))
    config = config_for(fleet.repo)
    pipeline = build_pipeline(config, _store(config.store_url), reporter=reporter)
    outcomes = pipeline.ingest(parse_payload(_thresholded(names, "moved", "86"))).outcomes
    [pid] = {o.proposal_id for o in outcomes}
    [joined] = reporter.late
    assert joined.proposal_id == pid, joined
    said = [s for s in reporter.steps if "not taken in" in s]
    assert said and f"{late} not taken in (its branch" in said[0], reporter.steps
    shown = fleet.json("proposals", "show", str(pid))
    assert shown["summary"]["hosts"] == names
    moved = {h["host"]: h for h in shown["host_outcomes"]}[late]
    assert moved["state"] == "moved", moved
    follow = int(moved["detail"].rsplit(" ", 1)[1])
    wave = fleet.json("proposals", "show", str(follow))
    assert wave["follows"] == pid and wave["summary"]["hosts"] == [late]
    assert wave["summary"]["state"] == "verified", wave["summary"]
    repo = Repo(fleet.repo)  # what was committed on the branch is not merged: unchecked
    assert repo.read_text(repo.head(), "NOTE.txt") is None


def _resolve(cli: Cli, names: list[str], tag: str, threshold: str) -> None:
    """The storm's alerts for ``names`` resolve (someone cleaned those disks)."""
    body = _thresholded(names, tag, threshold, status="resolved", ends="2026-11-24T10:05:00Z")
    cli.ok("alert", "ingest", "-", input=body)


def test_one_host_healing_before_the_apply_withdraws_no_other_hosts_fix(fleet: Cli) -> None:
    """A storm merged, not applied yet: the first host's alert resolves. The others' problem
    still holds, so the fix goes ahead on the proposal; only when every host's alert has
    resolved is the whole proposal withdrawn, every incident closed as healed by itself and
    every host said not applied."""
    names = STAGING[10:13]  # one tenant's (an earlier test put two on main)
    _fill(fleet, names)
    outcomes = _storm(fleet, names, "heal-one", "--no-apply", threshold="64")
    assert {o["state"] for o in outcomes} == {"merged"}, outcomes
    [pid] = {o["proposal_id"] for o in outcomes}
    _resolve(fleet, names[:1], "heal-one", "64")
    applied = fleet.as_("erin").json("proposals", "apply", str(pid))
    assert applied["state"] == "verified", applied
    for host in names[1:]:
        assert not [n for n in _logs(fleet, host) if not n.endswith(".gz")]
    incidents = {i["id"]: i for i in fleet.json("incidents", "list", "--limit", "300")}
    for outcome in outcomes[1:]:
        assert incidents[outcome["incident_id"]]["fixed_at"] is not None

    both = STAGING[13:15]
    _fill(fleet, both)
    before = {h: _logs(fleet, h) for h in both}
    body = _thresholded(both, "heal-all", "63")
    said = fleet("alert", "ingest", "-", "--no-apply", input=body)  # as a person reads it
    assert said.exit_code == 0, said.stderr
    pid = max(p["id"] for p in fleet.json("proposals", "list"))
    # the second incident says where its host went, not only the proposal's state
    assert f"proposal {pid} is merged (decision: merge)\n    folded into proposal {pid}" in (
        said.stdout
    ), said.stdout
    outcomes = [
        {"incident_id": h["incident_id"]}
        for h in fleet.json("proposals", "show", str(pid))["host_outcomes"]
    ]
    _resolve(fleet, both, "heal-all", "63")
    withdrawn = fleet.as_("erin")("proposals", "apply", str(pid), "--output", "json")
    assert withdrawn.exit_code == 1, withdrawn.stdout + withdrawn.stderr
    shown = fleet.json("proposals", "show", str(pid))
    assert shown["summary"]["state"] == "rejected"
    assert shown["outcome"].startswith("withdrawn: healed before apply: all 2 alerts resolved")
    assert {h["host"]: h["state"] for h in shown["host_outcomes"]} == dict.fromkeys(
        both, "not_applied"
    )
    assert {h: _logs(fleet, h) for h in both} == before  # nothing ran on them
    incidents = {i["id"]: i for i in fleet.json("incidents", "list", "--limit", "300")}
    assert {incidents[o["incident_id"]]["state"] for o in outcomes} == {"resolved"}
