"""SQLAlchemy 2 tables. The schema changes only through Alembic migrations (``migrations/``).

Rows are the persisted record; the pipeline works on the frozen domain objects built from them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "MAX_ROW_ID",
    "AlertRow",
    "AuditRow",
    "Base",
    "ChaosRunRow",
    "ConsoleLogoutRow",
    "ForgeDeliveryRow",
    "HostLockRow",
    "InboxRow",
    "IncidentDayRow",
    "IncidentRow",
    "ProposalHostRow",
    "ProposalRow",
    "RunEventRow",
    "RunRow",
    "utcnow",
]


# Row ids are INTEGER columns: 32-bit on PostgreSQL, so no row has a larger id anywhere.
# The API and the CLI answer "does not exist" for a larger one instead of asking the store.
MAX_ROW_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class InboxRow(Base):
    """Webhook bodies exactly as accepted, committed (in groups) before the 2xx; folded into
    alerts and incidents right after by ``terry.sources.inbox``."""

    __tablename__ = "inbox"
    # The rows still to fold, oldest first, without reading the whole backlog.
    __table_args__ = (
        Index(
            "ix_inbox_unfolded",
            "id",
            postgresql_where=text("folded_at IS NULL"),
            sqlite_where=text("folded_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime]
    body: Mapped[str] = mapped_column(Text)
    folded_at: Mapped[datetime | None] = mapped_column(index=True)
    # Why folding refused it (not valid any more, e.g. after an upgrade); null when folded.
    error: Mapped[str | None] = mapped_column(Text)
    # The W3C traceparent the webhook request came with (Alertmanager's notification span).
    traceparent: Mapped[str | None] = mapped_column(String(55))


class IncidentRow(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "INC-2026-12-04-007": the UTC day Terry recorded it and that day's sequence
    # (terry.incidents.refs); set on insert, unique, never reused.
    ref: Mapped[str | None] = mapped_column(String(32), index=True, unique=True)
    fingerprint: Mapped[str] = mapped_column(String(128), index=True)
    source: Mapped[str] = mapped_column(String(16))  # alert | drift | inventory | forecast
    title: Mapped[str] = mapped_column(String(200))
    host: Mapped[str | None] = mapped_column(String(255))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), index=True)  # open | resolved
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    fixed_at: Mapped[datetime | None]
    # Why the incident is kept for a human (no remedy, host unknown, bad label...).
    attention: Mapped[str | None] = mapped_column(Text)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    recurrence: Mapped[int] = mapped_column(Integer, default=0)
    # Work claim: which process is diagnosing this incident (a lease; see terry.service.worker).
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
    # Set once diagnosis ran (with or without a proposal); null = still to do.
    diagnosed_at: Mapped[datetime | None] = mapped_column(index=True)
    # The incident's own trace (terry.traces.incident): its id and root span, set the first
    # time Terry handles it with tracing on; later work continues the same trace.
    trace_id: Mapped[str | None] = mapped_column(String(32), index=True)
    trace_span_id: Mapped[str | None] = mapped_column(String(16))
    # The traceparent of the notification that opened it (Alertmanager's span, 0023): the
    # incident's trace links to it.
    alert_traceparent: Mapped[str | None] = mapped_column(String(55))
    # What the traces of the services the alert is about said (terry.traces.evidence).
    trace_evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # A storm's second incident on a host already carried by the folded proposal (0020):
    # that proposal's id; the incident is marked fixed when the host verifies.
    folded_into: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class IncidentDayRow(Base):
    """The last incident sequence number handed out on a UTC day (terry.incidents.refs)."""

    __tablename__ = "incident_days"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # 2026-12-04
    last: Mapped[int] = mapped_column(Integer)


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("fingerprint", "starts_at", "status", name="uq_alert"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    alertname: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    labels: Mapped[dict[str, Any]]
    annotations: Mapped[dict[str, Any]]
    generator_url: Mapped[str] = mapped_column(Text, default="")
    group_key: Mapped[str] = mapped_column(Text, default="")
    truncated_alerts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime]
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    # What ingesting it did: opened, joined, resolved, ignored (with why). Null = not yet seen.
    effect: Mapped[str | None] = mapped_column(Text)


class ProposalRow(Base):
    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    remedy: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[str] = mapped_column(String(100))
    hosts: Mapped[list[Any]]
    params: Mapped[dict[str, Any]]
    risk: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(24), index=True)
    branch: Mapped[str | None] = mapped_column(String(255))
    commit_sha: Mapped[str | None] = mapped_column(String(64))
    merge_sha: Mapped[str | None] = mapped_column(String(64))
    playbook_path: Mapped[str | None] = mapped_column(String(500))
    vars_path: Mapped[str | None] = mapped_column(String(500))
    playbook: Mapped[str | None] = mapped_column(Text)
    check_diff: Mapped[str | None] = mapped_column(Text)
    check_summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    modules: Mapped[list[Any]] = mapped_column(default=list)
    decision: Mapped[str | None] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    policy_commit: Mapped[str | None] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Review on a forge (GitHub): the pull request, whether it is published, the newest
    # comment already acted on, and the last error talking to the forge (null when fine).
    pr_number: Mapped[int | None] = mapped_column(Integer)
    pr_url: Mapped[str | None] = mapped_column(String(500))
    forge_state: Mapped[str | None] = mapped_column(String(16), index=True)
    forge_cursor: Mapped[int | None] = mapped_column(Integer)
    forge_error: Mapped[str | None] = mapped_column(Text)
    # Who applies it: ansible (a playbook) or argocd (a manifest change, synced by Argo CD,
    # whose application is ``target``).
    applier: Mapped[str] = mapped_column(String(16), default="ansible", server_default="ansible")
    target: Mapped[str | None] = mapped_column(String(255))
    # Written by Claude (terry.ai): the model, its confidence (0-100) and its diagnosis.
    ai_authored: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    confidence: Mapped[int | None] = mapped_column(Integer)
    ai_model: Mapped[str | None] = mapped_column(String(128))
    ai_diagnosis: Mapped[str | None] = mapped_column(Text)
    # The environment the gate judged it in (the most sensitive of its hosts'): the remedy's
    # record is kept per environment (terry.store.runs.remedy_records).
    environment: Mapped[str | None] = mapped_column(String(64), index=True)
    # How it is dry-run, verified and rolled back (terry.proposals.plan), from the remedy.
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Confidence 0-100 (terry.proposals.confidence): the remedy's record, the dry run, the
    # diagnosis' source and the canary's outcome; set by the gate, revised by the canary.
    confidence_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Its parts ({"record", "dry_run", "diagnosis"[, "canary"]}: points each), 0024.
    confidence_parts: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    # The proposal whose next wave this one is: its hosts joined it after its decision (0017).
    follows_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class ProposalHostRow(Base):
    """One host of a proposal (0017): the incident that brought it, its wave, and its own
    outcome, so one host failing does not hide the others (terry.proposals.hosts)."""

    __tablename__ = "proposal_hosts"
    __table_args__ = (UniqueConstraint("proposal_id", "host", name="uq_proposal_hosts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    host: Mapped[str] = mapped_column(String(255))
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    environment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    wave: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(24))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime]


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # check | apply | verify | rollback
    commit_sha: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # running | successful | failed | ...
    rc: Mapped[int | None]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_dir: Mapped[str | None] = mapped_column(String(500))
    ansible_seconds: Mapped[float | None]
    # The process making the run (terry.store.locks.holder_id): a run left running by a
    # dead process is finished as interrupted by recovery (0012).
    holder: Mapped[str | None] = mapped_column(String(200))
    # Where the run goes on outside that process (``awx:<job id>``), said by its applier as
    # it starts: recovery stops it there before freeing the run's hosts (0022).
    remote: Mapped[str | None] = mapped_column(String(200))


class RunEventRow(Base):
    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run_seq", "run_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    seq: Mapped[int]
    event: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    task: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str | None] = mapped_column(String(16))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class ForgeDeliveryRow(Base):
    """Webhook deliveries from a forge, by their delivery id: the same delivery twice is
    acted on once."""

    __tablename__ = "forge_deliveries"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    event: Mapped[str] = mapped_column(String(50))
    received_at: Mapped[datetime]
    outcome: Mapped[str | None] = mapped_column(Text)


class AuditRow(Base):
    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    entity: Mapped[str] = mapped_column(String(16))  # incident | proposal
    entity_id: Mapped[int]
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text, default="")


class HostLockRow(Base):
    """One run per host at a time, across processes (``terry.store.locks``): a lock whose
    holder died, or past ``expires_at``, is free."""

    __tablename__ = "host_locks"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    proposal_id: Mapped[int | None]
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # Renewed by the holder while it holds; how another machine tells it died (0012).
    heartbeat_at: Mapped[datetime | None]


class DriftScanRow(Base):
    """One drift scan: which commit's desired state, over which hosts, how it went."""

    __tablename__ = "drift_scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    commit_sha: Mapped[str] = mapped_column(String(64))
    limit: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), index=True)  # running | done | failed
    error: Mapped[str | None] = mapped_column(Text)
    run_dir: Mapped[str | None] = mapped_column(String(500))


