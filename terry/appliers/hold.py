"""A changing run started early and held: it does what it may before any change (start,
the identity probe), then waits, before its first change, for Terry to say ``go`` or
``stop`` in a file of its own.

The canary's next wave uses it (``terry.steps.apply``): its run starts beside the canary's,
probes its hosts, and waits; Terry says ``go`` once the canary is judged verified, ``stop``
otherwise. A run never told (Terry died, or the word never came within the wait) gives up
at the end of the wait having changed nothing: ``go`` is the one word that lets it on.

The word is written whole (a temporary file renamed over the path), so the run never reads
half of it. An applier that can hold a run says so with ``holds = True``; the others are
never asked.

Where a run waits: the ansible applier's identity probe play ends with ``wait_tasks``. A
remedy that declares a ``look`` (tasks that only read: the disk remedy's walk of the
filesystem and its estimate) has the same two tasks rendered into its fix play between its
look and its change (``terry.remedies.render``), so a held run of it also looks before it
waits: the wait is then the only thing between the canary's verdict and the first change.
Both read the word's file from ``terry_hold_file`` and wait ``terry_hold_retries`` polls;
the fix play's pair runs only when the run was given that file (a run not held skips it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "GO",
    "GO_TASK",
    "HOLD_TASK",
    "POLL",
    "STOP",
    "Hold",
    "can_hold",
    "retries",
    "wait_tasks",
]

GO = "go"
STOP = "stop"
HOLD_TASK = "terry hold: wait for Terry's word"
GO_TASK = "terry hold: go on only on go"
POLL = 0.25  # seconds between two reads of the word


@dataclass(frozen=True)
class Hold:
    """The file a held run waits on."""

    path: Path

    def go(self) -> None:
        self._say(GO)

    def stop(self) -> None:
        self._say(STOP)

    def said(self) -> str | None:
        """The word said so far, or None."""
        try:
            return self.path.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def _say(self, word: str) -> None:
        if self.said() is not None:
            return  # said once: a run that read "stop" must never see "go" after it
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        staging.write_text(word + "\n", encoding="utf-8")
        os.replace(staging, self.path)


def can_hold(applier: object) -> bool:
    """Whether ``applier`` can start a run held (``Job.hold``)."""
    return getattr(applier, "holds", False) is True


def wait_tasks() -> list[dict[str, Any]]:
    """The two tasks a held run waits in, as play data: on one host (``run_once``: its
    failure fails every host of the play) and on the controller (a lookup of the word's
    file: no connection), ``debug`` retried until a word is in ``terry_hold_file``, for
    ``terry_hold_retries`` polls, then an ``assert`` that the word is ``go`` (no word is
    not go). Two tasks, not one: ``failed_when`` and ``until`` each read the file, so a word
    written between their reads would end one task both waiting and failed; the word, once
    written, never changes, so the assert reads what the wait saw. Both are skipped when
    the run was given no file (it is not held)."""
    word = (
        "(query('ansible.builtin.file', terry_hold_file, errors='ignore')"
        " | first | default('') | trim)"
    )
    common = {
        "run_once": True,
        "check_mode": False,
        "when": "terry_hold_file is defined",
    }
    return [
        {
            "name": HOLD_TASK,
            "ansible.builtin.debug": {
                "msg": "this run waits for Terry's word before any change",
            },
            **common,
            "changed_when": False,
            "failed_when": False,
            "until": f"{word} in [{GO!r}, {STOP!r}]",
            "retries": "{{ terry_hold_retries | int }}",
            "delay": POLL,
        },
        {
            "name": GO_TASK,
            "ansible.builtin.assert": {
                "that": [f"{word} == {GO!r}"],
                "fail_msg": (
                    "Terry did not say go (it said stop, or nothing in time); nothing changed"
                ),
                "quiet": True,
            },
            **common,
        },
    ]


def retries(wait: float) -> int:
    """How many polls of the word make a wait of ``wait`` seconds (at least one)."""
    return max(1, int(wait / POLL))
