"""The chaos journal (``chaos_runs``, migration 0018): one row per run, written before the
fault goes in.

A run moves ``selected → injecting → injected → removed → finished``. The row says
``injecting`` before the playbook starts, so a process that dies at any point after leaves a
row that is not ``finished`` and has no ``removed_at``: the next ``terry chaos run`` (or
``terry chaos recover``) removes that fault first (``unfinished``), whoever held it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from terry.store import Store
from terry.store.locks import holder_id, process_alive, process_of
from terry.store.models import ChaosRunRow, utcnow

__all__ = ["ChaosRunRow", "Outcome", "RunState", "holder", "open_run", "unfinished", "update"]


class RunState(StrEnum):
    SELECTED = "selected"
    INJECTING = "injecting"
    INJECTED = "injected"
    REMOVED = "removed"
    FINISHED = "finished"


class Outcome(StrEnum):
    RESOLVED = "resolved"  # Terry verified a fix and the host agrees
    FALSE_FIX = "false-fix"  # Terry said verified; the host still shows the fault
    UNRESOLVED = "unresolved"  # detected, not fixed in time
    UNDETECTED = "undetected"  # no incident for the fault on the host
    INTERRUPTED = "interrupted"  # the run died or was stopped; its fault removed later
    FAILED = "failed"  # the fault could not be injected
    DRY_RUN = "dry-run"


def holder() -> str:
    """This thread of this process: the process as the store's locks name it (machine, pid,
    and the pid's start, so a pid used again is not taken for the run's process:
    ``terry.store.locks.holder_id``) and ``:t<thread id>`` (``terry serve`` runs schedules
    in threads of one process)."""
    return f"{holder_id()}:t{threading.get_ident()}"[:200]


def running_elsewhere(row_holder: str) -> bool | None:
    """Whether the run ``row_holder`` journalled is still being carried: its process alive
    and, when that is this process, its thread alive and not this one. None: another
    machine's, which only it can tell."""
    alive = process_alive(row_holder)
    if not alive or process_of(row_holder) != process_of(holder_id()):
        return alive
    thread = row_holder.rpartition(":t")[2]
    others = {t.ident for t in threading.enumerate() if t is not threading.current_thread()}
    return thread.isdigit() and int(thread) in others


def open_run(
    store: Store,
    *,
    experiment: str,
    title: str,
    fault: str,
    params: dict[str, Any],
    target: str,
    environment: str | None,
    dry_run: bool = False,
) -> int:
    with store.session() as session:
        row = ChaosRunRow(
            experiment=experiment[:200],
            title=title[:300],
            fault=fault,
            params=params,
            target=target,
            environment=environment,
            state=RunState.SELECTED.value,
            dry_run=dry_run,
            started_at=utcnow(),
            holder=holder(),
            detail="",
        )
        session.add(row)
        session.flush()
        return row.id


def update(store: Store, run_id: int, **values: Any) -> None:
    with store.session() as session:
        row = session.get(ChaosRunRow, run_id)
        assert row is not None
        for key, value in values.items():
            if isinstance(value, StrEnum):
                value = value.value
            setattr(row, key, value)


def get(store: Store, run_id: int) -> ChaosRunRow | None:
    with store.session() as session:
        return session.get(ChaosRunRow, run_id)


def unfinished(store: Store, *, exclude: Sequence[int] = ()) -> list[ChaosRunRow]:
    """Runs whose fault may still be on a host: injecting or injected, never removed."""
    with store.session() as session:
        rows = session.scalars(
            select(ChaosRunRow)
            .where(ChaosRunRow.state.in_([RunState.INJECTING.value, RunState.INJECTED.value]))
            .where(ChaosRunRow.dry_run.is_(False))
            .order_by(ChaosRunRow.id)
        ).all()
    return [r for r in rows if r.id not in exclude]


def runs(store: Store, *, since: datetime | None = None) -> list[ChaosRunRow]:
    with store.session() as session:
        query = select(ChaosRunRow).order_by(ChaosRunRow.id)
        if since is not None:
            query = query.where(ChaosRunRow.started_at >= since)
        return list(session.scalars(query).all())
