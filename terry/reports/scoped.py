"""Reports as a tenant reads them: the drift report and the weekly report's history cut down
to what a ``terry.tenants.scope.Scope`` sees (issue 17: a team-data viewer sees only
team-data's incidents, proposals, drift and reports).

A report is cut before it is summed, never after: the weekly report's figures are computed
from the tenant's incidents alone, and the drift report's summary is counted again from the
tenant's hosts, so no total says how much the other tenants have. What cannot be cut by host
(the drift report's scan-by-scan history, counted over every host) is left out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from terry.drift.report import DriftReport, summarize
from terry.reports.history import History
from terry.slo.weekly import ServiceSpend
from terry.tenants.scope import Scope

__all__ = ["scoped_budgets", "scoped_drift", "scoped_history"]


def scoped_history(history: History, scope: Scope) -> History:
    """The incidents on hosts in ``scope``, their proposals and those proposals' audit rows."""
    if scope.everything:
        return history
    incidents = tuple(i for i in history.incidents if scope.sees_host(i.host))
    seen = {i.id for i in incidents}
    proposals = tuple(p for p in history.proposals if p.incident_id in seen)
    mine = {p.id for p in proposals}
    audits = tuple(
        a
        for a in history.audits
        if (a.entity_id in mine if a.entity == "proposal" else a.entity_id in seen)
    )
    return History(incidents=incidents, proposals=proposals, audits=audits)


def scoped_budgets(spends: Sequence[ServiceSpend], scope: Scope) -> list[ServiceSpend]:
    """The services with a host in ``scope``, each naming only those hosts."""
    if scope.everything:
        return list(spends)
    return [
        dataclasses.replace(s, hosts=tuple(h for h in s.hosts if scope.sees_host(h)))
        for s in spends
        if scope.sees_hosts(s.hosts)
    ]


def scoped_drift(report: DriftReport, scope: Scope) -> DriftReport:
    """The scan's hosts in ``scope``, its summary counted again from them, no history."""
    if scope.everything:
        return report
    hosts = tuple(h for h in report.hosts if scope.sees_host(h.host))
    summary = summarize(hosts)
    return dataclasses.replace(report, hosts=hosts, summary=summary, history=())
