"""``terry inventory``: list, show, and validate listing every problem, read from main."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from terry.gitops.repo import Repo
from tests.conftest import make_cli


def _broken_inventory(repo: Path) -> None:
    extra = {
        "all": {
            "children": {
                "production": {
                    "hosts": {
                        "twice": {"terry_environment": "production", "terry_root": "/x"},
                        "wrong-group": {"terry_environment": "staging", "terry_root": "/x"},
                    }
                },
                "staging": {"hosts": {"twice": {}}},
                "misc": {
                    "hosts": {
                        "nowhere": {"terry_root": "/x"},
                        "odd-env": {"terry_environment": "qa", "terry_root": "/x"},
                        "rootless": {"terry_environment": "test", "terry_tenant": "red"},
                        "labelled": {
                            "terry_environment": "test",
                            "terry_root": "/x",
                            "terry_labels": {"role": "cache", "owner": "bob"},
                        },
                        "app": {"terry_environment": "test", "terry_applier": "argocd"},
                    }
                },
            }
        }
    }
    (repo / "inventories" / "extra").mkdir()
    (repo / "inventories" / "extra" / "hosts.yml").write_text(yaml.safe_dump(extra))
    config = yaml.safe_load((repo / "terry.yml").read_text())
    config["inventory"] = ["inventories/example", "inventories/extra"]
    config["inventory_rules"] = {
        "tenants": ["example", "blue"],
        "labels": {"role": ["web", "db", "cache"]},
    }
    (repo / "terry.yml").write_text(yaml.safe_dump(config))
    Repo(repo).commit_paths(["terry.yml", "inventories/extra"], "more hosts")


def test_validate_lists_every_problem_and_exits_1(gitops: Path) -> None:
    cli = make_cli(gitops)
    fine = cli("inventory", "validate")
    assert fine.exit_code == 0 and "3 host(s): valid" in fine.stdout
    _broken_inventory(gitops)
    result = cli("inventory", "validate", "--output", "json")
    assert result.exit_code == 1
    # (the example inventory's `all` vars give every host tenant "example")
    found = {(p["host"], p["rule"], p["message"]) for p in json.loads(result.stdout)["problems"]}
    assert found == {
        ("twice", "environment", "in two environments: production, staging"),
        ("wrong-group", "environment", "in group production but terry_environment is 'staging'"),
        ("nowhere", "environment", "no terry_environment"),
        (
            "odd-env",
            "environment",
            "terry_environment 'qa' is not one of production, staging, development, test",
        ),
        ("rootless", "tenant", "tenant 'red' is not one of ['example', 'blue']"),
        ("rootless", "variables", "role terry_service requires terry_root, not set"),
        ("rootless", "variables", "role app_config requires terry_root, not set"),
        ("labelled", "labels", "label 'owner' is not allowed"),
        ("app", "argocd", "Argo CD target without terry_argocd_app"),
        ("app", "argocd", "Argo CD target without terry_manifest"),
    }


def test_list_and_show_read_main(gitops: Path) -> None:
    cli = make_cli(gitops)
    hosts = cli.json("inventory", "list")
    assert [h["name"] for h in hosts] == ["web-01", "web-02", "db-01"]
    assert [h["name"] for h in cli.json("inventory", "list", "--limit", "production")] == ["db-01"]
    shown = cli.json("inventory", "show", "web-01")
    assert shown["environment"] == "staging" and "terry_root" in shown["variables"]
    missing = cli("inventory", "show", "nope")
    assert missing.exit_code == 4 and "no host 'nope'" in missing.stderr
    # An uncommitted edit is not on main: list still reads main.
    (gitops / "inventories" / "example" / "hosts.yml").write_text("all: {hosts: {x: {}}}\n")
    assert [h["name"] for h in cli.json("inventory", "list")] == ["web-01", "web-02", "db-01"]
