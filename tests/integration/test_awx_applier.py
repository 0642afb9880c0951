"""AWX as an applier, through the real pipeline: Terry's httpx client against a local server
that follows AWX's REST API and runs each job's playbook for real with ansible-runner, from
the commit Terry asked for (``scm_branch``), with the job template's entry playbook
(``playbooks/terry-awx.yml``) importing the proposal's.

A host labelled ``terry_applier: awx`` takes the playbook remedies Ansible runs: the dry
run is a check job, the apply a run job of the merge commit, verify and rollback jobs with
their tags; a template AWX would run otherwise is refused with a clear reason; a job that
does not finish is canceled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from terry.app import build_pipeline
from terry.cli import main
from terry.store import Store
from terry.store.models import HostLockRow, ProposalRow, RunEventRow, RunRow
from tests.conftest import Cli, alert, config_for, ingest_then_kill, make_cli, payload
from tests.fakes.awx_api import FakeAWX
from tests.shop import git, ingest_one

pytestmark = pytest.mark.integration

TOKEN = "awx-CANARY-token-1234"
HOST = "web-02"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Cli, FakeAWX]]:
    yield from _world(tmp_path)


@pytest.fixture
def gateway_world(tmp_path: Path) -> Iterator[tuple[Cli, FakeAWX]]:
    """AWX behind AAP 2.5's gateway: ``awx.url`` is ``…/api/controller``, the API below it
    at ``/api/controller/v2`` (AWX's OPTIONAL_API_URLPATTERN_PREFIX)."""
    yield from _world(tmp_path, api_root="/api/controller/v2", path="/api/controller")


def _world(
    tmp_path: Path, *, api_root: str = "/api/v2", path: str = ""
) -> Iterator[tuple[Cli, FakeAWX]]:
    repo = tmp_path / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    hosts = repo / "inventories" / "example" / "hosts.yml"
    inventory = yaml.safe_load(hosts.read_text())
    inventory["all"]["children"]["staging"]["hosts"][HOST]["terry_applier"] = "awx"
    hosts.write_text(yaml.safe_dump(inventory))
    fake = FakeAWX(repo, token=TOKEN, api_root=api_root)
    fake.add_template("terry-config-drift")
    settings = yaml.safe_load((repo / "terry.yml").read_text())
    settings["awx"] = {"url": fake.base_url + path, "poll_interval": 0.05, "timeout": 60}
    (repo / "terry.yml").write_text(yaml.safe_dump(settings))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", "web-02 by AWX")
    fake.start()
    cli = make_cli(repo)
    cli.env["TERRY_AWX_TOKEN"] = TOKEN
    yield cli, fake
    fake.stop()


def _rows(cli: Cli, model: type, *where: Any, order: Any = None) -> list[Any]:
    store = Store(config_for(cli.repo).store_url)
    try:
        with store.session() as session:
            query = select(model).where(*where)
            rows = list(session.scalars(query.order_by(order) if order is not None else query))
            session.expunge_all()
            return rows
    finally:
        store.dispose()


def _drift(cli: Cli, fingerprint: str) -> dict[str, Any]:
    return ingest_one(cli, "ConfigDrift", fingerprint, host=HOST, file="app.conf")


def test_a_fix_runs_as_awx_jobs_checked_applied_verified_and_rolled_back(
    world: tuple[Cli, FakeAWX],
) -> None:
    cli, fake = world
    outcome = _drift(cli, "fp-awx")
    pid = str(outcome["proposal_id"])
    shown = cli.json("proposals", "show", pid)
    assert outcome["state"] == "awaiting_review", shown["reasons"]
    assert shown["applier"] == "awx"
    assert "  applier   awx\n" in cli.ok("proposals", "show", pid).stdout  # as text too
    # The dry run: a check job of the proposal commit, limited to the host, with diff, the
    # parameters as extra vars (AWX marks them !unsafe) and the playbook to import.
    [check] = fake.launches()
    assert check["job_type"] == "check" and check["diff_mode"] is True
    assert check["limit"] == HOST and check["scm_branch"] == shown["commit"]
    assert check["job_tags"] == "apply"
    playbook = shown["playbook_path"].removeprefix("playbooks/")
    assert check["extra_vars"]["terry_playbook"] == playbook
    assert check["extra_vars"]["file"] == "app.conf"
    assert check["extra_vars"]["terry_proposal_id"] == int(pid)
    assert "app.conf" in shown["check_diff"]  # the check job's diff, from its events
    conf = [p for p in (cli.repo / ".terry" / "hosts" / HOST).rglob("app.conf")]
    assert conf == []  # a check changed nothing

    approved = cli.as_("alice").json("proposals", "approve", pid)
    assert approved["state"] == "verified", approved
    merge = approved["merge_commit"]
    jobs = fake.launches()[1:]
    # The re-check of the problem (its verify tasks), then the fix, then its verify: each
    # of the merge commit on main.
    assert [(j["job_type"], j["job_tags"]) for j in jobs] == [
        ("run", "verify"),
        ("run", "apply"),
        ("run", "verify"),
    ]
    assert {j["scm_branch"] for j in jobs} == {merge}
    # the re-check asks whether the problem holds now (a verify waits for nothing): AWX
    # takes no environment per launch, so it is said as an extra var
    assert [j["extra_vars"].get("terry_recheck") for j in jobs] == [True, None, None]
    assert [p.name for p in (cli.repo / ".terry" / "hosts" / HOST).rglob("app.conf")]
    runs = _rows(cli, RunRow, RunRow.proposal_id == int(pid), order=RunRow.id)
    assert [(r.kind, r.status) for r in runs] == [
        ("check", "successful"),
        ("apply", "successful"),
        ("verify", "successful"),
    ]
    events = _rows(cli, RunEventRow, RunEventRow.run_id == runs[1].id, order=RunEventRow.seq)
    seen = [(e.event, e.host, e.status) for e in events]
    assert ("runner_on_ok", HOST, "changed") in seen, seen  # every page, late ones too
    assert events[-1].event == "playbook_on_stats"
    assert any(e.event == "awx_job" and "AWX job" in str(e.data) for e in events)

    rolled = cli.as_("alice")("proposals", "rollback", pid, "--output", "json")
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    assert fake.launches()[-1]["job_tags"] == "rollback"
    # The token went to AWX as a Bearer header, and nowhere else.
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in fake.requests)
    for row in _rows(cli, RunEventRow):
        assert TOKEN not in str(row.data)
    for row in _rows(cli, ProposalRow):
        assert TOKEN not in str(row.check_summary) + str(row.outcome)
    assert TOKEN not in rolled.stdout + rolled.stderr


