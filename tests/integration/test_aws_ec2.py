"""Hosts from AWS, against a local AWS API (moto in server mode, on loopback): instances and
volumes made here with boto3, found by Ansible's amazon.aws.aws_ec2 inventory plugin through
Terry's inventory loader (examples/inventories/aws_ec2.yml, pointed at moto), named ``aws``
by ``terry inventory show`` and in the gate's input, diagnosed to the disk remedy's AWS
variant, and a volume grown by that variant's ``amazon.aws.ec2_vol`` task in a real
ansible-playbook run (ansible-runner, Terry's allow-listed environment plus the AWS
variables a ``runner.env`` would set), checked through the EC2 API.

The instances cannot be reached over SSH (moto makes no machines): the run's inventory
composes ``ansible_connection: local`` and a scratch ``terry_root`` with a quota, as the
example hosts do, so the disk half of the remedy measures a directory, and the filesystem
half (growpart, resize2fs) is switched off with ``disk_grow_aws_filesystem: false``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import yaml
from moto.server import ThreadedMotoServer

from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.diagnosis.rules import Diagnosis, diagnose
from terry.gitops.repo import Repo
from terry.inventory.hosts import load_inventory
from terry.inventory.platform import (
    Platform,
    PlatformCache,
    from_dmi,
    from_variables,
    local_platform,
    probe,
)
from terry.remedies.catalogue import load_catalogue
from terry.remedies.estimate import estimates
from terry.remedies.render import render
from tests.conftest import REPO_ROOT, Cli, alert, config_for, make_cli, payload

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
# Fake credentials (moto accepts any), in a shared credentials file as docs/clouds.md says:
# ansible runs get its path through runner.env, never the keys themselves.
CREDENTIALS = "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n"


@dataclass(frozen=True)
class Cloud:
    url: str
    env: dict[str, str]  # what Terry and ansible need to reach it (no secret in it)
    web: str  # instance ids
    db: str
    data_volume: str  # 8 GiB gp3 at /dev/sdf of web

    def ec2(self) -> Any:
        return boto3.client(
            "ec2",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto keeps its accounts in the process, not in the server: a second module using this
    # fixture would otherwise find the first one's instances too (two "web-aws-01"s, the
    # remedy growing the other one's volume). Its reset API starts each cloud empty.
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
    credentials = tmp_path_factory.mktemp("aws") / "credentials"
    credentials.write_text(CREDENTIALS)
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": url,
    }
    with pytest.MonkeyPatch.context() as env_patch:
        for name, value in env.items():
            env_patch.setenv(name, value)
        ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=url)
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

        def instance(name: str, tags: dict[str, str]) -> str:
            made = ec2.run_instances(
                ImageId=image,
                MinCount=1,
                MaxCount=1,
                InstanceType="t3.small",
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": k, "Value": v}
                            for k, v in {"Name": name, "terry-managed": "true", **tags}.items()
                        ],
                    }
                ],
            )
            return str(made["Instances"][0]["InstanceId"])

        web = instance("web-aws-01", {"terry:environment": "staging", "terry:tenant": "shop"})
        db = instance("db-aws-01", {"terry:environment": "production"})
        instance("stray", {"terry-managed": "false"})  # filtered out by the inventory
        zone = ec2.describe_instances(InstanceIds=[web])["Reservations"][0]["Instances"][0][
            "Placement"
        ]["AvailabilityZone"]
        # From a snapshot: AWS names a volume's SnapshotId ("" when none) and ec2_vol_info
        # reads it, but moto leaves the key out for a volume made from nothing.
        root = ec2.describe_volumes()["Volumes"][0]["VolumeId"]
        snapshot = ec2.create_snapshot(VolumeId=root)["SnapshotId"]
        volume = ec2.create_volume(
            AvailabilityZone=zone, Size=8, VolumeType="gp3", SnapshotId=snapshot
        )["VolumeId"]
        ec2.attach_volume(VolumeId=volume, InstanceId=web, Device="/dev/sdf")
        yield Cloud(url, env, web, db, volume)
    server.stop()


def _inventory(cloud: Cloud, **compose: str) -> str:
    """The shipped example, pointed at moto (and with extra ``compose`` entries)."""
    source = yaml.safe_load((REPO_ROOT / "examples/inventories/aws_ec2.yml").read_text())
    source["endpoint_url"] = cloud.url
    source["compose"] = {**source["compose"], **compose}
    return yaml.safe_dump(source, sort_keys=False)


def _repo_with_cloud(gitops: Path, cloud: Cloud, **compose: str) -> Cli:
    where = gitops / "inventories" / "aws"
    where.mkdir(parents=True)
    (where / "aws_ec2.yml").write_text(_inventory(cloud, **compose))
    config = yaml.safe_load((gitops / "terry.yml").read_text())
    config["inventory"] = [*config["inventory"], "inventories/aws/aws_ec2.yml"]
    # ansible runs get the endpoint, the region and the credentials file's path; no keys
    config.setdefault("runner", {})["env"] = dict(cloud.env)
    (gitops / "terry.yml").write_text(yaml.safe_dump(config))
    Repo(gitops).commit_paths(["terry.yml", "inventories/aws"], "hosts from AWS")
    cli = make_cli(gitops)
    return Cli(cli.repo, {**cli.env, **cloud.env})


def test_the_plugin_finds_the_instances_and_terry_names_their_platform(
    gitops: Path, cloud: Cloud
) -> None:
    cli = _repo_with_cloud(gitops, cloud)
    hosts = {h["name"]: h for h in cli.json("inventory", "list")}
    assert {"web-aws-01", "db-aws-01"} <= set(hosts) and "stray" not in hosts
    web = hosts["web-aws-01"]
    assert (web["environment"], web["tenant"]) == ("staging", "shop")
    assert web["platform"] == {
        "name": "aws",
        "source": "inventory",
        "instance_id": cloud.web,
        "instance_type": "t3.small",
        "region": REGION,
        "availability_zone": web["platform"]["availability_zone"],
    }
    assert web["platform"]["availability_zone"].startswith(REGION)
    assert "env_production" in hosts["db-aws-01"]["groups"]
    # the example hosts (local connection: this machine) are not in AWS
    assert hosts["web-01"]["platform"] is None or hosts["web-01"]["platform"]["name"] != "aws"

    # The example inventory gives the cloud hosts what the roles need; the one problem is
    # that terry init's example fleet sets ansible_connection=local for all hosts, which
    # would make Terry run the instances' fixes on this machine: validate says so.
    checked = cli("inventory", "validate", "--output", "json")
    problems = json.loads(checked.stdout)["problems"]
    assert checked.exit_code == 1 and {(p["host"], p["rule"]) for p in problems} == {
        ("web-aws-01", "connection"),
        ("db-aws-01", "connection"),
    }, problems
    shown = cli("inventory", "show", "db-aws-01")
    assert shown.exit_code == 0, shown.stderr
    assert f"aws (inventory: instance_id={cloud.db}, instance_type=t3.small" in shown.stdout

    # what the gate reads, and what diagnosis makes of a full disk there
    config = config_for(gitops)
    inventory = load_inventory(gitops, list(config.inventory))
    assert inventory.hosts["web-aws-01"].policy_view()["platform"]["name"] == "aws"
    found = diagnose(
        alertname="DiskUsageHigh",
        labels={"host": "web-aws-01", "mountpoint": "/srv/data"},
        annotations={},
        catalogue=load_catalogue(gitops / "roles"),
        inventory=inventory,
        host_labels=config.host_labels,
    )
    assert isinstance(found, Diagnosis)
    assert found.remedy.name == "disk-usage-high-aws" and found.remedy.risk.value == "medium"
    on_metal = diagnose(
        alertname="DiskUsageHigh",
        labels={"host": "web-01", "mountpoint": "/srv/data"},
        annotations={},
        catalogue=load_catalogue(gitops / "roles"),
        inventory=inventory,
        host_labels=config.host_labels,
    )
    assert isinstance(on_metal, Diagnosis) and on_metal.remedy.name == "disk-usage-high"


def _local(root: Path) -> dict[str, str]:
    """``compose`` entries that make the discovered instances reachable: Ansible's local
    connection, a scratch root whose /srv/data has a 20 MiB quota, no filesystem to grow."""
    return {
        "ansible_connection": "'local'",
        "ansible_python_interpreter": repr(sys.executable),
        "terry_root": repr(str(root)),
        "terry_disk_quota_mb": "20",
        "disk_grow_aws_filesystem": "false",
    }


def _fill(root: Path) -> Path:
    """/srv/data under ``root`` 95% full (of the quota) of files no rule removes."""
    data = root / "srv" / "data"
    (data / "app").mkdir(parents=True)
    for n in range(19):
        (data / "app" / f"blob-{n}").write_bytes(os.urandom(1 << 20))
    return data


def _size(cloud: Cloud) -> int:
    volumes = cloud.ec2().describe_volumes(VolumeIds=[cloud.data_volume])["Volumes"]
    return int(volumes[0]["Size"])


def test_a_full_disk_on_an_aws_host_gets_the_variant_and_waits_for_a_person(
    gitops: Path, cloud: Cloud
) -> None:
    """Through the pipeline: alert, diagnosis (the AWS variant), dry run (ansible with the
    AWS settings from runner.env), gate (medium risk: a person)."""
    root = gitops.parent / "web-aws-01"
    _fill(root)
    cli = _repo_with_cloud(gitops, cloud, **_local(root))
    before = _size(cloud)
    body = payload(
        [alert("DiskUsageHigh", fingerprint="aws-disk", host="web-aws-01", mountpoint="/srv/data")]
    )
    [outcome] = cli.json("alert", "ingest", "-", input=body)["proposals"]
    assert outcome["state"] == "awaiting_review", outcome
    assert outcome["decision"] == "review"
    assert any(r.startswith("risk is medium") for r in outcome["reasons"]), outcome["reasons"]

    detail = cli.json("proposals", "show", str(outcome["proposal_id"]))
    assert detail["summary"]["remedy"] == "disk-usage-high-aws"
    [estimate] = detail["check_summary"]["estimates"]
    assert estimate["enough"] is True and estimate["would_free_bytes"] == 0
    assert (
        f"grow volume {cloud.data_volume} from {before} to {before + 1} GiB" in estimate["summary"]
    )
    assert _size(cloud) == before  # a dry run changes nothing


def test_when_cleaning_is_not_enough_the_aws_variant_grows_the_ebs_volume(
    tmp_path: Path, cloud: Cloud
) -> None:
    # An instance whose /srv/data (a 20 MiB quota here) is 95% full of files no rule removes.
    root = tmp_path / "root"
    data = _fill(root)
    project = tmp_path / "project"
    (project / "inventories").mkdir(parents=True)
    (project / "roles").symlink_to(REPO_ROOT / "roles")
    (project / "inventories" / "aws_ec2.yml").write_text(_inventory(cloud, **_local(root)))
    catalogue = load_catalogue(REPO_ROOT / "roles")
    remedy = catalogue.get("disk-usage-high-aws")
    assert remedy is not None

    def run(check: bool, threshold: int) -> Any:  # Terry's ansible-runner wrapper
        params = {p.name: p.default for p in remedy.params}
        params.update(path="/srv/data", threshold=threshold)
        rendered = render(
            remedy=remedy,
            proposal_id=threshold,
            incident_id=3,
            hosts=("web-aws-01",),
            params=params,
        )
        for relative, text in (
            (rendered.playbook_path, rendered.playbook),
            (rendered.vars_path, rendered.vars_text),
        ):
            (project / relative).parent.mkdir(parents=True, exist_ok=True)
            (project / relative).write_text(text)
        return AnsibleRunnerApplier().run(
            RunRequest(
                project_dir=project,
                playbook=rendered.playbook_path,
                private_dir=tmp_path / f"run-{threshold}-{check}",
                inventory=("inventories/aws_ec2.yml",),
                hosts=("web-aws-01",),
                vars_file=rendered.vars_path,
                check=check,
                env=dict(cloud.env),  # what runner.env passes (docs/clouds.md)
                timeout=120,
            )
        )

    before = _size(cloud)

    # At a 99% threshold cleaning is enough (nothing must go): the disk remedy alone, and
    # AWS is not even asked about the volume.
    settled = run(True, 99)
    assert settled.ok, [e.message for e in settled.events if e.status and e.message][-5:]
    [estimate] = estimates(settled.events)
    assert estimate["enough"] is True and "volume" not in estimate["summary"]
    asked = [e.status for e in settled.events if e.task == "Read the volume" and e.status]
    assert [s.value for s in asked] == ["skipped"], asked

    # (The pipeline's test above runs its dry run: it changes nothing.) Cleaning frees
    # nothing, so the volume grows by what gets usage under 70% (80% less 10 of headroom).
    applied = run(False, 80)
    assert applied.ok, [e.message for e in applied.events if e.status and e.message][-5:]
    [estimate] = estimates(applied.events)
    assert estimate["enough"] is True and estimate["would_free_bytes"] == 0
    assert (
        f"grow volume {cloud.data_volume} from {before} to {before + 1} GiB"
        in (estimate["summary"])
    )
    assert (estimate["volume_gib"], estimate["new_volume_gib"]) == (before, before + 1)
    grown = [e for e in applied.events if e.task == "Grow the EBS volume" and e.host]
    assert grown and grown[-1].status is not None and grown[-1].status.value == "changed"
    assert _size(cloud) == before + 1
    assert len(list((data / "app").iterdir())) == 19  # nothing the rules keep was removed


def test_a_probe_names_the_platform_from_the_firmware_and_is_cached(tmp_path: Path) -> None:
    # What /sys/class/dmi/id says on an EC2 (Nitro) instance, an Azure VM, a Dell server, and
    # a container with no DMI data; a label wins over anything the inventory says.
    assert from_dmi({"sys_vendor": "Amazon EC2", "product_name": "t3.small"}).name == "aws"
    assert from_dmi({"sys_vendor": "Xen", "bios_version": "4.11.amazon"}).name == "aws"
    assert from_dmi({"sys_vendor": "Microsoft Corporation"}).name == "azure"
    assert from_dmi({"sys_vendor": "Dell Inc.", "product_name": "PowerEdge R650"}).view() == {
        "name": "bare-metal",
        "source": "probe",
        "sys_vendor": "Dell Inc.",
        "product_name": "PowerEdge R650",
    }
    assert from_dmi({}).name == "unknown"
    assert from_dmi({"sys_vendor": "$(reboot)\x1b[2J"}).details == {}  # not kept: not data
    labelled = from_variables({"terry_platform": "GCP", "instance_id": "i-0ab", "placement": {}})
    assert labelled == Platform("gcp", "label")
    cache = PlatformCache(tmp_path / "platforms.json")
    cache.put("web-09", "10.0.0.9", {"sys_vendor": "Amazon EC2"})
    assert cache.get("web-09", "10.0.0.9") == Platform("aws", "probe")
    assert cache.get("web-09", "10.0.0.10") is None  # moved: probed again
    assert PlatformCache(cache.path, ttl=0).get("web-09", "10.0.0.9") is None


def test_the_probe_asks_the_host_over_its_connection_once(tmp_path: Path) -> None:
    """The probe through ansible (here over the local connection, so the answer is this
    machine's own DMI strings), then from the cache; a host that cannot be reached has no
    platform rather than a guessed one."""
    (tmp_path / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "here": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                        },
                        "gone": {"ansible_host": "127.0.0.1", "ansible_port": 1},
                    }
                }
            }
        )
    )
    cache = PlatformCache(tmp_path / "state" / "platforms.json")

    def ask(host: str) -> Platform | None:
        return probe(
            tree=tmp_path,
            inventory=["hosts.yml"],
            host=host,
            address=None,
            cache=cache,
            state_dir=tmp_path / "state",
            timeout=60,
        )

    found = ask("here")
    assert found == local_platform() and found is not None and found.source == "probe"
    assert json.loads(cache.path.read_text())["here"]["address"] is None
    cache.put("here", None, {"sys_vendor": "Amazon EC2"})
    assert ask("here") == Platform("aws", "probe")  # the cache answers, no second probe
    assert ask("gone") is None
    assert "gone" not in json.loads(cache.path.read_text())
    assert not list((tmp_path / "state").glob("platform-probe-*"))  # work dirs cleaned up
