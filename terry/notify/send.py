"""Sending one message to one route's target.

apprise speaks to the services teams use (Slack, Discord, Microsoft Teams, email,
PagerDuty, ntfy, generic JSON and more) from one URL per route: an apprise URL (slack://,
discord://, mailto://, json://...) and the https webhook URLs of Slack's and Discord's own
hosts are sent through it, as plain text (apprise escapes it for the service: HTML for
email, Slack's ``<>&``). apprise answers such a send with True or False and says why in its
log: the reason is taken from its warning records (``answered 500``, ``unreachable``).

Any other plain http(s) webhook URL (a Slack- or Discord-compatible service, a generic JSON
endpoint, a local receiver) is POSTed here, with the body its route's ``format`` names:
Slack's ``{"text": ...}``, Discord's ``{"content": ..., "allowed_mentions": {"parse": []}}``
or apprise's generic JSON (``version``, ``title``, ``message``, ``attachments``, ``type``).
Here the answer is read as the services document it, which apprise's generic JSON plugin
does not show its caller:

- 2xx is delivered (Slack answers ``200 ok``, Discord ``204``);
- 429 is rate limited: the wait is Discord's ``retry_after`` (JSON, seconds), else the
  ``Retry-After`` header (seconds or a date), else Discord's ``X-RateLimit-Reset-After``.
  It is waited out once within the send when it fits in ``timeout``; otherwise the error
  carries it (``DeliveryError.retry_after``) and the outbox tries no sooner;
- any other status is refused, with the service's own word: Slack's text
  (``invalid_payload``, ``no_service``, ``channel_is_archived``...), Discord's JSON
  ``message`` and ``code``, or the first line of another body;
- no answer within ``timeout`` (connect, and each read) or no connection is ``did not
  answer within ...`` or ``unreachable``.

Every log record of apprise, urllib3 and httpx (which name the URL or its path, where
webhook tokens sit) is scrubbed of the URL being used before any handler sees it, and so is
every reason given.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from terry.config import RouteConfig
from terry.durations import retry_after
from terry.errors import ConfigError, TerryError
from terry.inert import inert
from terry.notify.message import Message, for_shape
from terry.notify.routes import SLACK_APP, Target, target_for
from terry.redact import Redactor

__all__ = ["DeliveryError", "check", "send"]

# apprise's generic JSON fields (apprise.plugins.custom_json), in its order.
_JSON_FIELDS = ("version", "title", "message", "attachments", "type")
# How much of an answer's body is read: enough for a reason, never a whole page.
_BODY_LIMIT = 4096
# A Retry-After longer than this is taken as this (the outbox's backoff is at most a day).
_MOST_WAIT = 86400.0
# Client errors a later attempt may still get through (RFC 9110: 408 Request Timeout, 409
# Conflict, 425 Too Early; 429 Too Many Requests). Every other 4xx refuses the message
# itself (a bad URL, a revoked token, a body the service will never take): not retried.
_TRANSIENT_4XX = frozenset({408, 409, 425, 429})


class DeliveryError(TerryError):
    """A message was not delivered (the service refused it, or could not be reached);
    ``why`` says so in a few words (``answered 500``), without the URL. ``retry_after``:
    seconds the service asked Terry to wait before trying again (a 429's), if it said.
    ``permanent``: the service refused the message itself, and sending it again cannot
    change that (the outbox marks it dead at once; ``terry notifications retry --dead``
    sends it again once the route is mended)."""

    def __init__(
        self,
        message: str,
        *,
        why: str = "",
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(message)
        self.why = why or message
        self.retry_after = retry_after
        self.permanent = permanent


class _Scrub(logging.Filter):
    """On apprise's, urllib3's and httpx's loggers: each record scrubbed of the URL the
    thread is sending to; while ``send`` runs, apprise's warnings are kept for it (why the
    send failed, which it raises) and not logged twice."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        redactor: Redactor | None = getattr(self.local, "redactor", None)
        if redactor is not None:
            record.msg, record.args = redactor(record.getMessage()), None
        captured: list[str] | None = getattr(self.local, "captured", None)
        if captured is None or not record.name.startswith("apprise"):
            return True
        if record.levelno >= logging.WARNING:
            captured.append(record.getMessage())
        return False  # the caller reports the failure itself, once


_SCRUB_LOCK = threading.Lock()