def test_templates_awx_would_run_otherwise_are_refused_with_the_reason(
    world: tuple[Cli, FakeAWX],
) -> None:
    cli, fake = world
    template = fake.templates[1]
    cases = []

    template.asks = ("job_type", "diff_mode", "variables", "scm_branch", "tags")  # no limit
    cases.append((_drift(cli, "fp-r1"), "does not prompt on launch for limit"))
    template.asks = tuple(a for a in ("limit", *template.asks))
    fake.allow_override = False
    cases.append((_drift(cli, "fp-r2"), "Project does not allow override of branch"))
    fake.allow_override = True
    fake.allow_jinja = "always"
    cases.append((_drift(cli, "fp-r3"), "ALLOW_JINJA_IN_EXTRA_VARS is 'always'"))
    fake.allow_jinja = "template"
    template.forbidden = True  # no Execute role: AWX refuses the launch itself
    cases.append((_drift(cli, "fp-r4"), "403"))
    template.forbidden = False
    # Settings of the template's own that AWX applies to every job, unprompted.
    template.skip_tags = "always"  # would skip the identity check
    cases.append((_drift(cli, "fp-r6"), "has skip tags 'always' of its own"))
    template.skip_tags = ""
    template.start_at_task = "Remove the files"
    cases.append((_drift(cli, "fp-r7"), "start at task 'Remove the files'"))
    template.start_at_task = ""
    template.job_slice_count = 4
    cases.append((_drift(cli, "fp-r8"), "job slicing 4"))
    template.job_slice_count = 1
    template.name = "someone-else"
    fake.filters_names = False  # a list that ignores ?name= still names no other template
    cases.append((_drift(cli, "fp-r5"), "no job template named 'terry-config-drift'"))
    for outcome, reason in cases:
        assert outcome["state"] == "failed", outcome
        shown = cli.json("proposals", "show", str(outcome["proposal_id"]))
        assert reason in str(shown), (reason, shown.get("outcome"), shown.get("reasons"))
    # Nothing ran: the two launches that were sent (the 400, the 403) were refused before a
    # job started, and neither was tried again; the others were refused before any launch.
    assert fake.jobs == {} and fake.workflow_jobs == []
    launches = [r for r in fake.requests if r["method"] == "POST" and "/launch/" in r["path"]]
    assert len(launches) == 2, launches


