"""The forecast as a source: preventive incidents, before any alert fires.

A filesystem whose trend crosses the threshold within the lead time (and is still below it)
becomes an incident of source ``forecast`` whose labels are those of the lab's and
node_exporter's own early alert, ``DiskWillFillSoon`` (``host``, ``mountpoint``,
``threshold``), so the remedy catalogue's disk remedy matches it exactly as it would match
the alert; the forecast is its evidence (annotations). The incident is opened already
claimed by this process and carried through ``Pipeline.remediate``: diagnosis, proposal,
dry run, gate, review or merge, apply, verify: the same path as an alert, only earlier.

One incident per host and filesystem at a time (fingerprint ``forecast:disk:<digest>``): a
second forecast finds it open and opens nothing. It is resolved when its fix is verified
(a later forecast may open a new one if the filesystem is again on its way to the
threshold), or when a later forecast no longer predicts a crossing within the lead time.

Memory that grows like a leak is reported only: an incident ``MemoryLeakSuspected`` kept
for a human with the evidence as the reason (no remedy fixes a leak; a restart only hides
it), resolved when a later check no longer suspects one.

A host whose node metrics stand out (``forecast.anomaly``) is for review only: an incident
of source ``anomaly`` (alertname ``HostAnomaly``, label ``kind=anomaly``) carrying the
evidence, kept for a human and never given a proposal; one per host while open
(``anomaly:host:<digest>``), resolved when a later check compares the host and finds it no
longer stands out.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from terry.diagnosis.rules import NoFix
from terry.forecast.anomaly import HostAnomaly
from terry.forecast.findings import (
    ANOMALY_SOURCE,
    DISK_ALERTNAME,
    LEAK_ALERTNAME,
    SOURCE,
    Action,
    anomaly_fingerprint,
    anomaly_incident,
    disk_fingerprint,
    disk_labels,
    leak_fingerprint,
    leak_summary,
)
from terry.forecast.nodes import AnomalyScan
from terry.forecast.prometheus import DiskForecast, FleetForecast, MemoryCheck
from terry.forecast.trend import Outcome
from terry.incidents import lifecycle as incidents
from terry.pipeline import Pipeline
from terry.proposals.state import ProposalState
from terry.store.locks import named_lock
from terry.store.models import IncidentRow, ProposalRow

__all__ = ["act"]

_OPENING = timedelta(minutes=2)  # the lock held while one process checks and opens


def _open_incident(
    fingerprint: str, pipeline: Pipeline, source: str = SOURCE
) -> tuple[int, str | None] | None:
    """The open incident with this fingerprint and its newest proposal's state."""
    with pipeline.ctx.store.session() as session:
        incident_id = session.scalar(
            select(IncidentRow.id)
            .where(
                IncidentRow.fingerprint == fingerprint,
                IncidentRow.source == source,
                IncidentRow.state == incidents.IncidentState.OPEN.value,
            )
            .order_by(IncidentRow.id.desc())
            .limit(1)
        )
        if incident_id is None:
            return None
        state = session.scalar(
            select(ProposalRow.state)
            .where(ProposalRow.incident_id == incident_id)
            .order_by(ProposalRow.id.desc())
            .limit(1)
        )
        return incident_id, state


def _resolve(pipeline: Pipeline, incident_id: int, reason: str) -> None:
    incidents.resolve(pipeline.ctx.store, incident_id, reason)
    pipeline.incident_changed(incident_id, resolved=True, detail=reason)


def _prevent_disk(pipeline: Pipeline, d: DiskForecast, *, apply: bool) -> Action:
    fingerprint = disk_fingerprint(d.host, d.mountpoint)
    with named_lock(pipeline.ctx.store, fingerprint, ttl=_OPENING) as taken:
        if not taken:
            return Action("disk", d.host, d.mountpoint, "busy", None, note="another forecast")
        found = _open_incident(fingerprint, pipeline)
        if found is not None and found[1] == ProposalState.VERIFIED.value:
            # its fix was verified (approved and applied after an earlier run), yet the
            # filesystem is again on its way: that incident is done, this is a new one
            _resolve(pipeline, found[0], "preventive fix verified earlier")
            found = None
        if found is not None:
            incident_id, state = found
            return Action(
                "disk",
                d.host,
                d.mountpoint,
                "open",
                incident_id,
                state=state,
                note=f"incident {incident_id} is open already",
            )
        labels, annotations = disk_labels(d)
        incident_id = incidents.open_incident(
            pipeline.ctx.store,
            source=SOURCE,
            fingerprint=fingerprint,
            # diagnosis reads the alertname from the title, as for an alert's incident
            title=DISK_ALERTNAME,
            host=d.host,
            labels=labels,
            annotations=annotations,
            holder=pipeline.ctx.holder,
        )
    pipeline.ctx.reporter.step(None, f"incident {incident_id}: {annotations['summary']}")
    outcome = pipeline.remediate(incident_id, apply=apply)
    if outcome.state == ProposalState.VERIFIED.value:
        _resolve(
            pipeline,
            incident_id,
            f"preventive fix verified (proposal {outcome.proposal_id}) before the threshold",
        )
    return Action(
        "disk",
        d.host,
        d.mountpoint,
        "opened",
        incident_id,
        outcome.proposal_id,
        outcome.state,
        outcome.decision,
        outcome.reasons,
        outcome.note,
    )


