"""The faults Terry can inject, each with its reverse, and their parameters checked.

A fault's parameters come from an experiment file and reach a host as arguments of the
``chaos`` role's script, so each is checked here against a narrow pattern: numbers are
numbers, names are names, paths are absolute paths of plain characters. Nothing that
Ansible or a shell could read as code gets through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from terry.errors import InputError

__all__ = ["FAULTS", "Fault", "FaultSpec", "check_params"]


class Fault(StrEnum):
    DISK_FILL = "disk-fill"
    SERVICE_STOP = "service-stop"
    SERVICE_KILL = "service-kill"
    CONFIG_INVALID = "config-invalid"
    CPU_STRESS = "cpu-stress"
    MEMORY_PRESSURE = "memory-pressure"
    NETWORK_LATENCY = "network-latency"
    NETWORK_LOSS = "network-loss"
    DELETED_FILE_OPEN = "deleted-file-open"


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_PATH = re.compile(r"^/[A-Za-z0-9_./-]{0,250}$")
_ADDRESS = re.compile(r"^[0-9A-Za-z.:-]{1,64}$")


@dataclass(frozen=True)
class Param:
    kind: str  # number | name | path | address
    required: bool = False
    low: float = 0
    high: float = 1e9


@dataclass(frozen=True)
class FaultSpec:
    fault: Fault
    what: str  # what it does, for `terry chaos list` and the docs
    params: dict[str, Param]


_SECONDS = Param("number", low=1, high=86_400)
FAULTS: dict[Fault, FaultSpec] = {
    s.fault: s
    for s in (
        FaultSpec(
            Fault.DISK_FILL,
            "fill the filesystem of path with rotated logs up to percent; remove deletes them",
            {
                "path": Param("path", required=True),
                "percent": Param("number", True, 1, 100),
                # the symptom's threshold (the alert's): at or above it the fault still shows
                "threshold": Param("number", low=1, high=100),
            },
        ),
        FaultSpec(
            Fault.SERVICE_STOP,
            "stop a service; remove starts it",
            {
                "service": Param("name", True),
                "port": Param("number", high=65535),
                "bind": Param("address"),
            },
        ),
        FaultSpec(
            Fault.SERVICE_KILL,
            "kill a service (SIGKILL); remove starts it",
            {
                "service": Param("name", True),
                "port": Param("number", high=65535),
                "bind": Param("address"),
            },
        ),
        FaultSpec(
            Fault.CONFIG_INVALID,
            "append an invalid line to a config file; remove restores the saved copy",
            {"file": Param("path", True)},
        ),
        FaultSpec(
            Fault.CPU_STRESS,
            "busy-loop workers for seconds; remove kills them",
            {"workers": Param("number", low=1, high=64), "seconds": _SECONDS},
        ),
        FaultSpec(
            Fault.MEMORY_PRESSURE,
            "a process holding mib MiB for seconds; remove kills it",
            {"mib": Param("number", low=1, high=65_536), "seconds": _SECONDS},
        ),
        FaultSpec(
            Fault.NETWORK_LATENCY,
            "tc netem delay on an interface; remove deletes the qdisc",
            {"interface": Param("name", True), "delay_ms": Param("number", low=1, high=60_000)},
        ),
        FaultSpec(
            Fault.NETWORK_LOSS,
            "tc netem loss on an interface; remove deletes the qdisc",
            {"interface": Param("name", True), "loss_percent": Param("number", low=0.1, high=100)},
        ),
        FaultSpec(
            Fault.DELETED_FILE_OPEN,
            "a process holding a deleted file of mib MiB open; remove kills it",
            {
                "file": Param("path"),
                "mib": Param("number", low=1, high=65_536),
                "seconds": _SECONDS,
            },
        ),
    )
}


def fault_named(name: str) -> Fault:
    try:
        return Fault(name)
    except ValueError:
        known = ", ".join(f.value for f in Fault)
        raise InputError(f"unknown fault {name!r} (known: {known})") from None


def check_params(fault: Fault, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` for ``fault``, each checked against its pattern; an InputError names the
    first one that is missing, unknown or out of bounds."""
    spec = FAULTS[fault]
    if unknown := sorted(set(params) - set(spec.params)):
        raise InputError(
            f"{fault}: unknown parameter {unknown[0]!r} (known: {', '.join(spec.params)})"
        )
    out: dict[str, Any] = {}
    for name, param in spec.params.items():
        if name not in params:
            if param.required:
                raise InputError(f"{fault}: parameter {name!r} is required")
            continue
        value = params[name]
        if param.kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"{fault}: {name} must be a number, not {value!r}")
            if not param.low <= value <= param.high:
                raise InputError(
                    f"{fault}: {name} must be between {param.low:g} and {param.high:g}"
                )
        else:
            pattern = {"name": _NAME, "path": _PATH, "address": _ADDRESS}[param.kind]
            if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value:
                raise InputError(f"{fault}: {name} is not a plain {param.kind}: {value!r}")
        out[name] = value
    return out
