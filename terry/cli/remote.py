"""The CLI's remote mode: commands that talk to ``terry serve``'s API instead of the store.

Like ``gh`` or ``argocd``: with ``TERRY_SERVER`` (the server's URL) and ``TERRY_TOKEN`` (an
API token, ``terry tokens create``) in the environment, or the global options ``--server
URL`` and ``--token-env VAR`` (the variable holding the token: never the token itself, so it
is never in argv or a shell's history), ``terry incidents list|show|retry``, ``terry
explain`` (the record's account) and ``terry proposals list|show|approve|reject|apply|
rollback`` ask the server, with that token, so the token's role decides what they may do
(``terry.access``). Their output is local mode's: the API's JSON is read back into the same
dataclasses (``terry.proposals.view``, ``terry.reports.views``) the tables print, and
``--output json`` prints the same document. Local mode stays for the machine Terry runs on.

The server's answers become Terry's errors, hence the CLI's exit codes: 401 and 403 →
``PermissionDenied`` (11, with the server's reason), 404 → ``NotFound`` (4), 409 →
``StateError`` (5, the pipeline's message), 400 → ``InputError`` (2); a server that cannot
be reached, or answers what is not Terry's API, → ``Unreachable`` (12), one line. The token
is sent in the ``Authorization`` header only: no message, log line or output holds it.

httpx is imported in the functions that use it: ``terry --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import sys
import time
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from terry.config import is_http_url
from terry.errors import (
    InputError,
    NotFound,
    PermissionDenied,
    StateError,
    TerryError,
    Unreachable,
)

if TYPE_CHECKING:
    import click

    from terry.proposals.view import ProposalDetail, ProposalSummary
    from terry.reports.explain import Explanation
    from terry.reports.views import IncidentStory, IncidentSummary

__all__ = [
    "SERVER_KEY",
    "TOKEN_ENV_KEY",
    "Remote",
    "from_json",
    "remote_for",
]

SERVER_KEY = "terry.server"  # ctx.meta: --server (else $TERRY_SERVER)
TOKEN_ENV_KEY = "terry.token_env"  # ctx.meta: --token-env (else TERRY_TOKEN)
DEFAULT_TOKEN_ENV = "TERRY_TOKEN"
PAGE = 500  # the server's largest page (terry.service.server.MAX_PAGE)
TIMEOUT = 30.0  # seconds for one request
POLL = 1.0  # seconds between two looks at an apply running on the server
_WAITING = frozenset({"approved", "merged", "applying", "applied"})  # an apply in progress
T = TypeVar("T")


def _shown(url: str) -> str:
    """``url`` without its user and password (a URL may carry credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6, bracketed again
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def remote_for(ctx: click.Context) -> Remote | None:
    """The server to talk to, when one is named (``--server`` or ``$TERRY_SERVER``); None:
    local mode. A server without a token is an error, not a silent fall back to local."""
    meta = ctx.meta
    server = (meta.get(SERVER_KEY) or os.environ.get("TERRY_SERVER") or "").strip()
    if not server:
        return None
    variable = meta.get(TOKEN_ENV_KEY) or DEFAULT_TOKEN_ENV
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", variable):
        raise InputError(f"--token-env {variable[:40]!r} is not a variable's name (A-Z, 0-9, _)")
    if not is_http_url(server):
        raise InputError(f"the server {_shown(server)!r} is not an http(s) URL")
    parts = urlsplit(server)
    token = os.environ.get(variable, "").strip()
    if not token:
        raise InputError(
            f"remote mode ({_shown(server)}) needs an API token in ${variable} "
            "(terry tokens create, on the server's machine)"
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        sys.stderr.write(
            f"warning: the API token goes to {_shown(server)} unencrypted (plain http); "
            "anyone on the way can read it and act as its user: use https\n"
        )
    return Remote(server.rstrip("/"), token)


def _loopback(host: str) -> bool:
    """Whether ``host`` is this machine (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class Remote:
    """One ``terry serve``, and the token the CLI presents to it."""

    server: str
    token: str = dataclasses.field(repr=False)

    # -- HTTP -------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """The JSON answer of ``method path``, or Terry's error for its status."""
        return self._call(method, path, params=params, body=body)[0]

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> tuple[Any, Any]:
        import httpx  # only in remote mode

        where = _shown(self.server)
        try:
            answer = httpx.request(
                method,
                f"{self.server}{path}",
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
                timeout=TIMEOUT,
                follow_redirects=False,
            )
        except httpx.TimeoutException:
            raise Unreachable(f"{where} did not answer within {TIMEOUT:g} s") from None
        except httpx.HTTPError as exc:
            why = type(exc).__name__
            raise Unreachable(f"cannot reach terry serve at {where} ({why})") from None
        try:
            data = answer.json()
        except ValueError:
            data = None
        status = answer.status_code
        if status < 300 and data is not None:
            return data, answer.headers
        said = data.get("error") if isinstance(data, dict) else None
        message = str(said) if said else f"{where} answered {status}"
        if status == 401:
            raise PermissionDenied(
                f"{where} refused the token in the environment (401: missing, wrong, revoked "
                "or expired)"
            )
        if status == 403:
            raise PermissionDenied(f"refused: {message}")
        if status == 404:
            raise NotFound(message)
        if status == 409:
            raise StateError(message)
        if status in (400, 413, 422):
            raise InputError(message)
        if said is None:
            raise Unreachable(f"{where} does not answer as terry serve's API does ({status})")
        raise TerryError(f"{where} answered {status}: {message}")

    def pages(self, path: str, *, state: str | None, limit: int) -> list[Any]:
        """Up to ``limit`` rows of a list, newest first, a page at a time."""
        rows: list[Any] = []
        before: int | None = None
        while len(rows) < limit:
            params: dict[str, Any] = {"limit": min(PAGE, limit - len(rows))}
            if state is not None:
                params["state"] = state
            if before is not None:
                params["before_id"] = before
            page, headers = self._call("GET", path, params=params)
            if not isinstance(page, list):
                raise Unreachable(f"{_shown(self.server)} answered a list with something else")
            rows.extend(page)
            if not page or 'rel="next"' not in headers.get("link", ""):
                break
            before = page[-1]["id"]
        return rows[:limit]

    # -- what the commands read -------------------------------------------------------------
    def incidents(self, *, state: str | None, limit: int) -> list[IncidentSummary]:
        from terry.reports.views import IncidentSummary

        rows = self.pages("/api/v1/incidents", state=state, limit=limit)
        return [from_json(IncidentSummary, row) for row in rows]

    def incident(self, key: int | str) -> IncidentStory:
        from terry.reports.views import IncidentStory

        return from_json(IncidentStory, self.request("GET", f"/api/v1/incidents/{key}"))

    def proposals(self, *, state: str | None, limit: int) -> list[ProposalSummary]:
        from terry.proposals.view import ProposalSummary

        rows = self.pages("/api/v1/proposals", state=state, limit=limit)
        return [from_json(ProposalSummary, row) for row in rows]

    def proposal(self, proposal_id: int) -> ProposalDetail:
        from terry.proposals.view import ProposalDetail

        return from_json(ProposalDetail, self.request("GET", f"/api/v1/proposals/{proposal_id}"))

    def explain(self, key: int | str) -> Explanation:
        """The record's account of an incident, as ``terry explain --no-ai`` tells it
        locally (Claude is not asked remotely)."""
        from terry.reports.explain import Explanation

        return from_json(Explanation, self.request("GET", f"/api/v1/incidents/{key}/explain"))

    # -- what the commands do ---------------------------------------------------------------
    def act(self, verb: str, proposal_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``verb``, then wait while the server applies or rolls back; the proposal's
        state at the end. A failed run on the server is raised as its message."""
        answer = self.request("POST", f"/api/v1/proposals/{proposal_id}/{verb}", body=body)
        while answer.get("running"):
            time.sleep(POLL)
            job = self.request("GET", f"/api/v1/proposals/{proposal_id}/job").get("job")
            if job is None or not job.get("running"):
                if job is not None and job.get("error"):
                    raise TerryError(f"proposal {proposal_id}: {job['error']}")
                break
        return answer

    def retry(self, key: int | str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST an incident's retry: the server's worker takes it from there."""
        return self.request("POST", f"/api/v1/incidents/{key}/retry", body=body)


def _convert(kind: Any, value: Any) -> Any:
    """``value`` (parsed JSON) as the annotation ``kind`` says."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is tuple:
        inner = typing.get_args(kind)[0]
        return tuple(_convert(inner, v) for v in value)
    if origin is list:
        return [_convert(typing.get_args(kind)[0], v) for v in value]
    if kind is datetime:
        return datetime.fromisoformat(value)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return from_json(kind, value)
    return value


def from_json(cls: type[T], data: Any) -> T:
    """The dataclass ``cls`` from the JSON ``to_jsonable`` made of one (the API's answer),
    so that the commands print a remote answer exactly as a local one."""
    if not isinstance(data, dict):
        raise Unreachable(f"the server answered something else than a {cls.__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    try:
        return cls(**{k: _convert(hints[k], v) for k, v in data.items() if k in fields})
    except (TypeError, ValueError, KeyError) as exc:
        raise Unreachable(
            f"the server's {cls.__name__} is not what this CLI reads: {exc}"
        ) from None
