"""Diagnosis: which remedy fits an incident, on which inventory host, with which parameters.

Reads only. When nothing fits — no remedy, a host that is not in the inventory, a label value
that cannot be valid — the answer is a reason, and the incident is kept for a human.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from terry.inventory import Host, Inventory
from terry.remedies.catalogue import Catalogue, Remedy
from terry.remedies.params import ParamError, resolve_params

__all__ = ["Diagnosis", "NoFix", "diagnose"]


@dataclass(frozen=True)
class Diagnosis:
    remedy: Remedy
    hosts: tuple[Host, ...]
    params: dict[str, Any]


@dataclass(frozen=True)
class NoFix:
    reason: str
    host: str | None = None


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
        return NoFix(f"no remedy in the catalogue matches {alertname[:120]!r}", host=host.name)
    try:
        params = resolve_params(remedy.params, labels, annotations)
    except ParamError as exc:
        return NoFix(f"remedy {remedy.name}: {exc}", host=host.name)
    return Diagnosis(remedy=remedy, hosts=(host,), params=params)
