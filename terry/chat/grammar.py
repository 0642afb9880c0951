"""What people type after ``/terry``: the command grammar, as typed frozen dataclasses.

```
status HOST
incidents [last-week|24h|7d|today|2026-01-16] [--severity=S] [--environment=E] [--state=open]
explain INCIDENT                 (a number or INC-2026-01-16-001)
approve ID        reject ID REASON...
rollback HOST --to=1h-ago        (30m-ago, 2d-ago, or an ISO time)
prevent disk-full
help
```

``parse`` checks every argument before anything runs: hosts against the inventory's names,
ids as whole numbers, incident references with ``terry.incidents.refs``, times and filters
by their shapes. A near miss (``aprove``, ``lab-2``) is an ``InputError`` that says what was
meant ("did you mean approve?"), found with ``difflib``. Each command prints back as the
one canonical line that parses to it again (``Command.text``): what a confirmation button
names and the audit trail keeps.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from terry.durations import parse_duration
from terry.errors import InputError
from terry.incidents.refs import format_ref, parse_ref

__all__ = [
    "COMMANDS",
    "KINDS",
    "NAME",
    "Approve",
    "Command",
    "Explain",
    "Help",
    "Incidents",
    "ParseError",
    "Prevent",
    "Reject",
    "Retry",
    "Rollback",
    "Status",
    "near",
    "parse",
    "parse_since",
    "parse_to",
]

NAME = "terry"  # who people address: a first word, never a near miss of a command
MAX_ID = 2**31 - 1
MAX_REASON = 300
KINDS = ("disk-full",)  # what `prevent` can prevent
STATES = ("open", "resolved")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SEVERITY = re.compile(r"[a-z][a-z0-9_-]{0,19}")
_AGO = re.compile(r"(\d{1,6}[smhdw])-ago")
_NAMED_SINCE = {"last-week": 7 * 86400.0, "last-day": 86400.0, "last-month": 30 * 86400.0}


class ParseError(InputError):
    """The text is not a command; the message says why and, for a near miss, what was meant."""


@dataclass(frozen=True)
class Status:
    host: str
    writes = False

    def text(self) -> str:
        return f"status {self.host}"


@dataclass(frozen=True)
class Incidents:
    since: datetime | None = None
    severity: str | None = None
    environment: str | None = None
    state: str | None = None
    writes = False

    def text(self) -> str:
        parts = ["incidents"]
        if self.since is not None:
            parts.append(_iso(self.since))
        for name in ("severity", "environment", "state"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"--{name}={value}")
        return " ".join(parts)


@dataclass(frozen=True)
class Explain:
    incident: str  # digits or a canonical INC reference
    writes = False

    def text(self) -> str:
        return f"explain {self.incident}"


@dataclass(frozen=True)
class Approve:
    proposal_id: int
    writes = True

    def text(self) -> str:
        return f"approve {self.proposal_id}"


@dataclass(frozen=True)
class Reject:
    proposal_id: int
    reason: str
    writes = True

    def text(self) -> str:
        return f"reject {self.proposal_id} {self.reason}"


@dataclass(frozen=True)
class Rollback:
    host: str
    to: datetime  # proposals applied on the host since then are rolled back
    writes = True

    def text(self) -> str:
        return f"rollback {self.host} --to={_iso(self.to)}"


@dataclass(frozen=True)
class Retry:
    incident: str  # digits or a canonical INC reference
    reason: str
    writes = True

    def text(self) -> str:
        return f"retry {self.incident} {self.reason}"


@dataclass(frozen=True)
class Prevent:
    kind: str
    writes = True

    def text(self) -> str:
        return f"prevent {self.kind}"


@dataclass(frozen=True)
class Help:
    writes = False

    def text(self) -> str:
        return "help"


Command = Status | Incidents | Explain | Approve | Reject | Rollback | Retry | Prevent | Help
COMMANDS = (
    "status",
    "incidents",
    "explain",
    "approve",
    "reject",
    "rollback",
    "retry",
    "prevent",
    "help",
)
USAGE = {
    "status": "status HOST",
    "incidents": "incidents [last-week|24h|2026-01-16] [--severity=S] [--environment=E] "
    "[--state=open|resolved]",
    "explain": "explain INCIDENT (a number or INC-2026-01-16-001)",
    "approve": "approve PROPOSAL_ID",
    "reject": "reject PROPOSAL_ID REASON",
    "rollback": "rollback HOST --to=1h-ago (or 30m-ago, or an ISO time)",
    "retry": "retry INCIDENT REASON (diagnose and propose again after its fix ended unfixed)",
    "prevent": f"prevent {'|'.join(KINDS)}",
    "help": "help",
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(text: str, limit: int = 40) -> str:
    one = " ".join(text.split())
    return repr(one if len(one) <= limit else one[: limit - 1] + "…")


def near(word: str, choices: Collection[str]) -> str:
    """`` (did you mean X?)`` for a near miss among ``choices``, else empty."""
    found = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {found[0]}?)" if found else ""


def _host(word: str, hosts: Collection[str] | None) -> str:
    if not _WORD.fullmatch(word):
        raise ParseError(f"{_shown(word)} is not a host name")
    if hosts is not None and word not in hosts:
        raise ParseError(f"host {word} is not in the inventory{near(word, hosts)}")
    return word


def _id(word: str, what: str = "proposal") -> int:
    text = word.lstrip("#")
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not 1 <= int(text) <= MAX_ID:
        raise ParseError(f"{what} id {_shown(word)} must be a whole number")
    return int(text)


def _incident(word: str) -> str:
    text = word.lstrip("#")
    if text.isascii() and text.isdigit():
        return str(_id(text, "incident"))
    parsed = parse_ref(text)
    if parsed is None:
        raise ParseError(
            f"incident {_shown(word)} must be a number or a reference like INC-2026-01-16-001"
        )
    return format_ref(*parsed)


def _moment(text: str) -> datetime | None:
    """An ISO date or time (UTC unless it says otherwise), or None."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_since(text: str, now: datetime) -> datetime:
    """``last-week``, ``24h``, ``7d``, ``today``, a date or an ISO time: a moment before now."""
    if text in _NAMED_SINCE:
        return now - timedelta(seconds=_NAMED_SINCE[text])
    if text == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    moment = _moment(text)
    if moment is None:
        try:
            moment = now - timedelta(seconds=parse_duration(text))
        except (ValueError, TypeError):
            raise ParseError(
                f"{_shown(text)} is not a time: say last-week, 24h, 7d, today or 2026-01-16"
                + near(text, [*_NAMED_SINCE, "today"])
            ) from None
    if moment > now:
        raise ParseError(f"{_shown(text)} is in the future")
    return moment


