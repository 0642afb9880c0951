"""``terry serve``: the webhook, health, metrics and read-only JSON, over Starlette.

Store before acknowledge: an alert is committed before the 2xx. When the store cannot take
it the answer is 503 (Alertmanager retries 5xx only; a 4xx would drop the alert forever).
A body the webhook cannot fold is refused with 400 and the reason before anything is stored
(``terry.sources.alertmanager.parse_payload`` is the one judge, at the door and at folding).
The slow work runs in ``terry.service.worker`` so the webhook answers fast.

Every route but ``/healthz`` is behind ``Authenticator.authenticate`` (``terry.service.auth``):
Alertmanager's token posts alerts, readers' tokens read (``/metrics`` too, unless
``server.metrics_public``). Lists are pages of at most ``MAX_PAGE`` rows, newest first,
with a ``Link: <...>; rel="next"`` header while there are more.

Reading is scoped (``terry.tenants.scope``, one ``Scopes`` shared with the console and the
write API): a token limited to one tenant gets its tenant's rows, and another tenant's id
the very 404 a missing one gets. ``/metrics`` counts every tenant: it refuses such a token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from terry.config import Config
from terry.errors import InputError, NotFound, StoreError
from terry.incidents.lifecycle import IncidentState
from terry.incidents.refs import parse_ref
from terry.jsonable import to_jsonable
from terry.notify.deliver import Notifier
from terry.pipeline import Pipeline
from terry.proposals.view import list_proposals, proposal_detail
from terry.reports.views import incident_story, list_incidents
from terry.service.api_writes import ApiWrites
from terry.service.auth import Authenticator, Principal, Role
from terry.service.bodies import read_body
from terry.service.chat_routes import ChatRoutes
from terry.service.console.routes import Console
from terry.service.schedules import Scheduler
from terry.service.webhooks import GitHubWebhook
from terry.service.worker import Worker
from terry.sources.alertmanager import decode_body, parse_payload
from terry.sources.inbox import Folder, Inbox
from terry.store import Store
from terry.store.models import (
    MAX_ROW_ID,
    AlertRow,
    InboxRow,
    IncidentRow,
    ProposalRow,
    RunRow,
    utcnow,
)
from terry.tenants.scope import Scopes
from terry.traces.spans import parse_traceparent

__all__ = ["MAX_PAGE", "create_app"]

log = logging.getLogger("terry.service.server")

FIX_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800, 3600)
MAX_PAGE = 500  # rows per page of a list; more is a 400 naming the limit
DEFAULT_PAGE = 50
# Reads (a page, one incident or proposal, a scrape) the store and JSON work on at once;
# more wait their turn. Their work is Python holding the GIL: ten at once starve the event
# loop and the inbox's thread, and the webhook waits (bench/api_reads.py).
READS_AT_ONCE = 2
_STATE = re.compile(r"[a-z_]{1,32}")  # what a state filter can be (states are such words)
_DIGITS = re.compile(r"[0-9]{1,18}")


def _fix_seconds(dialect: str) -> Any:
    """Seconds from an incident's opening to its verified fix, computed by the database."""
    if dialect == "sqlite":
        days = func.julianday(IncidentRow.fixed_at) - func.julianday(IncidentRow.opened_at)
        seconds = days * 86400.0
    else:
        seconds = func.extract("epoch", IncidentRow.fixed_at - IncidentRow.opened_at)
    return case((seconds < 0, 0.0), else_=seconds)