def _settled(d: DiskForecast) -> bool:
    """The forecast no longer calls for prevention, and says so with data (not merely
    missing, stale, or above the threshold, where the alert takes over)."""
    return (
        not d.stale
        and not d.preventive
        and d.used_percent < d.threshold
        and d.forecast.outcome
        in (Outcome.FLAT, Outcome.FALLING, Outcome.CROSSING, Outcome.BEYOND_HORIZON)
    )


def _keep_for_human(
    pipeline: Pipeline,
    *,
    kind: str,
    source: str,
    fingerprint: str,
    host: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    reason: str,
) -> Action:
    """Open an incident no remedy is proposed for, marked diagnosed and kept for a human
    with ``reason``; one per fingerprint while open."""
    with named_lock(pipeline.ctx.store, fingerprint, ttl=_OPENING) as taken:
        if not taken:
            return Action(kind, host, None, "busy", None, note="another forecast")
        found = _open_incident(fingerprint, pipeline, source)
        if found is not None:
            return Action(kind, host, None, "open", found[0], note=f"incident {found[0]} is open")
        incident_id = incidents.open_incident(
            pipeline.ctx.store,
            source=source,
            fingerprint=fingerprint,
            title=labels["alertname"],
            host=host,
            labels=labels,
            annotations=annotations,
            holder=pipeline.ctx.holder,
        )
    pipeline.handle(incident_id, NoFix(reason, host=host))
    return Action(kind, host, None, "opened", incident_id, note=reason)


def _leak(pipeline: Pipeline, m: MemoryCheck) -> Action:
    # No remedy: a restart hides a leak, it does not fix it. Kept for a human, with why.
    summary = leak_summary(m)
    return _keep_for_human(
        pipeline,
        kind="leak",
        source=SOURCE,
        fingerprint=leak_fingerprint(m.host),
        host=m.host,
        labels={"alertname": LEAK_ALERTNAME, "host": m.host, "severity": "warning"},
        annotations={"summary": summary, "description": m.leak.summary()},
        reason=f"{summary} ({m.leak.summary()}); find what holds the memory",
    )


def _anomaly(pipeline: Pipeline, scan: AnomalyScan, a: HostAnomaly) -> Action:
    # For review only: an odd host is a question for a person, not a fault with a fix.
    labels, annotations = anomaly_incident(scan, a)
    return _keep_for_human(
        pipeline,
        kind="anomaly",
        source=ANOMALY_SOURCE,
        fingerprint=anomaly_fingerprint(a.host),
        host=a.host,
        labels=labels,
        annotations=annotations,
        reason=(
            f"for review only: {annotations['summary']}: {a.summary()}; "
            "look at what changed on the host"
        ),
    )


def _review_anomalies(pipeline: Pipeline, scan: AnomalyScan) -> list[Action]:
    """Open an incident for each host that stands out; resolve those of hosts compared
    again and found ordinary (a host not compared this time keeps its incident)."""
    actions = [_anomaly(pipeline, scan, a) for a in scan.anomalous]
    for host in scan.compared:
        verdict = scan.judged(host)
        if verdict is None or verdict.anomalous:
            continue
        found = _open_incident(anomaly_fingerprint(host), pipeline, ANOMALY_SOURCE)
        if found is not None:
            why = f"no longer stands out (anomaly score {verdict.score:.2f})"
            _resolve(pipeline, found[0], why)
            actions.append(Action("anomaly", host, None, "resolved", found[0], note=why))
    return actions


def act(pipeline: Pipeline, fleet: FleetForecast, *, apply: bool = True) -> tuple[Action, ...]:
    """Open (and remediate) what the forecast calls for; resolve what it no longer does."""
    actions: list[Action] = []
    for d in fleet.disks:
        if d.preventive:
            actions.append(_prevent_disk(pipeline, d, apply=apply))
        elif _settled(d):
            found = _open_incident(disk_fingerprint(d.host, d.mountpoint), pipeline)
            if found is not None:
                why = (
                    "the forecast no longer predicts a crossing within the lead time: "
                    f"{d.forecast.reason}"
                )
                _resolve(pipeline, found[0], why)
                actions.append(Action("disk", d.host, d.mountpoint, "resolved", found[0], note=why))
    for m in fleet.memory:
        if m.suspected:
            actions.append(_leak(pipeline, m))
        elif not m.stale and m.leak.slope is not None:
            found = _open_incident(leak_fingerprint(m.host), pipeline)
            if found is not None:
                why = f"no leak suspected any more: {m.leak.summary()}"
                _resolve(pipeline, found[0], why)
                actions.append(Action("leak", m.host, None, "resolved", found[0], note=why))
    if fleet.anomalies is not None:
        actions.extend(_review_anomalies(pipeline, fleet.anomalies))
    return tuple(actions)
