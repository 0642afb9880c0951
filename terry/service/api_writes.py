"""The write API: approve, reject, apply and roll back a proposal over HTTP, and retry an
incident.

``POST /api/v1/proposals/{id}/approve|reject|apply|rollback`` and
``POST /api/v1/incidents/{id}/retry`` (an incident whose proposal ended unfixed: 202 once
the worker has it queued) with a bearer token (the CLI's remote mode, ``terry.cli.remote``,
and any script). Each request is checked the way the
console's forms are: the token names a principal (else 401), ``terry.access.allowed`` judges
the verb against the proposal's risk (else 403 with the reason), and ``--as`` (the body's
``"as"``) may name someone else only for an admin (``terry.access.act_as``). What acted is
the principal's actor, ``api:alice (token tk_0a1b2c3d)``, in the audit and the log.

The pipeline's verbs do the work, as ``terry proposals ...`` calls them. Approving is the
console's ``Actions.approve`` (``terry.service.console.actions``): the state check and the
merge answer in the request, the apply goes on in a thread (202); one apply of a proposal at
a time, whichever door started it. Apply and rollback run in threads of their own: a refusal
the pipeline makes at once (the state) is the answer, 409 with its message; a run that takes
longer is 202 and ``GET /api/v1/proposals/{id}/job`` says when it ends and how.

Answers are JSON: the proposal's ``id``, ``state``, ``decision``, ``approved_by``,
``outcome`` and ``merge_commit`` (what ``terry proposals approve --output json`` prints),
and ``running`` (whether its apply or rollback goes on); errors are ``{"error": ...}`` (with
``state`` on a 409): 400 bad body, 401 no valid token, 403 the role may not (or ``as``),
404 no such proposal, 409 the state does not allow it. ``GET /api/v1/incidents/{id}/explain``
is the record's account of an incident, for the remote ``terry explain``. A token limited to
one tenant reads and acts on its tenant's rows only; another tenant's id is answered 404,
exactly as a missing one (``terry.tenants.scope``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from terry.access import Action, Principal, Role, act_as, allowed
from terry.config import Config
from terry.errors import (
    InputError,
    NotFound,
    StateError,
    StoreError,
    TerryError,
)
from terry.jsonable import to_jsonable
from terry.pipeline import Pipeline
from terry.proposals.view import ProposalDetail, proposal_detail
from terry.service.auth import Authenticator
from terry.service.bodies import read_body
from terry.service.console.actions import Actions
from terry.store import Store
from terry.store.models import MAX_ROW_ID
from terry.tenants.scope import Scopes

__all__ = ["ApiWrites"]

log = logging.getLogger("terry.service.api")

MAX_BODY = 16 * 1024  # bytes: a reason and a name, not a document
MAX_REASON = 500  # characters, as the console's
QUICK = 2.0  # seconds an apply or rollback is waited for before the answer is 202
_VERBS = {
    "approve": Action.APPROVE,
    "reject": Action.REJECT,
    "apply": Action.APPLY,
    "rollback": Action.ROLLBACK,
}
_FIELDS = {
    Action.APPROVE: {"as", "apply"},
    Action.REJECT: {"as", "reason"},
    Action.APPLY: {"as"},
    Action.ROLLBACK: {"as"},
    Action.RETRY: {"as", "reason"},
}


@dataclass(frozen=True)
class Job:
    """An apply or rollback the API started: what, who, since when, how it ended."""

    verb: str
    actor: str
    started: float
    done: bool = False
    error: str | None = None
    state: str | None = None  # the pipeline's answer once done


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(to_jsonable(value), ensure_ascii=True, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, **more: Any) -> Response:
    line = " ".join(message.split())
    line = line if len(line) <= 500 else line[:499] + "…"
    headers = {"WWW-Authenticate": 'Bearer realm="terry"'} if status == 401 else None
    return _json({"error": line, **more}, status, headers)


def _proposal_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()):
        raise InputError("proposal id must be a whole number")
    if len(raw) > 10 or not 1 <= int(raw) <= MAX_ROW_ID:
        raise NotFound(f"proposal {raw[:24]} does not exist")
    return int(raw)


def _incident_key(raw: str) -> int | str:
    """An incident's id or INC reference from a path."""
    from terry.incidents.refs import parse_ref

    if parse_ref(raw) is not None:
        return raw
    if not (raw.isascii() and raw.isdigit()):
        raise InputError("incident id must be a whole number or an INC reference")
    if len(raw) > 10 or not 1 <= int(raw) <= MAX_ROW_ID:
        raise NotFound(f"incident {raw[:24]} does not exist")
    return int(raw)


