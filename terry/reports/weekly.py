"""The weekly report: what happened to the incidents opened in a window of days, and how
that compares with the window before.

Every figure is about the incidents *opened* in the window (whatever their source: alert,
drift, inventory, forecast, anomaly) and their proposals, **as they stood at the window's
end**: a fix verified after the end does not count, so a report of a past week says the same
thing whenever it is made, and the previous window (read as of its own end) compares like
with like. The store is read with a few queries (incidents of both windows, their proposals,
the proposals' audit rows, the incidents' "needs a human" audit rows); a proposal's state at
the end is its last audited state before it.

Definitions (also in ``docs/reports.md`` and at the end of every rendered report):

- *fixed*: the incident's fix was verified (``fixed_at``) before the end, and its apply began
  before the incident resolved: a "fix" applied to a problem that had already gone fixed
  nothing and is not counted (nor in time to fix, time saved or the auto-resolution rate).
- *resolved by itself*: resolved before the end with no fix of Terry's and no person: its
  alert resolved (or its forecast no longer predicts the crossing), a proposal of it was
  withdrawn because the problem had gone before the apply (outcome ``withdrawn: ...``), or it
  resolved before its fix was applied. Counted apart from fixes, and not as kept for a person.
- *fixed automatically*: fixed by a proposal the gate merged (decision ``merge``) with no
  person approving it (no ``approved`` transition by anyone but ``terry``).
- *kept for a person*: not fixed automatically, and Terry handed it to a person: it was
  marked as needing a human (no remedy, unknown host, failed rollback...), or one of its
  proposals waited for review, or was denied, rejected, failed, rolled back, escalated or
  interrupted. A fix a person approved counts here too (and as *fixed after approval*).
- *auto-resolution rate*: fixed automatically / incidents opened.
- *time to fix*: ``fixed_at - opened_at`` (the alert's start for alerts), over fixed incidents.
- *rollbacks*: proposals rolled back at least once before the end.
- *prevented*: incidents of source ``forecast`` that were fixed: the predicted crossing was
  dealt with before an alert could fire.
- *error budget consumed*: per service with an SLO in ``slos/`` on main, the share of its
  period's budget the window's errors spent (``terry.slo.weekly``, read from Prometheus at the
  window's end), and the incidents opened in the window on the hosts that serve it.
- *time saved*: for every fixed incident, ``manual_minutes_per_fix`` (default 30) minus
  ``review_minutes_per_approval`` (default 5) when a person approved the fix, never below 0;
  settings under ``reports:`` in ``terry.yml``.

How the store is read and what "as it stood at the end" means: ``terry/reports/history.py``.
Renderers (Markdown, one HTML page, JSON ``schema: terry.weekly/v1``):
``terry/reports/weekly_format.py``.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from terry.config import Config
from terry.cost.savings import Savings, savings_achieved
from terry.errors import InputError, TerryError
from terry.gitops.repo import Repo
from terry.inventory.hosts import load_inventory
from terry.reports.history import (
    STATES,
    IncidentAtEnd,
    Outcome,
    ProposalAtEnd,
    incidents_at,
    read_history,
)
from terry.slo.weekly import ServiceSpend, budget_spend
from terry.store import Store
from terry.store.models import utcnow

if TYPE_CHECKING:
    from terry.tenants.scope import Scope

__all__ = [
    "SCHEMA",
    "BudgetRow",
    "DayPoint",
    "Deltas",
    "EnvironmentRow",
    "Figures",
    "HostRow",
    "KeptIncident",
    "RemedyRow",
    "Settings",
    "WeeklyReport",
    "default_end",
    "host_environments",
    "report_for",
    "weekly_report",
]

log = logging.getLogger("terry.reports")

SCHEMA = "terry.weekly/v1"
SOURCES = ("alert", "drift", "inventory", "forecast", "anomaly")
_FINISHED = frozenset({"verified", "failed", "rolled_back", "escalated"})
# Fixed incidents are counted by time to fix in these buckets (name, upper bound in seconds).
TIME_TO_FIX_BUCKETS: tuple[tuple[str, float], ...] = (
    ("under 5m", 300),
    ("5-15m", 900),
    ("15m-1h", 3600),
    ("1-4h", 4 * 3600),
    ("4-24h", 86400),
    ("over 1d", float("inf")),
)
_MAX_KEPT = 100
_MAX_HOSTS = 50


@dataclass(frozen=True)
class Settings:
    """How "time saved" is counted (``reports:`` in ``terry.yml``)."""

    manual_minutes_per_fix: float = 30.0
    review_minutes_per_approval: float = 5.0


@dataclass(frozen=True)
class Figures:
    """One window's figures, as they stood at its end."""

    start: datetime
    end: datetime
    incidents_opened: int
    by_source: dict[str, int]
    fixed: int
    auto_fixed: int
    fixed_after_approval: int
    needed_person: int
    resolved: int  # closed before the end (alert resolved, drift gone, fix verified...)
    resolved_by_itself: int  # resolved with no fix of Terry's and no person (see above)
    open: int  # neither fixed nor resolved at the end
    auto_resolution_rate: float | None  # auto_fixed / incidents_opened, 0..1
    mttf_mean_seconds: float | None
    mttf_median_seconds: float | None
    # Fixed incidents by time to fix: keys are TIME_TO_FIX_BUCKETS' names, all present.
    time_to_fix: dict[str, int]
    proposals: int
    proposals_by_state: dict[str, int]
    rollbacks: int
    ai_proposals: int
    ai_by_state: dict[str, int]
    prevented: int
    time_saved_minutes: float


