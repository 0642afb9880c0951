"""The gate's ``cost`` input: how much a proposal changes the monthly bill.

- An inventory edit: each host's monthly price as the edit leaves it (type, volume size and
  type) minus as main has it, from main's price list. Nothing billed changes: 0, and no
  price list is needed.
- A fix: 0, unless its remedy declares a cost in ``roles/<role>/remedies.yml``::

      monthly_cost: 5            # per host, in the price list's currency
      monthly_cost: {per_gb: grow_gb}   # the parameter grow_gb (GB added per host), at the
                                        # host's volume price per GB-month
      monthly_cost:                     # what the dry run says it grows (the EBS variant):
        per_gb_grown: {from: volume_gib, to: new_volume_gib}   # figures of terry_estimate
        volume_type: gp3                # when the host has no terry_volume_type

  A size the dry run settles (``terry_estimate``, terry.remedies.estimate) is priced per host:
  ``to - from`` GB at the volume price. A host whose estimate has neither figure grows
  nothing (cleaning was enough); a host with no estimate at all is unknown, not free. AWS
  bills EBS per GiB-month: a GiB is priced as the list's GB.

A change Terry cannot price (a type or volume the list does not have, no price list) is
``monthly_change: null`` with the reason in ``error``: policies/cost.rego sends it to review.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from terry.cost.hosts import Footprint, footprint
from terry.cost.prices import PriceBook, load_prices
from terry.cost.workloads import workload_monthly, workload_of
from terry.errors import ConfigError
from terry.inventory.hosts import Host

__all__ = ["declared_cost", "gate_view", "host_monthly"]


def host_monthly(f: Footprint, prices: PriceBook) -> tuple[float | None, str | None]:
    """A footprint's monthly price, or None and what has no price."""
    total = 0.0
    if f.instance_type is not None:
        monthly = prices.monthly(f.instance_type)
        if monthly is None:
            return None, f"no price for instance type {f.instance_type} ({prices.source})"
        total += monthly
    if f.volume_gb is not None:
        volume = prices.volume_monthly(f.volume_type, f.volume_gb)
        if volume is None:
            return None, f"no price for volume type {f.volume_type} ({prices.source})"
        total += volume
    return total, None


def declared_cost(tree: Path, roles_path: str, remedy: str) -> Any:
    """The ``monthly_cost`` a remedy declares in main's catalogue, or None."""
    for path in sorted((tree / roles_path).glob("*/remedies.yml")):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        entries = document.get("remedies") if isinstance(document, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict) and entry.get("name") == remedy:
                return entry.get("monthly_cost")
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _grown_cost(
    declared: Mapping[str, Any],
    hosts: Sequence[Host],
    book: PriceBook | None,
    estimates: Sequence[Mapping[str, Any]] | None,
) -> tuple[float | None, str | None]:
    """``{per_gb_grown: {from, to}}``: the GB each host's dry run says it adds, priced."""
    grown = declared["per_gb_grown"]
    start, end = grown.get("from"), grown.get("to")
    if not isinstance(start, str) or not isinstance(end, str):
        return None, "monthly_cost per_gb_grown: {from: FIGURE, to: FIGURE}"
    by_host = {str(e.get("host")): e for e in estimates or () if isinstance(e, Mapping)}
    fallback = declared.get("volume_type")
    total = 0.0
    for host in hosts:
        estimate = by_host.get(host.name)
        if estimate is None:
            return None, f"monthly_cost per GB grown: the dry run gave no estimate for {host.name}"
        was, will = _number(estimate.get(start)), _number(estimate.get(end))
        if was is None and will is None:
            continue  # nothing to grow on this host (cleaning was enough)
        if was is None or will is None:
            return None, f"monthly_cost per GB grown: {host.name}'s estimate lacks {start}/{end}"
        if will <= was:
            continue  # at its size already (max_size_gib): nothing billed changes
        if book is None:  # a growth needs prices; a clean-only fix does not
            return None, "monthly_cost per GB grown: no price list"
        kind = footprint(host).volume_type or (fallback if isinstance(fallback, str) else None)
        price = book.volume(kind)
        if price is None:
            return None, f"monthly_cost per GB grown: no volume price for {host.name} ({kind})"
        total += (will - was) * price.gb_month
    return total, None


