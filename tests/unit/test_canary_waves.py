"""The rollout plan (terry.proposals.waves), confidence (terry.proposals.confidence) and
policies/canary.rego with the shipped policies, evaluated by real regorus."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from terry.config import load_config
from terry.errors import ConfigError
from terry.gate.engine import PolicySet, Verdict
from terry.inventory.hosts import most_sensitive
from terry.proposals.confidence import describe, revised, score
from terry.proposals.waves import judged_waves, one_wave, plan_waves
from tests.unit.test_gate_policy import ENGINE, LISTED, POLICIES, PROVEN, gate_input, record

pytestmark = pytest.mark.unit


def _plan(hosts: dict[str, str], **over: Any) -> list[list[str]]:
    options = {"min_hosts": 3, "percent": 10.0, **over}
    return [list(w.hosts) for w in plan_waves(list(hosts.items()), **options)]


def test_a_few_hosts_go_in_one_wave() -> None:
    assert _plan({"a": "staging", "c": "staging", "b": None}) == [["a", "b", "c"]]
    assert _plan({"p-1": "production", "p-2": "production"}) == [["p-1", "p-2"]]


def test_a_few_hosts_never_change_production_with_the_others() -> None:
    # at most min_hosts hosts, but production among staging: staging is its canary
    waves = plan_waves(
        [("a", "staging"), ("b", "production"), ("c", None)], min_hosts=3, percent=10
    )
    assert [(w.hosts, w.canary) for w in waves] == [(("a", "c"), True), (("b",), False)]
    assert [w.environments for w in waves] == [("staging", "unknown"), ("production",)]
    recorded = [("a", "staging", 0), ("c", None, 0), ("b", "production", 1)]
    assert judged_waves(recorded) == waves  # the apply follows the plan the gate judged
    # a proposal applied in one run (checks that judge the whole) stays one wave
    [whole] = one_wave([("b", "production"), ("a", "staging")])
    assert (whole.hosts, whole.canary, whole.environments) == (
        ("a", "b"),
        False,
        ("production", "staging"),
    )
    assert one_wave([]) == ()


def test_the_canary_is_ten_percent_at_least_one_and_never_production_first() -> None:
    hosts = {f"s-{n:02d}": "staging" for n in range(1, 20)} | {"p-00": "production"}
    waves = _plan(hosts)
    assert waves[0] == ["s-01", "s-02"]  # 10% of 20, staging although p-00 sorts first
    assert waves[-1] == ["p-00"]
    assert _plan(
        {"p-1": "production", "p-2": "production", "s-9": "staging", "p-3": "production"}
    ) == [
        ["s-9"],
        ["p-1", "p-2", "p-3"],
    ]


@pytest.mark.parametrize(
    ("hosts", "percent", "canary"),
    [(375, 8.8, 33), (250, 64.4, 161), (20, 10.0, 2), (10, 10, 1), (21, 10, 3), (7, 0.1, 1)],
)
def test_the_canary_is_the_percent_as_written_rounded_up(
    hosts: int, percent: float, canary: int
) -> None:
    # 375 x 8.8 / 100 is exactly 33; the float 8.8 is a little above it, and must not make
    # the canary one host larger than the operator asked for
    waves = plan_waves(
        [(f"s-{n:04d}", "staging") for n in range(hosts)], min_hosts=3, percent=percent
    )
    assert len(waves[0].hosts) == canary


def test_the_apply_reads_back_the_waves_the_gate_judged() -> None:
    envs = {"s-1": "staging", "s-2": "staging", "s-3": None, "p-1": "production"}
    planned = plan_waves(list(envs.items()), min_hosts=3, percent=10)
    recorded = [(h, envs[h], w.index) for w in planned for h in w.hosts]
    again = judged_waves(recorded)
    assert again == planned
    assert judged_waves([("a", "staging", 0), ("b", "staging", None)]) is None  # not recorded
    [one] = judged_waves([("a", "staging", 0), ("b", "production", 0)]) or ()
    assert (one.hosts, one.canary, one.environments) == (
        ("a", "b"),
        False,
        ("production", "staging"),
    )


def test_a_production_only_fleet_starts_with_one_production_host() -> None:
    waves = plan_waves([(f"p-{n}", "production") for n in range(5)], min_hosts=3, percent=10)
    assert [w.hosts for w in waves] == [("p-0",), ("p-1", "p-2", "p-3", "p-4")]
    assert waves[0].canary and waves[0].environments == ("production",)


def test_confidence_weighs_record_dry_run_source_and_canary() -> None:
    proven = score(runs=10, success_rate=1.0, check={"ok": True}, ai_authored=False)
    assert proven.value == 100
    new = score(runs=0, success_rate=None, check={"ok": True}, ai_authored=False)
    assert new.value == 70
    short = score(
        runs=0,
        success_rate=None,
        check={"ok": True, "estimates": [{"enough": False}]},
        ai_authored=False,
    )
    assert short.value == 50
    ai = score(runs=0, success_rate=None, check={"ok": True}, ai_authored=True, ai_confidence=60)
    assert ai.value == 54  # record 15, dry run 30, diagnosis 9


def test_a_failed_dry_run_caps_confidence_whatever_the_record() -> None:
    """A fix that failed in check mode is not 70% sure because its remedy did well before:
    the dry run's part takes the score down to 20 at most, and says how much it took."""
    proven = score(runs=10, success_rate=1.0, check={"ok": False}, ai_authored=False)
    assert proven.value == 20
    assert proven.parts == {"record": 45, "dry_run": -50, "diagnosis": 25}
    assert describe(proven.value, proven.parts) == "20/100 (record 45, dry run -50, diagnosis 25)"
    low = score(runs=0, success_rate=None, check={"ok": False}, ai_authored=True, ai_confidence=20)
    assert low.value == 18 and low.parts["dry_run"] == 0  # already under the cap: nothing off
    assert revised(proven.parts, "passed").value <= 30  # a canary cannot lift it back up
    not_run = score(runs=10, success_rate=1.0, check=None, ai_authored=False)
    assert not_run.value == 70 and not_run.parts["dry_run"] == 0  # not run yet: no verdict
    assert (
        score(
            runs=10, success_rate=1.0, check={"ok": True}, ai_authored=False, canary="failed"
        ).value
        == 20
    )