def test_a_limit_awx_ignored_anyway_is_canceled_or_said_as_what_ran(
    world: tuple[Cli, FakeAWX],
) -> None:
    """The launch page said it prompts for the limit, the launch ignored it: the job would
    run on the whole inventory. Terry cancels it; when AWX will not cancel, Terry says the
    job ran without the limit and on which hosts, and keeps its events."""
    cli, fake = world
    fake.templates[1].ignores = ("limit",)
    canceled = _drift(cli, "fp-ignored")
    assert canceled["state"] == "failed", canceled
    [first] = fake.jobs.values()
    assert first.cancel_asked and first.status == "canceled"
    told = str(cli.json("proposals", "show", str(canceled["proposal_id"])))
    assert "AWX ignored limit for job" in told and "Terry canceled the job" in told

    fake.cancel_denied = True
    ran = _drift(cli, "fp-ignored-ran")
    assert ran["state"] == "failed", ran
    second = max(fake.jobs.values(), key=lambda j: j.id)
    assert second.status == "successful" and not second.cancel_asked
    shown = cli.json("proposals", "show", str(ran["proposal_id"]))
    told = str(shown)
    assert "could not be canceled (AWX refused the cancel" in told, told
    assert "ran as AWX launched it, without what it ignored" in told
    assert "it reached db-01, web-01, web-02" in told  # the whole inventory, production too
    [run] = _rows(cli, RunRow, RunRow.proposal_id == int(ran["proposal_id"]))
    assert run.status == "error"
    fake.cancel_denied = False
    fake.templates[1].ignores = ()


def test_a_job_that_does_not_finish_is_canceled(world: tuple[Cli, FakeAWX]) -> None:
    cli, fake = world
    fake.templates[1].hang = True
    settings = yaml.safe_load((cli.repo / "terry.yml").read_text())
    settings["awx"]["timeout"] = 1.0
    (cli.repo / "terry.yml").write_text(yaml.safe_dump(settings))
    outcome = _drift(cli, "fp-hang")
    [job] = fake.jobs.values()
    assert job.cancel_asked and job.status == "canceled"
    runs = _rows(cli, RunRow, RunRow.proposal_id == int(outcome["proposal_id"]))
    assert [(r.kind, r.status) for r in runs] == [("check", "timeout")]
    assert outcome["state"] != "awaiting_review", outcome


def _awx_settings(cli: Cli, **awx: Any) -> None:
    settings = yaml.safe_load((cli.repo / "terry.yml").read_text())
    settings["awx"].update(awx)
    (cli.repo / "terry.yml").write_text(yaml.safe_dump(settings))


def _notes(cli: Cli, proposal_id: int) -> str:
    [run] = _rows(cli, RunRow, RunRow.proposal_id == proposal_id)
    events = _rows(cli, RunEventRow, RunEventRow.run_id == run.id, order=RunEventRow.id)
    return " | ".join(str(e.data.get("message")) for e in events if e.event == "awx_job")


