"""The web console's pages and forms (``terry serve``): incidents, an incident, a proposal,
drift and weekly reports, log in and out, approve and reject, retry an incident.

Server-rendered with Jinja2 (``terry.reports.markup.html_page``: autoescape, every string
made inert, undefined names an error), no JavaScript: a running apply refreshes its page.
Nothing but the login page answers without a session (``session.py``); every POST passes the
CSRF locks (``csrf.py``); who may approve or reject is ``terry.access.allowed`` (the role's
risk limit against the proposal's risk), and
what a proposal's state allows is the pipeline's to say (its refusal is shown on the page).
Retrying an incident whose proposal ended unfixed is ``terry.incidents.retry``, as the CLI,
the API and chat ask it; the server's worker takes it from there.

A token limited to one tenant logs in too, and reads that tenant's only: every page, list
and form goes through the same ``terry.tenants.scope.Scope`` as the JSON API, and another
tenant's incident or proposal is answered 404 with the words a missing one gets. The drift
and weekly reports show the tenant's hosts and incidents only (``terry.reports.scoped``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from terry.config import Config
from terry.errors import (
    InputError,
    NotFound,
    StateError,
    StoreError,
    TerryError,
)
from terry.incidents.refs import parse_ref
from terry.pipeline import Pipeline
from terry.proposals.state import UNDER_WAY
from terry.proposals.view import proposal_detail
from terry.reports.markup import html_page
from terry.reports.views import incident_story
from terry.reports.weekly import host_environments
from terry.service.auth import Action, Authenticator, Principal, Role, allowed, may_read
from terry.service.console.actions import Actions
from terry.service.console.csrf import refusal
from terry.service.console.queries import (
    SINCE,
    Environments,
    IncidentFilter,
    incident_page,
    incident_ref,
)
from terry.service.console.queries import SOURCES as _SOURCES
from terry.service.console.queries import STATES as _STATES
from terry.service.console.session import COOKIE, Session, Sessions, end, is_ended
from terry.store import Store
from terry.store.models import MAX_ROW_ID
from terry.tenants.scope import Scope, Scopes

__all__ = ["Console"]

log = logging.getLogger("terry.service.console")

_TEMPLATES = "service/console/templates/"
_MAX_FORM = 16 * 1024
_MAX_REASON = 500
# A running apply: its page reloads itself every this many seconds.
REFRESH_SECONDS = 2
_PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The drift and weekly reports are whole pages of their own, shown in a frame: their
# inline styles, and nothing that runs.
_REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; "
    "frame-ancestors 'self'; base-uri 'none'"
)
_NEXT_PREFIXES = ("/console", "/incidents/", "/proposals/")

Handler = Callable[[Request], Awaitable[Response]]
ReadTurn = Callable[[Callable[[], Any]], Awaitable[Any]]


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _headers(csp: str = _PAGE_CSP) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _safe_next(value: str | None) -> str:
    """Where to go after logging in: one of the console's own paths, else the list."""
    if value and value.startswith(_NEXT_PREFIXES) and "//" not in value and "\\" not in value:
        return value
    return "/console"


def _wants_html(request: Request) -> bool:
    """A browser (it asks for HTML): sent to the login page rather than answered 401."""
    return "text/html" in request.headers.get("accept", "")


def _incident_key(key: str) -> None:
    if parse_ref(key) is None and not (key.isascii() and key.isdigit()):
        raise NotFound(f"incident {key[:40]!r} does not exist: give a number or INC-...")


def _proposal_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not 1 <= int(raw) <= MAX_ROW_ID:
        raise NotFound(f"proposal {raw[:24]} does not exist")
    return int(raw)