def test_a_first_run_moves_the_record_from_untried_the_way_it_went() -> None:
    """A remedy never run scores 15 for its record; one verified run must not score less
    (it used to: 9), one failed run must not score more; five runs count in full."""

    def part(runs: int, rate: float | None) -> int:
        return score(runs=runs, success_rate=rate, check=None, ai_authored=False).parts["record"]

    assert part(0, None) == 15
    assert part(1, 1.0) == 21 and part(1, 0.0) == 12
    ones = [part(n, 1.0) for n in range(1, 7)]
    assert ones == sorted(ones) and ones[-2:] == [45, 45]  # up with every success, then full
    assert part(5, 0.0) == 0 and part(5, 0.5) == 22


def test_a_canary_revises_the_stored_parts_by_one_rule() -> None:
    """What the gate stored, revised after the canary: the same figures ``score`` gives with
    the outcome known, parts that add up, and words that say them."""
    cases = (
        (10, 1.0, {"ok": True}),
        (0, None, {"ok": True}),
        (3, 0.5, {}),
        (9, 1.0, {"ok": False}),
    )
    for runs, rate, check in cases:
        gated = score(runs=runs, success_rate=rate, check=check, ai_authored=False)
        assert sum(gated.parts.values()) == gated.value
        for canary in ("passed", "failed"):
            later = revised(gated.parts, canary)
            assert later == score(
                runs=runs, success_rate=rate, check=check, ai_authored=False, canary=canary
            )
            assert sum(later.parts.values()) == later.value
            assert revised(later.parts, canary) == later  # revising twice is revising once
    said = describe(80, {"record": 30, "dry_run": 30, "diagnosis": 25, "canary": -65})
    assert said == "80/100 (record 30, dry run 30, diagnosis 25, canary -65)"
    assert describe(80, {"record": 45, "dry_run": 30, "diagnosis": 25, "canary": 10}).endswith(
        "canary +10)"
    )
    assert describe(70, None) == "70/100"


def _wave(index: int, hosts: list[str], environments: list[str], canary: bool) -> dict[str, Any]:
    return {
        "index": index,
        "size": len(hosts),
        "hosts": hosts,
        "environments": environments,
        "canary": canary,
    }