@dataclass(frozen=True)
class Deltas:
    """This window minus the previous one (None when either side has no value)."""

    incidents_opened: int
    fixed: int
    auto_fixed: int
    fixed_after_approval: int
    needed_person: int
    resolved_by_itself: int
    auto_resolution_rate: float | None
    mttf_mean_seconds: float | None
    mttf_median_seconds: float | None
    proposals: int
    rollbacks: int
    ai_proposals: int
    prevented: int
    time_saved_minutes: float


@dataclass(frozen=True)
class DayPoint:
    day: str  # YYYY-MM-DD of the day's start (UTC)
    start: datetime
    opened: int
    auto_fixed: int
    needed_person: int
    other: int  # still open, in progress, or resolved without Terry's fix


@dataclass(frozen=True)
class RemedyRow:
    remedy: str
    proposals: int
    auto_merged: int
    approved: int
    verified: int
    rollbacks: int
    failed: int
    escalated: int
    denied: int
    rejected: int
    awaiting_review: int
    ai_authored: int
    success_rate: float | None  # verified / (verified + failed + rolled_back + escalated)
    mttf_mean_seconds: float | None


@dataclass(frozen=True)
class EnvironmentRow:
    environment: str  # from main's inventory; "unknown" when the host is not in it
    incidents: int
    auto_fixed: int
    needed_person: int
    rollbacks: int
    auto_resolution_rate: float | None


@dataclass(frozen=True)
class HostRow:
    host: str  # "(unknown)" when no host was found for the incident
    environment: str
    incidents: int
    auto_fixed: int
    needed_person: int
    rollbacks: int


@dataclass(frozen=True)
class BudgetRow:
    """One service's error budget over the window, and the incidents that consumed it."""

    service: str
    slos: tuple[str, ...]
    hosts: tuple[str, ...]
    consumed_percent: float | None  # of the SLO period's budget; None: unknown
    incidents: tuple[int, ...]  # opened in the window on the service's hosts (at most 20)
    incident_count: int
    error: str | None = None


@dataclass(frozen=True)
class KeptIncident:
    id: int
    source: str
    title: str  # the alert's name (untrusted)
    summary: str  # the alert's summary annotation (untrusted), "" when none
    host: str | None  # untrusted when the host is not in the inventory
    opened_at: datetime
    status: str  # at the window's end, in words
    reason: str
    proposal_id: int | None


@dataclass(frozen=True)
class WeeklyReport:
    generated_at: datetime
    start: datetime
    end: datetime
    days: int
    settings: Settings
    summary: Figures
    previous: Figures
    deltas: Deltas
    per_day: tuple[DayPoint, ...]
    remedies: tuple[RemedyRow, ...]
    environments: tuple[EnvironmentRow, ...]
    hosts: tuple[HostRow, ...]
    kept: tuple[KeptIncident, ...]
    kept_total: int  # kept lists at most 100 incidents, newest first
    schema: str = SCHEMA
    # Error budgets consumed per service (empty without SLOs or Prometheus).
    budgets: tuple[BudgetRow, ...] = ()
    # Savings achieved by applied cost proposals against cost.savings_goal (terry.cost.savings;
    # None when there is no goal and no saving, and for a tenant's scoped report).
    savings: Savings | None = None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _minutes_saved(incident: IncidentAtEnd, settings: Settings) -> float:
    if not incident.fixed:
        return 0.0
    if incident.outcome is Outcome.AUTO:
        return settings.manual_minutes_per_fix
    return max(0.0, settings.manual_minutes_per_fix - settings.review_minutes_per_approval)