class StoreCollector(Collector):
    """Metrics read from the store at scrape time: true across restarts and across servers.
    Every figure is counted by the database (no rows travel), so a scrape costs the same
    with ten incidents or a million."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterable[Any]:
        seconds = _fix_seconds(self.store.engine.dialect.name)
        try:
            with self.store.session() as session:
                alerts = session.execute(
                    select(AlertRow.status, func.count(AlertRow.id)).group_by(AlertRow.status)
                ).all()
                decisions = session.execute(
                    select(ProposalRow.decision, func.count(ProposalRow.id)).group_by(
                        ProposalRow.decision
                    )
                ).all()
                states = session.execute(
                    select(ProposalRow.state, func.count(ProposalRow.id)).group_by(
                        ProposalRow.state
                    )
                ).all()
                runs = session.execute(
                    select(RunRow.kind, RunRow.status, func.count(RunRow.id)).group_by(
                        RunRow.kind, RunRow.status
                    )
                ).all()
                fixes = session.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(seconds), 0.0),
                        *(
                            func.coalesce(func.sum(case((seconds <= b, 1), else_=0)), 0)
                            for b in FIX_BUCKETS
                        ),
                    ).where(IncidentRow.fixed_at.is_not(None))
                ).one()
        except (StoreError, SQLAlchemyError):
            return
        family = CounterMetricFamily(
            "terry_alerts_received", "Alerts stored, by status", labels=["status"]
        )
        for status, n in alerts:
            family.add_metric([status], n)
        yield family
        family = CounterMetricFamily(
            "terry_proposals", "Proposals, by gate decision", labels=["decision"]
        )
        for decision, n in decisions:
            family.add_metric([decision or "pending"], n)
        yield family
        gauge = GaugeMetricFamily(
            "terry_proposals_in_state", "Proposals now in each state", labels=["state"]
        )
        for state, n in states:
            gauge.add_metric([state], n)
        yield gauge
        family = CounterMetricFamily(
            "terry_runs", "ansible runs, by kind and outcome", labels=["kind", "outcome"]
        )
        for kind, status, n in runs:
            family.add_metric([kind, status], n)
        yield family
        count, total, *within = fixes
        buckets = [(str(b), int(n)) for b, n in zip(FIX_BUCKETS, within, strict=True)]
        buckets.append(("+Inf", int(count)))
        yield HistogramMetricFamily(
            "terry_alert_to_verified_fix_seconds",
            "Time from alert start to verified fix",
            buckets=buckets,
            sum_value=float(total),
        )
        yield from _open_incidents(self.store)
        yield from _notification_metrics(self.store)


OPEN_STAGES = ("undiagnosed", "remediating", "needs_human", "fixed")


def _open_stage() -> Any:
    """Where an open incident stands (one of OPEN_STAGES), first match wins: fixed (verified,
    its alert yet to resolve), kept for a person (``attention``), waiting for the worker's
    diagnosis, else a proposal on its way (dry run, gate, review, apply, verify)."""
    return case(
        (IncidentRow.fixed_at.is_not(None), "fixed"),
        (IncidentRow.attention.is_not(None), "needs_human"),
        (IncidentRow.diagnosed_at.is_(None), "undiagnosed"),
        else_="remediating",
    )


def _open_incidents(store: Store) -> Iterable[Any]:
    """``terry_incidents_open{stage}``: open incidents by stage, every stage present (0 when
    none), counted by the database in one row."""
    stage = _open_stage()
    try:
        with store.session() as session:
            row = session.execute(
                select(
                    *(
                        func.coalesce(func.sum(case((stage == name, 1), else_=0)), 0)
                        for name in OPEN_STAGES
                    )
                ).where(IncidentRow.state == str(IncidentState.OPEN))
            ).one()
    except (StoreError, SQLAlchemyError):
        return
    gauge = GaugeMetricFamily(
        "terry_incidents_open",
        "Open incidents by stage: undiagnosed, remediating, needs_human (kept for a person), "
        "fixed (verified, its alert not yet resolved)",
        labels=["stage"],
    )
    for name, n in zip(OPEN_STAGES, row, strict=True):
        gauge.add_metric([name], int(n))
    yield gauge


def _notification_metrics(store: Store) -> Iterable[Any]:
    """The notifier's outbox by route (terry.notify.outbox): pending and dead now, delivered
    ever."""
    from terry.notify.outbox import DEAD, DELIVERED, PENDING, counts

    try:
        by_route = counts(store)
    except (StoreError, SQLAlchemyError):
        return
    routes = sorted({route for route, _state in by_route})
    for name, state, doc, family_type in (
        (
            "terry_notifications_pending",
            PENDING,
            "Notifications waiting to be sent",
            GaugeMetricFamily,
        ),
        (
            "terry_notifications_dead",
            DEAD,
            "Notifications given up on (terry notifications list --state dead)",
            GaugeMetricFamily,
        ),
        (
            "terry_notifications_delivered",
            DELIVERED,
            "Notifications delivered",
            CounterMetricFamily,
        ),
    ):
        family = family_type(name, doc, labels=["route"])
        for route in routes:
            family.add_metric([route], by_route.get((route, state), 0))
        yield family


def _plain(value: Any) -> Any:
    """What ``to_jsonable`` makes of a value JSON does not know (``json.dumps``'s default)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _render(value: Any) -> bytes:
    """JSON as ``--output json`` writes it, escaped to ASCII: always encodable, whatever
    text the store holds. The encoder walks the values in C and asks ``_plain`` only about
    dataclasses and datetimes: a page costs a third of walking it with ``to_jsonable``, and
    that time holds the GIL the webhook needs."""
    options: dict[str, Any] = {"ensure_ascii": True, "allow_nan": False, "separators": (",", ":")}
    try:
        text = json.dumps(value, default=_plain, **options)
    except TypeError:  # e.g. a dict keyed by something else than text or numbers
        text = json.dumps(to_jsonable(value), **options)
    return text.encode("ascii")


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}``: one line, at most 500 characters (a reason, not an echo)."""
    line = " ".join(message.split())
    line = line if len(line) <= 500 else line[:499] + "…"
    return _json(_render({"error": line}), status, headers)


def _number(raw: str | None, name: str, *, default: int | None, high: int) -> int | None:
    """A whole number from 1 to ``high`` from a query parameter; InputError otherwise."""
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= high:
        raise InputError(f"{name} must be a whole number from 1 to {high}")
    return int(raw)


_STORE_PROBLEMS = (
    # (SQLSTATE prefix, or words of SQLite's message) -> what /healthz says
    (("53100",), ("full",), "the disk is full"),
    (("55P03",), ("locked", "busy"), "the database is locked"),
    (("25006",), ("readonly", "read-only"), "the database is read-only"),
    (("57014",), (), "the write timed out"),
    (("08",), ("unable to open",), "the database cannot be reached"),
    ((), ("disk i/o",), "an I/O error"),
)


def _store_problem(exc: BaseException) -> str:
    """What kept the store from writing, in fixed words: never the database's own message,
    which can name the host, the user or the file."""
    chain: list[BaseException] = []
    at: BaseException | None = exc
    while at is not None and len(chain) < 10:
        chain.append(at)
        orig = getattr(at, "orig", None)
        at = orig if isinstance(orig, BaseException) else (at.__cause__ or at.__context__)
    for error in chain:
        sqlstate = str(getattr(error, "sqlstate", "") or "")
        message = str(error).lower() if type(error).__module__ == "sqlite3" else ""
        for codes, words, said in _STORE_PROBLEMS:
            if (sqlstate and sqlstate.startswith(codes)) or any(w in message for w in words):
                return said
    if any(isinstance(e, SQLAlchemyError) and "Operational" in type(e).__name__ for e in chain):
        return "the database cannot be reached"
    return "the store refused the write"


class WriteProbe:
    """Could an alert be accepted now? The webhook's own write, undone: an inbox row of about
    an alert's size (marked folded, so no folder would take it) inserted and deleted in one
    committed transaction, in the webhook's turn, with short lock timeouts. A committed
    write reaches the disk (SQLite appends its write-ahead log at commit; PostgreSQL flushes
    its WAL), so a full disk shows, and a write lock held elsewhere shows as locked.

    One probe runs at a time: while one is still waiting on the store, health checks wait
    for it (at most ``timeout`` seconds) instead of starting more."""

    BODY = "{}" + " " * 4094  # an alert body's size: it needs a page of its own

    def __init__(self, store: Store, timeout: float) -> None:
        self._store = store
        self._timeout = timeout
        self._running: asyncio.Future[None] | None = None

    async def problem(self) -> str | None:
        """None when the store took the write, else what kept it from writing."""
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().run_in_executor(None, self._write)
            self._running.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait_for(asyncio.shield(self._running), self._timeout)
        except TimeoutError:
            log.warning("health: no write to the store within %gs", self._timeout)
            return f"no write within {self._timeout:g} s"
        except Exception as exc:
            problem = _store_problem(exc)
            said = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""]
            log.warning("health: the store cannot take a write (%s): %s", problem, said[0][:300])
            return problem
        return None

    def _write(self) -> None:
        table = InboxRow.__table__
        # Locks are waited for most of the time allowed, so a held lock is said as such.
        wait_ms = max(1, int(self._timeout * 750))
        with self._store.write_turn(urgent=True), self._store.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            restore = None
            if sqlite:  # this connection waits for a lock held elsewhere briefly, then fails
                restore = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms}")
                connection.commit()
            try:
                with connection.begin():
                    if not sqlite:
                        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
                        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {wait_ms}")
                    now = utcnow()
                    row_id = connection.execute(
                        insert(table)
                        .values(received_at=now, body=self.BODY, folded_at=now, error="health")
                        .returning(table.c.id)
                    ).scalar_one()
                    connection.execute(delete(table).where(table.c.id == row_id))
            finally:
                if restore is not None:
                    connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(restore)}")
                    connection.commit()


class _Quiet:
    """Log a refused request at most once a minute per reason (a misconfigured sender
    retries for ever)."""

    def __init__(self, every: float = 60.0) -> None:
        self._every = every
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def warn(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self._every) < self._every:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return
        dropped = self._dropped.pop(key, 0)
        self._last[key] = now
        log.warning(message + (f" (and {dropped} more since)" if dropped else ""), *args)


Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    config: Config,
    store: Store,
    *,
    worker: Worker | None = None,
    token: str | None = None,
    readers: dict[str, str] | None = None,
    insecure_no_auth: bool = False,
    scheduler: Scheduler | None = None,
    operators: dict[str, str] | None = None,
    pipeline_factory: Callable[[], Pipeline] | None = None,
) -> Starlette:
    """The ASGI app. ``token`` (else the variable ``server.token_env`` names) is
    Alertmanager's; ``readers`` (else ``server.read_tokens_env``) are the readers' tokens by
    name, ``operators`` (else ``server.operator_tokens_env``) the console's operators'.
    ``pipeline_factory`` builds the pipeline the console approves with (default:
    ``terry.app.build_pipeline``). Without a webhook token this raises ConfigError unless
    ``insecure_no_auth``."""
    auth = Authenticator.from_config(
        config,
        webhook_token=token,
        readers=readers,
        insecure_no_auth=insecure_no_auth,
        operators=operators,
        store=store,  # API tokens (terry tokens create), read as they are presented
    )
    for warning in auth.warnings:
        log.warning("INSECURE: %s", warning)
    if auth.reader_names:
        log.info("readers (%s): %s", auth.readers_from, ", ".join(auth.reader_names))
    elif not auth.is_open(Role.READER):
        log.warning(
            "no reader tokens in $%s: the JSON API%s answer%s 401 to everyone",
            config.server.read_tokens_env,
            "" if config.server.metrics_public else " and /metrics",
            "s" if config.server.metrics_public else "",
        )
    limit = config.server.max_body_bytes
    scopes = Scopes(config)  # what a tenant's principal reads (terry.tenants.scope)
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    requests = Counter(
        "terry_webhook_requests", "Webhook requests by HTTP status", ["code"], registry=registry
    )
    accepted = requests.labels("202")
    probe = WriteProbe(store, config.server.health_timeout)
    refusals = _Quiet()
    reading = asyncio.Semaphore(READS_AT_ONCE)

    async def read_turn(work: Callable[[], Any]) -> Any:
        """``work`` in a worker thread, when one of the READS_AT_ONCE turns is free."""
        async with reading:
            return await run_in_threadpool(work)

    def queue(incident_ids: list[int]) -> None:
        """Hand incidents to the worker (without one, its next look at pending work)."""
        if worker is not None:
            worker.submit(incident_ids)

    def default_pipeline() -> Pipeline:
        from terry.app import build_pipeline

        return build_pipeline(config, store)

    # Slack and Discord (/api/v1/chat/...): authenticated by the platforms' signatures
    chat = ChatRoutes(config, store, pipeline_factory or default_pipeline)
    console = Console(  # the web console (/console): its pages and approve/reject forms
        config,
        store,
        auth,
        pipeline_factory=pipeline_factory or default_pipeline,
        read_turn=read_turn,
        scopes=scopes,  # the same tenant filter as the JSON API's
        on_retry=queue,
    )
    # POST /api/v1/proposals/{id}/approve|reject|apply|rollback, /api/v1/incidents/{id}/retry:
    # bearer tokens, `allowed`
    writes = ApiWrites(
        config,
        store,
        auth,
        console.actions,
        pipeline_factory or default_pipeline,
        read_turn,
        scopes=scopes,
        on_retry=queue,
    )

    def guarded(
        role: Role, handler: Handler, *, quiet: bool = False, scoped: bool = False
    ) -> Handler:
        """``handler`` for requests whose bearer token names a principal of ``role``; 401
        for the others. Who asked is logged by name (at debug for the busy routes).
        ``scoped``: the handler answers only the principal's tenant (``scopes``)."""

        async def guard(request: Request) -> Response:
            principal: Principal | None = auth.authenticate(request, role, scoped=scoped)
            if principal is None:
                if role is Role.ALERTMANAGER:
                    requests.labels("401").inc()
                given = "a wrong" if "authorization" in request.headers else "no"
                refusals.warn(
                    f"{role}:{given}",
                    "401 %s %r: %s bearer token for the %s role",
                    request.method,
                    request.url.path,
                    given,
                    role,
                )
                return _error(
                    401,
                    "missing or wrong bearer token",
                    {"WWW-Authenticate": 'Bearer realm="terry"'},
                )
            request.state.principal = principal
            response = await handler(request)
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "%s %r by %s: %d",
                request.method,
                request.url.path,
                principal.actor,  # the name, and the API token that acted
                response.status_code,
            )
            return response

        return guard

    async def alerts(request: Request) -> Response:
        body = await read_body(request, limit)
        if body is None:
            requests.labels("413").inc()
            return _error(413, f"body larger than {limit} bytes")
        try:
            text_body = decode_body(body)
            payload = parse_payload(text_body)  # what folding will read: the same text
        except InputError as exc:
            requests.labels("400").inc()
            return _error(400, str(exc))
        # Alertmanager's notification span (0.28+, tracing on): kept when well formed, so
        # the incident's trace links to it; anything else is ignored, never refused
        parent = parse_traceparent(request.headers.get("traceparent"))
        try:
            # committed (in a group) before we answer
            await inbox.put(text_body, parent.traceparent if parent else None)
        except StoreError as exc:
            requests.labels("503").inc()
            log.error("store unavailable, answering 503: %s", exc)
            return _error(503, "store unavailable; retry", {"Retry-After": "5"})
        accepted.inc()
        return Response(
            b'{"accepted":%d,"stored":true}' % len(payload.alerts),
            status_code=202,
            media_type="application/json",
        )

    async def healthz(_request: Request) -> Response:
        problem = await probe.problem()
        answer: dict[str, Any] = {
            "status": "ok" if problem is None else "unavailable",
            "store": "takes writes" if problem is None else f"cannot take a write: {problem}",
            "worker_busy": worker.busy if worker else None,
        }
        if auth.warnings:
            answer["warnings"] = list(auth.warnings)
        return _json(_render(answer), 200 if problem is None else 503)

    async def metrics(_request: Request) -> Response:
        data = await read_turn(lambda: generate_latest(registry))
        return Response(data, media_type="text/plain; version=0.0.4; charset=utf-8")

    def lister(fetch: Callable[..., list[Any]]) -> Handler:
        async def handler(request: Request) -> Response:
            query = request.query_params
            try:
                size = _number(query.get("limit"), "limit", default=DEFAULT_PAGE, high=MAX_PAGE)
                before = _number(query.get("before_id"), "before_id", default=None, high=MAX_ROW_ID)
                state = query.get("state") or None
                if state is not None and not _STATE.fullmatch(state):
                    raise InputError("state must be a state's name (lower-case letters and '_')")
            except InputError as exc:
                return _error(400, str(exc))
            assert size is not None

            scope = await read_turn(lambda: scopes.of(request.state.principal))

            def page() -> Response:
                rows = fetch(store, state=state, limit=size + 1, before_id=before)
                if not scope.everything:  # a tenant's rows: read on until a page is full
                    seen, rows = rows, [r for r in rows if scope.sees(r)]
                    while len(rows) <= size and len(seen) == size + 1:
                        seen = fetch(store, state=state, limit=size + 1, before_id=seen[-1].id)
                        rows += [r for r in seen if scope.sees(r)]
                headers = {}
                if len(rows) > size:
                    rows = rows[:size]
                    following = {"limit": size, "before_id": rows[-1].id}
                    if state is not None:
                        following["state"] = state
                    headers["Link"] = f'<{request.url.path}?{urlencode(following)}>; rel="next"'
                return _json(_render(rows), headers=headers)

            return await read_turn(page)

        return handler

    def getter(fetch: Callable[[Store, Any], Any], what: str, *, refs: bool = False) -> Handler:
        """GET one row by id (or, with ``refs``, by its INC reference)."""

        async def handler(request: Request) -> Response:
            raw = str(request.path_params["id"])
            if refs and parse_ref(raw) is not None:
                key: int | str = raw
            elif not (raw.isascii() and raw.isdigit()):
                named = f"a whole number{' or an INC reference' if refs else ''}"
                return _error(400, f"{what} id must be {named}")
            elif len(raw) > 10 or not 1 <= int(raw) <= MAX_ROW_ID:
                shown = raw if len(raw) <= 24 else raw[:24] + "…"
                return _error(404, f"{what} {shown} does not exist")
            else:
                key = int(raw)
            scope = await read_turn(lambda: scopes.of(request.state.principal))

            def one() -> bytes:
                row = fetch(store, key)
                if not scope.sees(row):  # another tenant's: answered as a missing one
                    raise NotFound(f"{what} {key} does not exist")
                return _render(row)

            try:
                body = await read_turn(one)
            except NotFound as exc:
                return _error(404, str(exc))
            return _json(body)

        return handler

    inbox = Inbox(store, on_commit=lambda: folder.wake())
    folder = Folder(
        store,
        on_opened=queue,
        on_changed=worker.incidents_changed if worker is not None else None,
        quiet_for=inbox.quiet_for,
    )
    github_hook = GitHubWebhook(config, store, worker)
    notifier = Notifier(config, store)  # sends notifications in a thread of its own

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        folder.start()
        notifier.start()
        if worker is not None:
            worker.start()
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            await run_in_threadpool(inbox.close)
            await run_in_threadpool(console.close)
            await run_in_threadpool(writes.close)
            await run_in_threadpool(chat.close)
            await run_in_threadpool(folder.stop)
            await run_in_threadpool(notifier.stop)
            if scheduler is not None:
                await run_in_threadpool(scheduler.stop)
            if worker is not None:
                log.info("stopping: finishing the work in hand; queued work resumes on restart")
                await run_in_threadpool(worker.stop)

    async def store_unavailable(request: Request, exc: Exception) -> Response:
        """Any route the store failed under: 503 and Retry-After (a client, Alertmanager
        included, retries a 5xx; a 500 says the request was wrong on this side, a 4xx that
        it was wrong on the client's), the store's URL in the log only."""
        log.error(
            "store unavailable, answering 503 to %s %s: %s", request.method, request.url.path, exc
        )
        if request.url.path.startswith("/api/"):
            return _error(503, "store unavailable; retry", {"Retry-After": "5"})
        return console.unavailable()

    def read(handler: Handler, *, quiet: bool = False) -> Handler:
        return guarded(Role.READER, handler, quiet=quiet)

    def scoped_read(handler: Handler) -> Handler:
        return guarded(Role.READER, handler, scoped=True)

    return Starlette(
        routes=[
            Route(
                "/api/v1/alerts", guarded(Role.ALERTMANAGER, alerts, quiet=True), methods=["POST"]
            ),
            # GitHub signs its deliveries (X-Hub-Signature-256): that is its credential.
            Route("/api/v1/github", github_hook.handle, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),  # the one open route
            Route(
                "/metrics",
                metrics if config.server.metrics_public else read(metrics, quiet=True),
                methods=["GET"],
            ),
            Route("/api/v1/incidents", scoped_read(lister(list_incidents)), methods=["GET"]),
            Route(
                "/api/v1/incidents/{id}",
                scoped_read(getter(incident_story, "incident", refs=True)),
                methods=["GET"],
            ),
            Route("/api/v1/proposals", scoped_read(lister(list_proposals)), methods=["GET"]),
            Route(
                "/api/v1/proposals/{id}",
                scoped_read(getter(proposal_detail, "proposal")),
                methods=["GET"],
            ),
            *writes.routes(),
            *console.routes(),
            *chat.routes(),
        ],
        lifespan=lifespan,
        exception_handlers={StoreError: store_unavailable},
    )
