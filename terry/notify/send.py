"""Sending one message to one route's target, through apprise.

apprise speaks to the services teams use (Slack, Discord, Microsoft Teams, email,
PagerDuty, ntfy, generic JSON and more) from one URL per route. Plain http(s) webhook URLs
of Slack-compatible or Discord-compatible services (and of local test receivers) get the
service's incoming-webhook body through apprise's generic JSON plugin, its fields renamed:
Slack ``{"text": ...}``, Discord ``{"content": ..., "allowed_mentions": {"parse": []}}``.

apprise answers a send with True or False and says why in its log: the reason is taken
from its warning records (``answered 500``, ``unreachable``), and every apprise log record
(and urllib3's, which names the path) is scrubbed of the URL being used before any
handler sees it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from terry.errors import TerryError
from terry.notify.message import Message, for_shape
from terry.notify.routes import SLACK_APP, Target
from terry.redact import Redactor

__all__ = ["DeliveryError", "send"]

# apprise's generic JSON fields: renamed or dropped for the Slack and Discord shapes.
_JSON_FIELDS = ("version", "title", "message", "attachments", "type")


class DeliveryError(TerryError):
    """A message was not delivered (the service refused it, or could not be reached);
    ``why`` says so in a few words (``answered 500``), without the URL."""

    def __init__(self, message: str, *, why: str = "") -> None:
        super().__init__(message)
        self.why = why or message


class _Scrub(logging.Filter):
    """On apprise's logger: each record scrubbed of the URL the thread is sending to; while
    ``send`` runs, its warnings are kept for it (why the send failed, which it raises) and
    not logged twice."""

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


# Loggers that see the URL: apprise's, and urllib3's (its debug records name the path,
# where webhook tokens sit).
_SCRUBBED = ("apprise", "urllib3.connectionpool")


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


def _payload(shape: str, document: dict[str, Any] | None) -> dict[str, Any]:
    """apprise JSON payload extras: a field named with a new name is renamed, with "" it
    is dropped, a new key is added."""
    if shape == "slack":
        return {"version": "", "title": "", "attachments": "", "type": "", "message": "text"}
    if shape == "discord":
        return {
            "version": "",
            "title": "",
            "attachments": "",
            "type": "",
            "message": "content",
            "allowed_mentions": {"parse": []},
        }
    if document is not None:  # the document itself is the body
        if any(key in _JSON_FIELDS for key in document):
            document = {"report": document}
        return {**dict.fromkeys(_JSON_FIELDS, ""), **document}
    return {}


def _json_plugin(target: Target, document: dict[str, Any] | None) -> Any:
    from apprise.plugins.custom_json import NotifyJSON  # apprise: only when sending

    parts = urlsplit(target.url)
    scheme = "jsons" if parts.scheme.lower() == "https" else "json"
    base = urlunsplit((scheme, parts.netloc, parts.path, "", ""))
    kwargs = NotifyJSON.parse_url(base)
    if not kwargs:
        raise DeliveryError(f"route {target.route}: {target.where} is not a URL apprise can use")
    kwargs["payload"] = _payload(target.shape, document)
    kwargs["params"] = dict(parse_qsl(parts.query, keep_blank_values=True))
    return NotifyJSON(**kwargs)


def _plugin(target: Target, document: dict[str, Any] | None) -> Any:
    if target.shape != "apprise":
        return _json_plugin(target, document)
    import apprise

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
    import apprise

    redactor = target.redactor
    scrub = _scrub()
    scrub.local.redactor, scrub.local.captured = redactor, []
    started = time.monotonic()
    try:
        plugin = _plugin(target, document)
        plugin.socket_connect_timeout = timeout
        plugin.socket_read_timeout = timeout
        if target.shape in ("slack", "discord"):
            ok = plugin.notify(
                body=for_shape(message.text, target.shape),
                title="",
                body_format=apprise.NotifyFormat.TEXT,
            )
        else:
            ok = plugin.notify(
                body=message.body or message.title,
                title=message.title,
                body_format=apprise.NotifyFormat.TEXT,
            )
        captured = list(scrub.local.captured)
    except DeliveryError:
        raise
    except Exception as exc:  # apprise raising instead of answering False
        why = redactor(f"{type(exc).__name__}: {exc}")[:300]
        raise DeliveryError(f"route {target.route}: {why}", why=why) from None
    finally:
        scrub.local.redactor, scrub.local.captured = None, None
    if not ok:
        why = redactor(_why(captured, time.monotonic() - started, timeout))
        raise DeliveryError(f"route {target.route} ({target.where}) {why}", why=why)