def _by_state(proposals: Iterable[ProposalAtEnd]) -> dict[str, int]:
    counts = Counter(p.state for p in proposals)
    return {s: counts.get(s, 0) for s in STATES}


def _buckets(seconds: list[float]) -> dict[str, int]:
    counts = dict.fromkeys((name for name, _ in TIME_TO_FIX_BUCKETS), 0)
    for s in seconds:
        name = next(name for name, bound in TIME_TO_FIX_BUCKETS if s < bound)
        counts[name] += 1
    return counts


def _figures(
    incidents: list[IncidentAtEnd], start: datetime, end: datetime, settings: Settings
) -> Figures:
    proposals = [p for i in incidents for p in i.proposals]
    ai = [p for p in proposals if p.data.ai_authored]
    seconds = [s for i in incidents if (s := i.seconds_to_fix) is not None]
    sources = Counter(i.data.source for i in incidents)
    auto = sum(1 for i in incidents if i.outcome is Outcome.AUTO)
    fixed = sum(1 for i in incidents if i.fixed)
    return Figures(
        start=start,
        end=end,
        incidents_opened=len(incidents),
        by_source={
            **{s: sources.get(s, 0) for s in SOURCES},
            **{s: n for s, n in sorted(sources.items()) if s not in SOURCES},
        },
        fixed=fixed,
        auto_fixed=auto,
        fixed_after_approval=fixed - auto,
        needed_person=sum(1 for i in incidents if i.outcome is Outcome.PERSON),
        resolved=sum(1 for i in incidents if i.resolved),
        resolved_by_itself=sum(1 for i in incidents if i.healed),
        open=sum(1 for i in incidents if not i.fixed and not i.resolved),
        auto_resolution_rate=_rate(auto, len(incidents)),
        mttf_mean_seconds=round(statistics.fmean(seconds), 1) if seconds else None,
        mttf_median_seconds=round(statistics.median(seconds), 1) if seconds else None,
        time_to_fix=_buckets(seconds),
        proposals=len(proposals),
        proposals_by_state=_by_state(proposals),
        rollbacks=sum(1 for p in proposals if p.rolled_back),
        ai_proposals=len(ai),
        ai_by_state=_by_state(ai),
        prevented=sum(1 for i in incidents if i.fixed and i.data.source == "forecast"),
        time_saved_minutes=round(sum(_minutes_saved(i, settings) for i in incidents), 1),
    )


def _minus(a: float | None, b: float | None, digits: int = 1) -> float | None:
    return None if a is None or b is None else round(a - b, digits)


def _deltas(now: Figures, before: Figures) -> Deltas:
    return Deltas(
        incidents_opened=now.incidents_opened - before.incidents_opened,
        fixed=now.fixed - before.fixed,
        auto_fixed=now.auto_fixed - before.auto_fixed,
        fixed_after_approval=now.fixed_after_approval - before.fixed_after_approval,
        needed_person=now.needed_person - before.needed_person,
        resolved_by_itself=now.resolved_by_itself - before.resolved_by_itself,
        auto_resolution_rate=_minus(now.auto_resolution_rate, before.auto_resolution_rate, 4),
        mttf_mean_seconds=_minus(now.mttf_mean_seconds, before.mttf_mean_seconds),
        mttf_median_seconds=_minus(now.mttf_median_seconds, before.mttf_median_seconds),
        proposals=now.proposals - before.proposals,
        rollbacks=now.rollbacks - before.rollbacks,
        ai_proposals=now.ai_proposals - before.ai_proposals,
        prevented=now.prevented - before.prevented,
        time_saved_minutes=round(now.time_saved_minutes - before.time_saved_minutes, 1),
    )


def _per_day(incidents: list[IncidentAtEnd], start: datetime, days: int) -> tuple[DayPoint, ...]:
    points = []
    for n in range(days):
        lo, hi = start + timedelta(days=n), start + timedelta(days=n + 1)
        mine = [i for i in incidents if lo <= i.data.opened_at < hi]
        outcomes = Counter(i.outcome for i in mine)
        points.append(
            DayPoint(
                day=lo.date().isoformat(),
                start=lo,
                opened=len(mine),
                auto_fixed=outcomes.get(Outcome.AUTO, 0),
                needed_person=outcomes.get(Outcome.PERSON, 0),
                other=outcomes.get(Outcome.OTHER, 0),
            )
        )
    return tuple(points)


