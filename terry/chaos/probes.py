"""Chaos Toolkit probes (``{"type": "python", "module": "terry.chaos.probes", ...}``): what
Prometheus says, whether the fault's symptom holds on the host, and Terry's own record.

``terry_resolved`` is the experiment's clock: it waits until Terry verified a fix for the
target's incident (or ``within`` seconds pass), then reads the truth on the host, so a
"verified" the host contradicts is recorded as a false fix.
"""

from __future__ import annotations

import time
from typing import Any

from terry.chaos import journal
from terry.chaos.ansible import run_fault
from terry.chaos.context import log, run_context
from terry.chaos.faults import check_params, fault_named
from terry.chaos.record import read_timeline
from terry.proposals.state import ENDED

__all__ = ["fault_symptom", "prometheus_value", "terry_resolved"]

_POLL = 1.0


def prometheus_value(query: str, configuration: dict[str, Any] | None = None) -> float | None:
    """The first sample of an instant ``query`` against terry.yml's Prometheus; None when
    the answer is empty or Prometheus cannot be read (unknown is not a value)."""
    from prometheus_api_client.exceptions import PrometheusApiClientException
    from requests.exceptions import RequestException
    from urllib3.util.retry import Retry

    from terry.prometheus import connect

    prom = run_context(configuration).config.prometheus
    if not prom.url:
        return None
    client = connect(prom, retry=Retry(total=0))
    try:
        result = client.custom_query(query)
        return float(result[0]["value"][1]) if result else None
    except (PrometheusApiClientException, RequestException, LookupError, TypeError, ValueError):
        return None
    finally:
        client.close()


def fault_symptom(
    fault: str, params: dict[str, Any] | None = None, configuration: dict[str, Any] | None = None
) -> bool | None:
    """Whether the host shows ``fault``'s symptom now (read on the host by the chaos role);
    None when it cannot be read."""
    ctx = run_context(configuration)
    kind = fault_named(fault)
    done = run_fault(ctx.config, ctx.target, kind.value, "check", check_params(kind, params or {}))
    symptom = done.result.get("symptom") if done.ok else None
    return bool(symptom) if symptom is not None else None


def terry_resolved(
    within: float | None = None, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wait up to ``within`` seconds (the experiment's ``resolve_within`` by default) for
    Terry to verify a fix of the target's incident; record what happened and the host's
    truth in the run's journal row. Returns ``{"verified": bool, "truth": ...}``."""
    ctx = run_context(configuration)
    row = journal.get(ctx.store, ctx.run_id)
    if row is None or row.injected_at is None:
        return {"verified": False, "truth": "unknown", "why": "no fault was injected"}
    limit = float(within or (configuration or {}).get("terry_resolve_within") or 300)
    deadline = time.monotonic() + limit
    seen: tuple[object, ...] = ()
    while True:
        timeline = read_timeline(ctx.store, ctx.target, row.injected_at)
        now = (
            timeline.incident_id,
            timeline.proposal_id,
            timeline.decision,
            timeline.applied_at,
            timeline.verified_at,
        )
        if now != seen:
            seen = now
            log.info(
                "record: incident %s, proposal %s, decision %s, applied %s, verified %s",
                *(v if v is not None else "-" for v in now),
            )
        done = timeline.verified_at is not None or timeline.proposal_state in ENDED
        if done or time.monotonic() >= deadline:
            break
        time.sleep(_POLL)
    symptom = fault_symptom(row.fault, dict(row.params or {}), configuration)
    truth = "unknown" if symptom is None else ("faulty" if symptom else "healthy")
    journal.update(
        ctx.store,
        ctx.run_id,
        alert_at=timeline.alert_at,
        incident_id=timeline.incident_id,
        proposal_id=timeline.proposal_id,
        decision=timeline.decision,
        decided_at=timeline.decided_at,
        applied_at=timeline.applied_at,
        verified_at=timeline.verified_at,
        truth=truth,
    )
    log.info(
        "Terry %s; on the host the fault is %s",
        "verified a fix" if timeline.verified_at else "verified nothing",
        truth,
    )
    return {"verified": timeline.verified_at is not None, "truth": truth}
