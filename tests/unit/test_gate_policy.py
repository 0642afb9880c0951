"""The shipped gate policy, evaluated by real regorus, and the fail-closed rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from terry.gate.engine import PolicySet, RegorusEngine, Verdict, load_policy_set
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

POLICIES = load_policy_set(REPO_ROOT / "policies", "abc123")
ENGINE = RegorusEngine(timeout=10)


def gate_input(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "proposal_id": 1,
        "remedy": "disk-usage-high",
        "risk": "low",
        "environment": "staging",
        "tenants": ["blue"],
        "labels": {},
        "hosts": [],
        "host_count": 1,
        "modules": ["ansible.builtin.file", "ansible.builtin.find"],
        "recurrence": 0,
        "history": {"runs": 0, "verified": 0, "rolled_back": 0, "success_rate": None},
        "check": {"ok": True, "changed": 2, "failed_hosts": [], "unreachable_hosts": []},
        "ai_authored": False,
    }
    base.update(over)
    return base


def record(runs: int, verified: int, last: str | None) -> dict[str, Any]:
    """A history whose record in the proposal's environment is the same as overall."""
    one = {
        "runs": runs,
        "verified": verified,
        "rolled_back": runs - verified,
        "success_rate": verified / runs if runs else None,
        "last_outcome": last,
        "mean_seconds_to_fix": 40.0 if verified else None,
    }
    return {**one, "in_environment": one}


PROVEN = record(10, 10, "verified")
SHAKY = record(10, 6, "rolled_back")
JUST_FAILED = record(10, 9, "failed")  # 90%: the rate holds, but the last one failed

# The shipped policy with disk-usage-high listed to merge in production and staging, as a
# merged `terry policy learn` proposal leaves policies/data.json.
LISTED = PolicySet(
    POLICIES.modules,
    tuple(
        {
            "terry": {
                "settings": {
                    **d["terry"]["settings"],
                    "auto_merge": {"disk-usage-high": ["production", "staging"]},
                }
            }
        }
        for d in POLICIES.data
    ),
    "abc123",
)


@pytest.mark.parametrize(
    ("over", "verdict", "reason"),
    [
        ({}, Verdict.MERGE, "low risk outside production"),
        ({"environment": "production"}, Verdict.REVIEW, "production host"),
        (
            {"environment": "production", "history": PROVEN},
            Verdict.REVIEW,
            "not listed to merge in production",
        ),
        ({"host_count": 6}, Verdict.REVIEW, "touches 6 hosts"),
        ({"risk": "high", "history": PROVEN}, Verdict.REVIEW, "risk is high"),
        ({"risk": "medium"}, Verdict.REVIEW, "risk is medium"),
        ({"risk": "medium", "history": PROVEN}, Verdict.REVIEW, "not listed to merge"),
        ({"ai_authored": True}, Verdict.REVIEW, "AI-authored"),
        ({"recurrence": 5}, Verdict.REVIEW, "came back 5 times"),
        ({"modules": ["ansible.builtin.shell"]}, Verdict.DENY, "ansible.builtin.shell"),
        (
            {"remedy": "inventory-edit", "risk": "medium", "history": PROVEN},
            Verdict.REVIEW,
            "an inventory edit changes the desired state",
        ),
        (
            {
                "check": {
                    "ok": False,
                    "changed": 0,
                    "failed_hosts": ["web-01"],
                    "unreachable_hosts": [],
                }
            },
            Verdict.DENY,
            "dry run failed on web-01",
        ),
    ],
)
def test_default_policy(over: dict[str, Any], verdict: Verdict, reason: str) -> None:
    decision = ENGINE.decide(POLICIES, gate_input(**over))
    assert decision.verdict is verdict, decision.reasons
    assert any(reason in r for r in decision.reasons), decision.reasons
    assert decision.policy_commit == "abc123"


