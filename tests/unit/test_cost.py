"""Cost, pure: the price list, what a host runs on, the recommendation rules and their
savings, the gate's cost change and the sparkline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.cost.change import gate_view
from terry.cost.format import sparkline
from terry.cost.hosts import footprint
from terry.cost.prices import load_prices, parse_prices
from terry.cost.proposal import edit_for
from terry.cost.rules import Kind, Thresholds, recommend, total_savings, volume_target_gb
from terry.cost.usage import Usage
from terry.errors import ConfigError, InputError
from terry.inventory.hosts import Host, load_inventory
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

PRICES = parse_prices(
    yaml.safe_load((REPO_ROOT / "examples" / "costs" / "prices.yml").read_text()),
    source="examples/costs/prices.yml",
)
T = Thresholds()


def host(name: str = "web-01", labels: dict[str, str] | None = None, **variables: Any) -> Host:
    return Host(name, None, "production", None, labels or {}, variables=variables)


def quiet(**over: Any) -> Usage:
    """Thirty days of samples of a host that does little."""
    base: dict[str, Any] = {
        "host": "web-01",
        "cpu_peak": 0.12,
        "cpu_peak_idle": 0.12,
        "cpu_mean": 0.05,
        "coverage": 1.0,
        "coverage_idle": 1.0,
        "memory_peak": 0.30,
        "memory_total_gb": 16.0,
        "disk_peak": {"/": 0.5},
    }
    return Usage(**(base | over))


def test_price_lookup_and_the_next_smaller_type() -> None:
    assert PRICES.currency == "USD"
    assert PRICES.monthly("m5.xlarge") == pytest.approx(0.214 * 730)
    assert PRICES.volume_monthly("gp3", 100) == pytest.approx(8.8)
    assert PRICES.smaller("m5.2xlarge").name == "m5.xlarge"
    assert PRICES.smaller("m5.large") is None  # the smallest m5 listed
    assert PRICES.smaller("t3.medium").name == "t3.small"  # same family only
    assert PRICES.monthly("x9.huge") is None and PRICES.smaller("x9.huge") is None
    bare = parse_prices(
        {"currency": "EUR", "instances": {"a.1": 0.5}, "volumes": {"v": 0.1}}, source="p"
    )
    assert bare.monthly("a.1") == 365 and bare.volume_monthly("v", 10) == pytest.approx(1)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({"instances": {}}, "currency"),
        ({"currency": "USD", "instances": {"m5.large": "cheap"}}, "expected a number"),
        ({"currency": "USD", "instances": {"m5.large": -1}}, "0 or more"),
        ({"currency": "USD", "volumes": {"$(rm -rf)": 1}}, "not a type name"),
        ({"currency": "USD", "spot_discount": 1.5}, "spot_discount"),
        ("just text", "expected a mapping"),
    ],
)
def test_a_bad_price_list_names_what_is_wrong(document: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_prices(document, source="costs/prices.yml")


def test_no_price_list_and_the_aws_pricing_api_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no price list at costs/prices\.yml"):
        load_prices(tmp_path)
    with pytest.raises(ConfigError, match="aws is not configured"):
        load_prices(tmp_path, pricing="aws")


def test_a_host_names_its_type_by_label_or_by_its_cloud_plugin(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "labelled": {
                            "terry_instance_type": "m5.large",
                            "instance_type": "c5.large",
                            "terry_volume_gb": 100,
                            "terry_volume_type": "gp3",
                        },
                        "ec2": {
                            "instance_id": "i-0abc",
                            "instance_type": "c5.xlarge",
                            "placement": {"region": "eu-west-1"},
                        },
                        "tagged": {"terry_labels": {"instance_type": "t3.small"}},
                        "gce": {
                            "selfLink": "https://compute.googleapis.com/compute/v1/projects/p/"
                            "zones/europe-west1-b/instances/gce",
                            "machineType": "https://compute.googleapis.com/compute/v1/projects/"
                            "p/zones/europe-west1-b/machineTypes/e2-medium",
                        },
                        "hostile": {"terry_instance_type": "m5.large; rm -rf /"},
                    }
                }
            }
        )
    )
    hosts = load_inventory(tmp_path, ["hosts.yml"]).hosts
    labelled = footprint(hosts["labelled"])
    assert (labelled.instance_type, labelled.volume_gb, labelled.volume_type) == (
        "m5.large", 100.0, "gp3",
    )  # fmt: skip
    assert footprint(hosts["ec2"]).instance_type == "c5.xlarge"
    assert footprint(hosts["tagged"]).instance_type == "t3.small"
    assert footprint(hosts["gce"]).instance_type == "e2-medium"
    assert footprint(hosts["hostile"]).instance_type is None  # not a type name: not kept


def test_a_quiet_host_is_downsized_to_the_next_type_of_its_family() -> None:
    f = footprint(host(terry_instance_type="m5.xlarge"))
    [rec] = recommend(f, quiet(), {}, PRICES, T)
    assert rec.kind is Kind.DOWNSIZE and rec.id == "downsize:web-01"
    assert (rec.current, rec.proposed) == ("m5.xlarge", "m5.large")
    assert rec.monthly_saving == pytest.approx((0.214 - 0.107) * 730, abs=0.01)
    assert rec.change == {"terry_instance_type": "m5.large"}
    assert "CPU at most 12.0%" in rec.why
    edit = edit_for(rec)
    assert edit.describe() == "set terry_instance_type on web-01"


@pytest.mark.parametrize(
    ("usage", "why"),
    [
        (quiet(cpu_peak=0.20), "a busy hour at the threshold"),
        (quiet(coverage=0.5), "two weeks of samples: no 30-day figure"),
        (quiet(cpu_peak=None), "unknown CPU"),
        (quiet(memory_peak=None), "unknown memory"),
        (quiet(memory_peak=0.75), "12 GB used does not fit in 8 GB with room to spare"),
    ],
)
def test_no_downsize_without_evidence(usage: Usage, why: str) -> None:
    f = footprint(host(terry_instance_type="m5.xlarge"))
    assert recommend(f, usage, {}, PRICES, T) == [], why


def test_an_idle_host_costs_its_whole_price_and_is_not_also_downsized() -> None:
    f = footprint(
        host(terry_instance_type="m5.xlarge", terry_volume_gb=100, terry_volume_type="gp3")
    )
    recs = recommend(f, quiet(cpu_peak_idle=0.04, disk_peak={"/": 0.5}), {}, PRICES, T)
    assert [r.kind for r in recs] == [Kind.IDLE]
    assert recs[0].monthly_saving == pytest.approx(0.214 * 730 + 8.8, abs=0.01)
    assert not recs[0].proposable
    with pytest.raises(InputError, match="is advice"):
        edit_for(recs[0])


def test_spot_for_batch_hosts_and_over_sized_volumes() -> None:
    f = footprint(
        host(terry_instance_type="c5.xlarge", terry_volume_gb=500, terry_volume_type="gp2")
    )
    busy = quiet(cpu_peak=0.9, cpu_peak_idle=0.9, disk_peak={"/": 0.10})
    recs = {r.kind: r for r in recommend(f, busy, {"workload": "batch"}, PRICES, T)}
    assert set(recs) == {Kind.SPOT, Kind.VOLUME}
    assert recs[Kind.SPOT].monthly_saving == pytest.approx(0.192 * 730 * 0.6, abs=0.01)
    # 50 GB used at the peak: 90 GB leaves it at most 60% full (rounded up to 10 GB)
    volume = recs[Kind.VOLUME]
    assert volume.change == {"terry_volume_gb": 90} and volume.proposed == "90 GB"
    assert volume.monthly_saving == pytest.approx((500 - 90) * 0.11, abs=0.01)
    on_spot = footprint(host(terry_instance_type="c5.xlarge", terry_instance_lifecycle="spot"))
    assert recommend(on_spot, busy, {"workload": "batch"}, PRICES, T) == []
    assert (
        volume_target_gb(0, 60) == 8
        and volume_target_gb(1, 60) == 10
        and volume_target_gb(31, 60) == 60
    )


def test_savings_add_up_without_counting_twice() -> None:
    web = footprint(host("web-01", terry_instance_type="m5.xlarge"))
    batch = footprint(
        host(
            "batch-01",
            terry_instance_type="m5.xlarge",
            terry_volume_gb=500,
            terry_volume_type="gp3",
        )
    )
    idle = footprint(
        host("old-01", terry_instance_type="t3.large", terry_volume_gb=100, terry_volume_type="gp3")
    )
    recs = [
        *recommend(web, quiet(), {}, PRICES, T),
        *recommend(
            batch, quiet(host="batch-01", disk_peak={"/": 0.1}), {"workload": "batch"}, PRICES, T
        ),
        *recommend(
            idle, quiet(host="old-01", cpu_peak_idle=0.01, disk_peak={"/": 0.1}), {}, PRICES, T
        ),
    ]
    assert sorted(r.id for r in recs) == [
        "downsize:batch-01", "downsize:web-01", "idle:old-01", "spot:batch-01",
        "volume:batch-01", "volume:old-01",
    ]  # fmt: skip
    downsize = (0.214 - 0.107) * 730
    spot = 0.214 * 730 * 0.6  # larger than the downsize: the one counted for batch-01
    volume = (500 - 90) * 0.088
    old = 0.0912 * 730 + 100 * 0.088  # idle: its whole cost; its volume not again
    assert total_savings(recs) == pytest.approx(downsize + spot + volume + old, abs=0.05)


def _tree(tmp_path: Path, remedies: dict[str, Any] | None = None) -> Path:
    (tmp_path / "costs").mkdir()
    (tmp_path / "costs" / "prices.yml").write_text(
        (REPO_ROOT / "examples" / "costs" / "prices.yml").read_text()
    )
    if remedies:
        (tmp_path / "roles" / "disk").mkdir(parents=True)
        (tmp_path / "roles" / "disk" / "remedies.yml").write_text(yaml.safe_dump(remedies))
    return tmp_path


def test_the_gate_sees_the_price_difference_of_an_edit(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    before = host(terry_instance_type="m5.large", terry_volume_gb=100, terry_volume_type="gp3")
    bigger = host(terry_instance_type="m5.2xlarge", terry_volume_gb=200, terry_volume_type="gp3")
    view = gate_view(
        tree, remedy="inventory-edit", params={}, before={"web-01": before}, after=[bigger]
    )
    assert view["currency"] == "USD" and view["error"] is None
    assert view["monthly_change"] == pytest.approx((0.428 - 0.107) * 730 + 100 * 0.088, abs=0.01)
    assert view["hosts"]["web-01"]["before"] == pytest.approx(0.107 * 730 + 8.8, abs=0.01)
    # unchanged hosts cost nothing, with or without a price list
    same = gate_view(
        tmp_path / "none",
        remedy="disk-usage-high",
        params={},
        before={"web-01": before},
        after=[before],
    )
    assert same == {"monthly_change": 0.0, "currency": None, "hosts": {}, "error": None}
    odd = host(terry_instance_type="z9.giant")
    unknown = gate_view(
        tree, remedy="inventory-edit", params={}, before={"web-01": before}, after=[odd]
    )
    assert (
        unknown["monthly_change"] is None
        and "no price for instance type z9.giant" in unknown["error"]
    )


def test_a_fix_costs_what_its_remedy_declares(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path,
        {
            "remedies": [
                {"name": "grow-volume", "monthly_cost": {"per_gb": "grow_gb"}},
                {"name": "add-replica", "monthly_cost": 12.5},
            ]
        },
    )
    hosts = [
        host(terry_volume_gb=100, terry_volume_type="gp3"),
        host("web-02", terry_volume_type="gp2"),
    ]
    both = {h.name: h for h in hosts}
    grow = gate_view(tree, remedy="grow-volume", params={"grow_gb": 50}, before=both, after=hosts)
    assert grow["monthly_change"] == pytest.approx(50 * 0.088 + 50 * 0.11)
    replica = gate_view(tree, remedy="add-replica", params={}, before=both, after=hosts)
    assert replica["monthly_change"] == 25.0
    bad = gate_view(
        tree, remedy="grow-volume", params={"grow_gb": "lots"}, before=both, after=hosts
    )
    assert bad["monthly_change"] is None and "not a number of GB" in bad["error"]


def test_sparkline() -> None:
    assert sparkline([]) == ""
    assert sparkline([1, 1, 1]) == "▄▄▄"
    assert sparkline([0, 5, 10]) == "▁▅█"
