"""Alertmanager webhook payloads (version 4), parsed once at the edge into frozen alerts.

Everything in a payload is untrusted: it is validated here and afterwards travels only as data.
``parse_payload`` is total: it returns a ``Payload`` or raises ``InputError`` with the reason,
and what it returns fits the store on SQLite and PostgreSQL alike (every string valid Unicode
without NUL, every number and timestamp in range, the alertname and fingerprint within their
columns). The webhook stores the very text it parsed, and folding parses it again with this
function, so a body the webhook acknowledged always folds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from terry.errors import InputError

__all__ = [
    "MAX_ALERTNAME",
    "MAX_DEPTH",
    "MAX_FINGERPRINT",
    "MAX_INTEGER",
    "Alert",
    "AlertStatus",
    "Payload",
    "decode_body",
    "load_json",
    "parse_payload",
]

# Limits that keep every accepted alert storable (tests/unit/test_webhook_bodies.py holds
# them to the columns of terry.store.models).
MAX_ALERTNAME = 200  # alerts.alertname and incidents.title are String(200)
MAX_FINGERPRINT = 128  # alerts.fingerprint and incidents.fingerprint are String(128)
MAX_INTEGER = 2**31 - 1  # INTEGER columns are 32-bit on PostgreSQL
# No limit of its own on other label names and values, or on annotations: Alertmanager sets
# none, they are stored as JSON, and a 4xx would make Alertmanager drop the whole group for
# good (it retries 5xx only). The body's size (server.max_body_bytes) bounds them all.
MAX_DEPTH = 64  # Alertmanager's payload nests 4 deep, GitHub's about 8
_MAX_DIGITS = 20  # an integer longer than this is no count, id or time Terry knows
_MAX_NUMBER_TEXT = 64
# Timestamps Terry accepts: Unix time up to 2200 (arithmetic on them stays far from
# datetime's year 1..9999). Alertmanager's zero time (year 1) means "no end yet".
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_BOM = "\ufeff"
_GZIP = b"\x1f\x8b"  # gzip's magic number; never the start of UTF-8 text
_SURROGATE = re.compile("[\ud800-\udfff]")


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    """One alert as received: nothing here has been trusted or interpreted."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Payload:
    group_key: str
    status: AlertStatus
    receiver: str
    truncated_alerts: int
    alerts: tuple[Alert, ...]


def _storable(value: str) -> str:
    """A string the store can hold: no NUL (PostgreSQL's text refuses it) and no lone
    surrogate (not Unicode; UTF-8 cannot encode it). Refused, never altered."""
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which the store cannot hold")
    if (lone := _SURROGATE.search(value)) is not None:
        raise ValueError(f"contains a lone surrogate (\\u{ord(lone.group()):04x}): not Unicode")
    return value


_Text = Annotated[str, AfterValidator(_storable)]


class _AlertIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[_Text, _Text]
    annotations: dict[_Text, _Text] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: _Text = ""
    fingerprint: _Text = Field(min_length=1, max_length=MAX_FINGERPRINT)

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        name = labels.get("alertname")
        if not name:
            raise ValueError("labels.alertname is required")
        if len(name) > MAX_ALERTNAME:
            raise ValueError(f"labels.alertname is longer than {MAX_ALERTNAME} characters")
        return labels

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _in_range(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp needs a timezone (RFC 3339)")
        if info.field_name == "endsAt" and value.year == 1:
            return None  # Alertmanager's zero time: no end yet
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not _EARLIEST <= utc < _LATEST:
            raise ValueError(f"timestamp outside {_EARLIEST:%Y-%m-%d} .. {_LATEST:%Y-%m-%d} (UTC)")
        return utc


class _PayloadIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: _Text
    status: Literal["firing", "resolved"]
    receiver: _Text = ""
    truncatedAlerts: int = Field(default=0, ge=0, le=MAX_INTEGER)
    alerts: list[_AlertIn] = Field(min_length=1)


def _shown(part: object, limit: int = 40) -> str:
    """Untrusted text fit for a one-line message: cut short and quoted by ``repr``, which
    escapes control characters and lone surrogates (the message stays encodable)."""
    text = str(part)
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,39}|\[key\]", part) else _shown(part)
        out += f".{name}" if out else name
    return out or "payload"


def decode_body(raw: bytes) -> str:
    """The text of a webhook body: strict UTF-8, one leading byte order mark dropped. A
    compressed body is refused by name (Alertmanager and GitHub send plain JSON)."""
    if raw.startswith(_GZIP):
        raise InputError("payload is gzip-compressed: send it uncompressed (plain JSON)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    return text.removeprefix(_BOM)


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise InputError(f"payload: an integer has more than {_MAX_DIGITS} digits")
    return int(text)


def _number(text: str) -> float:
    if len(text) > _MAX_NUMBER_TEXT:
        raise InputError(f"payload: a number is longer than {_MAX_NUMBER_TEXT} characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise InputError("payload: a number is out of range")
    return value


def _constant(name: str) -> Any:
    raise InputError(f"payload: {name} is not JSON")


def _depth_within(document: Any, limit: int) -> bool:
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def load_json(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """JSON from an untrusted body, bounded: at most ``max_depth`` levels of arrays and
    objects, integers of at most 20 digits, finite numbers, no NaN or Infinity. Raises
    InputError with the reason (never RecursionError or ValueError)."""
    try:
        document = json.loads(
            text, parse_int=_integer, parse_float=_number, parse_constant=_constant
        )
    except RecursionError as exc:
        raise InputError(f"payload: nested deeper than {max_depth} levels") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"payload is not JSON: {exc}") from exc
    if not _depth_within(document, max_depth):
        raise InputError(f"payload: nested deeper than {max_depth} levels")
    return document


def parse_payload(raw: bytes | str) -> Payload:
    """Parse and validate a webhook body. Raises InputError naming the first bad field."""
    text = decode_body(raw) if isinstance(raw, bytes) else raw.removeprefix(_BOM)
    document = load_json(text)
    if not isinstance(document, dict):
        raise InputError("payload: expected a JSON object")
    try:
        parsed = _PayloadIn.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(tuple(first["loc"]))
        if where == "version" and "version" in document:
            given = document["version"]
            shown = (
                _shown(given)
                if isinstance(given, str)
                else f"{json.dumps(given)[:40]}, not a string"
            )
            raise InputError(
                f"version: unsupported webhook version {shown} (expected the string '4')"
            ) from exc
        raise InputError(f"{where}: {first['msg']}") from exc
    alerts = tuple(
        Alert(
            fingerprint=a.fingerprint,
            status=AlertStatus(a.status),
            labels=dict(a.labels),
            annotations=dict(a.annotations),
            starts_at=a.startsAt,
            ends_at=a.endsAt,
            generator_url=a.generatorURL,
        )
        for a in parsed.alerts
    )
    return Payload(
        group_key=parsed.groupKey,
        status=AlertStatus(parsed.status),
        receiver=parsed.receiver,
        truncated_alerts=parsed.truncatedAlerts,
        alerts=alerts,
    )
