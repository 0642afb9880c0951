"""policies/slo.rego with the shipped policies, evaluated by real regorus: a low budget
freezes changes that are not fixes, an exhausted one lets only fixes through, an unknown one
asks a person."""

from __future__ import annotations

from typing import Any

import pytest

from terry.gate.engine import RegorusEngine, Verdict, load_policy_set
from terry.slo.budget import percent_text
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

POLICIES = load_policy_set(REPO_ROOT / "policies", "abc123")
ENGINE = RegorusEngine(timeout=10)


def budget(state: str, left: float | None, burning: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "state": state,
        "budget_remaining_percent": left,
        "budget_remaining_text": None if left is None else f"{percent_text(left)}%",
        "burn_rates": {"1h": 20.0, "5m": 20.0, "6h": 3.0, "30m": 3.0},
        "burning": list(burning),
        "slos": ["requests-availability"],
        "error": "Prometheus could not be reached (ConnectionError)" if left is None else None,
    }


def gate_input(source: str, services: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    """A low-risk staging proposal the rest of the shipped policy merges."""
    return {
        "proposal_id": 1,
        "remedy": "disk-usage-high",
        "risk": "low",
        "environment": "staging",
        "tenants": [],
        "tenant_settings": {},
        "tenants_error": None,
        "labels": {"service": "checkout"},
        "hosts": [],
        "host_count": 1,
        "modules": ["ansible.builtin.file", "ansible.builtin.find"],
        "recurrence": 0,
        "history": {"runs": 0, "verified": 0, "rolled_back": 0, "success_rate": None},
        "check": {"ok": True, "changed": 2, "failed_hosts": [], "unreachable_hosts": []},
        "ai_authored": False,
        "source": source,
        "slo": {"services": services, "error": error},
    }


def decide(source: str, services: dict[str, Any], error: str | None = None) -> Any:
    return ENGINE.decide(POLICIES, gate_input(source, services, error))


@pytest.mark.parametrize("source", ["alert", "drift", "forecast"])
def test_a_healthy_budget_changes_nothing(source: str) -> None:
    decision = decide(source, {"checkout": budget("ok", 60.0)})
    assert decision.verdict is Verdict.MERGE, decision.reasons
    assert decide(source, {}).verdict is Verdict.MERGE


@pytest.mark.parametrize(
    ("source", "words"),
    [("drift", "drift reconciliation"), ("forecast", "preventive change")],
)
def test_a_low_budget_freezes_changes_that_are_not_fixes(source: str, words: str) -> None:
    decision = decide(source, {"checkout": budget("low", 7.46)})
    assert decision.verdict is Verdict.REVIEW
    assert decision.reasons == (
        "service checkout has 7.4% of its error budget left (under 10%): changes that are not "
        f"fixes are frozen, and this {words} needs a person",
    )


def test_a_low_budget_lets_a_fix_through() -> None:
    decision = decide("alert", {"checkout": budget("low", 7.46, ("1h/5m",))})
    assert decision.verdict is Verdict.MERGE, decision.reasons


def test_an_exhausted_budget_allows_only_fixes() -> None:
    spent = {"checkout": budget("exhausted", -20.0, ("1h/5m",))}
    assert decide("alert", spent).verdict is Verdict.MERGE
    denied = decide("drift", spent)
    assert denied.verdict is Verdict.DENY
    assert denied.reasons == (
        "service checkout has spent its error budget: only fixes that restore it go ahead, so "
        "this drift reconciliation waits until the budget recovers (slos/, policies/slo.rego)",
    )
    edit = decide("inventory", spent)
    assert edit.verdict is Verdict.DENY and "this inventory edit waits" in edit.reasons[0]


@pytest.mark.parametrize("source", ["alert", "drift"])
def test_an_unknown_budget_is_not_healthy(source: str) -> None:
    decision = decide(source, {"checkout": budget("unknown", None)})
    assert decision.verdict is Verdict.REVIEW
    assert decision.reasons == (
        "the error budget of service checkout is unknown (Prometheus could not be reached "
        "(ConnectionError)); unknown is not healthy, a person decides",
    )


def test_specs_main_cannot_read_fail_closed() -> None:
    decision = decide("alert", {}, "slos/x.yml: slos[0].objective: Input should be less than 100")
    assert decision.verdict is Verdict.REVIEW
    assert decision.reasons[0].startswith("the SLO specs on main cannot be read (slos/x.yml")


def test_the_state_terry_judged_decides_at_the_lines_and_the_text_never_crosses_them() -> None:
    """9.9996% left is low (under 10): frozen, and said as 9.9%, not "10% (under 10%)";
    0.0004% left is low, not spent: a drift fix waits for a person, it is not denied."""
    near_ten = decide("drift", {"checkout": budget("low", 9.9996)})
    assert near_ten.verdict is Verdict.REVIEW
    assert near_ten.reasons[0].startswith("service checkout has 9.9% of its error budget left")
    near_zero = decide("drift", {"checkout": budget("low", 0.0004)})
    assert near_zero.verdict is Verdict.REVIEW
    assert near_zero.reasons[0].startswith("service checkout has 0.0004% of its error budget")
    assert decide("drift", {"checkout": budget("ok", 10.0)}).verdict is Verdict.MERGE


def test_the_low_line_comes_with_the_input_and_a_figure_alone_is_judged_by_it() -> None:
    given = gate_input("drift", {"checkout": {"budget_remaining_percent": 14.0}})
    assert ENGINE.decide(POLICIES, given).verdict is Verdict.MERGE
    given["slo"]["low_percent"] = 15
    decision = ENGINE.decide(POLICIES, given)
    assert decision.verdict is Verdict.REVIEW
    assert decision.reasons[0].startswith("service checkout has 14% of its error budget left")
    assert "(under 15%)" in decision.reasons[0]


def test_an_input_without_a_source_is_not_taken_for_a_fix() -> None:
    given = gate_input("alert", {"checkout": budget("exhausted", -1.0)})
    del given["source"]
    decision = ENGINE.decide(POLICIES, given)
    assert decision.verdict is Verdict.DENY
    assert "this change of unknown source waits" in decision.reasons[0]


def test_an_input_without_slo_keys_is_judged_as_before() -> None:
    given = gate_input("alert", {})
    del given["slo"], given["source"]
    assert ENGINE.decide(POLICIES, given).verdict is Verdict.MERGE
