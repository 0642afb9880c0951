"""Reports over the store's history: ``weekly`` (incidents, fixes, rollbacks, time saved).

``weekly.py`` computes the figures, ``history.py`` reads the store as it stood at a moment,
``weekly_format.py`` writes Markdown, HTML and JSON (shared helpers: ``terry/reports/markup.py``).

The names below are imported on first use (PEP 562), so that reading ``terry.reports.views``
(``terry incidents list``) does not load the weekly report and what it needs (git, the
inventory, Jinja2).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from terry.reports.weekly import SCHEMA, Settings, WeeklyReport, report_for, weekly_report
    from terry.reports.weekly_format import to_html, to_json, to_markdown

__all__ = [
    "SCHEMA",
    "Settings",
    "WeeklyReport",
    "report_for",
    "to_html",
    "to_json",
    "to_markdown",
    "weekly_report",
]

_FROM = {
    "SCHEMA": "terry.reports.weekly",
    "Settings": "terry.reports.weekly",
    "WeeklyReport": "terry.reports.weekly",
    "report_for": "terry.reports.weekly",
    "weekly_report": "terry.reports.weekly",
    "to_html": "terry.reports.weekly_format",
    "to_json": "terry.reports.weekly_format",
    "to_markdown": "terry.reports.weekly_format",
}


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
