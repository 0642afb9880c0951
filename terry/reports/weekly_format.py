"""The weekly report in words: Markdown, one self-contained HTML page (Jinja2 with autoescape,
inline SVG charts drawn by ``terry/templates/charts.html.j2``) and JSON (``schema:
terry.weekly/v1``, keys only ever added; documented in ``docs/reports.md``).

Untrusted text (alert names and summaries, host names that are not in the inventory,
reasons quoting them) is escaped for Markdown by ``md_text`` and by autoescape in HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from terry.cost.savings import savings_lines
from terry.reports.markup import (
    BarChart,
    ColumnChart,
    Series,
    bar_chart,
    column_chart,
    html_page,
    md_table,
    md_text,
    schema_json,
)
from terry.reports.weekly import BudgetRow, DayPoint, Figures, RemedyRow, WeeklyReport

__all__ = ["Headline", "headlines", "sentence", "span", "to_html", "to_json", "to_markdown"]


def span(seconds: float | None) -> str:
    """``45s``, ``3m 30s``, ``1h 5m``, ``2d 3h``; ``-`` for no value."""
    if seconds is None:
        return "-"
    s = round(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m}m {r}s" if r else f"{m}m"
    if s < 86400:
        h, r = divmod(s, 3600)
        return f"{h}h {r // 60}m" if r // 60 else f"{h}h"
    d, r = divmod(s, 86400)
    return f"{d}d {r // 3600}h" if r // 3600 else f"{d}d"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _signed(value: float | None, text: str | None = None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "±0"
    return ("+" if value > 0 else "−") + (text if text is not None else f"{abs(value):g}")


def _states_text(counts: Mapping[str, int]) -> str:
    parts = [f"{s.replace('_', ' ')} {n}" for s, n in counts.items() if n]
    return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Headline:
    """A summary row: what, this window, the window before, the change, and whether the
    change is good news (True), bad news (False) or neither (None)."""

    key: str
    label: str
    value: str
    previous: str
    change: str
    good: bool | None = None


def _good(delta: float | None, higher_is_better: bool) -> bool | None:
    if delta is None or delta == 0:
        return None
    return (delta > 0) == higher_is_better


def headlines(report: WeeklyReport) -> tuple[Headline, ...]:
    s, p, d = report.summary, report.previous, report.deltas

    def of(f: Figures) -> str:
        return f"{f.auto_fixed} of {f.incidents_opened} ({_percent(f.auto_resolution_rate)})"

    def mttf(f: Figures) -> str:
        if f.mttf_mean_seconds is None:
            return "-"
        return f"{span(f.mttf_mean_seconds)} (median {span(f.mttf_median_seconds)})"

    def sources(f: Figures) -> str:
        parts = [f"{k} {v}" for k, v in f.by_source.items() if v]
        return f"{f.incidents_opened}" + (f" ({', '.join(parts)})" if parts else "")

    rate = d.auto_resolution_rate
    return (
        Headline(
            "incidents_opened",
            "incidents opened",
            sources(s),
            str(p.incidents_opened),
            _signed(d.incidents_opened),
        ),
        Headline(
            "auto_fixed",
            "fixed automatically",
            of(s),
            of(p),
            _signed(rate, f"{abs(rate or 0) * 100:.1f} pts"),
            _good(rate, True),
        ),
        Headline(
            "fixed_after_approval",
            "fixed after a person approved",
            str(s.fixed_after_approval),
            str(p.fixed_after_approval),
            _signed(d.fixed_after_approval),
        ),
        Headline(
            "needed_person",
            "kept for a person",
            str(s.needed_person),
            str(p.needed_person),
            _signed(d.needed_person),
            _good(d.needed_person, False),
        ),
        Headline(  # not fixes: counted apart (terry.reports.history, healed)
            "resolved_by_itself",
            "resolved by itself",
            str(s.resolved_by_itself),
            str(p.resolved_by_itself),
            _signed(d.resolved_by_itself),
        ),
        Headline(
            "mttf",
            "mean time to fix",
            mttf(s),
            mttf(p),
            _signed(d.mttf_mean_seconds, span(d.mttf_mean_seconds)),
            _good(d.mttf_mean_seconds, False),
        ),
        Headline(
            "rollbacks",
            "rollbacks",
            str(s.rollbacks),
            str(p.rollbacks),
            _signed(d.rollbacks),
            _good(d.rollbacks, False),
        ),
        Headline(
            "prevented",
            "prevented incidents",
            str(s.prevented),
            str(p.prevented),
            _signed(d.prevented),
            _good(d.prevented, True),
        ),
        Headline(
            "time_saved",
            "time saved",
            span(s.time_saved_minutes * 60),
            span(p.time_saved_minutes * 60),
            _signed(d.time_saved_minutes, span(d.time_saved_minutes * 60)),
            _good(d.time_saved_minutes, True),
        ),
        Headline(
            "proposals",
            "proposals",
            f"{s.proposals} ({_states_text(s.proposals_by_state)})" if s.proposals else "0",
            str(p.proposals),
            _signed(d.proposals),
        ),
        Headline(
            "ai_proposals",
            "AI-authored proposals",
            f"{s.ai_proposals} ({_states_text(s.ai_by_state)})" if s.ai_proposals else "0",
            str(p.ai_proposals),
            _signed(d.ai_proposals),
        ),
    )


def sentence(report: WeeklyReport) -> str:
    """The week in one line (the top of every rendering)."""
    s = report.summary
    if not s.incidents_opened:
        return "No incidents were opened in this window."
    parts = [
        f"{s.incidents_opened} incident(s) opened; Terry fixed {s.auto_fixed} on its own "
        f"({_percent(s.auto_resolution_rate)})",
        f"{s.needed_person} kept for a person",
        f"{s.rollbacks} rollback(s)",
        f"{s.prevented} prevented",
        f"about {span(s.time_saved_minutes * 60)} saved",
    ]
    return ", ".join(parts) + "."


def definitions(report: WeeklyReport) -> tuple[tuple[str, str], ...]:
    """How each figure is computed, in words (rendered at the end of the report)."""
    st = report.settings
    manual, review = f"{st.manual_minutes_per_fix:g}", f"{st.review_minutes_per_approval:g}"
    return (
        (
            "window",
            f"incidents opened from {_when(report.start)} up to {_when(report.end)} UTC, as "
            "they stood at its end (a fix verified later does not count); last week is the "
            f"{report.days} days before, as they stood at its own end",
        ),
        (
            "fixed",
            "the incident's fix was verified before the end of the window (a fix applied "
            "after the problem had already gone is no fix)",
        ),
        (
            "resolved by itself",
            "resolved with no fix of Terry's and no person: its alert resolved, or its "
            "proposal was withdrawn because the problem had gone before the apply",
        ),
        (
            "fixed automatically",
            "fixed by a proposal the policy gate merged on its own (decision merge, "
            "nobody approved it)",
        ),
        (
            "kept for a person",
            "not fixed automatically, and handed to a person: marked as needing a human, or "
            "a proposal waited for review or was denied, rejected, failed, rolled back, "
            "escalated or interrupted (fixes a person approved count here too)",
        ),
        ("auto-resolution rate", "fixed automatically / incidents opened"),
        (
            "time to fix",
            "from the incident's opening (the alert's start) to its verified fix; mean and "
            "median over fixed incidents",
        ),
        ("rollbacks", "proposals rolled back at least once"),
        (
            "prevented incidents",
            "forecast incidents (a disk predicted to fill) fixed before the threshold was "
            "crossed, so no alert fired",
        ),
        (
            "time saved",
            f"{manual} min for every fix Terry made on its own, {manual} − {review} min for a "
            "fix a person approved (never below 0); manual_minutes_per_fix and "
            "review_minutes_per_approval under reports: in terry.yml",
        ),
    ) + (_BUDGET_DEFINITION if report.budgets else ())


_BUDGET_DEFINITION = (
    (
        "error budget consumed",
        "per service with an SLO in slos/ on main: the share of its SLO period's error budget "
        "that the window's errors spent (error ratio over the window / (1 - objective) x "
        "window / period), read from Prometheus at the window's end (or now); the incidents "
        "are those opened in the window on the hosts that serve the service",
    ),
)


def _consumed(row: BudgetRow) -> str:
    return "unknown" if row.consumed_percent is None else f"{row.consumed_percent:.1f}%"


def _budget_lines(report: WeeklyReport) -> list[str]:
    if not report.budgets:
        return []
    lines = ["", "## Error budgets", ""]
    lines += md_table(
        ["service", "budget consumed", "hosts", "incidents on its hosts"],
        (
            (
                md_text(b.service),
                _consumed(b),
                md_text(", ".join(b.hosts) or "-"),
                (", ".join(str(i) for i in b.incidents) or "none")
                + (f" … ({b.incident_count})" if b.incident_count > len(b.incidents) else ""),
            )
            for b in report.budgets
        ),
    )
    lines += [f"- {md_text(b.service)}: {md_text(b.error, 300)}" for b in report.budgets if b.error]
    return lines


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M")


def _title_span(report: WeeklyReport) -> str:
    last = report.end - timedelta(microseconds=1)
    if report.days == 1:
        return report.start.date().isoformat()
    return f"{report.start.date().isoformat()} to {last.date().isoformat()}"


# -- renderers -----------------------------------------------------------------------------
def to_json(report: WeeklyReport) -> str:
    return schema_json(report)


def _before(report: WeeklyReport) -> str:
    """What the comparison window is called: "last week" for 7 days."""
    return "last week" if report.days == 7 else f"the {report.days} days before"


def to_markdown(report: WeeklyReport) -> str:
    this, before = _title_this(report), _before(report)
    s, p = report.summary, report.previous
    lines = [f"# Terry weekly report: {_title_span(report)}", "", sentence(report), ""]
    lines += ["## Summary", ""]
    lines += md_table(
        ["", this, before, "change"],
        ((h.label, h.value, h.previous, h.change) for h in headlines(report)),
    )
    lines += ["", "## By day", ""]
    lines += md_table(
        ["day", "opened", "fixed automatically", "kept for a person", "other"],
        (
            (d.start.strftime("%a %Y-%m-%d"), d.opened, d.auto_fixed, d.needed_person, d.other)
            for d in report.per_day
        ),
    )
    if s.fixed or p.fixed:
        lines += ["", "## Time to fix", ""]
        lines += md_table(
            ["time to fix", this, before],
            ((name, n, p.time_to_fix.get(name, 0)) for name, n in s.time_to_fix.items()),
        )
    lines += ["", "## By remedy", ""]
    if not report.remedies:
        lines.append("No proposals.")
    else:
        lines += md_table(
            [
                "remedy",
                "proposals",
                "merged automatically",
                "approved",
                "verified",
                "rollbacks",
                "failed",
                "awaiting review",
                "denied or rejected",
                "success rate",
                "mean time to fix",
            ],
            (
                (
                    md_text(r.remedy),
                    r.proposals,
                    r.auto_merged,
                    r.approved,
                    r.verified,
                    r.rollbacks,
                    r.failed + r.escalated,
                    r.awaiting_review,
                    r.denied + r.rejected,
                    _percent(r.success_rate),
                    span(r.mttf_mean_seconds),
                )
                for r in report.remedies
            ),
        )
    if report.environments:
        counts = ["incidents", "fixed automatically", "kept for a person", "rollbacks"]
        lines += ["", "## By environment", ""]
        lines += md_table(
            ["environment", *counts],
            (
                (
                    md_text(e.environment),
                    e.incidents,
                    f"{e.auto_fixed} ({_percent(e.auto_resolution_rate)})",
                    e.needed_person,
                    e.rollbacks,
                )
                for e in report.environments
            ),
        )
        lines += ["", "## By host", ""]
        lines += md_table(
            ["host", "environment", *counts],
            (
                (
                    md_text(h.host),
                    md_text(h.environment),
                    h.incidents,
                    h.auto_fixed,
                    h.needed_person,
                    h.rollbacks,
                )
                for h in report.hosts
            ),
        )
    lines += _budget_lines(report)
    lines += savings_lines(report.savings) if report.savings else []
    lines += ["", "## Kept for a person", ""]
    if not report.kept:
        lines.append("None.")
    for k in report.kept:
        where = f", {md_text(k.host)}" if k.host else ""
        proposal = f", proposal {k.proposal_id}" if k.proposal_id else ""
        summary = f" ({md_text(k.summary, 160)})" if k.summary else ""
        reason = f" — {md_text(k.reason, 300)}" if k.reason else ""
        lines.append(
            f"- incident {k.id} ({k.source}{where}, opened {_when(k.opened_at)}): "
            f"{md_text(k.title)}{summary}: {md_text(k.status)}{proposal}{reason}"
        )
    if report.kept_total > len(report.kept):
        lines.append(f"- … and {report.kept_total - len(report.kept)} more")
    lines += ["", "## How these figures are computed", ""]
    for name, text in definitions(report):
        lines.append(f"- **{name}**: {text}.")
    return "\n".join(lines).rstrip() + "\n"


_AUTO = Series("fixed automatically", "#3f9d5a")
_PERSON = Series("kept for a person", "#e08a2c")
_OTHER = Series("other (open, in progress, resolved by itself)", "#b8c0cc")
_VERIFIED = Series("verified", "#3f9d5a")
_ROLLED_BACK = Series("rolled back", "#d0453a")


def _day_chart(points: tuple[DayPoint, ...]) -> ColumnChart:
    """Incidents opened per day, stacked by what became of them."""
    many = len(points) > 14
    return column_chart(
        [(p.start.strftime("%d" if many else "%a %d"), p.day) for p in points],
        [(p.auto_fixed, p.needed_person, p.other) for p in points],
        (_AUTO, _PERSON, _OTHER),
    )


def _comparison_chart(report: WeeklyReport) -> BarChart:
    """This window against the one before, a pair of bars per figure (each row its own
    scale: the pair is what is compared)."""
    now, before = report.summary, report.previous
    series = (Series(_title_this(report), "#3d6fb6"), Series(_before(report), "#b8c0cc"))

    def count(label: str, a: float, b: float) -> tuple[str, tuple[float, float], tuple[str, str]]:
        return label, (a, b), (f"{a:g}", f"{b:g}")

    def seconds(
        label: str, a: float | None, b: float | None
    ) -> tuple[str, tuple[float, float], tuple[str, str]]:
        return label, (a or 0.0, b or 0.0), (span(a), span(b))

    rows = [
        count("incidents opened", now.incidents_opened, before.incidents_opened),
        count("fixed automatically", now.auto_fixed, before.auto_fixed),
        count("kept for a person", now.needed_person, before.needed_person),
        seconds("mean time to fix", now.mttf_mean_seconds, before.mttf_mean_seconds),
        count("rollbacks", now.rollbacks, before.rollbacks),
        count("prevented incidents", now.prevented, before.prevented),
        seconds("time saved", now.time_saved_minutes * 60, before.time_saved_minutes * 60),
    ]
    return bar_chart(rows, series, per_row=True)


def _time_to_fix_chart(report: WeeklyReport) -> BarChart:
    now, before = report.summary.time_to_fix, report.previous.time_to_fix
    series = (Series(_title_this(report), "#3d6fb6"), Series(_before(report), "#b8c0cc"))
    rows = [
        (name, (n, before.get(name, 0)), (str(n), str(before.get(name, 0))))
        for name, n in now.items()
    ]
    return bar_chart(rows, series)


def _remedy_chart(rows: tuple[RemedyRow, ...]) -> BarChart:
    """Verified proposals and rollbacks per remedy (the 20 with most proposals)."""
    return bar_chart(
        [
            (r.remedy, (r.verified, r.rollbacks), (str(r.verified), str(r.rollbacks)))
            for r in rows[:20]
        ],
        (_VERIFIED, _ROLLED_BACK),
    )


def _title_this(report: WeeklyReport) -> str:
    return "this week" if report.days == 7 else f"these {report.days} days"


def to_html(report: WeeklyReport) -> str:
    return html_page(
        "reports/weekly.html.j2",
        r=report,
        title=_title_span(report),
        this=_title_this(report),
        before=_before(report),
        sentence=sentence(report),
        headlines=headlines(report),
        definitions=definitions(report),
        days=_day_chart(report.per_day),
        comparison=_comparison_chart(report),
        time_to_fix=_time_to_fix_chart(report),
        remedies=_remedy_chart(report.remedies),
        percent=_percent,
        span=span,
        when=_when,
        consumed=_consumed,
    )
