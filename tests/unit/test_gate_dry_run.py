"""The shipped gate on a failed dry run (issue 13, item 14): it always denies, and its
reasons say where it failed — a host it could not reach is unreachable, a connection to
check, never "fix the remedy"."""

from __future__ import annotations

from typing import Any

import pytest

from terry.gate.engine import RegorusEngine, Verdict, load_policy_set
from tests.conftest import REPO_ROOT
from tests.unit.test_gate_policy import gate_input

pytestmark = pytest.mark.unit

POLICIES = load_policy_set(REPO_ROOT / "policies", "abc123")
ENGINE = RegorusEngine(timeout=10)


def _denied(check: dict[str, Any]) -> tuple[str, ...]:
    decision = ENGINE.decide(POLICIES, gate_input(check=check))
    assert decision.verdict is Verdict.DENY, decision
    return decision.reasons


def test_a_host_the_dry_run_could_not_reach_is_named_unreachable() -> None:
    [reason] = _denied(
        {"ok": False, "changed": 0, "failed_hosts": [], "unreachable_hosts": ["web-09"]}
    )
    assert reason.startswith("the dry run could not reach web-09; check that it is up")
    assert "remedy" not in reason


def test_failed_and_unreachable_hosts_are_told_apart() -> None:
    reasons = _denied(
        {"ok": False, "changed": 0, "failed_hosts": ["web-01"], "unreachable_hosts": ["web-09"]}
    )
    assert sorted(reasons) == [
        "the check-mode dry run failed on web-01; fix the remedy before applying",
        "the dry run could not reach web-09; check that it is up and that its connection (SSH) "
        "works",
    ]


@pytest.mark.parametrize(
    "check",
    [
        {"ok": False, "changed": 0, "failed_hosts": [], "unreachable_hosts": []},  # a timeout
        {"ok": False, "changed": 0, "failed_hosts": None, "unreachable_hosts": None},
        {"ok": False, "changed": 0},  # an applier that says no more
    ],
)
def test_a_failed_dry_run_that_names_no_host_is_denied_all_the_same(check: dict[str, Any]) -> None:
    assert _denied(check) == (
        "the check-mode dry run did not complete (no host failed: a timeout or an error of "
        "Ansible itself)",
    )
