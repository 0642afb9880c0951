"""How to reach a lab host over SSH the way Ansible does (same key, same options)."""

from __future__ import annotations

import shlex

from terry.lab.inventory import SSH_COMMON_ARGS
from terry.lab.model import LabState

__all__ = ["ssh_argv"]


def ssh_argv(state: LabState, host: str) -> list[str]:
    """``ssh`` argv up to and including the destination; append the remote command."""
    target = state.host(host)
    return [
        "ssh",
        "-i",
        str(state.ssh_key),
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        *shlex.split(SSH_COMMON_ARGS),
        f"root@{target.address}",
    ]
