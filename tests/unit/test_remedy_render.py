"""Rendering keeps alert values out of the playbook text and marks them !unsafe."""

from __future__ import annotations

import pytest
import yaml

from terry.remedies.catalogue import Match, Remedy, Risk
from terry.remedies.render import branch_name, render

pytestmark = pytest.mark.unit

HOSTILE = [
    "{{ lookup('ansible.builtin.pipe','touch /tmp/terry-pwned') }}",
    "$(id)",
    "; rm -rf /",
    "line one\nline two: [yaml]\n- hosts: all",
    "{% for x in range(10) %}x{% endfor %}",
    "!unsafe 'quoted' \"double\"",
]


def _remedy() -> Remedy:
    return Remedy(
        name="disk-usage-high",
        summary="s",
        role="disk_cleanup",
        risk=Risk.LOW,
        match=Match(("DiskUsageHigh",)),
        params=(),
        apply="main",
        verify="verify",
        rollback="rollback",
        verify_summary="",
        rollback_summary="",
        prometheus_verify=None,
        modules=(),
        source="roles/disk_cleanup/remedies.yml",
    )


class _AnsibleLoader(yaml.SafeLoader):
    """Reads ``!unsafe`` the way Ansible's loader does: the value, marked."""


_AnsibleLoader.add_constructor(
    "!unsafe", lambda loader, node: ("UNSAFE", loader.construct_scalar(node))
)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_data_in_the_vars_file_and_absent_from_the_playbook(
    value: str,
) -> None:
    rendered = render(
        remedy=_remedy(),
        proposal_id=7,
        incident_id=3,
        hosts=("web-01",),
        params={"reason": value, "threshold": 80},
    )
    assert value not in rendered.playbook
    assert "lookup" not in rendered.playbook and "$(id)" not in rendered.playbook
    loaded = yaml.load(rendered.vars_text, Loader=_AnsibleLoader)
    assert loaded == {"terry_proposal_id": 7, "reason": ("UNSAFE", value), "threshold": 80}
    plays = yaml.safe_load(rendered.playbook)
    assert [p["tags"] for p in plays] == [["apply"], ["never", "verify"], ["never", "rollback"]]
    assert {p["hosts"] for p in plays} == {"web-01"}


def test_branch_names_come_from_ids_and_slugs_only() -> None:
    name = branch_name(12, "disk-usage-high", "-rf $(id)")
    assert name == "terry/12-disk-usage-high-rf-id"
    assert not name.split("/", 1)[1].startswith("-")