# Loggers that see the URL: apprise's, urllib3's (its debug records name the path, where
# webhook tokens sit) and httpx's (its info records name the whole URL).
_SCRUBBED = ("apprise", "urllib3.connectionpool", "httpx")


def _scrub() -> _Scrub:
    with _SCRUB_LOCK:
        apprise_logger = logging.getLogger(_SCRUBBED[0])
        for existing in apprise_logger.filters:
            if isinstance(existing, _Scrub):
                return existing
        scrub = _Scrub()
        for name in _SCRUBBED:
            logging.getLogger(name).addFilter(scrub)
        return scrub


def _body(target: Target, message: Message, document: dict[str, Any] | None) -> dict[str, Any]:
    """What a plain http(s) webhook is sent, for the route's shape."""
    if target.shape == "slack":
        return {"text": for_shape(message.text, "slack")}
    if target.shape == "discord":
        return {"content": for_shape(message.text, "discord"), "allowed_mentions": {"parse": []}}
    if document is not None:  # the document itself is the body
        return {"report": document} if any(k in _JSON_FIELDS for k in document) else document
    return {
        "version": "1.0",
        "title": message.title,
        "message": message.body or message.title,
        "attachments": [],
        "type": "info",
    }


def _answer_json(content: bytes) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(headers: Mapping[str, str], data: dict[str, Any]) -> float | None:
    for value in (
        data.get("retry_after"),
        headers.get("retry-after"),
        headers.get("x-ratelimit-reset-after"),
    ):
        if (wait := retry_after(value, most=_MOST_WAIT)) is not None:
            return wait
    return None


def _reason(content: bytes, data: dict[str, Any], redactor: Redactor) -> str:
    """The service's own word for a refusal: Discord's ``message`` (and ``code``), a JSON
    ``error``, or the first line of a text body (Slack's ``invalid_payload``)."""
    if data:
        said = data.get("message") or data.get("error") or ""
        code = data.get("code")
        reason = f"{said} (code {code})" if said and isinstance(code, int) else str(said)
    else:
        text = content.decode("utf-8", "replace").strip()
        first = text.splitlines()[0].strip() if text else ""
        reason = "" if first.startswith("<") else first  # an HTML error page says nothing
    return redactor(inert(reason))[:160]


def _webhook(
    target: Target, message: Message, document: dict[str, Any] | None, timeout: float
) -> None:
    """POST ``message`` to a plain http(s) webhook and read the answer."""
    import httpx  # only when sending

    parts = urlsplit(target.url)
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = (unquote(parts.username or ""), unquote(parts.password or ""))
    netloc = parts.netloc.rpartition("@")[2]
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    body = _body(target, message, document)
    headers = {"User-Agent": "Terry", "Accept": "application/json, text/plain;q=0.9"}
    fail = f"route {target.route} ({target.where})"
    deadline = time.monotonic() + timeout
    for attempt in (1, 2):
        started = time.monotonic()
        try:
            with (
                httpx.Client(timeout=timeout, follow_redirects=False) as client,
                client.stream("POST", url, json=body, headers=headers, auth=auth) as response,
            ):
                content = b""
                for chunk in response.iter_bytes():
                    content += chunk
                    if len(content) >= _BODY_LIMIT or time.monotonic() > deadline:
                        break
                status, answered = response.status_code, response.headers
        except httpx.TimeoutException:
            why = f"did not answer within {timeout:g}s"
            raise DeliveryError(f"{fail} {why}", why=why) from None
        except httpx.HTTPError as exc:
            late = time.monotonic() - started >= timeout * 0.9
            why = f"did not answer within {timeout:g}s" if late else "unreachable"
            why += f" ({type(exc).__name__})"
            raise DeliveryError(f"{fail} {why}", why=why) from None
        if 200 <= status < 300:
            return
        data = _answer_json(content)
        wait = _retry_after(answered, data) if status in (429, 503) else None
        if status == 429:
            left = deadline - time.monotonic()
            if attempt == 1 and wait is not None and wait <= left:
                time.sleep(wait)
                continue
            after = f", retry after {wait:g}s" if wait is not None else ""
            why = f"answered 429 (rate limited{after})"
        else:
            reason = _reason(content, data, target.redactor)
            why = f"answered {status}" + (f" ({reason})" if reason else "")
        why = target.redactor(why)
        permanent = 400 <= status < 500 and status not in _TRANSIENT_4XX
        said = f"{fail} {why}" + (" (not retried: mend the route, then retry it)" * permanent)
        raise DeliveryError(said, why=why, retry_after=wait, permanent=permanent)
    raise AssertionError("not reached")  # pragma: no cover


