"""Where a host runs: AWS, Azure, GCP, Kubernetes, another hypervisor, or bare metal.

A remedy may have a variant for a platform (the disk remedy grows an EBS volume on AWS),
and policies may decide on it, so each inventory host names its platform. It is read, in
this order, from:

1. the host variable ``terry_platform`` (a label an operator writes: always wins);
2. the variables a cloud inventory plugin gives its hosts: ``amazon.aws.aws_ec2``
   (``instance_id`` and ``placement``), ``azure.azcollection.azure_rm`` (an ``id`` under
   ``/subscriptions/`` and ``resource_group``), ``google.cloud.gcp_compute`` (a compute
   ``selfLink``); a target Argo CD applies is ``kubernetes``;
3. a probe over SSH, on request (``terry inventory show``): the firmware's DMI strings
   (``/sys/class/dmi/id/sys_vendor``, ``product_name``, ``bios_version``) in one ``raw``
   round trip, cached per host and address in ``.terry/platforms.json`` for a day; a host
   on Ansible's local connection is this machine, whose files are read directly.

Reads only: nothing here changes a host. Values from plugins and probes are data, bounded
and checked before they are kept.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "PROBE_TASK",
    "Platform",
    "PlatformCache",
    "from_dmi",
    "from_variables",
    "local_platform",
    "probe",
]

# Platform names are short slugs (a label may say anything; we keep what a policy can match).
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_DETAIL = re.compile(r"^[A-Za-z0-9 ._:/@+()-]{1,128}$")
PROBE_TASK = "Terry platform probe"
CACHE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Platform:
    """A host's platform: its ``name`` (``aws``, ``azure``, ``gcp``, ``kubernetes``,
    ``kvm``, ``vmware``, ``bare-metal``...), where Terry learnt it (``label``,
    ``inventory``, ``probe``) and what the source said of it (region, instance...)."""

    name: str
    source: str
    details: dict[str, str] = field(default_factory=dict, compare=False)

    def view(self) -> dict[str, Any]:
        """The platform as policies and JSON output read it."""
        return {"name": self.name, "source": self.source, **self.details}

    def describe(self) -> str:
        """One line for people: ``aws (inventory: region=eu-west-1, ...)``."""
        said = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return f"{self.name} ({self.source}{': ' + said if said else ''})"


def _detail(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if _DETAIL.fullmatch(text) else None


def _details(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    return {k: d for k, v in pairs if (d := _detail(v)) is not None}


def from_variables(raw: Mapping[str, Any]) -> Platform | None:
    """The platform a host's inventory variables name, or None when they name none."""
    label = raw.get("terry_platform")
    if isinstance(label, str) and _NAME.fullmatch(label.strip().lower()):
        return Platform(label.strip().lower(), "label")
    placement = raw.get("placement")
    instance = raw.get("instance_id")
    if isinstance(instance, str) and instance.startswith("i-") and isinstance(placement, dict):
        return Platform(
            "aws",
            "inventory",
            _details(
                [
                    ("instance_id", instance),
                    ("instance_type", raw.get("instance_type")),
                    ("region", placement.get("region")),
                    ("availability_zone", placement.get("availability_zone")),
                ]
            ),
        )
    resource = raw.get("id")
    if (
        isinstance(resource, str)
        and resource.lower().startswith("/subscriptions/")
        and raw.get("resource_group")
    ):
        return Platform(
            "azure",
            "inventory",
            _details(
                [("resource_group", raw.get("resource_group")), ("location", raw.get("location"))]
            ),
        )
    link = raw.get("selfLink")
    if isinstance(link, str) and "compute.googleapis.com" in link:
        zone = raw.get("zone")
        return Platform(
            "gcp",
            "inventory",
            _details(
                [
                    ("project", raw.get("project")),
                    ("zone", zone.rsplit("/", 1)[-1] if isinstance(zone, str) else None),
                    ("machine_type", raw.get("machineType")),
                ]
            ),
        )
    if raw.get("terry_applier") == "argocd":
        return Platform("kubernetes", "inventory")
    return None


# What the firmware says, matched in order (first hit wins): (DMI field, pattern, platform).
_DMI_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("sys_vendor", re.compile(r"^Amazon EC2$", re.I), "aws"),
    ("bios_version", re.compile(r"amazon", re.I), "aws"),  # Xen-based EC2 instances
    ("sys_vendor", re.compile(r"^Google", re.I), "gcp"),
    ("product_name", re.compile(r"^Google Compute Engine", re.I), "gcp"),
    ("sys_vendor", re.compile(r"^Microsoft Corporation$", re.I), "azure"),
    ("product_name", re.compile(r"^OpenStack", re.I), "openstack"),
    ("sys_vendor", re.compile(r"^DigitalOcean", re.I), "digitalocean"),
    ("sys_vendor", re.compile(r"^Hetzner", re.I), "hetzner"),
    ("sys_vendor", re.compile(r"^VMware", re.I), "vmware"),
    ("sys_vendor", re.compile(r"^innotek", re.I), "virtualbox"),
    ("sys_vendor", re.compile(r"^(QEMU|Red Hat)", re.I), "kvm"),
    ("product_name", re.compile(r"^(KVM|Standard PC)", re.I), "kvm"),
    ("sys_vendor", re.compile(r"^Xen", re.I), "xen"),
)
_DMI_FIELDS = ("sys_vendor", "product_name", "bios_version")


