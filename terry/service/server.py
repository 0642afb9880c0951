"""``terry serve``: the webhook, health, metrics and read-only JSON, over Starlette.

Store before acknowledge: an alert is committed before the 2xx. When the store cannot take
it the answer is 503 (Alertmanager retries 5xx only; a 4xx would drop the alert forever).
The slow work runs in ``terry.service.worker`` so the webhook answers fast.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from terry.config import Config
from terry.errors import InputError, NotFound, StoreError
from terry.jsonable import to_jsonable
from terry.reports.views import incident_story, list_incidents, list_proposals, proposal_detail
from terry.service.schedules import Scheduler
from terry.service.webhooks import GitHubWebhook
from terry.service.worker import Worker
from terry.sources.alertmanager import parse_payload
from terry.sources.inbox import Folder, Inbox
from terry.store import Store
from terry.store.models import AlertRow, IncidentRow, ProposalRow, RunRow

__all__ = ["create_app"]

log = logging.getLogger("terry.service.server")

FIX_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800, 3600)


class StoreCollector(Collector):
    """Metrics read from the store at scrape time: true across restarts and across servers."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterable[Any]:
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
                    select(IncidentRow.opened_at, IncidentRow.fixed_at).where(
                        IncidentRow.fixed_at.is_not(None)
                    )
                ).all()
        except StoreError:
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
        seconds = sorted(max(0.0, (f - o).total_seconds()) for o, f in fixes)
        buckets = [(str(b), sum(1 for s in seconds if s <= b)) for b in FIX_BUCKETS]
        buckets.append(("+Inf", len(seconds)))
        yield HistogramMetricFamily(
            "terry_alert_to_verified_fix_seconds",
            "Time from alert start to verified fix",
            buckets=buckets,
            sum_value=sum(seconds),
        )


def _json(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(to_jsonable(value), status_code=status)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    config: Config,
    store: Store,
    *,
    worker: Worker | None = None,
    token: str | None = None,
    scheduler: Scheduler | None = None,
) -> Starlette:
    """The ASGI app. ``token`` (or the env var named in the config) guards the webhook."""
    secret = token if token is not None else os.environ.get(config.server.token_env) or None
    limit = config.server.max_body_bytes
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    requests = Counter(
        "terry_webhook_requests", "Webhook requests by HTTP status", ["code"], registry=registry
    )
    accepted = requests.labels("202")

    def authorised(request: Request) -> bool:
        if secret is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), secret.encode()
        )

    async def read_body(request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        if declared is not None and declared.isdigit():
            return await request.body()  # the size is known and within the limit
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    async def alerts(request: Request) -> Response:
        if not authorised(request):
            requests.labels("401").inc()
            return JSONResponse(
                {"error": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="terry"'},
            )
        body = await read_body(request)
        if body is None:
            requests.labels("413").inc()
            return _error(413, f"body larger than {limit} bytes")
        try:
            payload = parse_payload(body)
            text_body = body.decode("utf-8")
        except (InputError, UnicodeDecodeError) as exc:
            requests.labels("400").inc()
            return _error(400, str(exc))
        try:
            await inbox.put(text_body)  # committed (in a group) before we answer
        except StoreError as exc:
            requests.labels("503").inc()
            log.error("store unavailable, answering 503: %s", exc)
            return JSONResponse(
                {"error": "store unavailable; retry"}, status_code=503, headers={"Retry-After": "5"}
            )
        accepted.inc()
        return Response(
            b'{"accepted":%d,"stored":true}' % len(payload.alerts),
            status_code=202,
            media_type="application/json",
        )

    async def healthz(_request: Request) -> Response:
        def probe() -> None:
            with store.session() as session:
                session.execute(text("SELECT 1"))

        try:
            await run_in_threadpool(probe)
        except StoreError as exc:
            return _error(503, str(exc))
        return _json({"status": "ok", "worker_busy": worker.busy if worker else None})

    async def metrics(_request: Request) -> Response:
        data = await run_in_threadpool(generate_latest, registry)
        return Response(data, media_type="text/plain; version=0.0.4; charset=utf-8")

    def _int(request: Request, name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isdigit():
            raise InputError(f"{name} must be a positive integer")
        return int(raw)

    def lister(fetch: Callable[..., Any]) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            try:
                limit_ = _int(request, "limit", 50)
            except InputError as exc:
                return _error(400, str(exc))
            state = request.query_params.get("state")
            return _json(await run_in_threadpool(fetch, store, state=state, limit=limit_))

        return handler

    def getter(fetch: Callable[..., Any]) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            try:
                found = await run_in_threadpool(fetch, store, int(request.path_params["id"]))
            except NotFound as exc:
                return _error(404, str(exc))
            return _json(found)

        return handler

    inbox = Inbox(store, on_commit=lambda: folder.wake())
    folder = Folder(
        store,
        on_opened=worker.submit if worker is not None else lambda _ids: None,
        on_changed=worker.incidents_changed if worker is not None else None,
        quiet_for=inbox.quiet_for,
    )
    github_hook = GitHubWebhook(config, store, worker)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        folder.start()
        if worker is not None:
            worker.start()
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            await run_in_threadpool(inbox.close)
            await run_in_threadpool(folder.stop)
            if scheduler is not None:
                await run_in_threadpool(scheduler.stop)
            if worker is not None:
                log.info("stopping: finishing the work in hand; queued work resumes on restart")
                await run_in_threadpool(worker.stop)

    return Starlette(
        routes=[
            Route("/api/v1/alerts", alerts, methods=["POST"]),
            Route("/api/v1/github", github_hook.handle, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/api/v1/incidents", lister(list_incidents), methods=["GET"]),
            Route("/api/v1/incidents/{id:int}", getter(incident_story), methods=["GET"]),
            Route("/api/v1/proposals", lister(list_proposals), methods=["GET"]),
            Route("/api/v1/proposals/{id:int}", getter(proposal_detail), methods=["GET"]),
        ],
        lifespan=lifespan,
    )
