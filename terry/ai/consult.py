"""Asking Claude about an incident no remedy matches: the request from the record, the
answer validated, or the reason a person must look instead.

Called by the pipeline in the worker (never in the webhook), after rule-based diagnosis
found a known host but no remedy. With no key configured nothing is asked and nothing
fails: the incident is kept for a human with Terry's own reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from terry.ai.answer import AIAnswer
from terry.ai.client import ClaudeDiagnoser
from terry.ai.errors import AIAnswerError, AIServiceError
from terry.ai.request import DiagnosisRequest, MetricSummary, PastIncident
from terry.config import Config, PrometheusConfig
from terry.inventory.hosts import Host, Inventory
from terry.remedies.catalogue import Catalogue
from terry.store import Store
from terry.store.models import IncidentRow, ProposalRow
from terry.traces.evidence import evidence_of
from terry.verify.judge import promql_string

__all__ = ["Consulted", "consult", "host_metrics", "past_incidents"]

log = logging.getLogger("terry.ai")


@dataclass(frozen=True)
class Consulted:
    """Claude's usable answer, or why a person must look (``answer`` None)."""

    answer: AIAnswer | None
    reason: str


def past_incidents(
    store: Store, alertname: str, *, exclude: int, limit: int = 5
) -> tuple[PastIncident, ...]:
    """The newest earlier incidents of the same kind, and how each ended."""
    with store.session() as session:
        rows = session.scalars(
            select(IncidentRow)
            .where(IncidentRow.title == alertname, IncidentRow.id != exclude)
            .order_by(IncidentRow.id.desc())
            .limit(limit)
        ).all()
        found: list[PastIncident] = []
        for row in rows:
            proposal = session.scalars(
                select(ProposalRow)
                .where(ProposalRow.incident_id == row.id)
                .order_by(ProposalRow.id.desc())
                .limit(1)
            ).first()
            outcome = (
                proposal.state if proposal else ("kept for a human" if row.attention else row.state)
            )
            found.append(
                PastIncident(
                    opened_at=row.opened_at.isoformat(timespec="seconds"),
                    host=row.host or "",
                    outcome=outcome,
                    remedy=proposal.remedy if proposal else None,
                    note=(proposal.outcome if proposal else row.attention) or "",
                )
            )
        return tuple(found)


# What Claude is shown of the host's recent state: (what, PromQL with {sel} for the host's
# label selector). Each answer is summarised per series; a failing query is left out.
_METRICS = (
    ("load average (1 min)", "node_load1{{{sel}}}"),
    (
        "memory used %",
        "100 * (1 - node_memory_MemAvailable_bytes{{{sel}}} / node_memory_MemTotal_bytes{{{sel}}})",
    ),
    (
        "filesystem used %",
        '100 * (1 - node_filesystem_avail_bytes{{{sel},fstype!~"tmpfs|overlay|squashfs"}} '
        '/ node_filesystem_size_bytes{{{sel},fstype!~"tmpfs|overlay|squashfs"}})',
    ),
)


def host_metrics(
    prom: str | PrometheusConfig,
    label: str,
    host: str,
    *,
    lookback: int = 1800,
    timeout: float = 5.0,
) -> tuple[MetricSummary, ...]:
    """The host's recent node metrics from Prometheus: now, and the last ``lookback``
    seconds at a few points. Context only: errors leave a metric out."""
    from prometheus_api_client.exceptions import PrometheusApiClientException
    from requests.exceptions import RequestException

    from terry.prometheus import connect

    client = connect(prom, timeout=timeout)
    end = datetime.now(UTC)
    start = end - timedelta(seconds=lookback)
    selector = f'{label}="{promql_string(host)}"'
    found: list[MetricSummary] = []
    for what, template in _METRICS:
        query = template.format(sel=selector)
        try:
            series = client.custom_query_range(
                query, start_time=start, end_time=end, step=str(max(1, lookback // 6))
            )
        except (PrometheusApiClientException, RequestException, ValueError) as exc:
            log.info("metric %s for %s left out: %s", what, host, exc)
            continue
        for item in series[:8]:
            values = tuple(round(float(v), 3) for _t, v in item.get("values", []))
            if not values:
                continue
            where = item.get("metric", {}).get("mountpoint")
            name = f"{what} {where}" if where else what
            found.append(
                MetricSummary(
                    name, f"{values[-1]:g} now, {values[0]:g} {lookback // 60} min ago", values
                )
            )
    return tuple(found)


def consult(
    config: Config,
    store: Store,
    *,
    incident_id: int,
    alertname: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    host: Host,
    inventory: Inventory,
    catalogue: Catalogue,
    rule_reason: str,
    environ: Mapping[str, str] | None = None,
) -> Consulted | None:
    """Claude's answer, or the reason it cannot be used; None when Claude is not configured."""
    diagnoser = ClaudeDiagnoser.from_config(config.ai, os.environ if environ is None else environ)
    if diagnoser is None:
        return None
    request = DiagnosisRequest.build(
        alertname=alertname,
        labels=labels,
        annotations=annotations,
        host=host,
        inventory=inventory,
        catalogue=catalogue,
        past_incidents=past_incidents(store, alertname, exclude=incident_id),
        traces=evidence.view() if (evidence := evidence_of(store, incident_id)) else None,
        metrics=(
            host_metrics(config.prometheus, config.host_labels[0], host.name)
            if config.prometheus.url and config.host_labels
            else ()
        ),
    )
    with diagnoser:
        try:
            answer = diagnoser.diagnose(request)
        except (AIServiceError, AIAnswerError) as exc:
            return Consulted(None, f"{rule_reason}; asked Claude: {exc}")
    if answer.held:
        return Consulted(
            None,
            f"{rule_reason}; Claude ({answer.confidence}% confident) suggests: "
            f"{answer.diagnosis[:300]} — held: {answer.held}",
        )
    return Consulted(answer, answer.diagnosis)
