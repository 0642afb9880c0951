"""policies/cost.rego with the shipped policies, evaluated by real regorus: a raise of the
monthly bill above settings.cost.review_above waits for a person with the amount in the
reason; savings and small raises change nothing; an unpriced change is reviewed."""

from __future__ import annotations

from typing import Any

import pytest

from terry.gate.engine import PolicySet, RegorusEngine, Verdict, load_policy_set
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

POLICIES = load_policy_set(REPO_ROOT / "policies", "abc123")
ENGINE = RegorusEngine(timeout=10)


def gate_input(cost: dict[str, Any] | None) -> dict[str, Any]:
    """A low-risk staging fix the rest of the shipped policy merges."""
    base = {
        "proposal_id": 1,
        "remedy": "disk-usage-high",
        "risk": "low",
        "environment": "staging",
        "tenants": [],
        "tenant_settings": {},
        "tenants_error": None,
        "labels": {},
        "hosts": [],
        "host_count": 1,
        "modules": ["ansible.builtin.file", "ansible.builtin.find"],
        "recurrence": 0,
        "history": {"runs": 0, "verified": 0, "rolled_back": 0, "success_rate": None},
        "check": {"ok": True, "changed": 2, "failed_hosts": [], "unreachable_hosts": []},
        "ai_authored": False,
        "source": "alert",
    }
    return base if cost is None else {**base, "cost": cost}


def cost(change: float | None, error: str | None = None) -> dict[str, Any]:
    return {"monthly_change": change, "currency": "USD", "hosts": {}, "error": error}


@pytest.mark.parametrize("given", [None, cost(0.0), cost(-78.11), cost(50.0)])
def test_savings_and_small_raises_change_nothing(given: dict[str, Any] | None) -> None:
    decision = ENGINE.decide(POLICIES, gate_input(given))
    assert decision.verdict is Verdict.MERGE, decision.reasons


def test_a_raise_above_the_setting_waits_for_a_person_with_the_amount() -> None:
    decision = ENGINE.decide(POLICIES, gate_input(cost(234.333)))
    assert decision.verdict is Verdict.REVIEW
    assert decision.reasons == (
        "raises the monthly cost by 234.33 USD (more than 50 USD, settings.cost.review_above "
        "in policies/data.json); a person approves the spend",
    )


def test_without_the_setting_any_raise_is_reviewed() -> None:
    bare = PolicySet(
        POLICIES.modules,
        tuple(
            {
                "terry": {
                    "settings": {k: v for k, v in d["terry"]["settings"].items() if k != "cost"}
                }
            }
            for d in POLICIES.data
        ),
        "abc123",
    )
    decision = ENGINE.decide(bare, gate_input(cost(0.5)))
    assert decision.verdict is Verdict.REVIEW
    assert "raises the monthly cost by 0.5 USD (more than 0 USD" in decision.reasons[0]


def test_an_unpriced_change_is_reviewed() -> None:
    decision = ENGINE.decide(POLICIES, gate_input(cost(None, "no price for instance type z9")))
    assert decision.verdict is Verdict.REVIEW
    assert decision.reasons == (
        "the cost of this change is unknown (no price for instance type z9); a person decides",
    )
