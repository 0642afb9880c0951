"""One trace per incident: the pipeline's spans, in the incident's own trace.

The first time Terry handles an incident with tracing on, its span (``remediate INC-...``)
starts a trace whose ids are kept on the incident (``trace_id``, ``trace_span_id``). Work
on it later, in this process or another (an approval, an apply, a rollback), continues that
trace as children of that first span, so a person reads the incident's whole path in one
trace, and a log line (``trace_id=...``) or ``terry incidents show`` leads there.

With tracing off (the default) every method here is a null context and nothing is read.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from terry.store.models import IncidentRow, ProposalRow
from terry.traces.spans import SpanIds, Tracer, exporting_from, parse_traceparent, tracer_for

if TYPE_CHECKING:
    from terry.config import Config
    from terry.store import Store

__all__ = ["Traces", "tracer_of"]

_NULL: contextlib.nullcontext[None] = contextlib.nullcontext()
# The incident whose span this thread is in (nested verbs do not open a second one).
_within: contextvars.ContextVar[int | None] = contextvars.ContextVar("terry_incident", default=None)


def tracer_of(config: Config) -> Tracer:
    """This process's tracer for ``config`` (``OFF`` unless traces are exported)."""
    traces = config.traces
    return tracer_for(
        exporting_from(
            traces.otlp_endpoint, service=traces.service_name, timeout=traces.export_timeout
        )
    )


# Proposal states a step leaves only when it failed (terry.proposals.state's values).
_FAILED = frozenset({"failed", "rolled_back", "escalated", "interrupted"})


class Traces:
    """The sequencer's spans: ``incident`` (or ``proposal``) around a verb, ``step`` around
    each step inside it."""

    def __init__(self, config: Config, store: Store, tracer: Tracer | None = None) -> None:
        self.tracer = tracer if tracer is not None else tracer_of(config)
        self.store = store

    @property
    def on(self) -> bool:
        return self.tracer.on

    def incident(
        self, incident_id: int, verb: str = "remediate"
    ) -> contextlib.AbstractContextManager[None]:
        """The incident's span around the block: its trace started (and kept on the
        incident) or continued."""
        if not self.tracer.on or _within.get() == incident_id:
            return _NULL
        return self._incident(incident_id, verb)

    def proposal(self, proposal_id: int, verb: str) -> contextlib.AbstractContextManager[None]:
        """The span of the incident ``proposal_id`` is for, around a verb on the proposal."""
        if not self.tracer.on:
            return _NULL
        with self.store.session() as session:
            incident_id = session.scalar(
                select(ProposalRow.incident_id).where(ProposalRow.id == proposal_id)
            )
        if incident_id is None or _within.get() == incident_id:
            return _NULL
        return self._incident(incident_id, verb, proposal_id=proposal_id)

    def step(self, name: str, **attributes: str | int) -> contextlib.AbstractContextManager[None]:
        """A span around one step of the path (diagnose, propose, dry_run, gate, ...)."""
        if not self.tracer.on:
            return _NULL
        return self._step(name, attributes)

    def outcome(self, proposal_id: int, *, done: str = "") -> None:
        """Mark the current step's span with where the proposal stands after it: its state,
        and an error status when the step failed it (a dry run that failed, an apply rolled
        back, failed, escalated or interrupted) with its outcome as the description.
        ``done``: the state that is this step's success (a rollback's ``rolled_back``)."""
        if not self.tracer.on:
            return
        with self.store.session() as session:
            row = session.get(ProposalRow, proposal_id)
            if row is None:
                return
            state, outcome, check = row.state, row.outcome or "", row.check_summary or {}
        error: str | None = None
        if state in _FAILED and state != done:
            error = outcome or state
        elif state in ("checked", "denied") and check.get("ok") is False:
            error = f"dry run failed: {', '.join(check.get('failed_hosts') or ()) or 'see it'}"
        self.tracer.outcome({"terry.proposal.state": state}, error=error)

    @contextlib.contextmanager
    def _step(self, name: str, attributes: dict[str, str | int]) -> Iterator[None]:
        with self.tracer.span(name, {f"terry.{k}": v for k, v in attributes.items()}):
            yield

    @contextlib.contextmanager
    def _incident(
        self, incident_id: int, verb: str, *, proposal_id: int | None = None
    ) -> Iterator[None]:
        with self.store.session() as session:
            row = session.get(IncidentRow, incident_id)
            alerted: SpanIds | None = None
            if row is None:  # the step itself says so
                ref, kept = str(incident_id), None
            else:
                ref = row.ref or str(incident_id)
                kept = (
                    SpanIds(row.trace_id, row.trace_span_id)
                    if row.trace_id and row.trace_span_id
                    else None
                )
                alerted = parse_traceparent(row.alert_traceparent)
        # terry.incident is a namespace (.id, .ref), never an attribute itself: OpenTelemetry's
        # attribute naming ("names SHOULD NOT coincide with namespaces")
        attributes: dict[str, str | int] = {
            "terry.incident.id": incident_id,
            "terry.incident.ref": ref,
        }
        if proposal_id is not None:
            attributes["terry.proposal.id"] = proposal_id
        token = _within.set(incident_id)
        try:
            # the trace's first span follows from Alertmanager's notification, when it sent
            # its trace context (a link: one notification may open many incidents)
            links = (alerted,) if kept is None and alerted is not None else ()
            with self.tracer.span(f"{verb} {ref}", attributes, parent=kept, links=links) as ids:
                if kept is None and ids is not None and row is not None:
                    self._keep(incident_id, ids)
                yield
        finally:
            _within.reset(token)

    def _keep(self, incident_id: int, ids: SpanIds) -> None:
        """Keep the trace on the incident, unless another process kept one first."""
        with self.store.session() as session:
            session.execute(
                update(IncidentRow)
                .where(IncidentRow.id == incident_id, IncidentRow.trace_id.is_(None))
                .values(trace_id=ids.trace_id, trace_span_id=ids.span_id)
            )