def _remedies(incidents: list[IncidentAtEnd]) -> tuple[RemedyRow, ...]:
    by_remedy: dict[str, list[ProposalAtEnd]] = {}
    fixes: dict[str, list[float]] = {}
    for i in incidents:
        for p in i.proposals:
            by_remedy.setdefault(p.data.remedy, []).append(p)
        if i.fixer is not None and (s := i.seconds_to_fix) is not None:
            fixes.setdefault(i.fixer.data.remedy, []).append(s)
    rows = []
    for remedy, mine in by_remedy.items():
        states = Counter(p.state for p in mine)
        finished = sum(states.get(s, 0) for s in _FINISHED)
        seconds = fixes.get(remedy, [])
        rows.append(
            RemedyRow(
                remedy=remedy,
                proposals=len(mine),
                auto_merged=sum(1 for p in mine if p.auto_merged),
                approved=sum(1 for p in mine if p.approver),
                verified=states.get("verified", 0),
                rollbacks=sum(1 for p in mine if p.rolled_back),
                failed=states.get("failed", 0),
                escalated=states.get("escalated", 0),
                denied=states.get("denied", 0),
                rejected=states.get("rejected", 0),
                awaiting_review=states.get("awaiting_review", 0),
                ai_authored=sum(1 for p in mine if p.data.ai_authored),
                success_rate=_rate(states.get("verified", 0), finished),
                mttf_mean_seconds=round(statistics.fmean(seconds), 1) if seconds else None,
            )
        )
    return tuple(sorted(rows, key=lambda r: (-r.proposals, r.remedy)))


def _environments(
    incidents: list[IncidentAtEnd], environments: Mapping[str, str]
) -> tuple[tuple[EnvironmentRow, ...], tuple[HostRow, ...]]:
    def env(host: str) -> str:
        return environments.get(host) or "unknown"

    def tally(group: list[IncidentAtEnd]) -> tuple[int, int, int, int]:
        outcomes = Counter(i.outcome for i in group)
        rollbacks = sum(1 for i in group for p in i.proposals if p.rolled_back)
        return len(group), outcomes.get(Outcome.AUTO, 0), outcomes.get(Outcome.PERSON, 0), rollbacks

    by_env: dict[str, list[IncidentAtEnd]] = {}
    by_host: dict[str, list[IncidentAtEnd]] = {}
    for i in incidents:
        by_env.setdefault(env(i.host), []).append(i)
        by_host.setdefault(i.host, []).append(i)
    env_rows = []
    for name, group in by_env.items():
        n, auto, person, rollbacks = tally(group)
        env_rows.append(EnvironmentRow(name, n, auto, person, rollbacks, _rate(auto, n)))
    host_rows = []
    for name, group in by_host.items():
        n, auto, person, rollbacks = tally(group)
        host_rows.append(HostRow(name, env(name), n, auto, person, rollbacks))
    return (
        tuple(sorted(env_rows, key=lambda r: (-r.incidents, r.environment))),
        tuple(sorted(host_rows, key=lambda r: (-r.incidents, r.host))[:_MAX_HOSTS]),
    )


_STATE_WORDS = {
    "awaiting_review": "awaiting review",
    "denied": "denied by policy",
    "rejected": "rejected",
    "failed": "failed",
    "rolled_back": "rolled back",
    "escalated": "escalated (verification could not tell)",
    "interrupted": "interrupted",
    "in_progress": "in progress",
    "verified": "verified",
}


def _kept(incidents: list[IncidentAtEnd]) -> tuple[KeptIncident, ...]:
    kept = []
    for i in sorted(incidents, key=lambda i: (i.data.opened_at, i.data.id), reverse=True):
        if i.outcome is not Outcome.PERSON:
            continue
        last = i.proposals[-1] if i.proposals else None
        if i.fixed and i.fixer is not None:
            who = f" by {i.fixer.approver}" if i.fixer.approver else ""
            status = f"fixed after approval{who}"
            last = i.fixer
        elif last is not None:
            status = _STATE_WORDS.get(last.state, last.state)
            if i.resolved:
                status += "; the incident resolved"
        else:
            status = "resolved" if i.resolved else "open"
        if i.attention:
            reason = i.attention
        elif last is not None and last.state in ("awaiting_review", "denied"):
            reason = "; ".join(last.data.reasons)
        elif last is not None:
            reason = last.data.outcome or ""
        else:
            reason = ""
        kept.append(
            KeptIncident(
                id=i.data.id,
                source=i.data.source,
                title=i.data.title,
                summary=i.data.summary,
                host=i.data.host,
                opened_at=i.data.opened_at,
                status=status,
                reason=reason[:500],
                proposal_id=last.data.id if last is not None else None,
            )
        )
    return tuple(kept)