@pytest.mark.parametrize(
    ("over", "verdict", "reason"),
    [
        ({"environment": "production", "history": PROVEN}, Verdict.MERGE, "10 of 10 verified"),
        ({"risk": "medium", "history": PROVEN}, Verdict.MERGE, "may merge in staging"),
        ({"environment": "production", "history": SHAKY}, Verdict.REVIEW, "no longer holds"),
        (
            {"environment": "production", "history": JUST_FAILED},
            Verdict.REVIEW,
            "the last one failed",
        ),
        (
            {"environment": "production", "history": record(3, 3, "verified")},
            Verdict.REVIEW,
            "needs 5 runs at 90%",
        ),
        (
            {"environment": "development", "risk": "medium", "history": PROVEN},
            Verdict.REVIEW,
            "not listed to merge in development",
        ),
        (
            {"remedy": "service-down", "environment": "production", "history": PROVEN},
            Verdict.REVIEW,
            "service-down is not listed",
        ),
        ({"risk": "high", "history": PROVEN}, Verdict.REVIEW, "risk is high"),
        (
            {"environment": "production", "history": PROVEN, "recurrence": 5},
            Verdict.REVIEW,
            "came back",
        ),
        (
            # overall record good, but none in this environment: the listing needs both
            {
                "environment": "production",
                "history": {**PROVEN, "in_environment": record(0, 0, None)},
            },
            Verdict.REVIEW,
            "no runs yet in production",
        ),
    ],
)
def test_learned_auto_merge_needs_the_listing_and_a_record_that_holds(
    over: dict[str, Any], verdict: Verdict, reason: str
) -> None:
    decision = ENGINE.decide(LISTED, gate_input(**over))
    assert decision.verdict is verdict, decision.reasons
    assert any(reason in r for r in decision.reasons), decision.reasons


def test_an_input_without_the_environment_record_is_not_proven() -> None:
    """A caller (an OPA setup, an older Terry) that sends only the overall history: the
    listing alone never merges."""
    old = {"runs": 10, "verified": 10, "rolled_back": 0, "success_rate": 1.0}
    decision = ENGINE.decide(LISTED, gate_input(environment="production", history=old))
    assert decision.verdict is Verdict.REVIEW, decision.reasons
    assert any("no runs yet in production" in r for r in decision.reasons)


def _policies(text: str) -> PolicySet:
    return PolicySet({"gate.rego": text}, POLICIES.data, "def456")


@pytest.mark.parametrize(
    ("rego", "why"),
    [
        (
            "package terry.gate\nimport rego.v1\ndecision := 1 / 0\n",
            "policy evaluation failed",
        ),
        ("package terry.gate\nthis is not rego", "policy evaluation failed"),
        ("package terry.other\nimport rego.v1\nx := 1\n", "undefined"),
        (
            'package terry.gate\nimport rego.v1\ndecision := "merge"\n',
            "merge without a reason",
        ),
        (
            'package terry.gate\nimport rego.v1\ndecision := "yolo"\nreasons := ["x"]\n',
            "unknown decision",
        ),
    ],
)
def test_a_broken_policy_fails_closed_to_review(rego: str, why: str) -> None:
    decision = ENGINE.decide(_policies(rego), gate_input())
    assert decision.verdict is Verdict.REVIEW
    assert any(why in r for r in decision.reasons), decision.reasons
    assert all("failing closed to review" in r for r in decision.reasons)
    assert decision.policy_commit == "def456"


def test_a_policy_that_runs_too_long_is_killed_and_fails_closed() -> None:
    slow = (
        "package terry.gate\nimport rego.v1\n"
        'decision := "merge" if { count([x | some x in numbers.range(1, 50000000)]) > 0 }\n'
        'reasons := ["slow"]\n'
    )
    decision = RegorusEngine(timeout=0.5).decide(_policies(slow), gate_input())
    assert decision.verdict is Verdict.REVIEW
    assert "timed out after 0.5s" in decision.reasons[0]


def test_no_policy_files_means_review(tmp_path: Path) -> None:
    decision = ENGINE.decide(load_policy_set(tmp_path, None), gate_input())
    assert decision.verdict is Verdict.REVIEW
    assert "no .rego files" in decision.reasons[0]