def _acting(
    principal: Principal,
    verb: Action,
    fields: dict[str, Any],
    *,
    risk: str | None = None,
    everything: bool,
) -> tuple[str | None, str]:
    """(who acts, as the audit names them; None when refused, with why): ``allowed`` in
    the principal's tenant (``everything``: a token of every tenant), never anonymously,
    and ``"as"`` another name only for an admin (``act_as``)."""
    tenant = None if everything else principal.tenant
    decision = allowed(principal, verb, risk=risk, tenant=tenant)
    if principal.anonymous:
        decision = type(decision)(False, "an anonymous caller may not act: use a token")
    named = fields.get("as")
    if decision:
        decision = act_as(principal.name, named, admin=principal.role is Role.ADMIN)
    if not decision:
        return None, decision.reason
    if named is not None and named != principal.name:
        return f"api:{named} (by {principal.actor})", decision.reason
    return f"api:{principal.actor}", decision.reason


def _state(detail: ProposalDetail, *, running: bool = False) -> dict[str, Any]:
    return {
        "id": detail.summary.id,
        "state": detail.summary.state,
        "decision": detail.summary.decision,
        "approved_by": detail.approved_by,
        "outcome": detail.outcome,
        "merge_commit": detail.merge_commit,
        "running": running,
    }


def _body(raw: bytes, verb: Action) -> dict[str, Any]:
    """The request's fields, checked: a JSON object of the verb's known keys (or nothing)."""
    if not raw.strip():
        fields: Any = {}
    else:
        try:
            fields = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"the body is not JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise InputError("the body must be a JSON object")
    unknown = sorted(set(fields) - _FIELDS[verb])
    if unknown:
        known = ", ".join(sorted(_FIELDS[verb]))
        raise InputError(f"unknown field(s) {', '.join(unknown)[:100]} (known: {known})")
    named = fields.get("as")
    if named is not None and (not isinstance(named, str) or not 0 < len(named.strip()) <= 64):
        raise InputError('"as" must be a name of 1 to 64 characters')
    if "apply" in fields and not isinstance(fields["apply"], bool):
        raise InputError('"apply" must be true or false')
    if verb is Action.REJECT or "reason" in fields:
        reason = fields.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(f'say why you {verb} it: {{"reason": "..."}}')
        reason = " ".join(reason.split())
        if len(reason) > MAX_REASON:
            raise InputError(f"the reason is over {MAX_REASON} characters")
        fields["reason"] = reason
    return fields


