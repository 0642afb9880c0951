"""A remedy's own estimate of what its fix achieves: read from the dry run's runner events
(``terry.remedies.estimate``), and judged by the shipped gate (real regorus): a fix that by
its own estimate falls short goes to review with the estimate as the reason, never merges."""

from __future__ import annotations

from typing import Any

import pytest

from terry.appliers.base import RunnerEvent
from terry.gate.engine import RegorusEngine, Verdict, load_policy_set
from terry.remedies.estimate import estimates
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

POLICIES = load_policy_set(REPO_ROOT / "policies", "abc123")
ENGINE = RegorusEngine(timeout=10)

SHORT = (
    "would free 0.2 MiB (1 file(s) to remove: 0.2 MiB, 0 log(s) to compress: 0.0 MiB); "
    "27.4 MiB must go to get /srv/data on web-02 under 80% (now 95.2%)"
)


def runner_event(counter: int, host: str, res: dict[str, Any], event: str = "runner_on_ok"):
    """One event as ansible-runner hands it to Terry (awx_display's shape)."""
    return RunnerEvent.from_runner(
        {
            "counter": counter,
            "event": event,
            "event_data": {
                "host": host,
                "task": "disk_cleanup : Report the estimate",
                "resolved_action": "ansible.builtin.set_fact",
                "res": res,
            },
        }
    )


def fact(value: Any) -> dict[str, Any]:
    return {"ansible_facts": {"terry_estimate": value}, "changed": False}


def test_each_hosts_estimate_is_read_from_the_run() -> None:
    events = [
        runner_event(1, "web-02", fact({"enough": True, "summary": "first", "needed_bytes": 1})),
        runner_event(2, "web-01", {"ansible_facts": {"other": 1}, "changed": False}),
        runner_event(3, "web-01", fact({"enough": False, "summary": SHORT, "needed_bytes": 9})),
        runner_event(4, "web-02", fact({"enough": True, "summary": "again", "needed_bytes": 2})),
        # a failed task's result is no estimate
        runner_event(5, "web-03", fact({"enough": True, "summary": "x"}), "runner_on_failed"),
    ]
    assert estimates(events) == [
        {"host": "web-01", "enough": False, "summary": SHORT, "needed_bytes": 9},
        {"host": "web-02", "enough": True, "summary": "again", "needed_bytes": 2},
    ]
    assert estimates([events[1]]) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # only a real true is enough
        ({"enough": "True", "summary": "s"}, {"enough": False, "summary": "s"}),
        ({"enough": 1, "summary": "s"}, {"enough": False, "summary": "s"}),
        (
            "not a mapping",
            {"enough": False, "summary": "the remedy reported an estimate Terry cannot read"},
        ),
        # text is one bounded line; figures are finite numbers under plain names
        (
            {
                "enough": True,
                "summary": "a\nb\x1b[31m" + "x" * 1000,
                "host": "elsewhere",
                "would_free_bytes": 5,
                "ratio": float("nan"),
                "Bad Name": 1,
                "flag": True,
                "text": "7",
            },
            {"enough": True, "summary": "a b [31m" + "x" * 392, "would_free_bytes": 5},
        ),
    ],
)
def test_an_estimate_is_data_read_strictly(value: Any, expected: dict[str, Any]) -> None:
    assert estimates([runner_event(1, "web-01", fact(value))]) == [{"host": "web-01", **expected}]


def gate_input(check: dict[str, Any], **over: Any) -> dict[str, Any]:
    return {
        "proposal_id": 1,
        "remedy": "disk-usage-high",
        "risk": "low",
        "environment": "staging",
        "tenants": [],
        "labels": {},
        "hosts": [],
        "host_count": 2,
        "modules": ["ansible.builtin.file", "ansible.builtin.find"],
        "recurrence": 0,
        "history": {"runs": 0, "verified": 0, "rolled_back": 0, "success_rate": None},
        "check": {"ok": True, "changed": 3, "failed_hosts": [], "unreachable_hosts": [], **check},
        "ai_authored": False,
        **over,
    }


ENOUGH = {"host": "web-01", "enough": True, "summary": "would free 25.1 MiB ..."}
SHORT_ON_02 = {"host": "web-02", "enough": False, "summary": SHORT}


@pytest.mark.parametrize(
    ("check", "verdict", "reason"),
    [
        ({"estimates": [ENOUGH]}, Verdict.MERGE, "low risk outside production"),
        ({"estimates": []}, Verdict.MERGE, "low risk outside production"),
        # proposals checked before Terry kept estimates, and appliers that make none
        ({"estimates": None}, Verdict.MERGE, "low risk outside production"),
        ({}, Verdict.MERGE, "low risk outside production"),
        (
            {"estimates": [ENOUGH, SHORT_ON_02]},
            Verdict.REVIEW,
            f"the dry run estimates the fix falls short on web-02: {SHORT}",
        ),
        (
            {"estimates": [{"host": "web-02", "summary": "no verdict"}]},
            Verdict.REVIEW,
            "falls short on web-02: no verdict",
        ),
        # a dry run that failed is still denied
        (
            {"ok": False, "failed_hosts": ["web-02"], "estimates": [SHORT_ON_02]},
            Verdict.DENY,
            "dry run failed on web-02",
        ),
    ],
)
def test_the_gate_sends_a_fix_that_falls_short_to_review(
    check: dict[str, Any], verdict: Verdict, reason: str
) -> None:
    decision = ENGINE.decide(POLICIES, gate_input(check))
    assert decision.verdict is verdict, decision.reasons
    assert any(reason in r for r in decision.reasons), decision.reasons


def test_a_proven_remedy_that_falls_short_still_goes_to_review() -> None:
    proven = {"runs": 10, "verified": 10, "rolled_back": 0, "success_rate": 1.0}
    proven |= {"last_outcome": "verified", "mean_seconds_to_fix": 30.0}
    listed = load_policy_set(REPO_ROOT / "policies", "abc123")
    data = [
        {
            "terry": {
                "settings": {
                    **d["terry"]["settings"],
                    "auto_merge": {"disk-usage-high": ["production"]},
                }
            }
        }
        for d in listed.data
    ]
    policies = type(listed)(listed.modules, tuple(data), "abc123")
    over = {"environment": "production", "history": {**proven, "in_environment": proven}}
    assert ENGINE.decide(policies, gate_input({}, **over)).verdict is Verdict.MERGE
    decision = ENGINE.decide(policies, gate_input({"estimates": [SHORT_ON_02]}, **over))
    assert decision.verdict is Verdict.REVIEW
    assert decision.reasons == (f"the dry run estimates the fix falls short on web-02: {SHORT}",)