def test_policy_asks_a_person_when_the_canary_puts_several_production_hosts_first() -> None:
    waves = [
        _wave(0, ["p-0", "p-1"], ["production"], True),
        _wave(1, [f"p-{n}" for n in range(2, 20)], ["production"], False),
    ]
    decision = ENGINE.decide(
        POLICIES, gate_input(environment="production", waves=waves, host_count=20)
    )
    assert decision.verdict is Verdict.REVIEW
    assert any("the canary would change 2 production hosts first" in r for r in decision.reasons)


def test_policy_names_a_confident_canaried_rollout_among_its_reasons_to_merge() -> None:
    waves = [
        _wave(0, ["s-0"], ["staging"], True),
        _wave(1, ["s-1", "s-2", "s-3"], ["staging"], False),
    ]
    history = record(10, 10, "verified")
    decision = ENGINE.decide(
        POLICIES, gate_input(waves=waves, confidence=95, history=history, host_count=4)
    )
    assert decision.verdict is Verdict.MERGE
    assert any("straight to its canary" in r for r in decision.reasons)
    unsure = ENGINE.decide(POLICIES, gate_input(waves=waves, confidence=60, host_count=4))
    assert not any("straight to its canary" in r for r in unsure.reasons)


def test_the_pull_request_shows_confidence_and_the_rollout_plan() -> None:
    from datetime import UTC, datetime

    from terry.forges.body import ReviewPacket, pr_body

    packet = ReviewPacket(
        proposal_id=3,
        incident_id=9,
        incident_ref="INC-1",
        remedy="disk-usage-high",
        hosts=("s-01", "s-02", "p-01"),
        environments=("production", "staging"),
        tenants=(),
        risk="low",
        decision="review",
        reasons=("production",),
        policy_commit="abc",
        commit="c0ffee",
        branch="terry/9",
        alertname="DiskUsageHigh",
        labels={},
        annotations={},
        opened_at=datetime(2026, 12, 4, tzinfo=UTC),
        recurrence=0,
        diagnosis="",
        playbook_path=None,
        playbook=None,
        check_summary={"ok": True},
        check_diff=None,
        score=70,
        waves=(("s-01",), ("s-02",), ("p-01",)),
    )
    body = pr_body(packet)
    assert "| confidence | 70/100 |" in body
    assert (
        "wave 0 (canary: verified before the next): `s-01`; wave 1: `s-02`; wave 2: `p-01`" in body
    )

    # a storm over 2,000 hosts: the body stays under GitHub's 65,536 characters, the hosts
    # row and each wave say how many more they hold
    many = tuple(f"web-{n:05d}.eu-west-1.compute.internal" for n in range(2000))
    storm = replace(packet, hosts=many, waves=(many[:200], many[200:1800], many[1800:]))
    big = pr_body(storm)
    assert len(big) <= 65_000, len(big)
    [hosts_row] = [line for line in big.splitlines() if line.startswith("| hosts |")]
    assert "`web-00000.eu-west-1.compute.internal`" in hosts_row
    shown = hosts_row.count("`") // 2
    assert hosts_row.endswith(f" … and {2000 - shown} more |"), hosts_row[-80:]
    [rollout] = [line for line in big.splitlines() if line.startswith("| rollout |")]
    assert rollout.count(" more") == 3 and len(rollout) < 5000


def test_a_proposal_over_several_environments_counts_as_the_most_sensitive() -> None:
    assert most_sensitive(["development", "production"]) == "production"
    assert most_sensitive(["test", None, "staging"]) == "staging"
    assert most_sensitive(["qa", "lab"]) == "lab"
    assert most_sensitive([None]) == "unknown" and most_sensitive([]) == "unknown"


def _fleet(staging: int, production: int = 0) -> list[dict[str, Any]]:
    """The plan Terry draws for such a fleet (canary.min_hosts 3, 10%)."""
    hosts = [(f"s-{n:02d}", "staging") for n in range(staging)]
    hosts += [(f"p-{n:02d}", "production") for n in range(production)]
    return [w.as_input() for w in plan_waves(hosts, min_hosts=3, percent=10)]


def _with(**settings: Any) -> PolicySet:
    """The shipped policy with ``settings`` added to policies/data.json's."""
    data = tuple(
        {"terry": {"settings": {**d["terry"]["settings"], **settings}}} for d in POLICIES.data
    )
    return PolicySet(POLICIES.modules, data, "abc123")


