"""``terry demo`` on the example fleet: the whole loop, narrated, on one machine.

Two faults — a full disk on a staging host and a stopped service on the production host —
become alerts, incidents, proposals on branches, dry runs, decisions (staging merges,
production waits for review), an approval by a named user, applies, verifications and
resolved alerts. It ends with a timeline per incident.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from terry.app import build_pipeline
from terry.config import load_config
from terry.context import Reporter
from terry.demo import example
from terry.demo.narration import GroupedReporter
from terry.gitops.init import init_repository
from terry.reports.views import incident_story
from terry.sources.alertmanager import Alert, AlertStatus, Payload
from terry.store import Store

__all__ = ["DemoRow", "run_demo"]

APPROVER = "demo-operator"


@dataclass(frozen=True)
class DemoRow:
    incident_id: int
    alert: str
    host: str
    environment: str
    decision: str | None
    approved_by: str | None
    state: str | None
    seconds_to_fix: float | None
    resolved: bool


def _alert(name: str, host: str, status: AlertStatus, started: datetime, **labels: str) -> Alert:
    fingerprint = hashlib.sha256(f"{name}{host}{sorted(labels.items())}".encode()).hexdigest()
    return Alert(
        fingerprint=fingerprint[:16],
        status=status,
        labels={"alertname": name, "host": host, **labels},
        annotations={"summary": f"{name} on {host}"},
        starts_at=started,
        ends_at=datetime.now(UTC) if status is AlertStatus.RESOLVED else None,
        generator_url="",
    )


def _payload(alerts: tuple[Alert, ...], status: AlertStatus) -> Payload:
    return Payload(
        group_key="{}:{demo}", status=status, receiver="terry", truncated_alerts=0, alerts=alerts
    )


def run_demo(
    workdir: Path,
    *,
    reporter: Reporter,
    narrate: Callable[[str], None],
    keep: bool = False,
) -> tuple[Path, list[DemoRow]]:
    grouped = GroupedReporter(reporter)  # one proposal's lines at a time
    narrate(f"1. A GitOps repository: terry init {workdir}")
    repo = init_repository(workdir).path
    config = load_config(repo, environ={})
    store = Store(config.store_url)
    store.migrate()
    pipeline = build_pipeline(config, store, reporter=grouped)

    narrate("2. The example fleet (local connection, scratch roots): applying site.yml")
    result = example.up(config, on_event=lambda e: grouped.event(0, "site", e))
    if not result.ok:
        raise RuntimeError("site.yml failed: " + "; ".join(result.failure_messages()[:3]))
    try:
        narrate("3. Faults: web-01 (staging) disk fills up; db-01 (production) service stops")
        narrate("   " + example.break_host(config, "web-01", example.Fault.DISK))
        narrate("   " + example.break_host(config, "db-01", example.Fault.SERVICE))

        started = datetime.now(UTC)
        firing = (
            _alert(
                "DiskUsageHigh",
                "web-01",
                AlertStatus.FIRING,
                started,
                mountpoint="/srv/data",
                severity="warning",
            ),
            _alert(
                "ServiceDown",
                "db-01",
                AlertStatus.FIRING,
                started,
                service="web",
                severity="critical",
            ),
        )
        narrate("4. Alertmanager fires DiskUsageHigh{host=web-01} and ServiceDown{host=db-01}")
        outcome = pipeline.ingest(_payload(firing, AlertStatus.FIRING))
        for o in outcome.outcomes:
            narrate(
                f"   incident {o.incident_id} → proposal {o.proposal_id}: {o.state} "
                f"(decision {o.decision}: {'; '.join(o.reasons)})"
            )

        waiting = [o for o in outcome.outcomes if o.state == "awaiting_review" and o.proposal_id]
        for o in waiting:
            narrate(
                f"5. Production waits for review; {APPROVER} approves proposal "
                f"{o.proposal_id}: TERRY_ACTOR={APPROVER} terry proposals approve {o.proposal_id}"
            )
            assert o.proposal_id is not None
            pipeline.approve(o.proposal_id, actor=APPROVER)

        narrate("6. The hosts are healthy again: Alertmanager sends the resolved notices")
        time.sleep(0.2)
        resolved = tuple(
            _alert(
                a.alertname,
                a.labels["host"],
                AlertStatus.RESOLVED,
                a.starts_at,
                **{k: v for k, v in a.labels.items() if k not in ("alertname", "host")},
            )
            for a in firing
        )
        pipeline.ingest(_payload(resolved, AlertStatus.RESOLVED))

        rows = []
        environments = {"web-01": "staging", "db-01": "production"}
        for o in outcome.outcomes:
            story = incident_story(store, o.incident_id)
            approved = APPROVER if any(w.proposal_id == o.proposal_id for w in waiting) else None
            rows.append(
                DemoRow(
                    incident_id=o.incident_id,
                    alert=story.incident.title,
                    host=story.incident.host or "?",
                    environment=environments.get(story.incident.host or "", "?"),
                    decision=o.decision,
                    approved_by=approved,
                    state=pipeline.state(o.proposal_id).value if o.proposal_id else None,
                    seconds_to_fix=story.incident.seconds_to_fix,
                    resolved=story.incident.state == "resolved",
                )
            )
        return repo, rows
    finally:
        grouped.flush()
        if not keep:
            example.down(config)
        store.dispose()
