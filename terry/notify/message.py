"""Messages: short, useful, and inert.

One event: what happened, where (host, environment), the decision and why, the next action
(the approve command, the pull request, the web page) and the incident's reference. Several
events of one kind for one route (a storm): one message listing the first ``max_items``
and "and N more".

Text from alerts, hosts and other systems is untrusted. Each piece is made inert
(``terry.inert``: control and invisible characters shown, on one line), mentions are broken
(``@`` is followed by a zero-width space, so ``@everyone``, ``@here`` and ``<@id>`` notify
nobody) and backticks become quotes (no code fence to break out of). Where the service
renders Markdown in the text (``markup="discord"``: a Discord webhook, whatever the route's
URL), each piece's ``*``, ``_``, ``~`` and ``|`` are escaped with a backslash, and so are the
``[`` of a masked link and a backslash before punctuation: no bold, strike-through or
spoiler, and no link ``[text](https://...)`` showing one thing and opening another (a URL in
the text is left whole, so it still works).
``for_shape`` then escapes the whole text for where it goes: Slack's ``&``, ``<`` and ``>``
(``<!channel>``, ``<@U123>`` and ``<http://x|y>`` stay text); Discord's body also says
``allowed_mentions: {parse: []}`` (``terry.notify.send``). Services apprise speaks to
natively get plain text, which apprise escapes for them (HTML for email, Slack's ``<>&``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from terry.inert import inert
from terry.notify.events import Event, EventKind

__all__ = ["Message", "compose", "for_shape", "untrusted"]

_WHAT = {
    EventKind.INCIDENT_OPENED: "incident opened",
    EventKind.DRIFT_FOUND: "drift found",
    EventKind.FORECAST_WARNING: "forecast warning",
    EventKind.NEEDS_REVIEW: "needs review",
    EventKind.APPLIED: "fix applied",
    EventKind.VERIFIED: "fix verified",
    EventKind.FAILED: "fix failed",
    EventKind.ROLLED_BACK: "fix rolled back",
    EventKind.KEPT_FOR_HUMAN: "kept for a person",
    EventKind.RESOLVED: "resolved",
    EventKind.BUDGET_EXHAUSTED: "error budget exhausted",
    EventKind.CHAOS_SLOW: "chaos run too slow",
}
_PLURAL = {
    EventKind.INCIDENT_OPENED: "incidents opened",
    EventKind.DRIFT_FOUND: "drift incidents opened",
    EventKind.FORECAST_WARNING: "forecast warnings",
    EventKind.NEEDS_REVIEW: "fixes need review",
    EventKind.APPLIED: "fixes applied",
    EventKind.VERIFIED: "fixes verified",
    EventKind.FAILED: "fixes failed",
    EventKind.ROLLED_BACK: "fixes rolled back",
    EventKind.KEPT_FOR_HUMAN: "incidents kept for a person",
    EventKind.RESOLVED: "incidents resolved",
    EventKind.BUDGET_EXHAUSTED: "error budgets exhausted",
    EventKind.CHAOS_SLOW: "chaos runs too slow",
}
_ZWSP = "\u200b"

# Discord's Markdown in untrusted text: a URL is kept as it is, up to the first character
# that could be markup (a backslash in it would break the link); elsewhere each character
# that opens emphasis, underline, strike-through or a spoiler, the "[" of a masked link
# "[text](url)", and a backslash before punctuation (the text's own backslash must not undo
# the escape that follows it) get a backslash. Headings, quotes and lists need the start of
# a line, which no untrusted piece has (it is one line, after Terry's own words).
_DISCORD_MARKDOWN = re.compile(
    r"(?P<url>(?i:https?)://[^\s<>|*~\[\]]+)"
    r"|(?P<char>[*_~|]|\\(?=[!-/:-@\[-`{-~])|\[(?=[^\]]*\]\())"
)


def _discord(text: str) -> str:
    return _DISCORD_MARKDOWN.sub(lambda m: m["url"] or "\\" + m["char"], text)


def untrusted(text: object, limit: int = 300, *, markup: str = "text") -> str:
    """Another system's text, safe to show in a chat message rendered as ``markup``
    (``text``, ``slack`` or ``discord``: ``Target.markup``)."""
    shown = inert(text)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    shown = shown.replace("@", "@" + _ZWSP).replace("`", "'")
    return _discord(shown) if markup == "discord" else shown


@dataclass(frozen=True)
class Message:
    title: str
    body: str  # the lines after the title

    @property
    def text(self) -> str:
        """Title and body as one text (for services without a title)."""
        return f"{self.title}\n{self.body}" if self.body else self.title


def _incident(event: Event) -> str:
    if event.ref:
        return event.ref
    return f"incident {event.incident_id}" if event.incident_id else "Terry"


def _where(event: Event, markup: str) -> str:
    parts = []
    if event.host:
        parts.append(untrusted(event.host, 120, markup=markup))
    if event.environment:
        parts.append(f"({untrusted(event.environment, 40, markup=markup)})")
    return " ".join(parts)


def _headline(event: Event, markup: str) -> str:
    subject = untrusted(event.title, 120, markup=markup) if event.title else ""
    where = _where(event, markup)
    line = f"[Terry] {_incident(event)} {_WHAT[event.kind]}"
    if subject:
        line += f": {subject}"
    if where:
        line += f" on {where}"
    return line


def _next(event: Event, public_url: str, markup: str) -> list[str]:
    lines = []
    pid = event.proposal_id
    if event.kind is EventKind.NEEDS_REVIEW and pid:
        lines.append(f"Next: terry proposals approve {pid} (or: terry proposals reject {pid})")
    elif event.kind in (EventKind.FAILED, EventKind.ROLLED_BACK) and pid:
        lines.append(f"Next: terry proposals show {pid} --events")
    elif event.kind is EventKind.KEPT_FOR_HUMAN and event.ref:
        lines.append(f"Next: terry explain {event.ref}")
    if event.pr_url:
        lines.append(f"Pull request: {untrusted(event.pr_url, 300, markup=markup)}")
    if public_url and event.ref:
        lines.append(f"Web: {public_url.rstrip('/')}/incidents/{event.ref}")
    return lines


def _one(event: Event, public_url: str, markup: str) -> Message:
    lines = []
    if event.proposal_id:
        remedy = f" ({untrusted(event.remedy, 80, markup=markup)})" if event.remedy else ""
        lines.append(f"Proposal {event.proposal_id}{remedy}, incident {event.incident_id}")
    if event.decision:
        why = "; ".join(untrusted(r, 200, markup=markup) for r in event.reasons[:3])
        decision = untrusted(event.decision, 20, markup=markup)
        lines.append(f"Decision: {decision}" + (f" ({why})" if why else ""))
    if event.reason and event.kind not in (EventKind.INCIDENT_OPENED, EventKind.DRIFT_FOUND):
        lines.append(f"Why: {untrusted(event.reason, 500, markup=markup)}")
    if event.severity:
        lines.append(f"Severity: {untrusted(event.severity, 40, markup=markup)}")
    lines += _next(event, public_url, markup)
    return Message(_headline(event, markup), "\n".join(lines))


def compose(
    events: Sequence[Event], *, public_url: str = "", max_items: int = 10, markup: str = "text"
) -> Message:
    """One message about ``events`` (all of one kind, for one route), its untrusted text
    escaped for ``markup`` (``Target.markup``: what the route's service renders)."""
    if len(events) == 1:
        return _one(events[0], public_url, markup)
    kind = events[0].kind
    title = f"[Terry] {len(events)} {_PLURAL[kind]}"
    lines = []
    for event in events[:max_items]:
        line = f"- {_incident(event)}"
        if event.title:
            line += f": {untrusted(event.title, 100, markup=markup)}"
        if where := _where(event, markup):
            line += f" on {where}"
        if event.kind is EventKind.NEEDS_REVIEW and event.proposal_id:
            line += f" (terry proposals approve {event.proposal_id})"
        lines.append(line)
    if len(events) > max_items:
        lines.append(f"and {len(events) - max_items} more: terry incidents list")
    if public_url:
        lines.append(f"Web: {public_url.rstrip('/')}/")
    return Message(title, "\n".join(lines))


def for_shape(text: str, shape: str) -> str:
    """``text`` escaped for the service it goes to (Slack: ``&``, ``<``, ``>``; Discord:
    its 2000 characters)."""
    if shape == "slack":
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if shape == "discord":
        return text[:2000]
    return text
