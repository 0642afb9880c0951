"""One host's part of a verify run over a wave (``terry.steps.verify.judge_host``): another
host's failure hides nobody, and a run cut short or events that do not say which task they
belong to never make a host verified. A wave's failed hosts are rolled back for the reason
that is theirs (``terry.steps.apply._why_undone``)."""

from __future__ import annotations

from terry.appliers.base import HostStats, RunnerEvent, RunResult, RunStatus
from terry.proposals.hosts import HostState
from terry.steps.apply import _why_undone
from terry.steps.verify import judge_host
from terry.verify.judge import Outcome


def _event(seq: int, event: str, host: str | None, task: str | None) -> RunnerEvent:
    data: dict[str, object] = {"host": host, "play": "Verify: x", "task": "check", "res": {}}
    if task is not None:
        data["task_uuid"] = task
    if event == "runner_on_failed":
        data["res"] = {"msg": "usage of /srv/data is 101%, still at or above 70%"}
    return RunnerEvent.from_runner({"counter": seq, "event": event, "event_data": data})


def _run(status: RunStatus, *events: RunnerEvent, stats: dict[str, HostStats]) -> RunResult:
    return RunResult(status, 2 if status is RunStatus.FAILED else 0, stats, events, None, 1.0)


GOOD, BAD = HostStats(ok=2), HostStats(ok=1, failures=1)


def _wave(
    *, last_for_a: bool = True, uuids: bool = True, ended: bool = True
) -> tuple[RunnerEvent, ...]:
    t1, t2 = ("t-1", "t-2") if uuids else (None, None)
    events = [
        _event(1, "playbook_on_task_start", None, t1),
        _event(2, "runner_on_ok", "a", t1),
        _event(3, "runner_on_ok", "b", t1),
        _event(4, "playbook_on_task_start", None, t2),
        _event(5, "runner_on_failed", "b", t2),
    ]
    if last_for_a:
        events.append(_event(6, "runner_on_ok", "a", t2))
    if ended:
        events.append(_event(7, "playbook_on_stats", None, None))
    return tuple(events)


def test_another_hosts_failure_hides_no_host_that_ran_every_task() -> None:
    run = _run(RunStatus.FAILED, *_wave(), stats={"a": GOOD, "b": BAD})
    assert judge_host(run, "a").outcome is Outcome.VERIFIED
    failed = judge_host(run, "b")
    assert failed.outcome is Outcome.FAILED and "still at or above" in failed.evidence[0]


def test_a_host_without_a_result_for_a_task_the_run_began_is_unknown() -> None:
    run = _run(RunStatus.FAILED, *_wave(last_for_a=False), stats={"a": GOOD, "b": BAD})
    assert judge_host(run, "a").outcome is Outcome.UNKNOWN


def test_events_that_do_not_name_their_task_never_make_a_host_verified() -> None:
    run = _run(RunStatus.FAILED, *_wave(uuids=False), stats={"a": GOOD, "b": BAD})
    assert judge_host(run, "a").outcome is Outcome.UNKNOWN


def test_another_hosts_failed_fix_hides_no_host_either() -> None:
    # the verify part of an apply's run in which the fix failed on a third host (its
    # status is error: the verify itself failed nowhere), run to its end
    run = _run(RunStatus.ERROR, *_wave(), stats={"a": GOOD, "b": BAD})
    assert judge_host(run, "a").outcome is Outcome.VERIFIED


def test_a_run_cut_short_is_unknown_for_every_host_that_did_not_fail() -> None:
    for status in (RunStatus.TIMEOUT, RunStatus.ERROR, RunStatus.CANCELED):
        run = _run(status, *_wave(ended=False), stats={"a": GOOD, "b": BAD})
        assert judge_host(run, "a").outcome is Outcome.UNKNOWN, status
        assert judge_host(run, "b").outcome is Outcome.FAILED, status
    for status in (RunStatus.TIMEOUT, RunStatus.CANCELED):  # whatever came before
        run = _run(status, *_wave(), stats={"a": GOOD, "b": BAD})
        assert judge_host(run, "a").outcome is Outcome.UNKNOWN, status


def test_a_failed_host_is_rolled_back_for_its_own_reason() -> None:
    fix = (HostState.FAILED, "apply failed: c: Write the manifest: Not a directory")
    verify = (HostState.FAILED, "d: Check the usage: still at or above the threshold")
    unknown = (HostState.UNKNOWN, "e: unreachable")
    assert _why_undone({"c": fix, "e": unknown}, ("c",)) == "the fix failed"
    assert _why_undone({"d": verify}, ("d",)) == "verification failed"
    both = _why_undone({"c": fix, "d": verify}, ("c", "d"))
    assert both == "the fix or its verification failed"
