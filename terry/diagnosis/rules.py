"""Diagnosis: which remedy fits an incident, on which inventory host, with which parameters.

Reads only. When nothing fits — no remedy, a host that is not in the inventory, a label value
that cannot be valid — the answer is a reason, and the incident is kept for a human.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from terry.appliers.base import carries
from terry.inventory.hosts import Host, Inventory
from terry.remedies.catalogue import Catalogue, Remedy
from terry.remedies.params import ParamError, resolve_params

__all__ = ["Diagnosis", "NoFix", "diagnose"]

# What an inventory target applied by Argo CD must say: its application, and the manifest
# (a path in the repository) a manifest remedy edits.
_ARGOCD_VARS = ("terry_argocd_app", "terry_manifest")


@dataclass(frozen=True)
class Diagnosis:
    remedy: Remedy
    hosts: tuple[Host, ...]
    params: dict[str, Any]


@dataclass(frozen=True)
class NoFix:
    reason: str
    host: str | None = None
    # The host is known but no remedy matches the alert: what Claude may be asked about.
    unmatched: bool = False


def diagnose(
    *,
    alertname: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    catalogue: Catalogue,
    inventory: Inventory,
    host_labels: list[str],
) -> Diagnosis | NoFix:
    named = next((labels[k] for k in host_labels if labels.get(k)), None)
    if named is None:
        return NoFix(f"no host label ({', '.join(host_labels)}) on the alert")
    host = inventory.find(named)
    if host is None:
        return NoFix(f"host {named[:120]!r} is not in the inventory", host=None)
    remedy = catalogue.match(alertname, labels)
    if remedy is None:
        return NoFix(
            f"no remedy in the catalogue matches {alertname[:120]!r}",
            host=host.name,
            unmatched=True,
        )
    # Its variant for the host's platform, when the catalogue has one (the disk remedy
    # grows an EBS volume on AWS): terry.remedies.catalogue.
    remedy = catalogue.for_platform(remedy, host.platform.name if host.platform else None)
    if not carries(host.applier, remedy.applier):
        return NoFix(
            f"remedy {remedy.name} is applied by {remedy.applier}, but host {host.name} is "
            f"applied by {host.applier[:40]} (terry_applier)",
            host=host.name,
        )
    if host.applier == "argocd":
        missing = [v for v in _ARGOCD_VARS if not isinstance(host.variables.get(v), str)]
        if missing:
            return NoFix(f"Argo CD target {host.name} lacks {', '.join(missing)}", host=host.name)
    try:
        params = resolve_params(remedy.params, labels, annotations)
    except ParamError as exc:
        return NoFix(f"remedy {remedy.name}: {exc}", host=host.name)
    return Diagnosis(remedy=remedy, hosts=(host,), params=params)
