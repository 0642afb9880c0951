"""The dry run covers every host of the proposal: a playbook run that reported nothing on a
host (ansible never matched it: a host pattern that split an IPv6 address into pieces, an
inventory that lacks the name) did not check it, and must not pass the gate as checked."""

from __future__ import annotations

import pytest

from terry.appliers.base import HostStats, RunResult, RunStatus
from terry.steps.dry_run import _missed

pytestmark = pytest.mark.unit


def _result(*hosts: str) -> RunResult:
    stats = {h: HostStats(ok=1) for h in hosts}
    return RunResult(RunStatus.SUCCESSFUL, 0, stats, (), None, 1.0)


def test_a_playbook_run_that_never_matched_a_host_missed_it() -> None:
    hosts = ("s-01", "2001:db8::10", "2001:db8::11")
    assert _missed("ansible", hosts, _result("s-01")) == ["2001:db8::10", "2001:db8::11"]
    assert _missed("awx", hosts, _result("s-01", "2001:db8::10")) == ["2001:db8::11"]
    assert _missed("ansible", hosts, _result(*hosts)) == []


def test_an_unreachable_or_skipped_host_was_still_reached_by_the_run() -> None:
    stats = {"a": HostStats(unreachable=1), "b": HostStats(skipped=3)}
    result = RunResult(RunStatus.FAILED, 4, stats, (), None, 1.0)
    assert _missed("ansible", ("a", "b"), result) == []


def test_runs_that_are_not_of_hosts_are_not_asked() -> None:
    # an Argo CD sync's or a git edit's run reports no hosts
    assert _missed("argocd", ("web-01",), _result()) == []
    assert _missed("git", ("web-01",), _result()) == []
