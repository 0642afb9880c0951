"""The demo's progress when two proposals run at once: each run's lines stay together, each
block says whose it is, and nothing is lost or reordered within a proposal (issue 13,
item 16)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from terry.appliers.base import RunnerEvent
from terry.demo.narration import GroupedReporter

pytestmark = pytest.mark.unit


class _Lines:
    """What a console would show, one entry per line: (proposal, text)."""

    def __init__(self) -> None:
        self.lines: list[tuple[int | None, str]] = []

    def step(self, proposal_id: int | None, message: str) -> None:
        self.lines.append((proposal_id, f"step {message}"))

    def event(self, proposal_id: int, kind: str, event: RunnerEvent) -> None:
        self.lines.append((proposal_id, f"{kind} {event.event} {event.task or ''}".strip()))


def _event(name: str, task: str | None = None, host: str | None = "web-01") -> RunnerEvent:
    raw: dict[str, Any] = {"event": name, "counter": 1, "event_data": {"host": host}}
    if task:
        raw["event_data"]["task"] = task
    return RunnerEvent.from_runner(raw)


def _run(reporter: GroupedReporter, proposal_id: int, kind: str, pause: float = 0.0) -> None:
    reporter.step(proposal_id, f"{kind} starts")
    reporter.event(proposal_id, kind, _event("playbook_on_start", host=None))
    for n in range(3):
        time.sleep(pause)
        reporter.event(proposal_id, kind, _event("runner_on_ok", f"task {n}"))
    reporter.event(proposal_id, kind, _event("playbook_on_stats", host=None))
    reporter.step(proposal_id, f"{kind} done")


def _blocks(lines: list[tuple[int | None, str]]) -> list[int | None]:
    """The proposals in the order their blocks of lines appear (one entry per block)."""
    out: list[int | None] = []
    for proposal_id, _text in lines:
        if not out or out[-1] != proposal_id:
            out.append(proposal_id)
    return out


def test_a_run_that_starts_while_another_prints_waits_for_it_to_end() -> None:
    shown = _Lines()
    grouped = GroupedReporter(shown)
    # proposal 1's check is printing; proposal 2's apply reports in between, line by line
    grouped.event(1, "check", _event("playbook_on_start", host=None))
    grouped.event(1, "check", _event("runner_on_ok", "one"))
    grouped.event(2, "apply", _event("playbook_on_start", host=None))
    grouped.event(2, "apply", _event("runner_on_ok", "uno"))
    grouped.step(2, "applying")
    grouped.event(1, "check", _event("runner_on_ok", "two"))
    grouped.event(1, "check", _event("playbook_on_stats", host=None))
    grouped.step(1, "gate: merge")
    assert shown.lines == [
        (1, "step check run:"),
        (1, "check playbook_on_start"),
        (1, "check runner_on_ok one"),
        (1, "check runner_on_ok two"),
        (1, "check playbook_on_stats"),
        # the floor is free: proposal 2's lines, in their order, under its own heading
        (2, "step apply run:"),
        (2, "apply playbook_on_start"),
        (2, "apply runner_on_ok uno"),
        (2, "step applying"),
        (1, "step gate: merge"),
    ]


def test_two_proposals_run_at_once_and_each_run_prints_as_one_block() -> None:
    shown = _Lines()
    grouped = GroupedReporter(shown)
    threads = [
        threading.Thread(target=_run, args=(grouped, proposal_id, kind, 0.01))
        for proposal_id, kind in ((1, "check"), (2, "apply"), (3, "verify"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grouped.flush()
    # every line is there, in each proposal's own order
    for proposal_id, kind in ((1, "check"), (2, "apply"), (3, "verify")):
        mine = [text for p, text in shown.lines if p == proposal_id and "run:" not in text]
        assert mine == [
            f"step {kind} starts",
            f"{kind} playbook_on_start",
            *(f"{kind} runner_on_ok task {n}" for n in range(3)),
            f"{kind} playbook_on_stats",
            f"step {kind} done",
        ]
    # and no run is cut by another proposal's lines
    for proposal_id in (1, 2, 3):
        at = [n for n, (p, text) in enumerate(shown.lines) if p == proposal_id]
        start = next(n for n in at if "playbook_on_start" in shown.lines[n][1])
        end = next(n for n in at if "playbook_on_stats" in shown.lines[n][1])
        assert all(p == proposal_id for p, _text in shown.lines[start : end + 1]), shown.lines
    assert len(_blocks(shown.lines)) <= 9  # three runs, each at most split around its steps


def test_lines_about_no_proposal_are_said_at_once() -> None:
    shown = _Lines()
    grouped = GroupedReporter(shown)
    grouped.event(1, "apply", _event("runner_on_ok", "one"))
    grouped.step(None, "incident 4: kept for a human: no remedy matches")
    assert shown.lines[-1] == (None, "step incident 4: kept for a human: no remedy matches")
