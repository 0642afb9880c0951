"""The EBS variant of the disk remedy (roles/disk_grow_aws) prices what it grows: the shipped
catalogue's ``monthly_cost`` and the figures its dry run reports (``terry_estimate``:
volume_gib, new_volume_gib), at the shipped example price list, judged by the shipped
policies in real regorus: a growth that raises the bill above settings.cost.review_above
waits for a person with the amount in the reason; a fix that only cleans costs nothing; a
host the dry run said nothing about is unknown, not free."""

from __future__ import annotations

from typing import Any

import pytest

from terry.cost.change import gate_view
from terry.gate.engine import RegorusEngine, Verdict, load_policy_set
from terry.inventory.hosts import Host
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

POLICIES = load_policy_set(REPO_ROOT / "policies", "abc123")
ENGINE = RegorusEngine(timeout=10)
PRICES = "examples/costs/prices.yml"  # gp3 0.088, io2 0.138 USD per GB-month


def aws_host(name: str, **variables: Any) -> Host:
    return Host(name, None, "staging", None, {}, variables=variables)


def cost_of(
    hosts: list[Host], estimates: list[dict[str, Any]], prices_path: str = PRICES
) -> dict[str, Any]:
    return gate_view(
        REPO_ROOT,
        remedy="disk-usage-high-aws",
        params={"path": "/srv/data", "threshold": 90},
        before={h.name: h for h in hosts},
        after=hosts,
        prices_path=prices_path,
        estimates=estimates,
    )


def grown(host: str, before: int, after: int) -> dict[str, Any]:
    """An estimate as roles/disk_grow_aws reports it (terry.remedies.estimate's shape)."""
    return {
        "host": host,
        "enough": True,
        "summary": f"grow volume vol-1 from {before} to {after} GiB",
        "volume_gib": before,
        "new_volume_gib": after,
        "would_free_bytes": 0,
    }


def judged(cost: dict[str, Any]) -> tuple[Verdict, tuple[str, ...]]:
    """The shipped policies on a low-risk staging fix with this cost (only cost can object)."""
    decision = ENGINE.decide(
        POLICIES,
        {
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
            "cost": cost,
        },
    )
    return decision.verdict, decision.reasons


def test_growing_a_volume_past_the_setting_waits_for_a_person_with_the_amount() -> None:
    web, db = aws_host("web-aws-01"), aws_host("db-aws-01", terry_volume_type="io2")
    cost = cost_of([web, db], [grown("web-aws-01", 100, 700), grown("db-aws-01", 50, 60)])
    # 600 GiB of gp3 (the declared default) and 10 GiB of the host's own io2
    assert cost["error"] is None and cost["currency"] == "USD"
    assert cost["monthly_change"] == pytest.approx(600 * 0.088 + 10 * 0.138, abs=0.01)
    verdict, reasons = judged(cost)
    assert verdict is Verdict.REVIEW
    assert reasons == (
        "raises the monthly cost by 54.18 USD (more than 50 USD, settings.cost.review_above "
        "in policies/data.json); a person approves the spend",
    )


def test_a_small_growth_or_a_clean_only_fix_leaves_the_decision_to_the_rest() -> None:
    web = aws_host("web-aws-01")
    small = cost_of([web], [grown("web-aws-01", 8, 9)])
    assert small["monthly_change"] == pytest.approx(0.09)
    assert judged(small)[0] is Verdict.MERGE
    cleaned = cost_of([web], [{"host": "web-aws-01", "enough": True, "summary": "clean"}])
    assert cleaned["monthly_change"] == 0.0 and judged(cleaned)[0] is Verdict.MERGE
    # a fix that only cleans needs no price list; a growth without one is unknown
    unpriced = {"prices_path": "costs/none.yml"}
    clean = [{"host": "web-aws-01", "enough": True, "summary": "clean"}]
    assert cost_of([web], clean, **unpriced)["monthly_change"] == 0.0
    grow = cost_of([web], [grown("web-aws-01", 8, 9)], **unpriced)
    assert grow["monthly_change"] is None and "no price list" in grow["error"]


def test_a_host_the_dry_run_said_nothing_about_is_reviewed_as_unknown() -> None:
    cost = cost_of([aws_host("web-aws-01")], [])
    assert cost["monthly_change"] is None
    assert "no estimate for web-aws-01" in cost["error"]
    verdict, reasons = judged(cost)
    assert verdict is Verdict.REVIEW
    assert reasons[0].startswith("the cost of this change is unknown (monthly_cost per GB")