def test_a_job_awx_keeps_pending_behind_another_is_canceled_at_the_timeout_and_said_so(
    world: tuple[Cli, FakeAWX],
) -> None:
    # AWX never refuses a launch for a busy template: the job waits, pending, while another
    # job of its template runs (Concurrent Jobs off, AWX's default). Terry's timeout counts
    # from the launch, so the job is canceled before it ever ran, and the run says why.
    cli, fake = world
    other = fake.occupy(fake.templates[1])
    _awx_settings(cli, timeout=1.0)
    outcome = _drift(cli, "fp-queued")
    pid = int(outcome["proposal_id"])
    [job] = [j for j in fake.jobs.values() if not j.outside]
    assert job.cancel_asked and job.status == "canceled" and not job.events
    assert other.status == "running"  # someone else's job: left alone
    assert [(r.kind, r.status) for r in _rows(cli, RunRow, RunRow.proposal_id == pid)] == [
        ("check", "timeout")
    ]
    said = _notes(cli, pid)
    assert "AWX had not started it (still pending)" in said, said
    assert "allows concurrent jobs" in said, said
    assert outcome["state"] == "denied", outcome  # a dry run that timed out merges nothing
    assert _rows(cli, HostLockRow) == []  # it never ran: its host is free

    fake.templates[1].allow_simultaneous = True  # the template allows concurrent jobs
    _awx_settings(cli, timeout=60)
    assert _drift(cli, "fp-queued-2")["state"] == "awaiting_review"


def test_awx_not_answering_for_a_while_is_waited_out_never_a_reason_to_cancel(
    world: tuple[Cli, FakeAWX],
) -> None:
    # A gateway answering 502 while AWX restarts says nothing of the job: Terry asks again
    # and reads the job's outcome when AWX is back; the job is not canceled.
    cli, fake = world
    _awx_settings(cli, retries=0)
    fake.outage_when_running = 8
    outcome = _drift(cli, "fp-outage")
    pid = int(outcome["proposal_id"])
    [job] = fake.jobs.values()
    assert job.status == "successful" and not job.cancel_asked
    assert fake.outage == 0  # the whole outage was met
    assert [(r.kind, r.status) for r in _rows(cli, RunRow, RunRow.proposal_id == pid)] == [
        ("check", "successful")
    ]
    assert "AWX did not answer (AWX answered 502" in _notes(cli, pid)
    assert outcome["state"] == "awaiting_review", outcome
    [run] = _rows(cli, RunRow, RunRow.proposal_id == pid)
    events = _rows(cli, RunEventRow, RunEventRow.run_id == run.id)
    assert sorted(e.seq for e in events if e.event != "awx_job") == [
        e["counter"] for e in job.events
    ]


def test_a_job_that_finished_as_the_cancel_came_is_what_it_ended_as(
    world: tuple[Cli, FakeAWX],
) -> None:
    cli, fake = world
    fake.templates[1].hang = True
    fake.finish_on_cancel = True  # the cancel finds it finished (405)
    _awx_settings(cli, timeout=1.0)
    outcome = _drift(cli, "fp-race")
    pid = int(outcome["proposal_id"])
    [job] = fake.jobs.values()
    assert job.status == "successful"
    assert [(r.kind, r.status) for r in _rows(cli, RunRow, RunRow.proposal_id == pid)] == [
        ("check", "successful")
    ]
    assert "the job ended successful as Terry canceled it at the timeout" in _notes(cli, pid)


