"""Reports over the store's history: ``weekly`` (incidents, fixes, rollbacks, time saved).

``weekly.py`` computes the figures, ``history.py`` reads the store as it stood at a moment,
``weekly_render.py`` writes Markdown, HTML and JSON (shared helpers: ``terry/reports/markup.py``).
"""

from __future__ import annotations

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
