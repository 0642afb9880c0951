"""Progress of several proposals at once, told one proposal at a time.

The lab demo's worker carries two proposals in parallel threads; their runner events came
out interleaved, task by task, so nobody could follow either. ``GroupedReporter`` keeps the
output live but grouped: the proposal whose run is printing holds the floor until that run
ends (ansible's ``playbook_on_stats``, or its next step line); what the others report
meanwhile waits, in order, and is printed as one block when the floor is free. A block that
follows another proposal's lines is headed with its proposal (``▶ #3 apply run:``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from terry.context import Reporter

if TYPE_CHECKING:
    from terry.appliers.base import RunnerEvent

__all__ = ["GroupedReporter"]

_RUN_ENDS = "playbook_on_stats"  # ansible's last event of a run


@dataclass(frozen=True)
class _Line:
    emit: Callable[[], None]
    kind: str | None  # a runner event's run kind; None for a step line
    ends_run: bool


class GroupedReporter:
    """A ``Reporter`` over ``inner`` that never interleaves two proposals' runs."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._floor: int | None = None  # the proposal whose run is printing
        self._waiting: dict[int, list[_Line]] = {}  # by proposal, first come first
        self._last: int | None = None  # the proposal of the last line printed

    def step(self, proposal_id: int | None, message: str) -> None:
        line = _Line(lambda: self.inner.step(proposal_id, message), None, ends_run=True)
        self._admit(proposal_id, line)

    def event(self, proposal_id: int, kind: str, event: RunnerEvent) -> None:
        line = _Line(
            lambda: self.inner.event(proposal_id, kind, event),
            kind,
            ends_run=event.event == _RUN_ENDS,
        )
        self._admit(proposal_id, line)

    def flush(self) -> None:
        """Print everything that waits (the demo narrates next, or it ends)."""
        with self._lock:
            self._floor = None
            for proposal_id in list(self._waiting):
                for line in self._waiting.pop(proposal_id):
                    self._print(proposal_id, line)
            self._floor = None

    # -- the floor ------------------------------------------------------------------------
    def _admit(self, proposal_id: int | None, line: _Line) -> None:
        with self._lock:
            if proposal_id is None:  # not about a proposal: say it now
                self._print(None, line)
                return
            if self._floor in (None, proposal_id) and proposal_id not in self._waiting:
                self._print(proposal_id, line)
            else:
                self._waiting.setdefault(proposal_id, []).append(line)
            self._drain()

    def _print(self, proposal_id: int | None, line: _Line) -> None:
        if line.kind is not None and proposal_id is not None and self._last != proposal_id:
            self.inner.step(proposal_id, f"{line.kind} run:")  # whose lines these are
        line.emit()
        self._last = proposal_id
        if proposal_id is None:
            return
        if line.ends_run:
            if self._floor == proposal_id:
                self._floor = None
        elif line.kind is not None:
            self._floor = proposal_id

    def _drain(self) -> None:
        """While nobody's run is printing, print what waits, one proposal at a time; stop
        when one of them is mid-run again (the rest of its lines are still to come)."""
        while self._floor is None and self._waiting:
            proposal_id = next(iter(self._waiting))
            lines = self._waiting.pop(proposal_id)
            for line in lines:
                self._print(proposal_id, line)
            if self._floor is not None:
                return
