"""Chaos Toolkit actions (``{"type": "python", "module": "terry.chaos.actions", ...}``):
inject a fault on the run's target through the ``chaos`` role, and remove it.

The journal row says ``injecting`` before the playbook starts and ``removed`` only after
the reverse succeeded, so a fault is never forgotten: a run that dies in between leaves a
row the next start cleans up (``terry.chaos.run.recover``).
"""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import ActivityFailed

from terry.chaos import journal
from terry.chaos.ansible import run_fault
from terry.chaos.context import log, run_context
from terry.chaos.faults import check_params, fault_named
from terry.chaos.journal import RunState
from terry.store.models import utcnow

__all__ = ["inject_fault", "remove_fault"]


def inject_fault(
    fault: str, params: dict[str, Any] | None = None, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Put ``fault`` on the run's target; fails the activity when the playbook fails (the
    rollbacks still remove whatever part of it went in)."""
    ctx = run_context(configuration)
    kind = fault_named(fault)
    checked = check_params(kind, dict(params or {}))
    journal.update(ctx.store, ctx.run_id, state=RunState.INJECTING, params=checked)
    log.info("injecting %s on %s", kind, ctx.target)
    done = run_fault(ctx.config, ctx.target, kind.value, "inject", checked)
    if not done.ok:
        journal.update(ctx.store, ctx.run_id, detail=done.detail)
        raise ActivityFailed(done.detail)
    journal.update(ctx.store, ctx.run_id, state=RunState.INJECTED, injected_at=utcnow())
    log.info("injected %s on %s: %s", kind, ctx.target, done.result)
    return done.result


def remove_fault(
    fault: str, params: dict[str, Any] | None = None, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Remove the run's fault from its target (with the parameters it went in with);
    idempotent: removing what is not there changes nothing."""
    ctx = run_context(configuration)
    row = journal.get(ctx.store, ctx.run_id)
    used = dict(row.params) if row is not None and row.params else dict(params or {})
    return remove(ctx, fault, used)


def remove(ctx: Any, fault: str, params: dict[str, Any]) -> dict[str, Any]:
    kind = fault_named(fault)
    log.info("removing %s from %s", kind, ctx.target)
    done = run_fault(ctx.config, ctx.target, kind.value, "remove", check_params(kind, params))
    if not done.ok:
        journal.update(ctx.store, ctx.run_id, detail=done.detail)
        raise ActivityFailed(done.detail)
    journal.update(ctx.store, ctx.run_id, state=RunState.REMOVED, removed_at=utcnow())
    log.info("removed %s from %s", kind, ctx.target)
    return done.result
