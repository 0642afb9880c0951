"""The cost report in words: Markdown (a text sparkline for the cost over time), one
self-contained HTML page (Jinja2 autoescape, an inline SVG column chart) and JSON (``schema:
terry.cost/v1``, keys only ever added; docs/cost.md).

Untrusted text (host names, tenants, environments and types from the inventory) goes
through ``md_text`` in Markdown and autoescape (after ``inert``) in HTML.
"""

from __future__ import annotations

from collections.abc import Sequence

from terry.cost.history import DayCost
from terry.cost.report import CostReport
from terry.reports.markup import (
    ColumnChart,
    Series,
    column_chart,
    html_page,
    md_table,
    md_text,
    schema_json,
)

__all__ = ["sparkline", "to_html", "to_json", "to_markdown"]

_BLOCKS = "▁▂▃▄▅▆▇█"
COST = Series("cost per day", "#3b6fd8")


def sparkline(values: Sequence[float]) -> str:
    """``▁▃█``: each value's height between the lowest and the highest."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return _BLOCKS[3] * len(values)
    top = len(_BLOCKS) - 1
    return "".join(_BLOCKS[round((v - low) / (high - low) * top)] for v in values)


def _money(value: float | None, currency: str) -> str:
    return "-" if value is None else f"{value:,.2f} {currency}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


_HOST_COLUMNS = (
    *("host", "environment", "tenant", "instance", "volume", "monthly"),
    *("CPU peak", "memory peak", "disk peak", "note"),
)


def to_json(report: CostReport) -> str:
    return schema_json(report)


def to_markdown(report: CostReport) -> str:
    c = report.currency
    lines = [
        "# Terry cost report",
        "",
        f"{'At least ' if report.unpriced_hosts else ''}"
        f"{_money(report.monthly_total, c)} a month for {len(report.hosts)} host(s) "
        f"(prices: {md_text(report.prices)}); the recommendations below save "
        f"{_money(report.savings_total, c)} a month.",
    ]
    if report.unpriced_hosts:
        lines += [
            "",
            f"{len(report.unpriced_hosts)} host(s) have a part with no price, left out of the "
            f"totals (see the table): {md_text(', '.join(report.unpriced_hosts), 300)}.",
        ]
    if report.utilisation_error:
        lines += ["", f"Utilisation unknown, no utilisation-based recommendation made: "
                  f"{md_text(report.utilisation_error, 300)}"]  # fmt: skip
    lines += ["", "## Cost over time", ""]
    if report.history:
        first, last = report.history[0], report.history[-1]
        lines.append(
            f"`{sparkline([d.cost for d in report.history])}` {first.day} to {last.day}: "
            f"{_money(first.cost, c)} to {_money(last.cost, c)} a day"
        )
    else:
        lines.append(f"No history: {md_text(report.history_error or 'no data', 300)}")
    lines += ["", "## Recommendations", ""]
    if report.recommendations:
        lines += md_table(
            ["id", "host", "kind", "now", "proposed", "monthly saving", "why"],
            (
                (
                    md_text(r.id),
                    md_text(r.host),
                    r.kind.value,
                    md_text(r.current),
                    md_text(r.proposed),
                    _money(r.monthly_saving, c),
                    md_text(r.why, 300),
                )
                for r in report.recommendations
            ),
        )
        lines += ["", "Downsize and volume recommendations become proposals with "
                  "'terry cost propose ID' (always reviewed)."]  # fmt: skip
    else:
        lines.append("None.")
    for title, groups in (("By tenant", report.tenants), ("By environment", report.environments)):
        lines += ["", f"## {title}", ""]
        lines += md_table(
            [title.removeprefix("By "), "hosts", "monthly"],
            ((md_text(g.name), g.hosts, _money(g.monthly, c)) for g in groups),
        )
    lines += ["", "## By host", ""]
    lines += md_table(
        _HOST_COLUMNS,
        (
            (
                md_text(h.host),
                md_text(h.environment),
                md_text(h.tenant),
                md_text(h.instance_type or "-"),
                md_text(f"{h.volume_gb:g} GB {h.volume_type or ''}".strip())
                if h.volume_gb
                else "-",
                _money(h.monthly, c),
                _share(h.cpu_peak_percent),
                _share(h.memory_peak_percent),
                _share(h.disk_peak_percent),
                md_text(h.unpriced or "", 200),
            )
            for h in report.hosts
        ),
    )
    return "\n".join(lines) + "\n"


def _chart(days: Sequence[DayCost]) -> ColumnChart:
    return column_chart(
        [(d.day[5:], f"{d.day}: {d.hosts} host(s)") for d in days],
        [[d.cost] for d in days],
        [COST],
        axis="cost per day, priced as today",
    )


def to_html(report: CostReport) -> str:
    return html_page(
        "cost/report.html.j2",
        r=report,
        chart=_chart(report.history) if report.history else None,
        money=lambda v: _money(v, report.currency),
        share=_share,
    )
