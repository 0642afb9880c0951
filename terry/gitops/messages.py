"""Text Terry writes into git: untrusted text made safe for one line, and the gate's
verdict as trailers."""

from __future__ import annotations

import re

from terry.inert import inert

__all__ = ["decision_trailers", "one_line"]


def one_line(text: str, limit: int = 120) -> str:
    """Untrusted text made safe for a commit message line: no newlines (runs of control
    characters are one space), bounded, and every other hidden character shown visibly
    (``terry.inert``: a right-to-left override in ``git log`` would show the line backwards)."""
    return inert(re.sub(r"[\x00-\x1f\x7f]+", " ", text))[:limit]


def decision_trailers(
    decision: str | None, reasons: list[str] | tuple[str, ...], policy_commit: str | None
) -> list[str]:
    """The gate's verdict as git trailers: on the proposal commit's note and the merge."""
    return [
        f"Terry-Decision: {decision}",
        *(f"Terry-Reason: {one_line(r, 300)}" for r in reasons),
        f"Terry-Policy-Commit: {policy_commit}",
    ]
