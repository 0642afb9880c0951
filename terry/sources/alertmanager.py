"""Alertmanager webhook payloads (version 4), parsed once at the edge into frozen alerts.

Everything in a payload is untrusted: it is validated here and afterwards travels only as data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from terry.errors import InputError

__all__ = ["Alert", "AlertStatus", "Payload", "parse_payload"]

# Alertmanager sends this for "no end yet".
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_MAX_LABEL = 4096


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


class _AlertIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=128)

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname"):
            raise ValueError("labels.alertname is required")
        for key, value in labels.items():
            if len(key) > 256 or len(value) > _MAX_LABEL:
                raise ValueError(f"label {key[:40]!r} is longer than allowed")
        return labels

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp needs a timezone (RFC 3339)")
        return value.astimezone(UTC)


class _PayloadIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str
    status: Literal["firing", "resolved"]
    receiver: str = ""
    truncatedAlerts: int = Field(default=0, ge=0)
    alerts: list[_AlertIn] = Field(min_length=1)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "payload"


def parse_payload(raw: bytes | str) -> Payload:
    """Parse and validate a webhook body. Raises InputError naming the first bad field."""
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"payload is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InputError("payload: expected a JSON object")
    try:
        parsed = _PayloadIn.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(tuple(first["loc"]))
        if where == "version" and "version" in document:
            raise InputError(
                f"version: unsupported webhook version {document['version']!r} (expected '4')"
            ) from exc
        raise InputError(f"{where}: {first['msg']}") from exc
    alerts = tuple(
        Alert(
            fingerprint=a.fingerprint,
            status=AlertStatus(a.status),
            labels=dict(a.labels),
            annotations=dict(a.annotations),
            starts_at=a.startsAt,
            ends_at=None if a.endsAt is None or a.endsAt <= _ZERO_TIME else a.endsAt,
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