def _fix_cost(
    declared: Any,
    hosts: Sequence[Host],
    params: Mapping[str, Any],
    book: PriceBook | None,
    estimates: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[float | None, str | None]:
    if (each := _number(declared)) is not None:
        return each * len(hosts), None
    if isinstance(declared, Mapping) and isinstance(declared.get("per_gb_grown"), Mapping):
        return _grown_cost(declared, hosts, book, estimates)
    if not isinstance(declared, Mapping) or not isinstance(declared.get("per_gb"), str):
        return (
            None,
            f"monthly_cost {str(declared)[:60]!r}: a number, {{per_gb: PARAM}} or "
            "{per_gb_grown: {from: FIGURE, to: FIGURE}}",
        )
    gb = _number(params.get(declared["per_gb"]))
    if gb is None:
        return None, f"monthly_cost: parameter {declared['per_gb']} is not a number of GB"
    if book is None:
        return None, "monthly_cost per GB: no price list"
    total = 0.0
    for host in hosts:
        price = book.volume(footprint(host).volume_type)
        if price is None:
            return None, f"monthly_cost per GB: no volume price for {host.name}"
        total += gb * price.gb_month
    return total, None


def _manifests_cost(
    manifests: Sequence[tuple[Host, str | None, str | None]], book: PriceBook | None
) -> tuple[dict[str, dict[str, float]] | None, str | None]:
    """Each edited workload's requests priced before and after (``kubernetes`` rates); none
    without the rates: a price list that prices no workload leaves manifests out."""
    if book is None or book.kubernetes is None:
        return {}, None
    out: dict[str, dict[str, float]] = {}
    for host, before, after in manifests:
        was = workload_of(host, before) if before is not None else None
        will = workload_of(host, after) if after is not None else None
        if was is None and will is None:
            continue  # no Deployment Terry reads: nothing it prices
        old = workload_monthly(was, book) if was is not None else 0.0
        new = workload_monthly(will, book) if will is not None else 0.0
        if old is None or new is None:
            return None, f"no kubernetes price for {host.name} ({book.source})"
        if round(old, 2) != round(new, 2):
            out[host.name] = {"before": round(old, 2), "after": round(new, 2)}
    return out, None


def gate_view(
    tree: Path,
    *,
    remedy: str,
    params: Mapping[str, Any],
    before: Mapping[str, Host],
    after: Sequence[Host],
    prices_path: str = "costs/prices.yml",
    pricing: str = "file",
    roles_path: str = "roles",
    estimates: Sequence[Mapping[str, Any]] | None = None,
    manifests: Sequence[tuple[Host, str | None, str | None]] = (),
) -> dict[str, Any]:
    """``{"monthly_change", "currency", "hosts": {name: {"before", "after"}}, "error"}`` for
    a proposal on ``after`` (the hosts as it leaves them; ``before``: main's hosts).
    ``estimates``: what its dry run estimated per host (``check_summary["estimates"]``);
    ``manifests``: each Argo CD target it edits, with its manifest on main and as edited."""
    book: PriceBook | None = None
    book_error: str | None = None
    try:
        book = load_prices(tree, prices_path, pricing)
    except ConfigError as exc:
        book_error = str(exc)
    view: dict[str, Any] = {
        "monthly_change": 0.0,
        "currency": book.currency if book else None,
        "hosts": {},
        "error": None,
    }
    changed = [
        (host, before.get(host.name))
        for host in after
        if footprint(host) != (footprint(before[host.name]) if host.name in before else None)
    ]
    declared = declared_cost(tree, roles_path, remedy)
    workloads, why = _manifests_cost(manifests, book)
    if workloads is None:
        return {**view, "monthly_change": None, "error": why}
    view["hosts"].update(workloads)
    if not changed and declared is None:
        if workloads:
            view["monthly_change"] = round(
                sum(h["after"] - h["before"] for h in workloads.values()), 2
            )
        return view
    if book is None and changed:
        return {**view, "monthly_change": None, "error": book_error}
    total = sum(h["after"] - h["before"] for h in workloads.values())
    for host, was in changed:
        assert book is not None
        new, why = host_monthly(footprint(host), book)
        old, why_old = host_monthly(footprint(was), book) if was else (0.0, None)
        if new is None or old is None:
            return {**view, "monthly_change": None, "error": why or why_old}
        view["hosts"][host.name] = {"before": round(old, 2), "after": round(new, 2)}
        total += new - old
    if declared is not None:
        extra, why = _fix_cost(declared, after, params, book, estimates)
        if extra is None:
            return {**view, "monthly_change": None, "error": why}
        total += extra
    view["monthly_change"] = round(total, 2)
    return view
