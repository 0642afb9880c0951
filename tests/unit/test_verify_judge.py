"""Judging a verify run: a run that could not tell says what the applier last saw."""

from __future__ import annotations

import pytest

from terry.appliers.base import EventStatus, HostStats, RunnerEvent, RunResult, RunStatus
from terry.verify.judge import Outcome, judge_run

pytestmark = pytest.mark.unit


def _event(seq: int, status: EventStatus, message: str) -> RunnerEvent:
    return RunnerEvent(
        seq, "argocd_health", "shop", "status", "argocd.sync", status, message, (), {}
    )


def _run(status: RunStatus, *events: RunnerEvent) -> RunResult:
    return RunResult(status, 0, {"shop": HostStats(ok=1)}, events, None, 0.1)


def test_a_run_that_cannot_tell_names_what_was_seen() -> None:
    found = judge_run(
        _run(
            RunStatus.TIMEOUT,
            _event(1, EventStatus.OK, "refreshed"),
            _event(2, EventStatus.SKIPPED, "not settled: sync Synced, health Suspended"),
        )
    )
    assert found.outcome is Outcome.UNKNOWN
    assert found.evidence == (
        "verify run ended timeout: not settled: sync Synced, health Suspended",
    )


def test_without_a_message_the_status_alone() -> None:
    found = judge_run(_run(RunStatus.CANCELED, _event(1, EventStatus.OK, "refreshed")))
    assert found.evidence == ("verify run ended canceled",)


def test_passing_verify_tasks_verify() -> None:
    assert judge_run(_run(RunStatus.SUCCESSFUL)).outcome is Outcome.VERIFIED
