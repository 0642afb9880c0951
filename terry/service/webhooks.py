"""``POST /api/v1/github``: GitHub's webhook, verified, deduplicated, and turned into
"reconcile proposal N" for the worker.

Refused with 401 (and nothing stored) when the ``X-Hub-Signature-256`` HMAC of the exact
body does not match the configured secret, or when no secret is configured. A delivery id
seen before is answered 200 and not acted on again. Events about pull requests that are
not Terry's, or about another repository, are acknowledged and ignored. What the event
says is not trusted: the worker reads the pull request from GitHub before acting.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from terry.config import Config
from terry.errors import InputError, StoreError
from terry.forges.signature import verify_signature
from terry.service.bodies import read_body
from terry.service.worker import Worker
from terry.sources.alertmanager import decode_body, load_json
from terry.store import Store
from terry.store.models import ForgeDeliveryRow, ProposalRow, utcnow

__all__ = ["GitHubWebhook"]

log = logging.getLogger("terry.github")

_EVENTS = {"pull_request", "pull_request_review", "issue_comment"}
_MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB


def _answer(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, **extra}, status_code=status)


class GitHubWebhook:
    def __init__(self, config: Config, store: Store, worker: Worker | None) -> None:
        self.config = config
        self.store = store
        self.worker = worker

    def _secret(self) -> str:
        return os.environ.get(self.config.forge.github.webhook_secret_env, "")

    async def handle(self, request: Request) -> Response:
        body = await read_body(request, _MAX_BODY)
        if body is None:
            return _answer(413, "payload too large")
        secret = self._secret()
        if not secret:
            log.error(
                "GitHub webhook refused: %s is not set", self.config.forge.github.webhook_secret_env
            )
            return _answer(401, "webhook secret not configured")
        if not verify_signature(secret, body, request.headers.get("x-hub-signature-256")):
            return _answer(401, "missing or wrong X-Hub-Signature-256")
        event = request.headers.get("x-github-event", "")
        delivery = request.headers.get("x-github-delivery", "")
        if not delivery or len(delivery) > 100:
            return _answer(400, "missing X-GitHub-Delivery")
        if event == "ping":
            return _answer(200, "pong")
        try:
            payload = load_json(decode_body(body))  # bounded: depth, number sizes
            if not isinstance(payload, dict):
                raise InputError("payload: expected a JSON object")
        except InputError as exc:
            return _answer(400, f"payload is not a JSON object: {exc}")
        try:
            return await run_in_threadpool(self._act, event, delivery, payload)
        except StoreError as exc:
            log.error("store unavailable for a GitHub delivery: %s", exc)
            return _answer(503, "store unavailable; redeliver later")

    def _act(self, event: str, delivery: str, payload: dict[str, Any]) -> Response:
        target = self._target(event, payload)
        outcome = target[1] if isinstance(target, tuple) else "ignored"
        try:
            with self.store.session() as session:
                session.add(
                    ForgeDeliveryRow(
                        id=delivery, event=event[:50], received_at=utcnow(), outcome=outcome
                    )
                )
        except IntegrityError:
            return _answer(200, "duplicate delivery: already acted on", delivery=delivery)
        if not isinstance(target, tuple):
            return _answer(202, f"ignored: {target}")
        proposal_id, _why = target
        if self.worker is not None:
            self.worker.reconcile(proposal_id)
        return _answer(202, f"proposal {proposal_id}: reconciling", proposal=proposal_id)

    def _target(self, event: str, payload: dict[str, Any]) -> tuple[int, str] | str:
        """(proposal id, why) for an event about one of Terry's pull requests, else why not."""
        if event not in _EVENTS:
            return f"event {event[:40]!r} is not one Terry acts on"
        repository = payload.get("repository")
        name = repository.get("full_name") if isinstance(repository, dict) else None
        if not isinstance(name, str) or name.lower() != self.config.forge.github.repository.lower():
            return "another repository"
        if event == "issue_comment":
            issue = payload.get("issue")
            if not isinstance(issue, dict) or not isinstance(issue.get("pull_request"), dict):
                return "a comment on an issue, not a pull request"
            number = issue.get("number")
        else:
            pull = payload.get("pull_request")
            number = pull.get("number") if isinstance(pull, dict) else None
        if not isinstance(number, int) or isinstance(number, bool):
            return "no pull request number"
        with self.store.session() as session:
            proposal_id = session.scalar(
                select(ProposalRow.id).where(ProposalRow.pr_number == number)
            )
        if proposal_id is None:
            return f"pull request #{number} is not Terry's"
        return proposal_id, f"{event}.{str(payload.get('action', ''))[:30]} on #{number}"