class Console:
    """The console of one ``terry serve``: its sessions, its approvals in flight, its
    routes (``routes``)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        auth: Authenticator,
        *,
        pipeline_factory: Callable[[], Pipeline],
        read_turn: ReadTurn,
        environ: dict[str, str] | None = None,
        scopes: Scopes | None = None,
        on_retry: Callable[[list[int]], None] = lambda _ids: None,
    ) -> None:
        env = os.environ if environ is None else environ
        server = config.server
        self.config = config
        self.store = store
        self.auth = auth
        self.scopes = scopes or Scopes(config)  # what a tenant's principal reads
        self.sessions = Sessions(
            (env.get(server.console_secret_env) or "").strip() or None,
            minutes=server.session_minutes,
        )
        self.actions = Actions(pipeline_factory)
        self.on_retry = on_retry  # the worker's queue (else its next look at pending work)
        self.read_turn = read_turn
        self.environments = Environments(lambda: host_environments(config))
        # The stylesheet goes inline, allowed by its hash: no route answers anonymously.
        css = resources.files("terry").joinpath("service/console/static/console.css")
        self.css = Markup(css.read_text("utf-8"))
        digest = base64.b64encode(hashlib.sha256(str(self.css).encode()).digest()).decode()
        self.csp = _PAGE_CSP.replace("style-src 'self'", f"style-src 'sha256-{digest}'")

    # -- plumbing ---------------------------------------------------------------------------
    def refused_read(self, session: Session | None, exc: TerryError) -> HTMLResponse:
        """A page that could not be read, answered as the API answers its reason: 404 for
        what does not exist (or is another tenant's), 400 for a bad address, 503 while the
        store is down; anything else went wrong on this side (500), said in words."""
        if isinstance(exc, StoreError):
            return self.unavailable()
        status = exc.http_status if isinstance(exc, (NotFound, InputError)) else 500
        if status == 500:
            log.error("console: a page could not be made: %s", exc)
        return self.render("message.html.j2", session, status=status, message=str(exc))

    def unavailable(self) -> HTMLResponse:
        """503 while the store cannot be reached (what it is and where, in the log only)."""
        page = self.render(
            "message.html.j2",
            None,
            status=503,
            message="Terry's store cannot be reached just now; try again in a moment.",
        )
        page.headers["Retry-After"] = "5"
        return page

    def session(self, request: Request) -> Session | None:
        found = self.sessions.read(request.cookies.get(COOKIE))
        if found is None or not self.auth.holds(found.principal):
            return None
        try:
            if is_ended(self.store, found):
                return None
        except (TerryError, SQLAlchemyError) as exc:  # as holds(): no store, no session
            log.error("console sessions cannot be checked, ending the session: %s", exc)
            return None
        return found

    def render(
        self,
        template: str,
        session: Session | None,
        *,
        status: int = 200,
        risk: str | None = None,
        tenant: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """``template`` for ``session``; ``risk`` and ``tenant``: the proposal the page shows
        (whether its approve form is offered, and why not)."""
        principal = session.principal if session else None
        verdict = (
            allowed(principal, Action.APPROVE, risk=risk, tenant=tenant) if principal else None
        )
        body = html_page(
            _TEMPLATES + template,
            me=principal,
            csrf=session.csrf if session else "",
            can_act=verdict is not None and verdict.ok,
            why_not=verdict.reason if verdict is not None and not verdict.ok else "",
            when=_when,
            css=self.css,
            refresh=context.pop("refresh", 0),
            message=context.pop("message", ""),
            **context,
        )
        return HTMLResponse(body, status_code=status, headers=_headers(self.csp))

    def who(self, request: Request) -> Session | bool | None:
        """The session of a request: its cookie's, or (for scripts) a reader's bearer token
        (a session that cannot post); None when it has neither; False when its bearer
        token is wrong."""
        if "authorization" in request.headers:
            principal = self.auth.authenticate(request, Role.READER, scoped=True)
            return False if principal is None else Session(principal, "", 0)
        return self.session(request)

    def unauthorized(self, request: Request, message: str = "Log in first.") -> Response:
        """401 with the login form: what a request with no (or a wrong) credential gets."""
        response = self.render(
            "login.html.j2", None, status=401, message=message, next=_safe_next(request.url.path)
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="terry"'
        return response

    def page(self, handler: Callable[[Request, Session], Awaitable[Response]]) -> Handler:
        """``handler`` for a logged-in reader or operator. A browser without a session is
        sent to the login page; any other request without a credential gets 401."""

        async def guard(request: Request) -> Response:
            session = self.who(request)
            if isinstance(session, Session) and may_read(session.principal):
                return await handler(request, session)
            if session is None and _wants_html(request):
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                return RedirectResponse(
                    "/console/login?" + urlencode({"next": target}),
                    status_code=303,
                    headers=_headers(),
                )
            return self.unauthorized(request)

        return guard

    async def scope(self, session: Session) -> Scope:
        """What the session's principal reads (``terry.tenants.scope``)."""
        return await self.read_turn(lambda: self.scopes.of(session.principal))

    @staticmethod
    def tenant(scope: Scope, principal: Principal) -> str | None:
        """The tenant an action on a row in ``scope`` is judged in: the principal's own when
        it is limited to one (the row is in it), else none (every tenant's principal)."""
        return None if scope.everything else principal.tenant

    async def form(
        self, request: Request, session: Session | None, *, check: bool = True
    ) -> dict[str, str] | Response:
        """The posted form, or the refusal to answer with (too large; forged, unless
        ``check`` is off for the caller to check)."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM:
                return self.render("message.html.j2", session, status=413, message="form too large")
        fields: dict[str, str] = {}
        if kind == "application/x-www-form-urlencoded":
            parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            fields = {k: v[0] for k, v in parsed.items() if v}
        public_url = self.config.server.public_url
        why = (
            refusal(request, session, fields.get("csrf"), public_url=public_url) if check else None
        )
        if why is not None:
            who = session.principal.name if session else "nobody"
            log.warning(
                "console: refused %s %r by %s: %s", request.method, request.url.path, who, why
            )
            return self.render("message.html.j2", session, status=403, message=f"Refused: {why}.")
        return fields

    async def posted(
        self, request: Request, anonymous: str
    ) -> tuple[Session, dict[str, str]] | Response:
        """A form's session and fields, or the answer to give: 401 with ``anonymous`` (no
        session), or the form's refusal (too large, forged)."""
        session = self.session(request)
        if session is None:
            return self.unauthorized(request, anonymous)
        fields = await self.form(request, session)
        if isinstance(fields, Response):
            return fields
        return session, fields

    def secure(self, request: Request) -> bool:
        return self.config.server.public_url.startswith("https:") or request.url.scheme == "https"

    # -- log in and out ---------------------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        session = self.who(request)
        if session is False or (session is None and not _wants_html(request)):
            return self.unauthorized(request)
        return self.render(
            "login.html.j2",
            session if isinstance(session, Session) else None,
            next=_safe_next(request.query_params.get("next")),
        )

    async def login(self, request: Request) -> Response:
        fields = await self.form(request, None, check=False)
        if isinstance(fields, Response):
            return fields
        target = _safe_next(fields.get("next"))
        principal = self.auth.login(fields.get("token", "")) if fields.get("token") else None
        if principal is None:
            log.warning("console: a login with a wrong token")
            return self.unauthorized(request, "That is not a reader's or an operator's token.")
        why = refusal(request, None, None, public_url=self.config.server.public_url)
        if why is not None:  # a login another site started (login CSRF)
            log.warning("console: refused a login for %s: %s", principal.name, why)
            return self.render("message.html.j2", None, status=403, message=f"Refused: {why}.")
        _session, cookie = self.sessions.new(principal)
        log.info("console: %s logged in (%s)", principal.name, principal.role)
        response = RedirectResponse(target, status_code=303, headers=_headers())
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=self.sessions.seconds,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.secure(request),
        )
        return response

    async def logout(self, request: Request) -> Response:
        posted = await self.posted(request, "You are not logged in.")
        if isinstance(posted, Response):
            return posted
        session, _fields = posted
        await self.read_turn(lambda: end(self.store, session))
        response = RedirectResponse("/console/login", status_code=303, headers=_headers())
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # -- pages ------------------------------------------------------------------------------
    async def incidents(self, request: Request, session: Session) -> Response:
        try:
            wanted = IncidentFilter.from_query(request.query_params, max_page=500)
        except InputError as exc:
            wanted, problem = IncidentFilter(), str(exc)
        else:
            problem = ""

        scope = await self.scope(session)

        def read() -> Any:
            environments = self.environments.get()
            lines, following = incident_page(self.store, environments, wanted, hosts=scope.hosts)
            # the filter offers the environments of the hosts the principal reads: another
            # tenant's environment names are theirs to know
            seen = {env for host, env in environments.items() if scope.sees_host(host)}
            return lines, following, sorted(seen)

        lines, following, environments = await self.read_turn(read)
        return self.render(
            "incidents.html.j2",
            session,
            status=400 if problem else 200,
            message=problem,
            lines=lines,
            wanted=wanted,
            environments=environments,
            states=_STATES,
            sources=_SOURCES,
            since=tuple(SINCE),
            next_url=(
                "/console?" + urlencode(wanted.query(before_id=following)) if following else ""
            ),
        )

    async def incident(
        self, request: Request, session: Session, *, status: int = 200, message: str = ""
    ) -> Response:
        key = str(request.path_params["key"])
        try:
            _incident_key(key)
            scope = await self.scope(session)

            def read() -> Any:
                story = incident_story(self.store, key)
                if not scope.sees(story):  # another tenant's: answered as a missing one
                    raise NotFound(f"incident {key} does not exist")
                details = [proposal_detail(self.store, p) for p in story.incident.proposals[-20:]]
                return story, [d for d in details if scope.sees(d)]

            story, details = await self.read_turn(read)
        except NotFound as exc:
            return self.render("message.html.j2", session, status=404, message=str(exc))
        i, me = story.incident, session.principal
        retry = allowed(me, Action.RETRY, tenant=self.tenant(scope, me))
        return self.render(
            "incident.html.j2",
            session,
            status=status,
            message=message,
            story=story,
            proposals=details,
            # offered for an alert's open incident whose proposals all ended (the store's
            # own check decides; this only keeps the form off pages where it cannot be)
            retryable=i.state == "open"
            and i.source == "alert"
            and i.diagnosed
            and not any(d.summary.state in UNDER_WAY for d in details),
            can_retry=retry.ok and not me.anonymous,
            why_not_retry=retry.reason if not retry.ok else "",
        )

    async def proposal(
        self, request: Request, session: Session, *, status: int = 200, message: str = ""
    ) -> Response:
        try:
            proposal_id = _proposal_id(str(request.path_params["id"]))
            scope = await self.scope(session)

            def read() -> Any:
                detail = proposal_detail(self.store, proposal_id)
                if not scope.sees(detail):  # another tenant's: answered as a missing one
                    raise NotFound(f"proposal {proposal_id} does not exist")
                return detail, incident_ref(self.store, detail.summary.incident_id)

            detail, ref = await self.read_turn(read)
        except NotFound as exc:
            return self.render("message.html.j2", session, status=404, message=str(exc))
        job = self.actions.job(proposal_id)
        running = (job is not None and not job.done) or detail.summary.state == "applying"
        return self.render(
            "proposal.html.j2",
            session,
            status=status,
            risk=detail.summary.risk,
            tenant=self.tenant(scope, session.principal),
            message=message,
            d=detail,
            ref=ref,
            job=job,
            running=running,
            refresh=REFRESH_SECONDS if running else 0,
        )

    async def retry(self, request: Request) -> Response:
        """POST retry: the session, the CSRF locks, ``allowed`` (the retry action in the
        incident's tenant), then ``ask_retry``; the worker carries it. Its refusal ("it is
        resolved", "a proposal is still under way") is shown on the incident's page."""
        from terry.incidents.retry import ask_retry

        posted = await self.posted(request, "Log in to retry an incident.")
        if isinstance(posted, Response):
            return posted
        session, fields = posted
        key = str(request.path_params["key"])
        principal: Principal = session.principal
        try:
            _incident_key(key)
            scope = await self.scope(session)
            story = await self.read_turn(lambda: incident_story(self.store, key))
            if not scope.sees(story):  # another tenant's: answered as a missing one
                raise NotFound(f"incident {key} does not exist")
        except NotFound as exc:
            return self.render("message.html.j2", session, status=404, message=str(exc))
        decision = allowed(principal, Action.RETRY, tenant=self.tenant(scope, principal))
        if principal.anonymous or not decision:
            log.warning("console: refused retry of incident %s: %s", key, decision.reason)
            return await self.incident(
                request, session, status=403, message=f"Refused: {decision.reason}."
            )
        reason = " ".join(fields.get("reason", "").split())
        if len(reason) > _MAX_REASON:
            message = f"The reason is over {_MAX_REASON} characters."
            return await self.incident(request, session, status=400, message=message)
        actor = f"console:{principal.actor}"
        try:
            asked = await self.read_turn(
                lambda: ask_retry(self.store, key, actor=actor, reason=reason or "no reason given")
            )
        except NotFound as exc:
            return self.render("message.html.j2", session, status=404, message=str(exc))
        except StoreError as exc:
            return await self.incident(request, session, status=503, message=str(exc))
        except StateError as exc:
            return await self.incident(request, session, status=409, message=str(exc))
        log.info("console: %s asked to retry incident %s", actor, asked.incident_id)
        self.on_retry([asked.incident_id])
        return RedirectResponse(
            f"/incidents/{asked.incident_id}", status_code=303, headers=_headers()
        )

    async def incident_report(self, request: Request, session: Session) -> Response:
        """The incident's report (``terry incidents report``), its own page, framed by the
        incident's page."""
        key = str(request.path_params["key"])
        scope = await self.scope(session)

        def read() -> str:
            from terry.reports.incident_report import incident_report
            from terry.reports.incident_report_format import to_html

            if not scope.everything and not scope.sees(incident_story(self.store, key)):
                raise NotFound(f"incident {key} does not exist")  # as a missing one
            return to_html(incident_report(self.store, key))

        try:
            _incident_key(key)
            text = await self.read_turn(read)
        except TerryError as exc:
            return self.refused_read(session, exc)
        return HTMLResponse(text, headers=_headers(_REPORT_CSP))

    async def report(self, request: Request, session: Session) -> Response:
        kind = "drift" if request.url.path.startswith("/console/drift") else "weekly"
        return self.render("report.html.j2", session, kind=kind)

    async def report_body(self, request: Request, session: Session) -> Response:
        """The drift or weekly report's own HTML page (framed by ``report``): for a tenant's
        principal, its tenant's hosts and incidents only."""
        config, store = self.config, self.store
        scope = await self.scope(session)

        def drift() -> str:
            from terry.drift.report import load_report, to_html
            from terry.reports.scoped import scoped_drift

            return to_html(scoped_drift(load_report(store, config), scope))

        def weekly() -> str:
            from terry.reports import report_for, to_html

            return to_html(report_for(config, store, scope=scope))

        work = drift if request.url.path.startswith("/console/drift") else weekly
        try:
            text = await self.read_turn(work)
        except TerryError as exc:
            return self.refused_read(session, exc)
        return HTMLResponse(text, headers=_headers(_REPORT_CSP))

    # -- forms ------------------------------------------------------------------------------
    async def decide(self, request: Request) -> Response:
        """POST approve or reject: the session, the CSRF locks, ``allowed`` (the role, and
        its risk limit against the proposal's risk), then the pipeline's verb; its refusal is
        shown on the proposal's page."""
        posted = await self.posted(request, "Log in to approve or reject.")
        if isinstance(posted, Response):
            return posted
        session, fields = posted
        verb = Action.APPROVE if request.url.path.endswith("/approve") else Action.REJECT
        principal: Principal = session.principal
        try:
            proposal_id = _proposal_id(str(request.path_params["id"]))
            scope = await self.scope(session)
            detail = await self.read_turn(lambda: proposal_detail(self.store, proposal_id))
            if not scope.sees(detail):  # another tenant's: answered as a missing one
                raise NotFound(f"proposal {proposal_id} does not exist")
        except NotFound as exc:
            return self.render("message.html.j2", session, status=404, message=str(exc))
        risk = detail.summary.risk
        decision = allowed(principal, verb, risk=risk, tenant=self.tenant(scope, principal))
        if principal.anonymous or not decision:
            log.warning(
                "console: refused %s of proposal %s: %s", verb, proposal_id, decision.reason
            )
            return await self.proposal(
                request, session, status=403, message=f"Refused: {decision.reason}."
            )
        actor = f"console:{principal.actor}"
        reason = " ".join(fields.get("reason", "").split())
        if verb is Action.REJECT and not reason:
            return await self.proposal(
                request, session, status=400, message="Say why you reject it (the reason)."
            )
        if len(reason) > _MAX_REASON:
            return await self.proposal(
                request,
                session,
                status=400,
                message=f"The reason is over {_MAX_REASON} characters.",
            )
        try:
            if verb is Action.APPROVE:
                await self.read_turn(lambda: self.actions.approve(proposal_id, actor=actor))
            else:
                await self.read_turn(
                    lambda: self.actions.reject(proposal_id, actor=actor, reason=reason)
                )
        except NotFound as exc:  # gone since the page was drawn
            return self.render("message.html.j2", session, status=404, message=str(exc))
        except TerryError as exc:  # as the API answers (TerryError.http_status)
            return await self.proposal(request, session, status=exc.http_status, message=str(exc))
        log.info("console: %s %s proposal %s", actor, verb, proposal_id)
        return RedirectResponse(f"/proposals/{proposal_id}", status_code=303, headers=_headers())

    # -- the routes -------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        page = self.page
        return [
            Route("/", page(self.incidents), methods=["GET"]),
            Route("/console", page(self.incidents), methods=["GET"]),
            Route("/console/login", self.login_form, methods=["GET"]),
            Route("/console/login", self.login, methods=["POST"]),
            Route("/console/logout", self.logout, methods=["POST"]),
            Route("/console/drift", page(self.report), methods=["GET"]),
            Route("/console/drift/report", page(self.report_body), methods=["GET"]),
            Route("/console/weekly", page(self.report), methods=["GET"]),
            Route("/console/weekly/report", page(self.report_body), methods=["GET"]),
            Route("/incidents/{key}", page(self.incident), methods=["GET"]),
            Route("/incidents/{key}/report", page(self.incident_report), methods=["GET"]),
            Route("/incidents/{key}/retry", self.retry, methods=["POST"]),
            Route("/proposals/{id}", page(self.proposal), methods=["GET"]),
            Route("/proposals/{id}/approve", self.decide, methods=["POST"]),
            Route("/proposals/{id}/reject", self.decide, methods=["POST"]),
        ]

    def close(self) -> None:
        self.actions.close()
