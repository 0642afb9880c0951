"""Webhook bodies as Alertmanager really writes them (notify/webhook/webhook.go: a
``Message`` of ``template.Data`` plus version "4", groupKey and truncatedAlerts, encoded by
Go's ``json.Encoder``), and the reasons Terry gives for what it cannot take."""

from __future__ import annotations

import json

import pytest

from terry.errors import InputError
from terry.sources.alertmanager import AlertStatus, parse_payload
from tests.conftest import alert, payload

pytestmark = pytest.mark.unit

# What Alertmanager (v0.28+) posts for a group mixing a firing and a resolved alert: Go's
# encoder escapes <, > and & and ends the body with a newline; a firing alert's endsAt is
# the zero time (alert.Alerts zeroes it); times are RFC 3339 with nanoseconds.
GO_BODY = (
    b'{"receiver":"terry","status":"firing","alerts":[{"status":"firing","labels":'
    b'{"alertname":"DiskUsageHigh","host":"web-01","k8s.io/app":"\\u003cshop\\u003e"},'
    b'"annotations":{"summary":"disk \\u0026 more","empty":""},'
    b'"startsAt":"2026-11-24T10:00:00.123456789+01:00","endsAt":"0001-01-01T00:00:00Z",'
    b'"generatorURL":"http://prometheus:9090/graph?g0.expr=up\\u0026g0.tab=1",'
    b'"fingerprint":"8d5a2f0e3c4b1a79"},{"status":"resolved","labels":{"alertname":"Down"},'
    b'"annotations":{},"startsAt":"2026-11-24T08:00:00Z","endsAt":"2026-11-24T09:00:00Z",'
    b'"generatorURL":"","fingerprint":"0000000000000001"}],"notification_reason":"",'
    b'"groupLabels":{"host":"web-01"},"commonLabels":{},"commonAnnotations":{},'
    b'"routeLabels":{},"externalURL":"http://alertmanager:9093","version":"4",'
    b'"groupKey":"{}/{severity=\\"page\\"}:{host=\\"web-01\\"}","truncatedAlerts":3}\n'
)


def test_what_alertmanager_sends_parses_as_sent() -> None:
    parsed = parse_payload(GO_BODY)
    assert parsed.group_key == '{}/{severity="page"}:{host="web-01"}'
    assert parsed.truncated_alerts == 3 and parsed.status is AlertStatus.FIRING
    firing, resolved = parsed.alerts
    assert firing.labels["k8s.io/app"] == "<shop>" and firing.annotations["empty"] == ""
    assert firing.ends_at is None  # the zero time: no end yet
    assert firing.starts_at.isoformat() == "2026-11-24T09:00:00.123456+00:00"
    assert firing.generator_url.endswith("up&g0.tab=1")
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.ends_at is not None and resolved.ends_at.hour == 9


def test_labels_of_any_length_are_kept_whole() -> None:
    """Alertmanager limits no label; a 400 would make it drop the whole group for good."""
    long = {"alertname": "X", "v": "日" * 50_000, "n" * 5_000: "", "odd name/é.": "x"}
    sent = alert("X", fingerprint="f")
    sent["labels"] = long
    [found] = parse_payload(payload([sent])).alerts
    assert found.labels == long


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        (4, "unsupported webhook version 4, not a string (expected the string '4')"),
        (None, "unsupported webhook version null, not a string"),
        ("3", "unsupported webhook version '3' (expected the string '4')"),
    ],
)
def test_a_wrong_version_says_what_was_sent(version: object, reason: str) -> None:
    document = json.loads(payload([alert("X", fingerprint="f")]))
    document["version"] = version
    with pytest.raises(InputError) as caught:
        parse_payload(json.dumps(document))
    assert reason in str(caught.value)


def test_a_gzip_body_is_refused_by_name() -> None:
    import gzip

    with pytest.raises(InputError, match="gzip-compressed: send it uncompressed"):
        parse_payload(gzip.compress(payload([alert("X", fingerprint="f")]).encode()))
