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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GO", "STOP", "Hold", "can_hold"]

GO = "go"
STOP = "stop"


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