class ApiWrites:
    """The write endpoints of ``terry serve``; ``routes()`` for the app, ``close()`` at stop."""

    def __init__(
        self,
        config: Config,
        store: Store,
        auth: Authenticator,
        actions: Actions,
        pipeline_factory: Callable[[], Pipeline],
        read_turn: Callable[[Callable[[], Any]], Awaitable[Any]],
        *,
        threads: int = 2,
        scopes: Scopes | None = None,
        on_retry: Callable[[list[int]], None] = lambda _ids: None,
    ) -> None:
        self.config = config
        self.scopes = scopes or Scopes(config)  # a tenant's token acts on its tenant's only
        self.store = store
        self.auth = auth
        self.actions = actions  # the console's: one apply of a proposal at a time
        self.factory = pipeline_factory
        self.read_turn = read_turn
        self.on_retry = on_retry  # the worker's queue (else its next look at pending work)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="terry-api")
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    # -- the routes -------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [
            *(
                Route(f"/api/v1/proposals/{{id}}/{verb}", self.act, methods=["POST"])
                for verb in _VERBS
            ),
            Route("/api/v1/proposals/{id}/job", self.job, methods=["GET"]),
            Route("/api/v1/incidents/{id}/explain", self.explain, methods=["GET"]),
            Route("/api/v1/incidents/{id}/retry", self.retry, methods=["POST"]),
        ]

    def close(self) -> None:
        """Let applies and rollbacks in hand finish; start no more."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- reading ----------------------------------------------------------------------------
    def _principal(self, request: Request) -> Principal | None:
        # at least: may read; a tenant's token reads its tenant's (each read checks scope)
        principal = self.auth.authenticate(request, Role.VIEWER, scoped=True)
        if principal is None:
            given = "a wrong" if "authorization" in request.headers else "no"
            log.info("401 %s %r: %s bearer token", request.method, request.url.path, given)
        return principal

    def running(self, proposal_id: int) -> Job | None:
        """The apply or rollback of ``proposal_id`` under way (the API's or the console's)."""
        with self._lock:
            mine = self._jobs.get(proposal_id)
        if mine is not None and not mine.done:
            return mine
        theirs = self.actions.job(proposal_id)
        if theirs is not None and not theirs.done:
            return Job("approve", theirs.actor, theirs.started)
        return None

    async def explain(self, request: Request) -> Response:
        """GET: the record's account of an incident (``terry explain --no-ai``'s JSON; the
        server never asks Claude for a reader)."""
        from terry.reports.explain import explain_incident
        from terry.reports.views import incident_story

        principal = self._principal(request)
        if principal is None:
            return _error(401, "missing or wrong bearer token")
        try:
            key = _incident_key(str(request.path_params["id"]))
        except InputError as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))
        scope = await self.read_turn(lambda: self.scopes.of(principal))

        def explain() -> Any:
            if not scope.everything and not scope.sees(incident_story(self.store, key)):
                raise NotFound(f"incident {key} does not exist")  # as a missing one
            return explain_incident(self.config, self.store, key, ask_claude=False)

        try:
            found = await self.read_turn(explain)
        except NotFound as exc:
            return _error(404, str(exc))
        return _json(found)

    async def job(self, request: Request) -> Response:
        """GET: the last apply or rollback the server ran for the proposal, and whether it
        is still running (``{"job": null}`` when none)."""
        principal = self._principal(request)
        if principal is None:
            return _error(401, "missing or wrong bearer token")
        try:
            proposal_id = _proposal_id(str(request.path_params["id"]))
            detail = await self.read_turn(lambda: proposal_detail(self.store, proposal_id))
        except InputError as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))
        scope = await self.read_turn(lambda: self.scopes.of(principal))
        if not scope.sees(detail):  # another tenant's: answered as a missing one
            return _error(404, f"proposal {proposal_id} does not exist")
        with self._lock:
            mine = self._jobs.get(proposal_id)
        theirs = self.actions.job(proposal_id)
        last: Job | None = mine
        if theirs is not None and (mine is None or theirs.started > mine.started):
            last = Job("approve", theirs.actor, theirs.started, theirs.done, theirs.error)
        if last is None:
            return _json({"proposal_id": proposal_id, "job": None})
        return _json(
            {
                "proposal_id": proposal_id,
                "job": {
                    "verb": last.verb,
                    "actor": last.actor,
                    "running": not last.done,
                    "error": last.error,
                },
            }
        )

    # -- acting -----------------------------------------------------------------------------
    async def retry(self, request: Request) -> Response:
        """POST: an incident whose proposal ended unfixed becomes work to do again
        (``terry.incidents.retry``); 202 once the worker has it queued."""
        from terry.incidents.retry import ask_retry
        from terry.reports.views import incident_story

        principal = self.auth.authenticate(request, Role.VIEWER, scoped=True)
        if principal is None:
            return _error(401, "missing or wrong bearer token")
        raw = await read_body(request, MAX_BODY)
        if raw is None:
            return _error(413, f"body larger than {MAX_BODY} bytes")
        try:
            key = _incident_key(str(request.path_params["id"]))
            fields = _body(raw, Action.RETRY)
            story = await self.read_turn(lambda: incident_story(self.store, key))
        except InputError as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))
        scope = await self.read_turn(lambda: self.scopes.of(principal))
        if not scope.everything and not scope.sees(story):
            return _error(404, f"incident {key} does not exist")  # as a missing one
        actor, why = _acting(principal, Action.RETRY, fields, everything=scope.everything)
        if actor is None:
            log.warning("api: refused retry of incident %s: %s", key, why)
            return _error(403, why)
        reason = fields.get("reason") or "no reason given"
        try:
            asked = await self.read_turn(
                lambda: ask_retry(self.store, key, actor=actor, reason=reason)
            )
        except NotFound as exc:
            return _error(404, str(exc))
        except StoreError as exc:
            return _error(503, str(exc))
        except StateError as exc:
            return _error(409, str(exc), state=story.incident.state)
        log.info("api: %s asked to retry incident %s", actor, asked.incident_id)
        self.on_retry([asked.incident_id])
        return _json({**asked.as_json(), "state": "queued"}, 202)

    async def act(self, request: Request) -> Response:
        """POST approve, reject, apply or rollback: the token, the body, ``allowed`` with the
        proposal's risk, ``act_as``, then the pipeline's verb."""
        principal = self.auth.authenticate(request, Role.VIEWER, scoped=True)
        if principal is None:
            return _error(401, "missing or wrong bearer token")
        verb = _VERBS[request.url.path.rsplit("/", 1)[1]]
        raw = await read_body(request, MAX_BODY)
        if raw is None:
            return _error(413, f"body larger than {MAX_BODY} bytes")
        try:
            proposal_id = _proposal_id(str(request.path_params["id"]))
            fields = _body(raw, verb)
            detail = await self.read_turn(lambda: proposal_detail(self.store, proposal_id))
        except InputError as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))
        scope = await self.read_turn(lambda: self.scopes.of(principal))
        if not scope.sees(detail):  # another tenant's: answered as a missing one
            return _error(404, f"proposal {proposal_id} does not exist")
        actor, why = _acting(
            principal, verb, fields, risk=detail.summary.risk, everything=scope.everything
        )
        if actor is None:
            log.warning("api: refused %s of proposal %s: %s", verb, proposal_id, why)
            return _error(403, why)
        log.info("api: %s %s proposal %s", actor, verb, proposal_id)
        try:
            return await self._run(verb, proposal_id, actor, fields)
        except TerryError as exc:
            return await self._refused(proposal_id, exc)

    async def _run(
        self, verb: Action, proposal_id: int, actor: str, fields: dict[str, Any]
    ) -> Response:
        if verb is Action.REJECT:
            reason = fields["reason"]
            await self.read_turn(
                lambda: self.actions.reject(proposal_id, actor=actor, reason=reason)
            )
            return await self._answer(proposal_id)
        running = self.running(proposal_id)
        if running is not None:
            raise StateError(
                f"proposal {proposal_id} is already being {_DOING[running.verb]} by {running.actor}"
            )
        if verb is Action.APPROVE:
            if fields.get("apply", True):
                await self.read_turn(lambda: self.actions.approve(proposal_id, actor=actor))
                return await self._answer(proposal_id, status=202, running=True)
            await self.read_turn(
                lambda: self.factory().approve(proposal_id, actor=actor, apply=False)
            )
            return await self._answer(proposal_id)
        waited = asyncio.wrap_future(self._start(verb, proposal_id, actor))
        waited.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen, if late
        try:
            await asyncio.wait_for(asyncio.shield(waited), QUICK)
        except TimeoutError:
            return await self._answer(proposal_id, status=202, running=True)
        except TerryError:
            raise
        except Exception:  # logged in full by the job; said in a line here
            raise TerryError(f"the {verb} crashed; the server's log has the details") from None
        return await self._answer(proposal_id)

    def _start(self, verb: Action, proposal_id: int, actor: str) -> Future[None]:
        """Run ``verb`` in a thread of the API's pool, remembered as the proposal's job."""
        with self._lock:
            self._jobs[proposal_id] = Job(str(verb), actor, time.time())
        return self._pool.submit(self._work, verb, proposal_id, actor)

    def _work(self, verb: Action, proposal_id: int, actor: str) -> None:
        error: str | None = None
        state: str | None = None
        try:
            pipeline = self.factory()
            if verb is Action.APPLY:
                state = str(pipeline.apply(proposal_id, actor=actor))
            else:
                state = str(pipeline.rollback(proposal_id, actor=actor))
        except TerryError as exc:
            error = str(exc)
            raise
        except Exception:
            log.exception("proposal %s: %s from the API crashed", proposal_id, verb)
            error = f"the {verb} crashed; the server's log has the details"
            raise
        finally:
            with self._lock:
                started = self._jobs[proposal_id].started
                self._jobs[proposal_id] = Job(str(verb), actor, started, True, error, state)
            log.info(
                "proposal %s: %s for %s: %s", proposal_id, verb, actor, error or state or "done"
            )

    async def _answer(
        self, proposal_id: int, *, status: int = 200, running: bool = False
    ) -> Response:
        detail = await self.read_turn(lambda: proposal_detail(self.store, proposal_id))
        return _json(_state(detail, running=running), status)

    async def _refused(self, proposal_id: int, exc: TerryError) -> Response:
        """The pipeline's refusal as an answer, by ``TerryError.http_status``: 404, 400, 403
        (not this caller: separation of duties), 503 (the store), or 409 with the state."""
        if exc.http_status != 409:
            return _error(exc.http_status, str(exc))
        try:
            state = (
                await self.read_turn(lambda: proposal_detail(self.store, proposal_id))
            ).summary.state
        except TerryError:
            state = None
        return _error(409, str(exc), state=state)


_DOING = {"approve": "applied", "apply": "applied", "rollback": "rolled back"}
