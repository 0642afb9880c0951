"""Prices as data: instance types per hour and volume types per GB-month, in one currency.

The price list lives in the GitOps repository (``costs/prices.yml``, ``cost.prices`` in
terry.yml), so a price change is a reviewed commit like any other::

    currency: USD
    hours_per_month: 730          # optional; AWS bills a month as 730 hours
    spot_discount: 0.6            # optional; what spot saves on an instance's price
    instances:
      m5.large:  {hourly: 0.096, vcpu: 2, memory_gb: 8}
      m5.xlarge: {hourly: 0.192, vcpu: 4, memory_gb: 16}
      t3.small: 0.0208            # a bare number is the hourly price
    volumes:
      gp3: {gb_month: 0.08}
      gp2: 0.10                   # a bare number is the price per GB-month
    kubernetes:                   # optional; what a pod's requests cost (terry.cost.workloads)
      vcpu_hourly: 0.04048        # per requested vCPU (core) an hour
      memory_gb_hourly: 0.004445  # per requested GiB of memory an hour

A type's *family* is its name before the first dot (``m5`` of ``m5.large``) unless it says
``family:``; the next smaller type is the dearest type of the same family that is cheaper.

Where prices come from is one small interface (``PriceSource``): the file, or the AWS
pricing API when configured (``cost.pricing: aws``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from terry.errors import ConfigError

__all__ = [
    "HOURS_PER_MONTH",
    "AwsPricing",
    "FilePrices",
    "InstancePrice",
    "KubernetesPrice",
    "PriceBook",
    "PriceSource",
    "VolumePrice",
    "load_prices",
    "parse_prices",
    "price_source",
]

HOURS_PER_MONTH = 730.0
_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class InstancePrice:
    name: str
    hourly: float
    family: str
    vcpu: float | None = None
    memory_gb: float | None = None


@dataclass(frozen=True)
class VolumePrice:
    name: str
    gb_month: float


@dataclass(frozen=True)
class KubernetesPrice:
    """What requested capacity costs: Kubernetes schedules (and a cluster is sized, or
    Fargate and Autopilot bill) by requests, not by use."""

    vcpu_hourly: float
    memory_gb_hourly: float  # per GiB

    def monthly(self, cores: float, memory_bytes: float, hours: float) -> float:
        return (cores * self.vcpu_hourly + memory_bytes / 2**30 * self.memory_gb_hourly) * hours


@dataclass(frozen=True)
class PriceBook:
    currency: str
    instances: Mapping[str, InstancePrice] = field(default_factory=dict)
    volumes: Mapping[str, VolumePrice] = field(default_factory=dict)
    hours_per_month: float = HOURS_PER_MONTH
    spot_discount: float = 0.6
    source: str = "costs/prices.yml"
    kubernetes: KubernetesPrice | None = None  # None: workloads are not priced

    def instance(self, name: str | None) -> InstancePrice | None:
        return self.instances.get(name) if name else None

    def volume(self, name: str | None) -> VolumePrice | None:
        return self.volumes.get(name) if name else None

    def monthly(self, instance: str | None) -> float | None:
        """An instance type's price for a month, or None when the list has no price."""
        found = self.instance(instance)
        return None if found is None else found.hourly * self.hours_per_month

    def volume_monthly(self, volume: str | None, gb: float | None) -> float | None:
        found = self.volume(volume)
        return None if found is None or gb is None else found.gb_month * gb

    def smaller(self, name: str) -> InstancePrice | None:
        """The next smaller type of the same family: the dearest one that costs less."""
        current = self.instance(name)
        if current is None:
            return None
        cheaper = [
            p
            for p in self.instances.values()
            if p.family == current.family and p.hourly < current.hourly
        ]
        return max(cheaper, key=lambda p: (p.hourly, p.name), default=None)


class PriceSource(Protocol):
    """Where a price book comes from."""

    def book(self, tree: Path) -> PriceBook: ...