def _budgets(
    incidents: list[IncidentAtEnd], spends: Sequence[ServiceSpend]
) -> tuple[BudgetRow, ...]:
    rows = []
    for spend in spends:
        hosts = set(spend.hosts)
        # the alerts raised on its hosts: drift, forecasts and inventory checks spend no
        # error budget (a service's SLI is what its alerts watch)
        mine = sorted(
            i.data.id for i in incidents if i.data.host in hosts and i.data.source == "alert"
        )
        rows.append(
            BudgetRow(
                service=spend.service,
                slos=spend.slos,
                hosts=spend.hosts,
                consumed_percent=spend.consumed_percent,
                incidents=tuple(mine[:20]),
                incident_count=len(mine),
                error=spend.error,
            )
        )
    return tuple(rows)


def default_end(now: datetime | None = None) -> datetime:
    """The end of today (UTC): by default the window holds today and the days before it."""
    today = (now or utcnow()).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


def weekly_report(
    store: Store,
    *,
    end: datetime | None = None,
    days: int = 7,
    settings: Settings | None = None,
    environments: Mapping[str, str] | None = None,
    budgets: Sequence[ServiceSpend] = (),
    scope: Scope | None = None,
    savings: Savings | None = None,
) -> WeeklyReport:
    """The report of the ``days`` days before ``end`` (exclusive; default: the end of today,
    UTC) and the same span before them. ``environments`` maps host names to their
    environment (main's inventory); hosts it does not name are ``unknown``. ``budgets``:
    each service's error budget consumed in the window (``budget_spend``). ``scope``: only
    the incidents (and their proposals) on the hosts a tenant's principal sees, counted as
    if there were no others (``terry.reports.scoped``); None: every one."""
    if not 1 <= days <= 366:
        raise InputError(f"days must be between 1 and 366, not {days}")
    end = default_end() if end is None else end
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    start = end - timedelta(days=days)
    before = start - timedelta(days=days)
    settings = settings or Settings()
    history = read_history(store, before, end)
    if scope is not None:
        from terry.reports.scoped import scoped_budgets, scoped_history

        history = scoped_history(history, scope)
        budgets = scoped_budgets(budgets, scope)
    current = incidents_at(history, start, end)
    previous = incidents_at(history, before, start)
    summary = _figures(current, start, end, settings)
    earlier = _figures(previous, before, start, settings)
    env_rows, host_rows = _environments(current, environments or {})
    kept = _kept(current)
    return WeeklyReport(
        generated_at=utcnow(),
        start=start,
        end=end,
        days=days,
        settings=settings,
        summary=summary,
        previous=earlier,
        deltas=_deltas(summary, earlier),
        per_day=_per_day(current, start, days),
        remedies=_remedies(current),
        environments=env_rows,
        hosts=host_rows,
        kept=kept[:_MAX_KEPT],
        kept_total=len(kept),
        budgets=_budgets(current, budgets),
        savings=savings if scope is None else None,
    )


def host_environments(config: Config) -> dict[str, str]:
    """Each host's environment as main's inventory says today; empty when it cannot be read
    (the report then counts every host as ``unknown``)."""
    try:
        repo = Repo(config.repo, main_branch=config.main_branch)
        inventory = load_inventory(repo.tree(repo.head()), config.inventory)
    except TerryError as exc:
        log.warning("weekly report: environments unknown: %s", exc)
        return {}
    return {name: host.environment for name, host in inventory.hosts.items() if host.environment}


def report_for(
    config: Config,
    store: Store,
    *,
    end: datetime | None = None,
    days: int = 7,
    scope: Scope | None = None,
) -> WeeklyReport:
    """``weekly_report`` with ``reports:`` of ``terry.yml`` and main's environments (what
    ``terry report weekly`` and a ``weekly-report`` schedule print), and the error budgets
    of main's SLOs consumed in the window; ``scope``: as a tenant reads it."""
    window_end = default_end() if end is None else end
    window_end = window_end.replace(tzinfo=UTC) if window_end.tzinfo is None else window_end
    budgets = budget_spend(config, window_end - timedelta(days=days), window_end)
    return weekly_report(
        store,
        end=end,
        days=days,
        settings=Settings(
            manual_minutes_per_fix=config.reports.manual_minutes_per_fix,
            review_minutes_per_approval=config.reports.review_minutes_per_approval,
        ),
        environments=host_environments(config),
        budgets=budgets,
        scope=scope,
        savings=_savings(config, store, window_end - timedelta(days=days), window_end),
    )


def _savings(config: Config, store: Store, start: datetime, end: datetime) -> Savings | None:
    """Cost savings achieved by the window's end (docs/cost.md); None without a goal or any."""
    found = savings_achieved(store, start=start, end=end, goal=config.cost.savings_goal)
    return found if found.goal or found.achieved else None
