"""One chaos run, start to end: clean up what interrupted runs left, draw a target, journal
the run, hand the experiment to chaostoolkit-lib (rollbacks always played), remove the
fault again if the rollbacks did not, then judge the outcome and tell the team when Terry
was too slow."""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from terry.chaos import journal
from terry.chaos.context import RunContext, log
from terry.chaos.experiment import Experiment, find_experiment
from terry.chaos.journal import ChaosRunRow, Outcome, RunState
from terry.chaos.record import phases
from terry.chaos.targets import Choice, select_targets
from terry.config import Config
from terry.gitops.repo import Repo
from terry.inventory.hosts import Inventory, load_inventory
from terry.slo.services import service_budgets, services_of
from terry.slo.spec import load_slos
from terry.slo.status import read_status
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import IncidentRow, utcnow

__all__ = ["CHAOS_ENTITY", "RunReport", "choose", "describe", "judge", "recover", "run_experiment"]

# The audit rows of chaos runs (terry.notify.events maps "slow" to chaos-slow).
CHAOS_ENTITY = "chaos"
_SETTINGS = {"runtime": {"rollbacks": {"strategy": "always"}}}
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunReport:
    run_id: int | None
    experiment: str
    fault: str
    target: str
    environment: str | None
    outcome: str
    status: str  # chaostoolkit-lib's journal status, or "dry-run"
    phases: dict[str, float | None] = field(default_factory=dict)
    incident_id: int | None = None
    proposal_id: int | None = None
    truth: str | None = None
    candidates: tuple[str, ...] = ()
    excluded: dict[str, str] = field(default_factory=dict)
    notified: bool = False
    detail: str = ""


def judge(row: ChaosRunRow, *, interrupted: bool) -> Outcome:
    """What a run proved. A "verified" the host contradicts is a false fix, the worst case."""
    if row.injected_at is None:
        return Outcome.INTERRUPTED if interrupted else Outcome.FAILED
    if row.verified_at is not None and row.truth == "faulty":
        return Outcome.FALSE_FIX
    if row.verified_at is not None and row.truth == "healthy":
        return Outcome.RESOLVED
    if interrupted:
        return Outcome.INTERRUPTED
    if row.incident_id is None:
        return Outcome.UNDETECTED
    return Outcome.UNRESOLVED


def _context(config: Config, store: Store, row: ChaosRunRow) -> RunContext:
    return RunContext(config=config, store=store, run_id=row.id, target=row.target)


def recover(config: Config, store: Store, progress: Progress | None = None) -> list[int]:
    """Remove the faults of runs that never finished (the process died or was killed);
    each is marked interrupted. A run whose process is alive is left to it (a scheduled run
    and one started by hand may overlap). A fault that cannot be removed now stays
    journalled."""
    from terry.chaos.actions import remove

    cleaned = []
    for row in journal.unfinished(store):
        alive = journal.running_elsewhere(row.holder) if row.holder else False
        if alive is not False:  # its own process is running it (or another machine's is)
            if progress:
                whose = "its process is still running it" if alive else "run from another machine"
                progress(f"run {row.id}: {row.fault} on {row.target} left alone: {whose}")
            continue
        if progress:
            progress(
                f"run {row.id}: removing {row.fault} left on {row.target} by an interrupted run"
            )
        try:
            remove(_context(config, store, row), row.fault, dict(row.params or {}))
        except Exception as exc:  # ActivityFailed or the runner: retried next start
            if progress:
                progress(f"run {row.id}: could not remove it yet: {exc}")
            continue
        _finish(store, row.id, interrupted=True, threshold=config.chaos.mttr_threshold)
        cleaned.append(row.id)
    return cleaned


def _busy(store: Store) -> set[str]:
    with store.session() as session:
        hosts = session.scalars(
            select(IncidentRow.host).where(
                IncidentRow.state == "open", IncidentRow.host.is_not(None)
            )
        ).all()
    return {h for h in hosts if h} | {r.target for r in journal.unfinished(store)}


def _budgets(config: Config, tree: Path, inventory: Inventory) -> dict[str, float | None]:
    """Error budget left per service the fleet serves that has an SLO (main's specs), as
    Prometheus says now; None where it cannot be read. Not asked when the rule is off."""
    served = services_of(inventory.hosts.values())
    if config.chaos.min_budget_percent <= 0 or not served:
        return {}
    slos = [s for s in load_slos(tree) if s.service in served]
    statuses = read_status(slos, config.prometheus, timeout=config.prometheus.timeout)
    return {name: b.remaining_percent for name, b in service_budgets(statuses).items()}


