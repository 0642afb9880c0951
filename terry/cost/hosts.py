"""What a host runs on, as the inventory says: its instance type and its volume.

- Instance type: the host variable ``terry_instance_type`` (an operator's label: wins), else
  what a cloud inventory plugin gave (``instance_type`` of ``amazon.aws.aws_ec2``, read into
  the host's platform by ``terry.inventory.platform``; ``machine_type`` of GCP), else the
  label ``instance_type`` in ``terry_labels``.
- Volume: ``terry_volume_gb`` and ``terry_volume_type`` (``gp3``), on ``terry_volume_mountpoint``
  (default ``/``): the filesystem whose use says whether the volume is over-sized.
- Spot: ``terry_instance_lifecycle: spot`` marks a host that already runs on spot.

Values are data: a type is kept only when it looks like a type name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from terry.inventory.hosts import Host

__all__ = [
    "INSTANCE_VAR",
    "VOLUME_GB_VAR",
    "VOLUME_TYPE_VAR",
    "Footprint",
    "footprint",
]

INSTANCE_VAR = "terry_instance_type"
VOLUME_GB_VAR = "terry_volume_gb"
VOLUME_TYPE_VAR = "terry_volume_type"
MOUNTPOINT_VAR = "terry_volume_mountpoint"
LIFECYCLE_VAR = "terry_instance_lifecycle"
_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MOUNT = re.compile(r"^/[^\x00-\x1f]{0,255}$")


@dataclass(frozen=True)
class Footprint:
    """What one host is billed for."""

    host: str
    instance_type: str | None
    volume_type: str | None
    volume_gb: float | None
    mountpoint: str = "/"
    spot: bool = False


def _type(value: Any) -> str | None:
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    return text if _TYPE.fullmatch(text) else None


def _gb(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        gb = float(value)
    except (TypeError, ValueError):
        return None
    return gb if 0 < gb < 1e7 else None


def footprint(host: Host) -> Footprint:
    variables = host.variables
    details = host.platform.details if host.platform is not None else {}
    instance = (
        _type(variables.get(INSTANCE_VAR))
        or _type(details.get("instance_type"))
        # GCP names it by URL: .../zones/europe-west1-b/machineTypes/e2-medium
        or _type(str(details.get("machine_type") or "").rsplit("/", 1)[-1])
        or _type(host.labels.get("instance_type"))
    )
    mount = variables.get(MOUNTPOINT_VAR)
    return Footprint(
        host=host.name,
        instance_type=instance,
        volume_type=_type(variables.get(VOLUME_TYPE_VAR)),
        volume_gb=_gb(variables.get(VOLUME_GB_VAR)),
        mountpoint=mount if isinstance(mount, str) and _MOUNT.fullmatch(mount) else "/",
        spot=str(variables.get(LIFECYCLE_VAR, "")).lower() == "spot",
    )
