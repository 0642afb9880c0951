"""Hostile and borderline Alertmanager webhook bodies, each with what must become of it.

Shared by ``tests/unit/test_webhook_bodies.py`` (parse, store and fold on SQLite and
PostgreSQL) and ``tests/integration/test_server.py`` (the same bodies posted to a real
``terry serve``). The rule they check: a body is either refused with 400 and a reason before
anything is stored, or acknowledged and then folded into alerts. Never a 500, never lost.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from typing import Any

from tests.conftest import alert


@dataclass(frozen=True)
class Body:
    name: str
    raw: bytes
    # None: acknowledged and folded; else a piece of the 400's reason.
    refused: str | None = None
    # Acknowledged: the fingerprints that must be in the alerts table afterwards, and how many
    # alert rows they make (a payload may repeat an alert).
    fingerprints: tuple[str, ...] = ()
    rows: int | None = None


def _document(*alerts: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="X"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "terry",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        **top,
    }


def _one(fingerprint: str, **change: Any) -> dict[str, Any]:
    labels = change.pop("labels", None)
    found = alert("HostileBody", fingerprint=fingerprint, host="web-01")
    if labels is not None:
        found["labels"] = labels
    found.update(change)
    return found


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()  # ASCII: escapes stay escapes, as a sender writes


def _accepted(name: str, document: dict[str, Any], rows: int | None = None) -> Body:
    fingerprints = tuple(sorted({a["fingerprint"] for a in document["alerts"]}))
    return Body(name, _json(document), None, fingerprints, rows)


def _refused(name: str, raw: bytes | dict[str, Any], reason: str) -> Body:
    return Body(name, raw if isinstance(raw, bytes) else _json(raw), reason)


def _list(depth: int) -> list[Any]:
    nested: list[Any] = []
    for _ in range(depth - 1):
        nested = [nested]
    return nested


def _nested(depth: int) -> bytes:
    good = _json(_document(_one("nested-deep")))
    return good[:-1] + b', "extra": ' + b"[" * depth + b"]" * depth + b"}"


def bodies(tag: str = "") -> list[Body]:
    """The table; ``tag`` makes the fingerprints unique per run (one store, many tables)."""

    def fp(name: str) -> str:
        return f"{tag}{name}"

    bom = b"\xef\xbb\xbf" + _json(_document(_one(fp("bom"))))
    utf8 = json.dumps(
        _document(_one(fp("utf8"), labels={"alertname": "Plein", "host": "web-01", "é": "日本"})),
        ensure_ascii=False,
    ).encode("utf-8")
    same_instant = _document(
        _one(fp("tz"), startsAt="2026-11-24T10:00:00Z"),
        _one(fp("tz"), startsAt="2026-11-24T11:00:00+01:00"),  # the same instant
        _one(fp("tz"), startsAt="2026-11-24T23:59:00+13:59"),  # and again
    )
    name_200 = {"alertname": "A" * 200, "host": "web-01"}
    return [
        _accepted("plain", _document(_one(fp("plain")))),
        Body("bom", bom, None, (fp("bom"),)),
        Body("utf8", utf8, None, (fp("utf8"),)),
        _accepted(
            "paired surrogates", _document(_one(fp("emoji"), annotations={"s": "\U0001f525"}))
        ),
        _accepted("offsets, one instant", same_instant, rows=1),
        _accepted(
            "nanoseconds", _document(_one(fp("ns"), startsAt="2026-11-24T10:00:00.123456789Z"))
        ),
        _accepted("alertname of 200", _document(_one(fp("name200"), labels=name_200))),
        _accepted("fingerprint of 128", _document(_one(fp("f").ljust(128, "f")))),
        _accepted(
            "truncatedAlerts at the limit", _document(_one(fp("t-max")), truncatedAlerts=2**31 - 1)
        ),
        _accepted("nested 40 deep", _document(_one(fp("nested")), extra=_list(40))),
        _accepted(  # Alertmanager sets no limit on labels: refusing would drop the group
            "long label names and values",
            _document(
                _one(
                    fp("long-labels"),
                    labels={"alertname": "X", "v": "é" * 100_000, "n" * 1000: "", "": "empty"},
                )
            ),
        ),
        _refused(
            "lone surrogate in a value",
            _document(_one(fp("s1"), labels={"alertname": "X", "v": "\ud800"})),
            "lone surrogate",
        ),
        _refused(
            "lone surrogate in the alertname",
            _document(_one(fp("s2"), labels={"alertname": "X\udc00"})),
            "lone surrogate",
        ),
        _refused(
            "lone surrogate in a label name",
            _document(_one(fp("s3"), labels={"alertname": "X", "\udfff": "v"})),
            "lone surrogate",
        ),
        _refused(
            "NUL in an annotation",
            _document(_one(fp("n1"), annotations={"summary": "a\u0000b"})),
            "NUL",
        ),
        _refused("NUL in the fingerprint", _document(_one(fp("n2") + "\u0000")), "NUL"),
        _refused("not UTF-8", b'{"version": "4", "groupKey": "\xff"}', "not UTF-8"),
        _refused("gzip", gzip.compress(_json(_document(_one(fp("gz"))))), "gzip"),
        _refused(
            "UTF-8 of a surrogate", b'{"version": "4", "groupKey": "\xed\xa0\x80"}', "not UTF-8"
        ),
        _refused(
            "truncatedAlerts 1e30",
            _json(_document(_one(fp("t1")))).replace(
                b'"truncatedAlerts": 0', b'"truncatedAlerts": 1e30'
            ),
            "truncatedAlerts",
        ),
        _refused(
            "truncatedAlerts over INTEGER",
            _document(_one(fp("t2")), truncatedAlerts=2**31),
            "truncatedAlerts",
        ),
        _refused(
            "alertname of 201",
            _document(_one(fp("name201"), labels={"alertname": "A" * 201})),
            "longer than 200",
        ),
        _refused("fingerprint of 129", _document(_one(fp("g").ljust(129, "g"))), "fingerprint"),
        _refused("nested 10,000 deep", _nested(10_000), "nested deeper"),
        _refused(
            "a 900,000-digit integer",
            _json(_document(_one(fp("big")))).replace(
                b'"truncatedAlerts": 0', b'"truncatedAlerts": ' + b"9" * 900_000
            ),
            "digits",
        ),
        _refused(
            "1e999",
            _json(_document(_one(fp("inf")))).replace(
                b'"truncatedAlerts": 0', b'"truncatedAlerts": 1e999'
            ),
            "out of range",
        ),
        _refused(
            "NaN",
            _json(_document(_one(fp("nan")))).replace(
                b'"truncatedAlerts": 0', b'"truncatedAlerts": NaN'
            ),
            "NaN",
        ),
        _refused(
            "year 1 with an offset",
            _document(_one(fp("y1"), startsAt="0001-01-01T00:30:00+01:00")),
            "startsAt",
        ),
        _refused(
            "year 9999 with an offset",
            _document(_one(fp("y9"), startsAt="9999-12-31T23:30:00-01:00")),
            "startsAt",
        ),
        _refused(
            "endsAt in year 9999",
            _document(_one(fp("e9"), endsAt="9999-12-31T23:59:59Z")),
            "endsAt",
        ),
        _refused(
            "before 1970", _document(_one(fp("old"), startsAt="1969-12-31T23:59:59Z")), "startsAt"
        ),
        _refused(
            "no timezone", _document(_one(fp("naive"), startsAt="2026-11-24T10:00:00")), "timezone"
        ),
    ]