def test_a_cancel_that_does_not_show_keeps_the_host_held_until_awx_shows_the_job_ended(
    world: tuple[Cli, FakeAWX], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job still running at the timeout is canceled; AWX's dispatcher does not act on it
    within ``awx.cancel_wait``. The job may still change the host, so Terry does not free
    it: the run stays running where it goes on (``runs.remote``), its lock is handed to
    recovery, no other proposal gets the host, and the next look frees it only once AWX
    shows the job ended."""
    cli, fake = world
    fake.templates[1].hang = True
    fake.cancel_polls = None  # the cancel is accepted and never acted on
    _awx_settings(cli, timeout=1.0, cancel_wait=1.0)
    outcome = _drift(cli, "fp-stuck")
    pid = int(outcome["proposal_id"])
    [job] = fake.jobs.values()
    assert job.cancel_asked and job.status == "running"
    assert outcome["state"] == "failed", outcome
    shown = str(cli.json("proposals", "show", str(pid)))
    assert "AWX job 1 did not show an end within 1 s of Terry's cancel" in shown, shown
    assert "dry run was not seen to end" in shown and "could not start" not in shown, shown
    [run] = _rows(cli, RunRow, RunRow.proposal_id == pid)
    assert (run.status, run.remote) == ("running", "awx:1")
    assert run.holder.endswith(f":detached-{run.id}")
    assert [(lock.host, lock.proposal_id) for lock in _rows(cli, HostLockRow)] == [(HOST, pid)]
    seen = _rows(cli, RunEventRow, RunEventRow.run_id == run.id)
    assert any("canceling" in str(e.data) or e.event == "awx_job" for e in seen), seen

    # Another fix for the host waits: the host is not free while the job may run.
    _config = yaml.safe_load((cli.repo / "terry.yml").read_text())
    _config.setdefault("runner", {})["lock_wait"] = 0
    (cli.repo / "terry.yml").write_text(yaml.safe_dump(_config))
    fake.templates[1].hang = False
    blocked = _drift(cli, "fp-after-stuck")
    assert blocked["state"] != "awaiting_review", blocked
    assert len([j for j in fake.jobs.values()]) == 1  # nothing launched on the held host

    monkeypatch.setenv("TERRY_AWX_TOKEN", TOKEN)
    store = Store(config_for(cli.repo).store_url)
    pipeline = build_pipeline(config_for(cli.repo), store)
    try:
        assert pipeline.reap().runs == ()  # still running in AWX: still held
        assert [lock.host for lock in _rows(cli, HostLockRow) if lock.proposal_id == pid] == [HOST]
        fake.cancel_polls = 1  # the dispatcher catches up
        reaped = pipeline.reap()
        assert job.status == "canceled"
        assert reaped.runs == (run.id,) and HOST in reaped.released
        [run] = _rows(cli, RunRow, RunRow.proposal_id == pid)
        assert run.status == "interrupted"
    finally:
        store.dispose()


def test_a_launch_whose_answer_was_lost_is_found_by_its_mark_and_followed(
    world: tuple[Cli, FakeAWX],
) -> None:
    """The gateway gave up on the launch (504) after AWX had made the job. Launching again
    would run the fix twice; Terry finds the job among its template's newest by the launch's
    own mark (an extra var) and follows it like any other."""
    cli, fake = world
    earlier = _drift(cli, "fp-before-lost")  # another launch of the template, another mark
    fake.lose_launch = "after"
    outcome = _drift(cli, "fp-lost-after")
    pid = int(outcome["proposal_id"])
    ours = [j for j in fake.jobs.values() if j.launch["extra_vars"]["terry_proposal_id"] == pid]
    [job] = ours  # launched once, never again
    assert job.status == "successful"
    marks = {j.launch["extra_vars"]["terry_launch"] for j in fake.jobs.values()}
    assert len(marks) == len(fake.jobs)  # every launch its own mark
    [run] = _rows(cli, RunRow, RunRow.proposal_id == pid)
    assert (run.kind, run.status, run.remote) == ("check", "successful", f"awx:{job.id}")
    said = _notes(cli, pid)
    assert "AWX's answer to the launch was lost (AWX answered 504" in said, said
    assert f"Terry found the job it started, {job.id}, by this launch's terry_launch" in said
    assert outcome["state"] == "awaiting_review" == earlier["state"], outcome


def test_a_lost_launch_that_started_nothing_fails_the_run_and_frees_the_host(
    world: tuple[Cli, FakeAWX],
) -> None:
    cli, fake = world
    _awx_settings(cli, cancel_wait=0.5)
    fake.lose_launch = "before"  # the gateway's 504 came before AWX made any job
    outcome = _drift(cli, "fp-lost-before")
    pid = int(outcome["proposal_id"])
    assert fake.jobs == {}
    [run] = _rows(cli, RunRow, RunRow.proposal_id == pid)
    assert run.status == "error" and run.remote.startswith("awx:launch-1-")  # where looked
    shown = str(cli.json("proposals", "show", str(pid)))
    assert "none of its newest jobs carries this launch's terry_launch" in shown, shown
    assert "no job started" in shown, shown
    assert outcome["state"] in ("denied", "failed"), outcome
    assert _rows(cli, HostLockRow) == []  # nothing runs: the host is free


def test_a_lost_launch_awx_does_not_answer_for_keeps_the_host_held_until_recovery_finds_it(
    world: tuple[Cli, FakeAWX], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launch's answer was lost and AWX then did not answer the search for its job: a
    job may run on the host, so the host stays held; recovery finds the job by its mark
    once AWX answers, cancels it, and frees the host when it ended."""
    cli, fake = world
    _awx_settings(cli, cancel_wait=0.5, retries=0)
    fake.templates[1].hang = True  # the job runs until it is canceled
    fake.lose_launch = "after"
    fake.lost_outage = 1_000_000  # every request after the launch answers 502
    outcome = _drift(cli, "fp-lost-unanswered")
    pid = int(outcome["proposal_id"])
    [job] = fake.jobs.values()
    [run] = _rows(cli, RunRow, RunRow.proposal_id == pid)
    mark = job.launch["extra_vars"]["terry_launch"]
    assert (run.status, run.remote) == ("running", f"awx:launch-1-{mark}")
    assert [(lock.host, lock.proposal_id) for lock in _rows(cli, HostLockRow)] == [(HOST, pid)]
    shown = str(cli.json("proposals", "show", str(pid)))
    assert "AWX did not answer Terry's search for the job" in shown, shown

    monkeypatch.setenv("TERRY_AWX_TOKEN", TOKEN)
    store = Store(config_for(cli.repo).store_url)
    pipeline = build_pipeline(config_for(cli.repo), store)
    try:
        assert pipeline.reap().runs == ()  # AWX still not answering: still held
        assert [lock.host for lock in _rows(cli, HostLockRow)] == [HOST]
        fake.outage = 0  # AWX is back
        reaped = pipeline.reap()
        assert job.cancel_asked and job.status == "canceled"
        assert reaped.runs == (run.id,) and HOST in reaped.released
    finally:
        store.dispose()


def test_the_job_refuses_a_host_that_answers_with_another_name(
    world: tuple[Cli, FakeAWX],
) -> None:
    # The job template's entry playbook probes each host it may check (terry_hostname set,
    # even on the local connection): this machine is not "db-99", so the check job fails
    # at the probe, before the proposal's playbook, and says why.
    cli, fake = world
    hosts = cli.repo / "inventories" / "example" / "hosts.yml"
    inventory = yaml.safe_load(hosts.read_text())
    inventory["all"]["children"]["staging"]["hosts"][HOST]["terry_hostname"] = "db-99"
    hosts.write_text(yaml.safe_dump(inventory))
    git(cli.repo, "add", "-A")
    git(cli.repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", "db-99")
    outcome = _drift(cli, "fp-impostor")
    assert outcome["state"] != "awaiting_review", outcome
    shown = cli.json("proposals", "show", str(outcome["proposal_id"]))
    said = str(shown)
    assert f"{HOST} answers as {os.uname().nodename.split('.')[0]}" in said, said
    assert "but the inventory says db-99: refused, nothing was changed" in said
    assert [j["job_type"] for j in fake.launches()] == ["check"]
    assert not list((cli.repo / ".terry" / "hosts" / HOST).rglob("app.conf"))


def test_through_a_gateway_with_absolute_links_every_event_is_read_once(
    gateway_world: tuple[Cli, FakeAWX],
) -> None:
    # AAP 2.5's gateway: the API at /api/controller/v2; the pages' next links absolute URLs
    # naming an internal host (only their path is followed, on awx.url: the token goes
    # nowhere else); events saved out of counter order while the job runs.
    cli, fake = gateway_world
    fake.absolute_next = True
    fake.out_of_order = True
    outcome = _drift(cli, "fp-gateway")
    pid = int(outcome["proposal_id"])
    assert outcome["state"] == "awaiting_review", outcome
    [job] = fake.jobs.values()
    assert len(job.events) > fake.page_size * 2  # several pages, each followed
    assert all(r["path"].startswith("/api/controller/v2/") for r in fake.requests)
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in fake.requests)
    [run] = _rows(cli, RunRow, RunRow.proposal_id == pid)
    events = _rows(cli, RunEventRow, RunEventRow.run_id == run.id)
    counters = [e.seq for e in events if e.event != "awx_job"]
    # every event AWX saved, each once: a counter listed before the one below it was saved
    # is not skipped
    assert sorted(counters) == [e["counter"] for e in job.events]
    # the job's link: its page behind the gateway, not a UI path below the API's URL
    said = _notes(cli, pid)
    assert f"at {fake.base_url}/api/controller/v2/jobs/{job.id}/ (" in said, said


def test_a_job_whose_terry_was_killed_is_canceled_before_its_host_is_freed(
    world: tuple[Cli, FakeAWX], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terry killed outright while its AWX job runs: the job goes on in AWX. A restart's look
    at what dead processes left (``Pipeline.reap``: what the worker, and every wait for a
    host lock, does) cancels it before the host is freed; while AWX refuses the cancel, the
    host stays held by the dead run and the run stays running, for the next look."""
    cli, fake = world
    fake.templates[1].hang = True  # the job runs until it is canceled
    body = payload([alert("ConfigDrift", fingerprint="fp-killed", host=HOST, file="app.conf")])
    ingest_then_kill(
        cli,
        body,
        lambda: (
            any(j.status == "running" for j in fake.jobs.values())
            and [r.remote for r in _rows(cli, RunRow)] == ["awx:1"]
        ),
        "AWX job running, its run saying where",
    )
    [job] = fake.jobs.values()
    assert not job.cancel_asked and job.status == "running"
    monkeypatch.setenv("TERRY_AWX_TOKEN", TOKEN)
    store = Store(config_for(cli.repo).store_url)
    pipeline = build_pipeline(config_for(cli.repo), store)
    try:
        fake.cancel_denied = True  # AWX's 403: the job may still change the host
        refused = pipeline.reap()
        assert refused.runs == () and refused.released == ()
        assert [(r.status, r.remote) for r in _rows(cli, RunRow)] == [("running", "awx:1")]
        assert [lock.host for lock in _rows(cli, HostLockRow)] == [HOST]
        assert job.status == "running"

        fake.cancel_denied = False
        reaped = pipeline.reap()
        assert job.cancel_asked and job.status == "canceled"
        [run] = _rows(cli, RunRow)
        assert reaped.runs == (run.id,) and run.status == "interrupted"
        assert _rows(cli, HostLockRow) == [] and HOST in reaped.released
        assert pipeline.reap().runs == ()  # once
    finally:
        store.dispose()


def test_a_dry_run_stopped_by_a_missing_setting_says_which_one_to_set(
    world: tuple[Cli, FakeAWX],
) -> None:
    """No awx.url: the check job cannot be launched, nothing runs, and the incident says to
    set awx.url in terry.yml (the error carries the setting; its words are not read)."""
    cli, fake = world
    settings = yaml.safe_load((cli.repo / "terry.yml").read_text())
    del settings["awx"]["url"]
    (cli.repo / "terry.yml").write_text(yaml.safe_dump(settings))
    cli.env.pop("TERRY_AWX_URL", None)
    outcome = _drift(cli, "fp-awx-no-url")
    assert outcome["state"] == "failed", outcome
    assert fake.launches() == []
    shown = cli.json("proposals", "show", str(outcome["proposal_id"]))
    incident = cli.json("incidents", "show", str(shown["summary"]["incident_id"]))["incident"]
    assert "its dry run could not start (awx.url is not configured" in incident["attention"]
    assert "Next: set awx.url in terry.yml" in incident["attention"], incident["attention"]