def _confident(plan: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    """The gate's input for a rollout of ``plan`` by a proven remedy, confidence 95."""
    size = sum(w["size"] for w in plan)
    options = {"waves": plan, "host_count": size, "confidence": 95, "history": PROVEN, **over}
    return gate_input(**options)


def test_a_confident_rollout_over_many_staging_hosts_goes_straight_to_its_canary() -> None:
    """Confidence above 80 and more than 90% verified: twelve hosts (more than
    max_auto_hosts, 5) merge, and the apply starts with a watched canary of two."""
    waves = _fleet(12)
    assert waves[0]["canary"] and waves[0]["size"] == 2
    decision = ENGINE.decide(POLICIES, _confident(waves))
    assert decision.verdict is Verdict.MERGE, decision.reasons
    assert any(
        "touches 12 hosts (more than 5), behind a canary of 2" in r for r in decision.reasons
    )
    # anything short of it: the host count asks a person, as before
    for over in (
        {"confidence": 80},  # not above 80
        {"history": record(10, 9, "verified")},  # 90%: not above
        {"history": record(0, 0, None)},  # no record at all
        {"waves": [{**waves[0], "canary": False}, *waves[1:]]},  # no canary goes first
    ):
        shown = ENGINE.decide(POLICIES, _confident(waves, **over))
        assert shown.verdict is Verdict.REVIEW, over
        assert "touches 12 hosts (more than 5)" in shown.reasons, over


def test_straight_to_a_canary_overrides_no_other_review_rule() -> None:
    waves = _fleet(12)
    ai = ENGINE.decide(POLICIES, _confident(waves, ai_authored=True))
    assert ai.verdict is Verdict.REVIEW and "AI-authored fix" in ai.reasons
    # a canary larger than max_auto_hosts is not a canary policy lets go alone
    big = ENGINE.decide(POLICIES, _confident(_fleet(60)))
    assert big.verdict is Verdict.REVIEW and "touches 60 hosts (more than 5)" in big.reasons


def test_production_stays_a_persons_call_unless_policy_data_says_otherwise() -> None:
    waves = _fleet(10, production=2)  # a staging canary, staging, then production
    shipped = ENGINE.decide(LISTED, _confident(waves, environment="production"))
    assert shipped.verdict is Verdict.REVIEW
    assert "touches 12 hosts (more than 5)" in shipped.reasons
    # a team that lets confident rollouts reach production behind a canary says so in data
    # (and the remedy must still be proven there: auto_merge and its record)
    opened = _with(
        canary_straight_environments=["staging", "production"],
        auto_merge={"disk-usage-high": ["production", "staging"]},
    )
    proven = ENGINE.decide(opened, _confident(waves, environment="production"))
    assert proven.verdict is Verdict.MERGE, proven.reasons
    unproven = _with(canary_straight_environments=["staging", "production"])
    shown = ENGINE.decide(unproven, _confident(waves, environment="production"))
    assert shown.verdict is Verdict.REVIEW
    assert any(r.startswith("production host and") for r in shown.reasons), shown.reasons


def test_a_repository_without_canary_rego_still_decides_on_host_count() -> None:
    """gate.rego asks `not straight_to_canary`; a repository that dropped canary.rego keeps
    a gate that compiles and sends many hosts to a person."""
    modules = {k: v for k, v in POLICIES.modules.items() if not k.endswith("canary.rego")}
    assert len(modules) == len(POLICIES.modules) - 1
    decision = ENGINE.decide(PolicySet(modules, POLICIES.data, "abc123"), _confident(_fleet(12)))
    assert decision.verdict is Verdict.REVIEW
    assert "touches 12 hosts (more than 5)" in decision.reasons


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("storm: {window: .inf}", r"storm\.window: Input should be a finite number"),
        ("storm: {window: 1e15}", r"storm\.window: .*must be at most 1e\+09"),
        ("canary: {watch: .inf}", r"canary\.watch: Input should be a finite number"),
        ("canary: {tolerance: .nan}", r"canary\.tolerance: Input should be a finite number"),
        ("canary: {min_hosts: true}", r"canary\.min_hosts: .*not true or false"),
        ("storm: {gather: 5, gather_max: 2}", r"gather_max \(2\) is less than storm\.gather"),
        ("awx: {timeout: .inf}", r"awx\.timeout: Input should be a finite number"),
        ("canary: {queries: ['up{instance=\"{host}\"}']}", r"canary\.queries need prometheus\.url"),
    ],
)
def test_numbers_no_timer_can_hold_are_config_errors(
    tmp_path: Path, text: str, message: str
) -> None:
    # before, storm.window .inf loaded and every alert then ended in an OverflowError, and
    # canary.watch .inf in one after the canary had changed its hosts
    (tmp_path / "terry.yml").write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, environ={})


