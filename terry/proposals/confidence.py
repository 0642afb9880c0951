"""Confidence: how sure Terry is that a proposal fixes its problem without harm, 0-100.

Four things, each worth a fixed share, added up (``Confidence.parts``, stored with the
value; the value alone is given to the gate, and the shares below are how to read it):

- **the remedy's record** (up to 45): a remedy never run yet gets 15, neither trusted nor
  distrusted; its success rate across earlier proposals (45 at 100%, 0 at none) moves it
  from there, in full from ``PROVEN_RUNS`` runs on and in part before (one run of five:
  a fifth of the way), so a first success raises it and a first failure lowers it;
- **the dry run** (up to 30): passed with every estimate enough (30); passed with an
  estimate that falls short (10); not run yet (0); failed caps the score at ``FAILED``
  (its part is what it took off: a fix that could not run in check mode is not 70% sure
  because its remedy has a good record);
- **the diagnosis** (up to 25): the remedy catalogue (25); written by an AI, its own stated
  confidence counts for at most 15 (an AI's self-assessment is worth less than a match);
- **the canary** once there is one: passed adds 10; failed caps the score at ``FAILED``.

Shown in ``terry proposals show/list`` and the pull request, and part of the gate's input
(``confidence``): the shipped policy (policies/canary.rego) names it in its reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FAILED", "PROVEN_RUNS", "Confidence", "describe", "revised", "score"]

PROVEN_RUNS = 5  # runs from which a remedy's record counts in full
UNTRIED = 15  # the record's part for a remedy never run: neither trusted nor distrusted
FAILED = 20  # the most a proposal scores once its dry run or its canary failed


@dataclass(frozen=True)
class Confidence:
    value: int
    parts: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "parts": dict(self.parts)}


def score(
    *,
    runs: int,
    success_rate: float | None,
    check: dict[str, Any] | None,
    ai_authored: bool,
    ai_confidence: int | None = None,
    canary: str | None = None,  # "passed" | "failed" | None (no canary yet)
) -> Confidence:
    if runs <= 0 or success_rate is None:
        record = UNTRIED
    else:
        earned = 45 * max(0.0, min(1.0, success_rate))
        record = round(UNTRIED + (earned - UNTRIED) * min(1.0, runs / PROVEN_RUNS))
    dry_run, failed = 0, False
    if check and "ok" in check:
        estimates = check.get("estimates") or []
        short = any(isinstance(e, dict) and e.get("enough") is not True for e in estimates)
        dry_run, failed = (10 if short else 30), not check.get("ok")
    if ai_authored:
        stated = max(0, min(100, ai_confidence if ai_confidence is not None else 0))
        diagnosis = round(15 * stated / 100)
    else:
        diagnosis = 25
    if failed:  # what it takes off leaves at most FAILED
        dry_run = min(0, FAILED - record - diagnosis)
    return revised({"record": record, "dry_run": dry_run, "diagnosis": diagnosis}, canary)


def revised(parts: dict[str, int], canary: str | None) -> Confidence:
    """The confidence of these parts before any canary (``record``, ``dry_run``,
    ``diagnosis``), with the canary's outcome: passed adds 10 (up to 100), failed caps it at
    ``FAILED``; the canary's part is what it added or took off, so the parts add up to the
    value."""
    base = {k: v for k, v in parts.items() if k != "canary"}
    value = sum(base.values())
    if canary == "passed":
        base["canary"] = max(0, min(10, 100 - value))  # up to 100, no further
        value += base["canary"]
    elif canary == "failed":
        base["canary"] = min(0, FAILED - value)
        value = min(value, FAILED)
    return Confidence(max(0, min(100, value)), base)


def describe(value: int, parts: dict[str, int] | None) -> str:
    """``85/100 (record 30, dry run 30, diagnosis 25)``; the number alone without parts."""
    said = f"{value}/100"
    if parts:
        names = {"dry_run": "dry run"}
        shown = [
            f"{names.get(k, k)} {'+' if k == 'canary' and v > 0 else ''}{v}"
            for k, v in parts.items()
        ]
        said += f" ({', '.join(shown)})"
    return said
