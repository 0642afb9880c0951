"""A request's body, read no further than a limit: the one reader every route of ``terry
serve`` uses (the Alertmanager and GitHub webhooks, chat, the write API). It runs before any
signature or token is checked, so a sender with neither can never make Terry hold more than
the limit: a declared length over it is refused unread, and a body without one (chunked) is
read only up to it."""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["read_body"]


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
