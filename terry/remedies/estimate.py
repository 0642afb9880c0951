"""What a remedy's dry run estimates its fix would achieve, per host.

A remedy role may report, in check mode too, whether its fix would be enough: the fact
``terry_estimate`` (``ansible.builtin.set_fact``), a mapping with ``enough`` (a boolean),
``summary`` (one line a reviewer reads) and any figures behind it (``would_free_bytes``,
``needed_bytes``...). The disk remedy does (roles/disk_cleanup/tasks/look.yml). The dry run
keeps what it finds in the proposal's ``check_summary`` as ``estimates`` and the gate hands
it to the policies (``check.estimates``, docs/policy.md): a fix its own dry run says falls
short goes to a person with the summary as the reason, not to apply.

Facts come from the hosts' runs: they are read as data, bounded, and only a real ``true``
counts as enough (anything else reads as "not shown to be enough").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from terry.appliers.base import EventStatus, RunnerEvent

__all__ = ["ESTIMATE_FACT", "estimates"]

ESTIMATE_FACT = "terry_estimate"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_SUMMARY = 400
_MAX_FIGURES = 8
_FIGURE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def estimates(events: Iterable[RunnerEvent]) -> list[dict[str, Any]]:
    """The last estimate each host reported in a run's events, by host name."""
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.host is None or event.status not in (EventStatus.OK, EventStatus.CHANGED):
            continue
        data = event.raw.get("event_data") or {}
        result = data.get("res") if isinstance(data, dict) else None
        facts = result.get("ansible_facts") if isinstance(result, dict) else None
        if isinstance(facts, dict) and ESTIMATE_FACT in facts:
            found[str(event.host)] = _estimate(str(event.host), facts[ESTIMATE_FACT])
    return [found[host] for host in sorted(found)]


def _estimate(host: str, raw: Any) -> dict[str, Any]:
    given = raw if isinstance(raw, dict) else {}
    summary = _CONTROL.sub(" ", str(given.get("summary") or "")).strip()[:_MAX_SUMMARY]
    figures = {
        str(name): value
        for name, value in given.items()
        if _FIGURE_NAME.match(str(name))
        and name not in ("host", "enough", "summary")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    }
    return {
        "host": host,
        "enough": given.get("enough") is True,
        "summary": summary or "the remedy reported an estimate Terry cannot read",
        **dict(sorted(figures.items())[:_MAX_FIGURES]),
    }
