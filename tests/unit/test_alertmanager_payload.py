"""Alertmanager webhook payloads: what is accepted and the exact error for what is not."""

from __future__ import annotations

import json

import pytest

from terry.errors import InputError
from terry.sources.alertmanager import AlertStatus, parse_payload
from tests.conftest import alert, payload

pytestmark = pytest.mark.unit


def test_a_version_4_payload_parses_into_alerts() -> None:
    parsed = parse_payload(payload([alert("DiskUsageHigh", fingerprint="f1", host="web-01")]))
    assert parsed.alerts[0].alertname == "DiskUsageHigh"
    assert parsed.alerts[0].status is AlertStatus.FIRING
    assert parsed.alerts[0].ends_at is None  # Alertmanager's 0001-01-01 means "no end yet"
    assert parsed.alerts[0].labels["host"] == "web-01"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("version"), "version: Field required"),
        (lambda d: d.update(version="3"), "version: unsupported webhook version '3'"),
        (lambda d: d.pop("groupKey"), "groupKey: Field required"),
        (lambda d: d["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint: Field required"),
        (lambda d: d["alerts"][0].pop("startsAt"), "alerts[0].startsAt: Field required"),
        (lambda d: d["alerts"][0]["labels"].pop("alertname"), "labels.alertname is required"),
        (lambda d: d["alerts"][0].update(status="burning"), "alerts[0].status"),
        (lambda d: d.update(alerts=[]), "alerts: List should have at least 1 item"),
    ],
)
def test_a_bad_payload_names_the_field(mutate, message: str) -> None:
    document = json.loads(payload([alert("X", fingerprint="f")]))
    mutate(document)
    with pytest.raises(InputError) as caught:
        parse_payload(json.dumps(document))
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("raw", [b"", b"{not json", b"\xff\xfe", b"[]", b"null"])
def test_not_json_or_not_an_object_is_refused(raw: bytes) -> None:
    with pytest.raises(InputError, match="payload"):
        parse_payload(raw)