def choose(config: Config, store: Store, experiment: Experiment, target: str | None) -> Choice:
    repo = Repo(config.repo, main_branch=config.main_branch)
    tree = repo.tree(repo.head())
    inventory = load_inventory(tree, config.inventory)
    return select_targets(
        inventory,
        experiment.selector,
        allowed_environments=config.chaos.environments,
        busy=_busy(store),
        max_blast_radius=config.chaos.max_blast_radius,
        budgets=_budgets(config, tree, inventory),
        min_budget_percent=config.chaos.min_budget_percent,
        forced=target,
    )


class _Forward(logging.Handler):
    def __init__(self, progress: Progress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress(record.getMessage())


def run_experiment(
    config: Config,
    store: Store,
    name: str,
    *,
    target: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> list[RunReport]:
    """Run experiment ``name`` (one run per drawn host, one after another)."""
    say = progress or (lambda _line: None)
    if not dry_run:
        recover(config, store, say)
    repo = Repo(config.repo, main_branch=config.main_branch)
    experiment = find_experiment(repo.tree(repo.head()) / config.chaos.path, name, files=False)
    choice = choose(config, store, experiment, target)
    reports = []
    for host in choice.hosts:
        if dry_run:
            say(f"dry run: would inject {experiment.fault} on {host.name} ({host.environment})")
            reports.append(
                RunReport(
                    None,
                    experiment.name,
                    experiment.fault.value,
                    host.name,
                    host.environment,
                    Outcome.DRY_RUN.value,
                    "dry-run",
                    candidates=choice.candidates,
                    excluded=choice.excluded,
                )
            )
            continue
        reports.append(_one(config, store, experiment, host.name, host.environment, choice, say))
    return reports


def _one(
    config: Config,
    store: Store,
    experiment: Experiment,
    host: str,
    environment: str | None,
    choice: Choice,
    say: Progress,
) -> RunReport:
    from chaoslib.experiment import run_experiment as run_chaos

    run_id = journal.open_run(
        store,
        experiment=experiment.name,
        title=experiment.title,
        fault=experiment.fault.value,
        params=experiment.params,
        target=host,
        environment=environment,
    )
    say(f"run {run_id}: {experiment.title}: {experiment.fault} on {host} ({environment})")
    raw = copy.deepcopy(experiment.raw)
    raw["configuration"] = {
        **(raw.get("configuration") or {}),
        "terry_repo": str(config.repo),
        "terry_run": str(run_id),
        "terry_target": host,
        "terry_resolve_within": str(experiment.resolve_within),
    }
    # Terry's and chaostoolkit-lib's own lines ("Action: fill-data-disk", "Steady state
    # hypothesis is met!") are the live progress; the library's go nowhere else meanwhile.
    handler = _Forward(say)
    library = logging.getLogger("chaostoolkit")
    saved = [(lg, lg.level, lg.propagate) for lg in (log, library)]
    for logger in (log, library):
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    library.propagate = False
    status = "failed"
    try:
        with _signals_where_allowed():
            result = run_chaos(raw, settings=copy.deepcopy(_SETTINGS))
        status = "interrupted" if _stopped(result) else str(result.get("status", "failed"))
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        row = journal.get(store, run_id)
        if row is not None and row.state in (RunState.INJECTED.value, RunState.INJECTING.value):
            # the rollbacks did not remove it (interrupted, or they failed): do it now
            from terry.chaos.actions import remove

            say(f"run {run_id}: the rollbacks left the fault; removing it")
            try:
                remove(_context(config, store, row), row.fault, dict(row.params or {}))
            except Exception as exc:
                say(f"run {run_id}: could not remove it ({exc}); the next start retries")
    interrupted = status == "interrupted"
    row = journal.get(store, run_id)
    assert row is not None
    if row.state not in (RunState.REMOVED.value, RunState.SELECTED.value):
        # still on the host: stays unfinished for the next start to clean
        outcome = judge(row, interrupted=True)
        journal.update(store, run_id, outcome=outcome, detail=row.detail or "fault not removed")
        return _report(row, outcome, status, choice, notified=False)
    outcome, notified = _finish(
        store, run_id, interrupted=interrupted, threshold=config.chaos.mttr_threshold
    )
    row = journal.get(store, run_id)
    assert row is not None
    say(
        f"run {run_id}: {outcome}" + (f", MTTR {_mttr(row):.0f}s" if _mttr(row) is not None else "")
    )
    return _report(row, outcome, status, choice, notified=notified)


_NO_SIGNALS = threading.Lock()


@contextlib.contextmanager
def _signals_where_allowed() -> Iterator[None]:
    """chaostoolkit-lib puts its SIGTERM and SIGUSR handlers on the process for each run,
    which Python allows in the main thread only: off it (a schedule of ``terry serve``, run
    in the scheduler's thread), the run goes without them, as ``terry serve``'s own
    handlers stay in force there; the rollbacks still run as the experiment says."""
    if threading.current_thread() is threading.main_thread():
        yield
        return
    import chaoslib.run

    with _NO_SIGNALS:
        kept = chaoslib.run.exit_signals
        chaoslib.run.exit_signals = contextlib.nullcontext  # type: ignore[assignment]
        try:
            yield
        finally:
            chaoslib.run.exit_signals = kept


def _stopped(journal_: dict[str, Any]) -> bool:
    """Whether the run was stopped (SIGTERM, Ctrl-C): chaostoolkit-lib says so in its status,
    except when the signal came during an activity (Terry's wait for the fix, mostly), which
    it records as that activity failing with ``InterruptExecution`` and goes on to "completed"."""
    if journal_.get("status") == "interrupted":
        return True
    return any(
        "InterruptExecution" in str(item.get("exception") or "")
        for item in journal_.get("run") or ()
        if isinstance(item, dict)
    )


def _mttr(row: ChaosRunRow) -> float | None:
    return phases(row.injected_at, row.alert_at, row.decided_at, row.applied_at, row.verified_at)[
        "mttr"
    ]


def _finish(
    store: Store, run_id: int, *, interrupted: bool, threshold: float
) -> tuple[Outcome, bool]:
    """Mark the run finished with its outcome; an audit row ``slow`` (notified as
    chaos-slow) when Terry took longer than ``threshold`` or did not fix it at all."""
    with store.session() as session:
        row = session.get(ChaosRunRow, run_id)
        assert row is not None
        outcome = judge(row, interrupted=interrupted)
        mttr = _mttr(row)
        slow = outcome in (Outcome.UNRESOLVED, Outcome.UNDETECTED, Outcome.FALSE_FIX) or (
            mttr is not None and mttr > threshold
        )
        row.outcome, row.state, row.finished_at = outcome.value, RunState.FINISHED.value, utcnow()
        if slow:
            took = f"MTTR {mttr:.0f}s" if mttr is not None else "no verified fix"
            audit(
                session,
                entity=CHAOS_ENTITY,
                entity_id=run_id,
                actor="terry-chaos",
                from_state=None,
                to_state="slow",
                reason=(
                    f"chaos run {run_id}: {row.fault} on {row.target}: {outcome.value}, {took} "
                    f"(threshold {threshold:.0f}s)"
                ),
            )
    return outcome, slow


def _report(
    row: ChaosRunRow, outcome: Outcome, status: str, choice: Choice, *, notified: bool
) -> RunReport:
    return RunReport(
        run_id=row.id,
        experiment=row.experiment,
        fault=row.fault,
        target=row.target,
        environment=row.environment,
        outcome=outcome.value,
        status=status,
        phases=phases(
            row.injected_at, row.alert_at, row.decided_at, row.applied_at, row.verified_at
        ),
        incident_id=row.incident_id,
        proposal_id=row.proposal_id,
        truth=row.truth,
        candidates=choice.candidates,
        excluded=choice.excluded,
        notified=notified,
        detail=row.detail,
    )


def describe(row: ChaosRunRow) -> dict[str, Any]:
    """A run as the CLI and the report show it."""

    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    return {
        "id": row.id,
        "experiment": row.experiment,
        "fault": row.fault,
        "target": row.target,
        "environment": row.environment,
        "state": row.state,
        "outcome": row.outcome,
        "injected_at": iso(row.injected_at),
        "alert_at": iso(row.alert_at),
        "incident_id": row.incident_id,
        "proposal_id": row.proposal_id,
        "decision": row.decision,
        "decided_at": iso(row.decided_at),
        "applied_at": iso(row.applied_at),
        "verified_at": iso(row.verified_at),
        "truth": row.truth,
        "removed_at": iso(row.removed_at),
        "phases": phases(
            row.injected_at, row.alert_at, row.decided_at, row.applied_at, row.verified_at
        ),
    }
