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
                        "jobs": {
                            "terry_environment": "test",
                            "terry_root": "/x",
                            "terry_applier": "awx",
                        },
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
    problems = json.loads(result.stdout)["problems"]
    found = {(p["host"], p["rule"], p["message"]) for p in problems if p["rule"] != "connection"}
    # ... and its connection: every extra host Ansible reaches would run on this machine
    leaks = {p["host"]: p["message"] for p in problems if p["rule"] == "connection"}
    assert set(leaks) == {
        "twice",
        "wrong-group",
        "nowhere",
        "odd-env",
        "rootless",
        "labelled",
        "jobs",
    }
    for message in leaks.values():
        assert message.startswith("ansible_connection=local, ansible_python_interpreter=")
        assert message.endswith(
            "come from inventories/example, not from the host's own inventory "
            "(inventories/extra): set them there, or move them out of the shared group "
            "(all: vars:)"
        )
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
        # an applier with no server to go to: said here, not first at a fix's dry run
        (
            "app",
            "argocd",
            "terry_applier argocd, but argocd.url is not set (terry.yml, or TERRY_ARGOCD_URL): "
            "every fix of this host would fail",
        ),
        (
            "jobs",
            "awx",
            "terry_applier awx, but awx.url is not set (terry.yml, or TERRY_AWX_URL): every fix "
            "of this host would fail",
        ),
    }


def test_validate_names_a_host_whose_groups_disagree_on_its_environment(gitops: Path) -> None:
    """A host in `db` (production, inline) and `web` (staging, in group_vars/web.yml) gets
    whichever Ansible's group precedence picks (`web`: alphabetically later): a production
    host gated as staging that nobody wrote "staging" for. A child group overriding its
    parent, or a host that sets its own, is meant, and valid."""
    extra = {
        "all": {
            "children": {
                "db": {
                    "hosts": {"both": {}, "decided": {"terry_environment": "production"}},
                    "vars": {"terry_environment": "production"},
                },
                "web": {"hosts": {"both": {}, "decided": {}}},
                "fleet": {
                    "vars": {"terry_environment": "staging"},
                    "children": {
                        "critical": {
                            "hosts": {"deep": {}},
                            "vars": {"terry_environment": "production"},
                        }
                    },
                },
            }
        }
    }
    tree = gitops / "inventories" / "extra"
    (tree / "group_vars").mkdir(parents=True)
    (tree / "hosts.yml").write_text(yaml.safe_dump(extra))
    (tree / "group_vars" / "web.yml").write_text("terry_environment: staging\n")
    config = yaml.safe_load((gitops / "terry.yml").read_text())
    config["inventory"] = ["inventories/example", "inventories/extra/hosts.yml"]
    (gitops / "terry.yml").write_text(yaml.safe_dump(config))
    Repo(gitops).commit_paths(["terry.yml", "inventories/extra"], "groups that disagree")

    result = make_cli(gitops)("inventory", "validate", "--output", "json")
    assert result.exit_code == 1, result.output
    found = {
        (p["host"], p["message"])
        for p in json.loads(result.stdout)["problems"]
        if p["rule"] == "environment"
    }
    assert found == {
        (
            "both",
            "its groups set terry_environment differently (db: production, web: staging); "
            "Ansible takes 'staging' by group precedence: set it on the host, or in one group",
        )
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


def test_validate_catches_connection_variables_from_another_inventory(gitops: Path) -> None:
    """README §6: inventories/lab beside inventories/example. A lab host that names its
    address and user but no connection gets the example's `ansible_connection: local`, so a
    fix for it would run on this machine; validate says so, and a host that sets its own
    connection (as every variable Ansible reaches it by) is valid."""
    cli = make_cli(gitops)
    lab = gitops / "inventories" / "lab"
    lab.mkdir()
    host = {
        "ansible_host": "10.77.0.12",
        "ansible_user": "root",
        "ansible_python_interpreter": "/usr/bin/python3",
        "terry_environment": "staging",
        "terry_root": "",
    }
    hosts = {"all": {"children": {"lab": {"hosts": {"lab-02": host}}}}}
    (lab / "hosts.yml").write_text(yaml.safe_dump(hosts))
    config = yaml.safe_load((gitops / "terry.yml").read_text())
    config["inventory"] = ["inventories/example", "inventories/lab"]
    (gitops / "terry.yml").write_text(yaml.safe_dump(config))
    Repo(gitops).commit_paths(["terry.yml", "inventories/lab"], "lab beside the example")

    result = cli("inventory", "validate", "--output", "json")
    assert result.exit_code == 1, result.stdout
    assert json.loads(result.stdout)["problems"] == [
        {
            "host": "lab-02",
            "rule": "connection",
            "message": "ansible_connection=local comes from inventories/example, not from the "
            "host's own inventory (inventories/lab): set it there, or move it out of the "
            "shared group (all: vars:)",
        }
    ]
    text = cli("inventory", "validate")
    assert text.exit_code == 1 and "ansible_connection=local" in text.stdout

    host["ansible_connection"] = "ssh"
    (lab / "hosts.yml").write_text(yaml.safe_dump(hosts))
    Repo(gitops).commit_paths(["inventories/lab"], "lab: its own connection")
    fine = cli("inventory", "validate")
    assert fine.exit_code == 0 and "4 host(s): valid" in fine.stdout


def test_awx_settings_that_cannot_work_are_refused_when_terry_yml_is_read(gitops: Path) -> None:
    """A URL without a scheme, a job template naming a placeholder Terry does not fill: exit
    3 naming the setting, not a failed proposal later."""
    config = yaml.safe_load((gitops / "terry.yml").read_text())
    for awx, said in (
        ({"url": "awx.example.org"}, "awx.url: must be an http(s) URL with a host"),
        (
            {"url": "https://awx.example.org", "job_template": "terry-{nope}"},
            "awx.job_template: only {remedy} is filled in, not {nope}",
        ),
    ):
        (gitops / "terry.yml").write_text(yaml.safe_dump({**config, "awx": awx}))
        result = make_cli(gitops)("proposals", "list")
        assert result.exit_code == 3, result.output
        assert said in " ".join(result.stderr.split()), result.stderr
    fine = {"url": "https://awx.example.org", "job_template": "ops-{remedy}"}
    (gitops / "terry.yml").write_text(yaml.safe_dump({**config, "awx": fine}))
    make_cli(gitops).ok("proposals", "list")
