"""A Slack app route: review requests with buttons, each incident's story in one thread.

Incoming webhooks (what apprise speaks) can carry neither interactive buttons nor thread
replies. A route with ``slack_app`` in ``terry.yml`` posts as the app's bot instead, through
Slack's Web API (``chat.postMessage``, with ``slack_sdk``'s ``WebClient``):

- an incident's first message starts its thread; the channel and the message's ``ts`` are
  kept (``notification_threads``, one row per route and incident) and the incident's later
  events (applied, verified, failed, rolled back...) are replies in that thread;
- a review request carries Approve / Reject buttons made by ``terry.chat.slack.blocks``, the
  ones ``POST /api/v1/chat/slack/interactions`` understands; a review request that is a
  reply is also broadcast to the channel, so its buttons are seen.

The Web API's answers are read as Slack documents them: HTTP 200 with ``{"ok": false,
"error": ...}`` is a refusal, permanent for errors retrying cannot mend (``invalid_auth``,
``channel_not_found``, ``not_in_channel``...: the row goes dead at once, the error shown)
and retried otherwise; HTTP 429 is waited out once when its ``Retry-After`` fits in the
send's timeout, else retried later; 5xx and no answer are retried. The token is sent only
in the ``Authorization`` header: it is hidden from every error (``Target.redactor``) and
never stored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from terry.notify.events import Event, EventKind
from terry.notify.message import Message
from terry.notify.routes import Target
from terry.notify.send import DeliveryError
from terry.store import Store
from terry.store.models import NotificationThreadRow, utcnow

__all__ = ["PERMANENT", "SlackAppError", "deliver", "post"]

# ``ok: false`` errors that retrying cannot mend: a person must fix the token, the scopes
# or the channel (https://api.slack.com/methods/chat.postMessage#errors).
PERMANENT = frozenset(
    {
        "account_inactive",
        "channel_not_found",
        "ekm_access_denied",
        "invalid_arguments",
        "invalid_auth",
        "invalid_blocks",
        "is_archived",
        "missing_scope",
        "msg_too_long",
        "no_permission",
        "not_authed",
        "not_in_channel",
        "restricted_action",
        "team_access_not_granted",
        "token_expired",
        "token_revoked",
    }
)


class SlackAppError(DeliveryError):
    """Slack did not take the message; ``permanent``: retrying will not help."""


def _retry_after(headers: Any) -> float:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == "retry-after":
            first = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(first))
            except (TypeError, ValueError):
                break
    return 1.0


def post(
    target: Target,
    *,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    channel: str = "",
    thread_ts: str = "",
    broadcast: bool = False,
    timeout: float,
) -> tuple[str, str]:
    """Post one message as the bot to ``channel`` (default: the route's), in the thread
    ``thread_ts`` when given; its (channel, ts). SlackAppError saying why not."""
    from slack_sdk import WebClient  # only when a Slack app route sends
    from slack_sdk.errors import SlackApiError

    client = WebClient(
        token=target.token,
        base_url=target.url,
        timeout=max(1, round(timeout)),
        retry_handlers=[],  # Terry's own rules below and the outbox's backoff
    )
    fail = f"route {target.route} (Slack app, channel {target.channel})"
    for attempt in (1, 2):
        started = time.monotonic()
        try:
            answer = client.chat_postMessage(
                channel=channel or target.channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts or None,
                reply_broadcast=True if thread_ts and broadcast else None,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            if status == 429:
                wait = _retry_after(exc.response.headers)
                if attempt == 1 and wait <= timeout:
                    time.sleep(wait)
                    continue
                why = f"rate limited (Retry-After {wait:g}s)"
                raise SlackAppError(f"{fail} {why}", why=why) from None
            if status >= 500:
                why = f"answered {status}"
                raise SlackAppError(f"{fail} {why}", why=why) from None
            error = target.redactor(str(data.get("error") or f"HTTP {status}"))[:200]
            permanent = error in PERMANENT
            why = f"Slack said {error}" + (
                " (not retried: fix the app or the channel)" if permanent else ""
            )
            raise SlackAppError(f"{fail}: {why}", why=why, permanent=permanent) from None
        except OSError as exc:  # urllib: refused, reset, timed out
            late = time.monotonic() - started >= timeout * 0.9
            why = f"did not answer within {timeout:g}s" if late else "unreachable"
            detail = target.redactor(f"{type(exc).__name__}")
            raise SlackAppError(f"{fail} {why} ({detail})", why=why) from None
        where = str(answer.get("channel") or channel or target.channel)
        return where, str(answer.get("ts") or "")
    raise SlackAppError(f"{fail} rate limited", why="rate limited")  # not reached


def _thread(store: Store, route: str, incident_id: int) -> tuple[str, str] | None:
    """The (channel, ts) of the incident's thread on ``route``, if it has one."""
    with store.session() as session:
        found = session.execute(
            select(NotificationThreadRow.channel, NotificationThreadRow.ts).where(
                NotificationThreadRow.route == route,
                NotificationThreadRow.incident_id == incident_id,
            )
        ).first()
    return (found[0], found[1]) if found is not None else None


def _remember(store: Store, route: str, incident_id: int, channel: str, ts: str) -> None:
    """Keep where the incident's thread is; a thread another round started first wins."""
    try:
        with store.session() as session:
            session.add(
                NotificationThreadRow(
                    route=route,
                    incident_id=incident_id,
                    channel=channel,
                    ts=ts,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        pass


def _blocks(message: Message, events: Sequence[Event]) -> tuple[str, list[dict[str, Any]]]:
    """The message as Block Kit: Terry's chat answer shape, with Approve / Reject buttons
    for each proposal that waits for review."""
    from terry.chat.answer import Answer
    from terry.chat.reads import review_buttons
    from terry.chat.slack import blocks

    pids = sorted(
        {e.proposal_id for e in events if e.kind is EventKind.NEEDS_REVIEW if e.proposal_id}
    )
    buttons = tuple(b for pid in pids[:5] for b in review_buttons(pid))
    shown = blocks(Answer(message.text, buttons, public=True))
    return str(shown["text"]), list(shown["blocks"])


def deliver(
    store: Store, target: Target, events: Sequence[Event], message: Message, *, timeout: float
) -> None:
    """Post ``message`` (about ``events``: one kind, one incident) to the incident's thread,
    starting the thread when it has none."""
    text, shown = _blocks(message, events)
    incident_id = events[0].incident_id
    if incident_id is None:
        post(target, text=text, blocks=shown, timeout=timeout)
        return
    thread = _thread(store, target.route, incident_id)
    if thread is not None:
        review = events[0].kind is EventKind.NEEDS_REVIEW
        channel, ts = thread
        post(
            target,
            text=text,
            blocks=shown,
            channel=channel,
            thread_ts=ts,
            broadcast=review,
            timeout=timeout,
        )
        return
    channel, ts = post(target, text=text, blocks=shown, timeout=timeout)
    if ts:
        _remember(store, target.route, incident_id, channel, ts)