def from_dmi(dmi: Mapping[str, str]) -> Platform:
    """The platform the firmware's DMI strings name; ``bare-metal`` for a vendor no rule
    knows, ``unknown`` when the host has no DMI data (a container, most ARM boards)."""
    details = _details((k, dmi.get(k)) for k in _DMI_FIELDS)
    for name, pattern, platform in _DMI_RULES:
        if pattern.search(details.get(name, "")):
            return Platform(platform, "probe", details)
    if details.get("sys_vendor"):
        return Platform("bare-metal", "probe", details)
    return Platform("unknown", "probe", details)


def _parse_probe(stdout: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in _DMI_FIELDS:
            found[key.strip()] = value.strip()
    return found


# One round trip, no module to build (``raw``), nothing changed. A constant: no host or
# label text is ever part of it.
_PROBE_COMMAND = (
    "for f in " + " ".join(_DMI_FIELDS) + "; do printf '%s=' $f; "
    "cat /sys/class/dmi/id/$f 2>/dev/null || echo; done"
)


def local_platform(dmi_dir: Path = Path("/sys/class/dmi/id")) -> Platform:
    """This machine's platform, read from its own DMI files: what a probe of a host that
    Ansible reaches with its local connection would say, without starting Ansible."""
    found: dict[str, str] = {}
    for name in _DMI_FIELDS:
        try:
            found[name] = (dmi_dir / name).read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
    return from_dmi(found)


class PlatformCache:
    """Probe answers per host, kept in one JSON file; an entry is good for ``CACHE_SECONDS``
    and only for the address it was probed at (a host moved is probed again)."""

    def __init__(self, path: Path, *, ttl: float = CACHE_SECONDS) -> None:
        self.path = path
        self.ttl = ttl

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, host: str, address: str | None) -> Platform | None:
        entry = self._read().get(host)
        if not isinstance(entry, dict) or entry.get("address") != address:
            return None
        if not isinstance(entry.get("at"), (int, float)) or time.time() - entry["at"] > self.ttl:
            return None
        dmi = entry.get("dmi")
        return from_dmi(dmi) if isinstance(dmi, dict) else None

    def put(self, host: str, address: str | None, dmi: Mapping[str, str]) -> None:
        data = self._read()
        data[host] = {"address": address, "at": time.time(), "dmi": dict(dmi)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        temporary.replace(self.path)


def _probe_play() -> str:
    play = {
        "name": "Terry platform probe",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": PROBE_TASK,
                "ansible.builtin.raw": _PROBE_COMMAND,
                "check_mode": False,
                "changed_when": False,
            }
        ],
    }
    return "# Written by Terry for this probe only.\n" + yaml.safe_dump([play], sort_keys=False)


def probe(
    *,
    tree: Path,
    inventory: list[str],
    host: str,
    address: str | None,
    cache: PlatformCache,
    state_dir: Path,
    env: dict[str, str] | None = None,
    withhold: tuple[str, ...] = (),
    timeout: int = 60,
) -> Platform | None:
    """Ask ``host`` (over its inventory connection) what its firmware says; a cached answer
    when there is one. None when the host did not answer (unreachable, no shell)."""
    cached = cache.get(host, address)
    if cached is not None:
        return cached
    # ansible-runner, with Terry's allow-listed environment: only when a probe is needed.
    from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
    from terry.appliers.base import EventStatus

    state_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="platform-probe-", dir=state_dir) as work:
        private = Path(work)
        play = private / "platform-probe.yml"
        play.write_text(_probe_play(), encoding="utf-8")
        result = AnsibleRunnerApplier().run(
            RunRequest(
                project_dir=tree,
                playbook=str(play),
                private_dir=private / "run",
                inventory=tuple(inventory),
                hosts=(host,),
                forks=1,
                timeout=timeout,
                env=dict(env or {}),
                withhold=withhold,
            )
        )
    for event in result.events:
        if event.host == host and event.task == PROBE_TASK and event.status is EventStatus.OK:
            res = (event.raw.get("event_data") or {}).get("res") or {}
            dmi = _parse_probe(str(res.get("stdout") or ""))
            cache.put(host, address, dmi)
            return from_dmi(dmi)
    return None