def parse_to(text: str, now: datetime) -> datetime:
    """``1h-ago``, ``30m-ago``, ``2d-ago`` or an ISO time: a moment before now."""
    match = _AGO.fullmatch(text)
    moment = now - timedelta(seconds=parse_duration(match[1])) if match else _moment(text)
    if moment is None:
        raise ParseError(f"--to={_shown(text)} is not a time: say 1h-ago, 30m-ago or an ISO time")
    if moment > now:
        raise ParseError(f"--to={_shown(text)} is in the future")
    return moment


def _options(words: list[str], names: Collection[str]) -> tuple[list[str], dict[str, str]]:
    """Positional words and ``--name=value`` (or ``--name value``) options."""
    positional: list[str] = []
    options: dict[str, str] = {}
    at = 0
    while at < len(words):
        word = words[at]
        at += 1
        if not word.startswith("--"):
            positional.append(word)
            continue
        name, has_value, value = word[2:].partition("=")
        name = {"env": "environment"}.get(name, name)
        if name not in names:
            raise ParseError(
                f"unknown option --{_shown(name, 20)[1:-1]}"
                + near(name, names).replace("mean ", "mean --")
            )
        if not has_value:
            if at >= len(words):
                raise ParseError(f"--{name} needs a value")
            value, at = words[at], at + 1
        if name in options:
            raise ParseError(f"--{name} is given twice")
        options[name] = value
    return positional, options


def _count(verb: str, args: list[str], low: int, high: int) -> None:
    if not low <= len(args) <= high:
        raise ParseError(f"usage: {USAGE[verb]}")


def _reason(verb: str, args: list[str]) -> str:
    """The words after a write's first argument: why (kept in the audit trail)."""
    if len(args) < 2:
        raise ParseError(f"usage: {USAGE[verb]} (the reason is kept in the audit trail)")
    reason = " ".join(args[1:])
    if len(reason) > MAX_REASON:
        raise ParseError(f"the reason is longer than {MAX_REASON} characters")
    return reason


def parse(
    text: str, *, hosts: Collection[str] | None = None, now: datetime | None = None
) -> Command:
    """The command ``text`` says, every argument checked; ParseError otherwise. ``hosts``:
    the inventory's host names (None: not checked)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    words = text.split()
    if not words:
        raise ParseError("say a command: " + ", ".join(COMMANDS))
    verb, args = words[0].lower().lstrip("/"), words[1:]
    if verb not in COMMANDS:
        hint = "" if verb.strip(",.!?:") == NAME else near(verb, COMMANDS)
        raise ParseError(
            f"unknown command {_shown(verb, 24)}{hint}; commands: {', '.join(COMMANDS)}"
        )
    if verb == "status":
        _count(verb, args, 1, 1)
        return Status(_host(args[0], hosts))
    if verb == "incidents":
        positional, options = _options(args, ("severity", "environment", "state", "since"))
        if len(positional) > 1 or (positional and "since" in options):
            raise ParseError(f"usage: {USAGE[verb]}")
        since_text = positional[0] if positional else options.get("since")
        severity, environment, state = (
            options.get(k) for k in ("severity", "environment", "state")
        )
        if severity is not None and not _SEVERITY.fullmatch(severity):
            raise ParseError(
                f"--severity={_shown(severity)} is not a severity (critical, warning...)"
            )
        if environment is not None and not _WORD.fullmatch(environment):
            raise ParseError(f"--environment={_shown(environment)} is not an environment name")
        if state is not None and state not in STATES:
            raise ParseError(f"--state must be open or resolved{near(state, STATES)}")
        since = parse_since(since_text, now) if since_text is not None else None
        return Incidents(since, severity, environment, state)
    if verb == "explain":
        _count(verb, args, 1, 1)
        return Explain(_incident(args[0]))
    if verb == "approve":
        _count(verb, args, 1, 1)
        return Approve(_id(args[0]))
    if verb == "reject":
        reason = _reason(verb, args)  # first: it checks there are words at all
        return Reject(_id(args[0]), reason)
    if verb == "retry":
        reason = _reason(verb, args)
        return Retry(_incident(args[0]), reason)
    if verb == "rollback":
        positional, options = _options(args, ("to",))
        if len(positional) != 1 or "to" not in options:
            raise ParseError(f"usage: {USAGE[verb]}")
        return Rollback(_host(positional[0], hosts), parse_to(options["to"], now))
    if verb == "prevent":
        _count(verb, args, 1, 1)
        kind = args[0].lower()
        if kind not in KINDS:
            raise ParseError(f"Terry can prevent {', '.join(KINDS)}{near(kind, KINDS)}")
        return Prevent(kind)
    _count(verb, args, 0, 0)
    return Help()
