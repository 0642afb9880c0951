"""The rendered proposal, case by case (``tests/golden/playbook/``): a catalogue remedy, its
hosts and checked parameters in; the playbook and its extra-vars file out, exactly as they
are committed. The real catalogue (``roles/*/remedies.yml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.remedies.catalogue import load_catalogue
from terry.remedies.render import render
from tests.conftest import REPO_ROOT
from tests.golden_files import cases, check, load_input, orphans

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue(REPO_ROOT / "roles")


def _render(given: dict[str, Any]):
    remedy = CATALOGUE.get(given["remedy"])
    assert remedy is not None, f"no remedy {given['remedy']!r} in roles/*/remedies.yml"
    extra = {"directory": given["directory"]} if "directory" in given else {}
    return render(
        remedy=remedy,
        proposal_id=given["proposal_id"],
        incident_id=given["incident_id"],
        hosts=tuple(given["hosts"]),
        params=given["params"],
        **extra,
    )


@pytest.mark.parametrize("case", cases("playbook"))
def test_playbook(case: Path) -> None:
    rendered = _render(load_input(case))
    check(
        case,
        "yml",
        {
            "playbook_path": rendered.playbook_path,
            "vars_path": rendered.vars_path,
            "playbook": rendered.playbook,
            "vars": rendered.vars_text,
        },
    )


class _AnsibleLoader(yaml.SafeLoader):
    """Reads ``!unsafe`` the way Ansible's loader does: the value, marked."""


_AnsibleLoader.add_constructor(
    "!unsafe", lambda loader, node: ("UNSAFE", loader.construct_scalar(node))
)


@pytest.mark.parametrize("case", cases("playbook"))
def test_parameters_are_unsafe_data_in_the_vars_file_only(case: Path) -> None:
    given = load_input(case)
    rendered = _render(given)
    loaded = yaml.load(rendered.vars_text, Loader=_AnsibleLoader)
    assert loaded == {
        "terry_proposal_id": given["proposal_id"],
        **{k: ("UNSAFE", v) if isinstance(v, str) else v for k, v in given["params"].items()},
    }
    for value in given["params"].values():
        if isinstance(value, str) and any(m in value for m in ("{{", "{%", "$(", "\n")):
            assert value not in rendered.playbook
            assert "lookup" not in rendered.playbook and "$(" not in rendered.playbook


def test_every_expected_file_has_its_input() -> None:
    assert orphans("playbook", "yml") == []


def test_every_host_of_a_storm_is_in_its_plays_ipv6_addresses_too() -> None:
    # A storm over hosts named by IPv6 address: joined with colons, Ansible split the play's
    # pattern into 's-01', '2001', 'db8', '10'... and the dry run covered s-01 alone.
    from ansible.inventory.manager import split_host_pattern

    hosts = ("2001:db8::10", "2001:db8::11", "s-01", "[fe80::1]")
    rendered = _render(
        {
            "remedy": "config-drift",
            "proposal_id": 9,
            "incident_id": 9,
            "hosts": hosts,
            "params": {"file": "app.conf"},
        }
    )
    plays = yaml.load(rendered.playbook, Loader=_AnsibleLoader)
    for play in plays:
        assert sorted(split_host_pattern(play["hosts"])) == sorted(hosts), play["hosts"]
