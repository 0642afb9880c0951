"""``/terry`` commands in pull request comments.

A comment is a command only when one of its lines starts with ``/terry``; the first such
line counts. Everything in a comment is untrusted: the reason of a reject is kept as one
bounded line of text and is never interpreted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Command", "Verb", "parse_command"]

_LINE = re.compile(r"^/terry(?:\s+(\S+))?(?:\s+(.*))?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class Verb(StrEnum):
    APPLY = "apply"
    REJECT = "reject"
    ROLLBACK = "rollback"
    EXPLAIN = "explain"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Command:
    verb: Verb
    argument: str = ""  # the reason of a reject; the unknown word otherwise

    @property
    def text(self) -> str:
        return f"/terry {self.verb.value}" + (f" {self.argument}" if self.argument else "")


def parse_command(body: str) -> Command | None:
    """The first ``/terry`` line of ``body`` as a Command, or None when there is none."""
    for raw in body.splitlines():
        line = raw.strip()
        if not line.startswith("/terry"):
            continue
        match = _LINE.match(line)
        if match is None:  # e.g. "/terryfoo": not our command
            continue
        word = (match.group(1) or "").lower()
        rest = _CONTROL.sub(" ", match.group(2) or "").strip()[:300]
        try:
            verb = Verb(word)
        except ValueError:
            return Command(Verb.UNKNOWN, _CONTROL.sub(" ", word)[:40])
        if verb is Verb.UNKNOWN:
            return Command(Verb.UNKNOWN, word)
        return Command(verb, rest if verb is Verb.REJECT else "")
    return None
