"""The gate's ``cost`` input: how much a proposal changes the monthly bill.

- An inventory edit: each host's monthly price as the edit leaves it (type, volume size and
  type) minus as main has it, from main's price list. Nothing billed changes: 0, and no
  price list is needed.
- A fix: 0, unless its remedy declares a cost in ``roles/<role>/remedies.yml``::

      monthly_cost: 5            # per host, in the price list's currency
      monthly_cost: {per_gb: grow_gb}   # the parameter grow_gb (GB added per host), at the
                                        # host's volume price per GB-month

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


def _fix_cost(
    declared: Any, hosts: Sequence[Host], params: Mapping[str, Any], book: PriceBook | None
) -> tuple[float | None, str | None]:
    if (each := _number(declared)) is not None:
        return each * len(hosts), None
    if not isinstance(declared, Mapping) or not isinstance(declared.get("per_gb"), str):
        return None, f"monthly_cost {str(declared)[:60]!r}: a number, or {{per_gb: PARAM}}"
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
) -> dict[str, Any]:
    """``{"monthly_change", "currency", "hosts": {name: {"before", "after"}}, "error"}`` for
    a proposal on ``after`` (the hosts as it leaves them; ``before``: main's hosts)."""
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
    if not changed and declared is None:
        return view
    if book is None and changed:
        return {**view, "monthly_change": None, "error": book_error}
    total = 0.0
    for host, was in changed:
        assert book is not None
        new, why = host_monthly(footprint(host), book)
        old, why_old = host_monthly(footprint(was), book) if was else (0.0, None)
        if new is None or old is None:
            return {**view, "monthly_change": None, "error": why or why_old}
        view["hosts"][host.name] = {"before": round(old, 2), "after": round(new, 2)}
        total += new - old
    if declared is not None:
        extra, why = _fix_cost(declared, after, params, book)
        if extra is None:
            return {**view, "monthly_change": None, "error": why}
        total += extra
    view["monthly_change"] = round(total, 2)
    return view