_MOST = 1e9  # a price above this is a mistake, and x730 hours x hosts would overflow a float


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {str(value)[:40]!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: expected a price of 0 or more, got {value}")
    if value > _MOST:
        raise ConfigError(
            f"{where}: {value:g} is not a price Terry can add up (at most {_MOST:g}; check the "
            "unit: prices are per hour, or per GB-month for volumes)"
        )
    return float(value)


def _optional(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    return None if raw.get(key) is None else _number(raw[key], f"{where}.{key}")


def _instance(name: str, raw: Any, where: str) -> InstancePrice:
    if not isinstance(raw, Mapping):
        return InstancePrice(name, _number(raw, where), name.split(".")[0])
    family = raw.get("family", name.split(".")[0])
    if not isinstance(family, str) or not _TYPE.fullmatch(family):
        raise ConfigError(f"{where}.family: a type family is letters, digits, '.', '_', '-'")
    return InstancePrice(
        name,
        _number(raw.get("hourly"), f"{where}.hourly"),
        family,
        _optional(raw, "vcpu", where),
        _optional(raw, "memory_gb", where),
    )


def _volume(name: str, raw: Any, where: str) -> VolumePrice:
    if isinstance(raw, Mapping):
        return VolumePrice(name, _number(raw.get("gb_month"), f"{where}.gb_month"))
    return VolumePrice(name, _number(raw, where))


def _types(document: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    raw = document.get(key) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: {key} must map type names to prices")
    for name in raw:
        if not isinstance(name, str) or not _TYPE.fullmatch(name):
            raise ConfigError(f"{source}: {key}: {str(name)[:40]!r} is not a type name")
    return dict(raw)


def parse_prices(document: Any, *, source: str) -> PriceBook:
    """A price book from a parsed ``prices.yml``; a ConfigError naming what is wrong."""
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: expected a mapping with currency, instances, volumes")
    currency = document.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise ConfigError(f"{source}: currency must be a three-letter code such as USD")
    hours = _number(document.get("hours_per_month", HOURS_PER_MONTH), f"{source}: hours")
    discount = _number(document.get("spot_discount", 0.6), f"{source}: spot_discount")
    if not 0 < hours <= 744 or discount >= 1:
        raise ConfigError(f"{source}: hours_per_month is 1-744, spot_discount under 1")
    instances = {
        name: _instance(name, raw, f"{source}: instances.{name}")
        for name, raw in _types(document, "instances", source).items()
    }
    volumes = {
        name: _volume(name, raw, f"{source}: volumes.{name}")
        for name, raw in _types(document, "volumes", source).items()
    }
    kubernetes = None
    if (raw := document.get("kubernetes")) is not None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: kubernetes: {{vcpu_hourly: N, memory_gb_hourly: N}}")
        kubernetes = KubernetesPrice(
            _number(raw.get("vcpu_hourly"), f"{source}: kubernetes.vcpu_hourly"),
            _number(raw.get("memory_gb_hourly"), f"{source}: kubernetes.memory_gb_hourly"),
        )
    return PriceBook(currency, instances, volumes, hours, discount, source, kubernetes)


@dataclass(frozen=True)
class FilePrices:
    """The price list in the repository tree (``cost.prices``)."""

    path: str = "costs/prices.yml"

    def book(self, tree: Path) -> PriceBook:
        file = tree / self.path
        if not file.is_file():
            raise ConfigError(
                f"no price list at {self.path} on main (docs/cost.md; examples/costs/prices.yml)"
            )
        try:
            document = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.path}: not valid YAML: {exc}") from exc
        return parse_prices(document, source=self.path)


@dataclass(frozen=True)
class AwsPricing:
    """The AWS Price List API (``pricing:GetProducts``). Not configured in this build: Terry
    ships no AWS SDK, and prices read at run time would change the gate's answers without a
    commit. Kept behind the same interface so that it can be added without touching callers."""

    def book(self, tree: Path) -> PriceBook:
        raise ConfigError(
            "cost.pricing: aws is not configured (no AWS pricing client in this installation); "
            "use cost.pricing: file with a price list in the repository (docs/cost.md)"
        )


def price_source(pricing: str, path: str) -> PriceSource:
    return AwsPricing() if pricing == "aws" else FilePrices(path)


def load_prices(tree: Path, path: str = "costs/prices.yml", pricing: str = "file") -> PriceBook:
    return price_source(pricing, path).book(tree)
