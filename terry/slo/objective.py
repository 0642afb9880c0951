"""One SLO as Terry reads it, whatever format it was written in (``SLO``), and the
``{{.window}}`` placeholder its queries carry where the range goes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from terry.slo.budget import budget_fraction
from terry.slo.calendar import CalendarWindow

__all__ = [
    "ALERT",
    "DEFAULT_PERIOD",
    "MIN_ELAPSED",
    "SLO",
    "SLO_DIR",
    "WINDOW",
    "WINDOW_SAMPLE",
    "Alerting",
    "closed",
    "normal_query",
]

ALERT = "ErrorBudgetBurn"  # the burn-rate alert's name, unless a spec names it

WINDOW = "{{.window}}"
WINDOW_SAMPLE = "5m"  # a range put where the window goes to check a query as PromQL
DEFAULT_PERIOD = 30 * 86400.0
MIN_ELAPSED = 300.0  # a calendar period just begun is read over 5 minutes at least
SLO_DIR = "slos"
_ANY_WINDOW = re.compile(r"\{\{\s*\.window\s*\}\}")  # Go templates allow {{ .window }}


def closed(query: str) -> str:
    """``query`` ready for text after it: a PromQL comment (``#``) runs to the end of its
    line, so a query that may end in one gets a newline before what follows it."""
    return f"{query}\n" if "#" in query else query


def normal_query(query: str) -> str:
    """The query with every spelling of the window (``{{ .window }}``) as ``{{.window}}``."""
    return _ANY_WINDOW.sub(WINDOW, query).strip()


@dataclass(frozen=True)
class Alerting:
    """What a spec asks of the rules ``terry slo rules`` writes for it (Sloth's ``labels``
    and ``alerting``): labels on every rule, the burn-rate alert's name, labels and
    annotations, or no alert at all (``page``: Sloth's ``page_alert.disable`` is false)."""

    rule_labels: dict[str, str] = field(default_factory=dict)
    name: str = ALERT
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    page: bool = True


@dataclass(frozen=True)
class SLO:
    """One objective of one service, whatever format it was written in.

    ``errors`` and ``total`` are PromQL with ``{{.window}}`` for the range; when ``good`` is
    true ``errors`` counts good events (OpenSLO's ``good``) and bad = total - good.
    ``period_seconds`` is the window's length (nominal for a calendar-aligned one)."""

    service: str
    name: str
    objective: float  # percent, e.g. 99.9
    period_seconds: float
    errors: str
    total: str | None  # None: ``errors`` is already a ratio (Sloth's raw error_ratio_query)
    good: bool = False
    description: str = ""
    source: str = ""  # the file it came from, relative to the repository
    format: Literal["sloth", "openslo"] = "sloth"
    labels: dict[str, str] = field(default_factory=dict)
    calendar: CalendarWindow | None = None  # None: a rolling window
    alerting: Alerting = field(default_factory=Alerting)

    @property
    def budget_fraction(self) -> float:
        """The share of events allowed to fail: 0.001 for 99.9%."""
        return budget_fraction(self.objective)

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}"

    def period_at(self, at: float) -> tuple[float, float]:
        """(length of the period that holds ``at``, seconds of it to read the SLI over): the
        window itself when it rolls; for a calendar-aligned one, the current calendar period
        and the time since it began (``MIN_ELAPSED`` at least)."""
        if self.calendar is None:
            return self.period_seconds, self.period_seconds
        start, end = self.calendar.bounds(at)
        return end - start, max(at - start, MIN_ELAPSED)

    def error_ratio_query(self, window: str) -> str:
        """PromQL answering one value: the share of failed events over ``window`` (``5m``).

        No failed series at all is no failure (``or vector(0)``); no traffic is no answer
        (a division by zero is NaN), which the status reads as unknown."""
        errors = closed(self.errors.replace(WINDOW, window))
        if self.total is None:  # a ratio already, used as written (as Sloth does)
            return f"({errors})"
        total = closed(self.total.replace(WINDOW, window))
        if self.good:
            return f"1 - sum(({errors}) or vector(0)) / sum({total})"
        return f"sum(({errors}) or vector(0)) / sum({total})"