def test_canary_queries_with_prometheus_from_the_environment_are_read(tmp_path: Path) -> None:
    (tmp_path / "terry.yml").write_text("canary: {queries: ['up{instance=\"{host}\"}']}\n")
    config = load_config(tmp_path, environ={"TERRY_PROMETHEUS_URL": "http://127.0.0.1:9090"})
    assert config.canary.queries == ['up{instance="{host}"}']


# -- the canary's watch (terry.steps.canary) -------------------------------------------------

Q = 'rate(errors_total{instance="{host}"}[1m])'
MISSING = 'rate(typo_total{instance="{host}"}[1m])'


def _watch(tmp_path: Path, store: Any) -> Any:
    from terry.app import build_context
    from terry.gitops.init import init_repository
    from terry.proposals.hosts import HostState
    from terry.steps.canary import Watch

    repo = init_repository(tmp_path / "ops").path
    config = load_config(repo, environ={"TERRY_PROMETHEUS_URL": "http://127.0.0.1:9"})
    canary = config.canary.model_copy(update={"queries": [Q, MISSING], "tolerance": 0.1})
    ctx = build_context(config.model_copy(update={"canary": canary}), store)
    return Watch(ctx), HostState


def test_the_watch_says_each_query_it_could_not_compare_on_the_canary(
    tmp_path: Path, store: Any
) -> None:
    watch, state = _watch(tmp_path, store)
    found = {"a": (state.VERIFIED, "a: usage 40%")}
    again = {"a": (state.VERIFIED, "a: usage 41%")}
    before = {(Q, "a"): 1.0, (Q, "b"): 2.0, (MISSING, "a"): None, (MISSING, "b"): None}
    after = {(Q, "a"): 1.05, (Q, "b"): 2.1}
    [(held, detail)] = watch.judge(found, again, before, after).values()
    assert held is state.VERIFIED  # what answered held; what never answered is said
    assert 'not compared (no reading before the canary): rate(typo_total{instance="a"}' in detail
    assert 'rate(typo_total{instance="b"}[1m])' in detail


def test_a_watch_that_could_read_none_of_its_queries_cannot_pass_the_canary(
    tmp_path: Path, store: Any
) -> None:
    # Prometheus down before the canary (or every query mistyped): unknown, never verified
    watch, state = _watch(tmp_path, store)
    found = {"a": (state.VERIFIED, "a: usage 40%")}
    before = dict.fromkeys([(Q, "a"), (Q, "b"), (MISSING, "a"), (MISSING, "b")])
    [(judged, detail)] = watch.judge(found, found, before, {}).values()
    assert judged is state.UNKNOWN
    assert "none of canary.queries gave a reading" in detail


def test_a_query_that_rose_outside_the_wave_fails_the_canary(tmp_path: Path, store: Any) -> None:
    watch, state = _watch(tmp_path, store)
    found = {"a": (state.VERIFIED, "a: usage 40%")}
    before = {(Q, "a"): 1.0, (Q, "b"): 2.0}
    worse = watch.judge(found, found, before, {(Q, "a"): 1.0, (Q, "b"): 3.0})
    assert worse["a"][0] is state.FAILED
    assert 'rate(errors_total{instance="b"}[1m]) rose from 2 to 3' in worse["a"][1]
    gone = watch.judge(found, found, before, {(Q, "a"): 1.0})  # b answered before, not after
    assert (
        gone["a"][0] is state.FAILED
        and "answered 2 before the canary and nothing" in (gone["a"][1])
    )


def test_canary_queries_prometheus_would_refuse_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "terry.yml").write_text(
        "canary: {queries: ['up{instance=\"{host}\"}', 'rate(x{instance=\"{host}\"}[5m]']}\n"
    )
    with pytest.raises(ConfigError, match=r"canary.queries: query 2 is not PromQL \(unclosed"):
        load_config(tmp_path, environ={"TERRY_PROMETHEUS_URL": "http://127.0.0.1:9090"})