def _plugin(target: Target) -> Any:
    import apprise  # only when sending

    plugin = apprise.Apprise.instantiate(target.url, suppress_exceptions=True)
    if plugin is None:
        raise DeliveryError(
            f"route {target.route}: apprise does not know the URL in the route's variable "
            f"({target.where})"
        )
    return plugin


def _why(captured: list[str], elapsed: float, timeout: float) -> str:
    for line in captured:
        if found := re.search(r"error=(\d{3})", line):
            return f"answered {found[1]}"
    if elapsed >= timeout * 0.9:
        return f"did not answer within {timeout:g}s"
    if any("onnection error" in line for line in captured):
        return "unreachable"
    return "refused the message" + (f": {captured[-1][:200]}" if captured else "")


def _through_apprise(target: Target, message: Message, timeout: float) -> None:
    import apprise  # only when sending

    redactor = target.redactor
    scrub = _scrub()
    scrub.local.captured = []
    started = time.monotonic()
    try:
        plugin = _plugin(target)
        plugin.socket_connect_timeout = timeout
        plugin.socket_read_timeout = timeout
        ok = plugin.notify(
            body=message.body or message.title,
            title=message.title,
            body_format=apprise.NotifyFormat.TEXT,
            # Discord refuses content over 2000 characters (400); apprise's default leaves
            # the length to the service.
            overflow=apprise.OverflowMode.TRUNCATE if target.markup == "discord" else None,
        )
        captured = list(scrub.local.captured)
    except DeliveryError:
        raise
    except Exception as exc:  # apprise raising instead of answering False
        why = redactor(f"{type(exc).__name__}: {exc}")[:300]
        raise DeliveryError(f"route {target.route}: {why}", why=why) from None
    finally:
        scrub.local.captured = None
    if not ok:
        why = redactor(_why(captured, time.monotonic() - started, timeout))
        raise DeliveryError(f"route {target.route} ({target.where}) {why}", why=why)


def send(
    target: Target,
    message: Message,
    *,
    timeout: float,
    document: dict[str, Any] | None = None,
) -> None:
    """Deliver ``message`` (``document``: a JSON body for the generic JSON shape instead of
    apprise's) or raise DeliveryError saying why, without the URL."""
    if target.shape == SLACK_APP:  # a Slack app's bot, through the Web API (no apprise)
        from terry.notify.slack_app import post

        text = for_shape(message.text, "slack")
        post(target, text=text, timeout=timeout)
        return
    redactor = target.redactor
    scrub = _scrub()
    scrub.local.redactor = redactor
    try:
        if target.shape == "apprise":
            _through_apprise(target, message, timeout)
        else:
            _webhook(target, message, document, timeout)
    except DeliveryError:
        raise
    except Exception as exc:  # a bug or a library's surprise: said, without the URL
        why = redactor(f"{type(exc).__name__}: {exc}")[:300]
        raise DeliveryError(f"route {target.route}: {why}", why=why) from None
    finally:
        scrub.local.redactor = None


def check(route: RouteConfig, environ: Mapping[str, str]) -> str | None:
    """What is wrong with ``route``'s target as ``environ`` has it (its variable unset, no
    URL, a URL apprise does not know), without sending anything; None when nothing."""
    try:
        target = target_for(route, environ)
    except ConfigError as exc:
        return str(exc)
    if target.shape != "apprise":
        return None
    import apprise  # only when checking an apprise URL

    scrub = _scrub()
    scrub.local.redactor, scrub.local.captured = target.redactor, []
    try:
        plugin = apprise.Apprise.instantiate(target.url, suppress_exceptions=True)
    except Exception as exc:  # apprise raising for a URL it cannot read
        return target.redactor(f"route {route.name}: ${route.url_env}: {type(exc).__name__}")
    finally:
        scrub.local.redactor, scrub.local.captured = None, None
    if plugin is None:
        return (
            f"route {route.name}: apprise does not know the URL in ${route.url_env} "
            f"({target.where})"
        )
    return None
