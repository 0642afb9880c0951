"""The disk remedy's AWS variant grows the filesystem too: a real xfs filesystem on a loop
device (root), mounted as the "instance's" /srv/data and 90% full of files no rule removes;
the EBS volume behind it lives in moto (tests/integration/test_aws_ec2.py's cloud). When the
remedy's ``ec2_vol`` task grows the volume, this test plays EC2's part and grows the loop
device's backing file to the volume's new size (``losetup -c``); the remedy waits for the
host to see it, grows the filesystem online (``xfs_growfs``) and its verify passes.

xfs, not ext4: growing a mounted ext4 filesystem needs CAP_SYS_RESOURCE, which the machines
this runs on do not grant even to root (resize2fs: "Permission denied to resize
filesystem"); xfs_growfs needs CAP_SYS_ADMIN only. The filesystem sits on the whole device,
as on an EBS volume formatted without partitions, so ``growpart`` (for a partitioned disk)
is not exercised here. No lab network: Ansible's local connection on this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.remedies.catalogue import load_catalogue
from terry.remedies.render import render
from tests.conftest import REPO_ROOT
from tests.integration.test_aws_ec2 import Cloud, _inventory, _size, cloud

__all__ = ["cloud"]  # the fixture, shared with the integration tests

NEEDS = ["losetup", "mkfs.xfs", "xfs_growfs", "mount", "umount", "findmnt", "lsblk"]
MIB = 1 << 20


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """A 320 MiB xfs filesystem (xfs' least is 300 MiB) on a loop device, mounted at
    <root>/srv/data."""
    image = tmp_path / "volume.img"
    with image.open("wb") as f:
        f.truncate(320 * MIB)  # sparse
    subprocess.run(["mkfs.xfs", "-q", "-f", str(image)], check=True)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    root = tmp_path / "root"
    data = root / "srv" / "data"
    data.mkdir(parents=True)
    try:
        subprocess.run(["mount", device, str(data)], check=True)
        try:
            yield root, image, device
        finally:
            subprocess.run(["umount", str(data)], check=False)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


def _usage(path: Path) -> float:
    s = os.statvfs(path)
    used = (s.f_blocks - s.f_bfree) * s.f_frsize
    return 100 * used / (used + s.f_bavail * s.f_frsize)


def test_the_aws_variant_grows_the_filesystem_after_the_volume(
    mounted: tuple[Path, Path, str], cloud: Cloud, tmp_path: Path
) -> None:
    root, image, device = mounted
    data = root / "srv" / "data"
    (data / "app").mkdir()
    n = 0
    while _usage(data) < 90:  # allocated, not written: as full, and fast
        with (data / "app" / f"blob-{n}").open("wb") as blob:
            os.posix_fallocate(blob.fileno(), 0, 16 * MIB)
        n += 1
    # this module's cloud alone: one web-aws-01 (moto keeps state across its servers)
    made = cloud.ec2().describe_instances()["Reservations"]
    ids = [i["InstanceId"] for r in made for i in r["Instances"]]
    assert len(ids) == 3 and {cloud.web, cloud.db} <= set(ids), made
    before = _size(cloud)

    # EC2's part: when the volume grows, so does the disk the host sees. A step that fails
    # (the cloud busy, losetup refused) is tried again, and the last failure is reported.
    done = threading.Event()
    trouble: list[str] = []

    def follow() -> None:
        while not done.wait(0.3):
            try:
                size = _size(cloud)
                if size > before:
                    with image.open("r+b") as f:
                        f.truncate(size << 30)  # sparse
                    subprocess.run(["losetup", "-c", device], check=True, capture_output=True)
                    return
            except (OSError, subprocess.CalledProcessError, BotoCoreError, ClientError) as exc:
                said = getattr(exc, "stderr", b"") or b""
                trouble.append(f"{type(exc).__name__}: {exc} {said.decode(errors='replace')}")

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()

    project = tmp_path / "project"
    (project / "inventories").mkdir(parents=True)
    (project / "roles").symlink_to(REPO_ROOT / "roles")
    (project / "inventories" / "aws_ec2.yml").write_text(
        _inventory(
            cloud,
            ansible_connection="'local'",
            ansible_python_interpreter=repr(sys.executable),
            terry_root=repr(str(root)),
            disk_grow_aws_disk_pattern=repr("^/dev/loop[0-9]+$"),
            disk_grow_aws_wait_seconds="60",
        )
    )
    remedy = load_catalogue(REPO_ROOT / "roles").get("disk-usage-high-aws")
    assert remedy is not None
    params = {p.name: p.default for p in remedy.params}
    params.update(path="/srv/data", threshold=80)
    rendered = render(
        remedy=remedy, proposal_id=9, incident_id=4, hosts=("web-aws-01",), params=params
    )
    for relative, text in (
        (rendered.playbook_path, rendered.playbook),
        (rendered.vars_path, rendered.vars_text),
    ):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)

    def run(name: str, tags: tuple[str, ...] = ()) -> Any:
        return AnsibleRunnerApplier().run(
            RunRequest(
                project_dir=project,
                playbook=rendered.playbook_path,
                private_dir=tmp_path / name,
                inventory=("inventories/aws_ec2.yml",),
                hosts=("web-aws-01",),
                vars_file=rendered.vars_path,
                tags=tags,
                env=dict(cloud.env),
                timeout=180,
            )
        )

    try:
        applied = run("apply")
    finally:
        done.set()
    said = [e.message for e in applied.events if e.status and e.message][-5:]
    assert applied.ok, (said, trouble[-3:])
    ran = {e.task: e.status.value for e in applied.events if e.host and e.status}
    assert ran["Grow the EBS volume"] == "changed"
    assert ran["Grow an xfs filesystem"] == "changed"
    assert _size(cloud) == before + 1
    grown = os.statvfs(data)
    assert grown.f_blocks * grown.f_frsize > 0.9 * ((before + 1) << 30)
    assert _usage(data) < 10
    assert len(list((data / "app").iterdir())) == n  # the data is all there

    verified = run("verify", ("verify",))
    assert verified.ok, [e.message for e in verified.events if e.status and e.message][-5:]
