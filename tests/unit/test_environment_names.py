"""Environment names are read in any case (terry.environments): a host whose inventory says
``Production`` is production to every rule written for production, and a setting that names
``Staging`` means the staging hosts. Until session 28 such a host escaped the gate's review
("low risk outside production"), could be the canary ahead of staging, and was outside
separation of duties."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from terry.config import Config, RouteConfig
from terry.environments import environment_name, environment_names
from terry.errors import ConfigError
from terry.gate.engine import Verdict
from terry.inventory.hosts import load_inventory, most_sensitive
from terry.notify.events import Event, EventKind
from terry.notify.routes import matches
from terry.proposals.waves import plan_waves
from terry.remedies.variants import parse_trials
from tests.unit.test_canary_waves import _confident, _with
from tests.unit.test_gate_policy import ENGINE, POLICIES, PROVEN, gate_input

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("written", "read"),
    [("Production", "production"), (" STAGING ", "staging"), ("", None), (None, None)],
)
def test_a_name_is_read_in_lower_case_without_the_space_around_it(
    written: str | None, read: str | None
) -> None:
    assert environment_name(written) == read


def test_names_in_a_setting_are_each_kept_once() -> None:
    assert environment_names(["Staging", "staging ", "", "Test"]) == ["staging", "test"]


def test_the_inventory_says_production_in_any_case(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "db-01": {"terry_environment": "Production"},
                        "web-01": {"terry_environment": "Staging"},
                        "web-02": {},
                    }
                }
            }
        )
    )
    hosts = load_inventory(tmp_path, ["hosts.yml"]).hosts
    assert [hosts[h].environment for h in ("db-01", "web-01", "web-02")] == [
        "production",
        "staging",
        None,
    ]
    assert most_sensitive(["Staging", "PRODUCTION"]) == "production"


def test_a_production_host_written_otherwise_is_judged_as_production() -> None:
    """The shipped gate on what the inventory above becomes: review, not a merge."""
    environment = most_sensitive(["Production"])
    decision = ENGINE.decide(POLICIES, gate_input(environment=environment))
    assert decision.verdict is Verdict.REVIEW, decision.reasons
    assert any(r.startswith("production host and") for r in decision.reasons)


def test_the_canary_is_never_a_production_host_written_in_another_case() -> None:
    hosts = [("a-db", "Production"), ("b-web", "staging"), ("c-web", "Staging"), ("d", "staging")]
    waves = plan_waves(hosts, min_hosts=3, percent=10)
    assert waves[0].canary and waves[0].hosts == ("b-web",)
    assert waves[-1].hosts == ("a-db",) and waves[-1].environments == ("production",)


def test_policy_data_may_name_environments_in_any_case() -> None:
    """data.json's auto_merge and canary_straight_environments are compared as names."""
    listed = _with(auto_merge={"disk-usage-high": ["Production"]})
    proven = ENGINE.decide(listed, gate_input(environment="production", history=PROVEN))
    assert proven.verdict is Verdict.MERGE, proven.reasons
    waves = [
        w.as_input()
        for w in plan_waves([(f"s-{n}", "staging") for n in range(12)], min_hosts=3, percent=10)
    ]
    straight = _with(canary_straight_environments=["STAGING"])
    assert ENGINE.decide(straight, _confident(waves)).verdict is Verdict.MERGE
    # a value that is not a name is no environment: nothing goes straight on it
    odd = _with(canary_straight_environments=[1, None])
    assert ENGINE.decide(odd, _confident(waves)).verdict is Verdict.REVIEW


def test_settings_that_list_environments_read_them_as_names(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "repo": tmp_path,
            "chaos": {"environments": ["Staging", "staging", "Test"]},
            "inventory_rules": {"environments": ["Production", "Staging"]},
        }
    )
    assert config.chaos.environments == ["staging", "test"]
    assert config.inventory_rules.environments == ["production", "staging"]
    assert parse_trials(["Staging", "test"], "roles/x/remedies.yml") == ("staging", "test")
    with pytest.raises(ConfigError, match="production always runs the default"):
        parse_trials([" PRODUCTION"], "roles/x/remedies.yml")


def test_a_route_for_production_gets_events_of_production_written_otherwise() -> None:
    route = RouteConfig.model_validate(
        {"name": "oncall", "url_env": "HOOK", "events": ["failed"], "environments": ["Production"]}
    )
    event = Event(
        kind=EventKind.FAILED,
        audit_id=1,
        at=datetime(2026, 12, 7, tzinfo=UTC),
        actor="terry",
        reason="verification failed",
        environment="PRODUCTION",
    )
    assert matches(route, event)
