"""Remedy variants (issue 18) through the whole pipeline on the example fleet: real
ansible-playbook (local connection), real git, real regorus, SQLite.

The disk remedy's catalogue entry in the test's repository tries its variants in staging
and, to start with, runs ``compress-only`` by default. Comparable incidents in staging take
the variants in turn; production runs the default; ``terry remedies compare`` tells which
verified more often; ``--propose`` commits the winner as the default on a branch for a
person to merge, and changes nothing on main.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from terry.cli import main
from terry.demo import example
from terry.errors import ConfigError
from terry.gitops.repo import Repo
from terry.proposals.hosts import add_hosts
from terry.remedies.catalogue import load_catalogue
from terry.remedies.variants import (
    VARIANT_PARAM,
    WinnerRule,
    choose_variant,
    compare_variants,
    tried_variants,
    variant_input,
)
from terry.store import Store
from terry.store.models import AuditRow, IncidentRow, ProposalRow, utcnow
from tests.conftest import REPO_ROOT, Cli, alert, config_for, make_cli, payload

pytestmark = pytest.mark.integration

CATALOGUE = "roles/disk_cleanup/remedies.yml"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    repo = tmp_path_factory.mktemp("variants") / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    path = repo / CATALOGUE
    text = path.read_text()
    assert text.count("    variants:\n") == 1
    path.write_text(
        text.replace(
            "    variants:\n",
            "    try_variants_in: [staging]\n    default_variant: compress-only\n    variants:\n",
        )
    )
    Repo(repo).commit_paths([CATALOGUE], "disk remedy: try variants in staging")
    cli = make_cli(repo)
    result = cli("example", "up")
    assert result.exit_code == 0, result.stdout + result.stderr
    yield cli
    example.down(config_for(repo))


def _fill(cli: Cli, host: str, name: str, *, to: float) -> list[Path]:
    """Incompressible 1 MiB rotated logs, a month old (past the 14 days' retention), until
    ``host``'s /srv/data is ``to`` percent full."""
    where = cli.repo / ".terry" / "hosts" / host / "srv" / "data" / "log"
    where.mkdir(parents=True, exist_ok=True)
    when = time.time() - 30 * 86400
    hosts = example.example_hosts(config_for(cli.repo))
    written, n = [], 1
    while example.disk_percent(hosts[host]) < to:
        path = where / (name % n)
        path.write_bytes(os.urandom(1024 * 1024))
        os.utime(path, (when, when))
        written.append(path)
        n += 1
    return written


def _disk_alert(cli: Cli, host: str, fingerprint: str) -> dict[str, Any]:
    body = payload(
        [alert("DiskUsageHigh", fingerprint=fingerprint, host=host, mountpoint="/srv/data")]
    )
    [outcome] = cli.json("alert", "ingest", "-", input=body)["proposals"]
    return outcome


def _compare(cli: Cli, *args: str) -> dict[str, Any]:
    [found] = cli.json("remedies", "compare", "disk-usage-high", *args)["remedies"]
    return found


def _message(fleet: Cli, branch: str) -> str:
    """The message of the fix commit at the tip of ``branch``."""
    return subprocess.run(
        ["git", "-C", str(fleet.repo), "log", "-1", "--format=%B", branch],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_variants_take_turns_outside_production_and_the_winner_is_proposed(fleet: Cli) -> None:
    # First staging incident: the default, compress-only. Gzipping logs that do not
    # compress frees nothing: the dry run's estimate says so, a person approves anyway,
    # verification fails and the fix is rolled back.
    _fill(fleet, "web-01", "app.log.%d", to=92)
    first = _disk_alert(fleet, "web-01", "variants-1")
    assert first["state"] == "awaiting_review", first
    shown = fleet.json("proposals", "show", str(first["proposal_id"]))
    assert shown["params"]["terry_variant"] == "compress-only"
    assert shown["params"]["log_retention_days"] == 3650  # the variant's own values
    assert shown["params"]["package_caches"] == "keep"
    # its commit says what runs: the remedy, and the variant in the entry's own words
    message = _message(fleet, shown["summary"]["branch"])
    assert "\nWhat: Free space on the full filesystem" in message
    assert "\nVariant: compress-only: Only gzip logs: keep scratch files" in message
    approved = fleet.as_("alice").json("proposals", "approve", str(first["proposal_id"]))
    assert approved["state"] in ("rolled_back", "failed"), approved

    # The next comparable incident (staging, same remedy) takes the least-tried variant:
    # the remedy's own parameters, which age the month-old logs out and verify.
    logs = _fill(fleet, "web-02", "app.log.%d", to=92)
    second = _disk_alert(fleet, "web-02", "variants-2")
    assert second["state"] == "verified", second
    assert [p for p in logs if p.exists()] == []
    shown = fleet.json("proposals", "show", str(second["proposal_id"]))
    assert shown["params"]["terry_variant"] == "default"
    assert shown["params"]["log_retention_days"] == 14
    # judged on its own variant's record: the default had no run yet (the compress-only
    # trial that failed is not its record), so its record part is the untried 15, not 12
    assert shown["summary"]["confidence_parts"]["record"] == 15, shown["summary"]
    message = _message(fleet, shown["summary"]["branch"])
    assert '"terry_variant": "default"' in message  # the commit (and PR body) show it
    assert "\nVariant:" not in message  # the remedy's own parameters: its summary says it

    # Production always runs the default variant, whatever was tried elsewhere (the same
    # rule the diagnose step asks, with the counts of comparable incidents).
    remedy = load_catalogue(Repo(fleet.repo).tree(Repo(fleet.repo).head()) / "roles").get(
        "disk-usage-high"
    )
    assert remedy is not None
    tried = {"compress-only": 5, "default": 0}
    chosen = choose_variant(remedy, variant_input(remedy, "production", tried))
    assert chosen.name == "compress-only" and "production" in chosen.reason
    assert choose_variant(remedy, variant_input(remedy, "staging", tried)).name == "default"
    assert choose_variant(remedy, variant_input(remedy, "test", {})).name == "compress-only"

    # The comparison: one run each outside production is not enough for a winner...
    found = _compare(fleet)
    by_name = {v["variant"]: v for v in found["variants"]}
    assert by_name["compress-only"]["runs"] == 1 and by_name["compress-only"]["verified"] == 0
    assert by_name["compress-only"]["default"] is True
    assert by_name["default"]["runs"] == 1 and by_name["default"]["verified_rate"] == 1.0
    assert by_name["default"]["median_seconds_to_verified"] > 0
    assert found["winner"] is None and "not enough runs" in found["why"]

    # ...with --min-runs 1 the remedy's own parameters lead by 100 points: proposed as the
    # default, on a branch; main still runs compress-only until a person merges it.
    repo = Repo(fleet.repo)
    main_before = repo.head()
    proposed = _compare(fleet, "--min-runs", "1", "--propose")
    assert proposed["winner"] == "default", proposed
    change = proposed["proposed"]
    assert change["branch"] == "terry/variant-disk-usage-high-default"
    assert repo.head() == main_before
    edited = repo.read_text(change["commit"], CATALOGUE)
    assert edited is not None and "default_variant: compress-only" not in edited
    assert "try_variants_in: [staging]" in edited and "# Parameter variants" in edited
    tree = repo.tree(change["commit"])
    remedy = load_catalogue(tree / "roles").get("disk-usage-high")
    assert remedy is not None and remedy.default_variant == "default"
    # Asking again finds the same branch.
    again = _compare(fleet, "--min-runs", "1", "--propose")
    assert again["proposed"]["already_proposed"] is True

    table = fleet("remedies", "compare")
    assert table.exit_code == 0 and "compress-only (default)" in table.stdout
    # what was counted is what the title and the JSON say: where the variants take turns
    assert "disk-usage-high (staging)" in table.stdout
    assert found["environment"] is None and found["environments"] == ["staging"]
    # asked for, production's runs are shown: the default's alone, so never a winner
    production = _compare(fleet, "-e", "Production", "--min-runs", "1")
    assert production["environments"] == ["production"] and production["winner"] is None
    assert "production" in fleet.ok("remedies", "compare", "-e", "production").stdout
    assert _compare(fleet, "-e", "staging")["environments"] == ["staging"]


def test_catalogue_mistakes_in_variants_are_configuration_errors(tmp_path: Path) -> None:
    roles = tmp_path / "roles"
    role = roles / "r"
    (role / "tasks").mkdir(parents=True)
    for name in ("main", "verify", "rollback"):
        (role / "tasks" / f"{name}.yml").write_text("- ansible.builtin.debug: {msg: hi}\n")

    def load(**entry: Any) -> str:
        base = {
            "name": "r-fix",
            "match": {"alertname": ["X"]},
            "params": {
                "days": {"type": "int", "default": 7, "max": 30},
                "path": {"from": "label:p"},
            },
            "verify": "verify",
            "rollback": "rollback",
        }
        (role / "remedies.yml").write_text(yaml.safe_dump({"remedies": [{**base, **entry}]}))
        with pytest.raises(ConfigError) as caught:
            load_catalogue(roles)
        return str(caught.value)

    assert "no such parameter" in load(variants={"v": {"params": {"nope": 1}}})
    assert "above the maximum" in load(variants={"v": {"params": {"days": 99}}})
    assert "comes from label:p" in load(variants={"v": {"params": {"path": "/srv"}}})
    assert "not one of its variants" in load(variants={"v": {"params": {}}}, default_variant="w")
    for where in ("production", "Production", "unknown"):  # no known environment: production
        assert "production always runs the default" in load(
            variants={"v": {"params": {"days": 3}}}, try_variants_in=[where]
        )
    # a variant declared twice: YAML would keep only the last, silently
    twice = yaml.safe_dump({"remedies": [{"name": "r-fix", "variants": {"v": {"params": {}}}}]})
    (role / "remedies.yml").write_text(twice.replace("    v:", "    v:\n      params: {}\n    v:"))
    with pytest.raises(
        ConfigError, match=r"remedies.yml: not valid YAML: line \d+: key 'v' given twice"
    ):
        load_catalogue(roles)


def _finished(
    store: Store, n: int, *, variant: str | None, env: str, state: str, secs: int
) -> None:
    """A proposal of the disk remedy on a host of ``env`` that waited an hour for review,
    then ended ``state`` ``secs`` after its apply began, as the pipeline leaves it (its host
    row names the environment, its audit rows the states it went through)."""
    made = utcnow() - timedelta(hours=2)
    applying = made + timedelta(hours=1)
    with store.session() as session:
        incident = IncidentRow(
            fingerprint=f"variants-{n}",
            source="alert",
            title="DiskUsageHigh",
            host=f"h{n}",
            state="open",
            opened_at=made,
        )
        session.add(incident)
        session.flush()
        row = ProposalRow(
            incident_id=incident.id,
            remedy="disk-usage-high",
            role="disk_cleanup",
            hosts=[f"h{n}"],
            params={"path": "/srv/data", **({VARIANT_PARAM: variant} if variant else {})},
            risk="low",
            state=state,
            environment=env,
            check_summary={},
            created_at=made,
            updated_at=applying + timedelta(seconds=secs),
        )
        session.add(row)
        session.flush()
        proposal = row.id
        for to_state, at in (
            ("awaiting_review", made),
            ("applying", applying),
            (state, applying + timedelta(seconds=secs)),
        ):
            session.add(
                AuditRow(
                    at=at,
                    actor="terry",
                    entity="proposal",
                    entity_id=proposal,
                    to_state=to_state,
                )
            )
    add_hosts(store, proposal, [(f"h{n}", None, env)])


def test_the_record_per_variant_in_the_store(store: Store) -> None:
    remedy = load_catalogue(REPO_ROOT / "roles").get("disk-usage-high")
    assert remedy is not None
    rows = [
        (None, "staging", "verified", 40),  # from before variants: the default
        ("default", "staging", "verified", 60),
        ("default", "staging", "rolled_back", 90),
        ("compress-only", "staging", "verified", 20),
        ("compress-only", "staging", "verified", 30),
        ("compress-only", "production", "failed", 10),  # production is not compared
        ("compress-only", None, "failed", 10),  # nor an unknown environment (as production)
        ("compress-only", "unknown", "failed", 10),
    ]
    for n, (variant, env, state, secs) in enumerate(rows):
        _finished(store, n, variant=variant, env=env, state=state, secs=secs)
    assert tried_variants(store, "disk-usage-high", "staging") == {
        "default": 3,
        "compress-only": 2,
    }
    assert tried_variants(store, "disk-usage-high", "production") == {"compress-only": 1}
    found = compare_variants(store, remedy, rule=WinnerRule(min_runs=2))
    by_name = {v.name: v for v in found.variants}
    assert (by_name["default"].runs, by_name["default"].verified) == (3, 2)
    assert by_name["default"].median_seconds_to_verified == 50.0
    assert (by_name["compress-only"].runs, by_name["compress-only"].verified_rate) == (2, 1.0)
    assert by_name["compress-only"].median_seconds_to_verified == 25.0
    assert found.winner == "compress-only" and "33 points more often" in found.why
    in_production = compare_variants(store, remedy, environment="production")
    assert [v.runs for v in in_production.variants] == [0, 1]
    assert in_production.winner is None
    # An environment where the variants are not tried runs the default only: it is left
    # out once the entry names where they are (try_variants_in), unless asked for.
    _finished(store, 20, variant="default", env="development", state="verified", secs=5)
    everywhere = compare_variants(store, remedy, rule=WinnerRule(min_runs=2))
    assert {v.name: v.runs for v in everywhere.variants}["default"] == 4
    tried = replace(remedy, try_variants_in=("staging",))
    where_tried = compare_variants(store, tried, rule=WinnerRule(min_runs=2))
    assert {v.name: v.runs for v in where_tried.variants}["default"] == 3
    there = compare_variants(store, tried, environment="development")
    assert {v.name: v.runs for v in there.variants}["default"] == 1
