"""Cross-site request forgery: three locks on every console POST.

1. The session cookie is ``SameSite=Strict``: a browser does not send it with a request
   another site starts.
2. The request's ``Origin`` (or, without one, its ``Referer``) must be the console's own
   origin (``server.public_url``, else the request's ``Host``); a POST naming neither is
   refused.
3. The form carries the session's CSRF token (``csrf``), compared in constant time.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

from terry.service.console.session import Session

__all__ = ["own_origin", "refusal"]


def own_origin(request: Request, public_url: str) -> str:
    """``scheme://host[:port]`` people reach the console at."""
    if public_url:
        parts = urlsplit(public_url)
        return f"{parts.scheme}://{parts.netloc}".lower()
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}".lower()


def _origin_of(request: Request) -> str | None:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.lower().rstrip("/")
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return None


def refusal(
    request: Request, session: Session | None, given: str | None, *, public_url: str
) -> str | None:
    """Why a POST is refused as possibly forged, or None when it passes every lock."""
    origin = _origin_of(request)
    if origin is None:
        return "the request names no Origin"
    if origin != own_origin(request, public_url):
        return "the request comes from another site"
    if session is None:
        return None  # the login form: no session yet, the Origin check is its lock
    if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
        return "the form's CSRF token is missing or wrong; reload the page and try again"
    return None