class DriftHostRow(Base):
    """A host in a scan: clean, drifted or unreachable (unknown, not drifted)."""

    __tablename__ = "drift_hosts"
    __table_args__ = (
        UniqueConstraint("scan_id", "host", name="uq_drift_host"),
        Index("ix_drift_hosts_host_scan", "host", "scan_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("drift_scans.id"))
    host: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message: Mapped[str | None] = mapped_column(Text)


class DriftItemRow(Base):
    """A resource that differs from the desired state, as of one scan: ``new``,
    ``persisting`` (drifted since ``since``) or ``resolved`` (gone since the last scan)."""

    __tablename__ = "drift_items"
    __table_args__ = (Index("ix_drift_items_scan_host", "scan_id", "host"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("drift_scans.id"))
    host: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(100))
    task: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(Text)
    diff: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime]


class ScheduleRunRow(Base):
    """One run of a schedule (or a run skipped because another still held it)."""

    __tablename__ = "schedule_runs"
    __table_args__ = (Index("ix_schedule_runs_name_id", "name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # running | done | partial (some deliveries failed) | failed | skipped
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    scan_id: Mapped[int | None] = mapped_column(Integer)
    proposal_id: Mapped[int | None] = mapped_column(Integer)


class NotificationRow(Base):
    """The notifier's outbox (``terry.notify``): one message owed to one route about one
    event, made from an audit row; ``dedupe_key`` is unique, so it is owed once."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    route: Mapped[str] = mapped_column(String(64), index=True)
    event: Mapped[str] = mapped_column(String(32))  # terry.notify.events.EventKind
    audit_id: Mapped[int] = mapped_column(Integer)
    incident_id: Mapped[int | None] = mapped_column(Integer)
    proposal_id: Mapped[int | None] = mapped_column(Integer)
    # What the message says (ref, title, host, decision...): never the route's URL.
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # The delivery round that holds it until next_attempt_at (a lease: a dead one expires).
    claimed_by: Mapped[str | None] = mapped_column(String(200))


class NotificationCursorRow(Base):
    """How far the notifier has read the audit log (the newest audit id it has seen)."""

    __tablename__ = "notification_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    audit_id: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class ApiTokenRow(Base):
    """An API token (``terry tokens``, migration 0015): only the SHA-256 digest of the token
    is kept, never the token; ``id`` is its non-secret prefix (``tk_`` and 8 hex digits),
    which names it in lists, logs and the audit."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256
    user: Mapped[str] = mapped_column(String(64), index=True)
    tenant: Mapped[str] = mapped_column(String(64))  # "*": every tenant
    role: Mapped[str] = mapped_column(String(16))  # terry.access.Role
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class NotificationThreadRow(Base):
    """Where a Slack app route posted an incident's first message (``terry.notify.slack_app``,
    migration 0016): the channel and the message's ``ts``, so that the incident's later
    events are replies in its thread. One per route and incident."""

    __tablename__ = "notification_threads"
    __table_args__ = (UniqueConstraint("route", "incident_id", name="uq_notification_threads"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    route: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(64))
    ts: Mapped[str] = mapped_column(String(32))  # Slack's message id ("1700000000.000100")
    created_at: Mapped[datetime]


class ChaosRunRow(Base):
    """One chaos experiment run (0018, terry.chaos.journal): written before its fault is
    injected, so a fault a dead run left is found and removed on the next start."""

    __tablename__ = "chaos_runs"
    __table_args__ = (
        Index("ix_chaos_runs_state", "state"),
        Index("ix_chaos_runs_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    fault: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # terry.chaos.journal.RunState
    outcome: Mapped[str | None] = mapped_column(String(24))  # terry.chaos.journal.Outcome
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    started_at: Mapped[datetime]
    injected_at: Mapped[datetime | None]
    alert_at: Mapped[datetime | None]
    incident_id: Mapped[int | None] = mapped_column(Integer)
    proposal_id: Mapped[int | None] = mapped_column(Integer)
    decision: Mapped[str | None] = mapped_column(String(16))
    decided_at: Mapped[datetime | None]
    applied_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]
    truth: Mapped[str | None] = mapped_column(String(16))  # healthy | faulty | unknown
    removed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    holder: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")


class ConsoleLogoutRow(Base):
    """A console session ended by its person (``POST /console/logout``, migration 0021):
    sessions live in a signed cookie, so the server keeps which were ended, by the SHA-256
    digest of the session's own random token, until the cookie would have expired anyway."""

    __tablename__ = "console_logouts"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex SHA-256
    expires_at: Mapped[datetime] = mapped_column(index=True)
