"""Kubernetes workloads whose requests are far above what their containers use (issue 21).

A workload is an inventory target applied by Argo CD (``terry_applier: argocd``) and its
manifest in the GitOps repository (``terry_manifest``): the one Deployment there (the one
named ``terry_k8s_name`` when several), in its namespace (``default`` when unset), with
``spec.replicas`` (1 when unset) and per container ``resources.requests`` and ``limits``.

Utilisation comes from Prometheus' container metrics (cAdvisor, scraped by the kubelet), per
container over ``cost.lookback``, for the Deployment's pods (``<name>-<hash>-<hash>``):

- CPU: the busiest hour's rate of ``container_cpu_usage_seconds_total``, of the busiest pod;
- memory: the highest ``container_memory_working_set_bytes`` of any pod;
- coverage: the share of the lookback's hours with CPU samples (90% wanted, as for hosts).

Rule (``requests``): a request (CPU or memory) whose container peaked under
``requests_used_percent`` (30%) of it is cut to what leaves that peak at
``requests_target_percent`` (60%), rounded up (10m of CPU, 16Mi of memory; at least 10m and
32Mi). A limit equal to its request (the Guaranteed class) follows the request; other limits
stay. The saving is the requests given back, per replica, at the price list's ``kubernetes``
rates: requests are what a cluster is sized by (and what Fargate or Autopilot bill).

Names from a manifest go into PromQL only when they are Kubernetes names (lower-case letters,
digits, ``-``); anything else leaves the workload out, with the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from terry.config import PrometheusConfig, prometheus_url
from terry.cost.prices import PriceBook
from terry.cost.rules import MIN_COVERAGE, Kind, Recommendation, Thresholds
from terry.cost.usage import PromClient, PromError
from terry.inventory.hosts import Host, Inventory

__all__ = [
    "ContainerUsage",
    "Workload",
    "format_cpu",
    "format_memory",
    "parse_cpu",
    "parse_memory",
    "read_workloads",
    "recommend_requests",
    "workload_monthly",
    "workload_usage",
]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_FACTOR = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
MIB = 2.0**20


def _quantity(value: Any) -> float | None:
    """A Kubernetes quantity (``250m``, ``0.5``, ``256Mi``, ``1G``) as a number, or None."""
    if isinstance(value, bool) or value is None:
        return None
    found = _QUANTITY.match(str(value).strip())
    if found is None:
        return None
    number = float(found.group(1)) * _FACTOR[found.group(2)]
    return number if math.isfinite(number) and number > 0 else None


def parse_cpu(value: Any) -> float | None:
    """Cores: ``250m`` is 0.25."""
    return _quantity(value)


def parse_memory(value: Any) -> float | None:
    """Bytes: ``256Mi`` is 268435456."""
    return _quantity(value)


def format_cpu(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def format_memory(size: float) -> str:
    return f"{round(size / MIB)}Mi"


@dataclass(frozen=True)
class Container:
    name: str
    cpu_request: float | None  # cores
    memory_request: float | None  # bytes
    cpu_limit: float | None
    memory_limit: float | None


@dataclass(frozen=True)
class Workload:
    target: str  # the inventory target (terry_applier: argocd)
    manifest: str  # its path in the repository
    namespace: str
    name: str  # the Deployment
    replicas: int
    containers: tuple[Container, ...]


@dataclass(frozen=True)
class ContainerUsage:
    cpu_peak: float | None = None  # cores, busiest hour of the busiest pod
    memory_peak: float | None = None  # bytes
    coverage: float = 0.0


def _deployment(text: str, name: str | None) -> dict[str, Any] | None:
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return None
    found = [
        d
        for d in documents
        if isinstance(d, dict)
        and d.get("kind") == "Deployment"
        and (name is None or _mapping(d.get("metadata")).get("name") == name)
    ]
    return found[0] if len(found) == 1 else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _containers(deployment: Mapping[str, Any]) -> tuple[Container, ...]:
    spec = _mapping(_mapping(_mapping(deployment.get("spec")).get("template")).get("spec"))
    out = []
    for raw in spec.get("containers") or ():
        if not isinstance(raw, dict) or not _NAME.fullmatch(str(raw.get("name", ""))):
            continue
        resources = _mapping(raw.get("resources"))
        requests, limits = _mapping(resources.get("requests")), _mapping(resources.get("limits"))
        out.append(
            Container(
                str(raw["name"]),
                parse_cpu(requests.get("cpu")),
                parse_memory(requests.get("memory")),
                parse_cpu(limits.get("cpu")),
                parse_memory(limits.get("memory")),
            )
        )
    return tuple(out)


def workload_of(host: Host, text: str) -> Workload | None:
    """The target's Deployment as ``text`` (its manifest) says, or None."""
    variables = host.variables
    wanted = variables.get("terry_k8s_name")
    deployment = _deployment(text, wanted if isinstance(wanted, str) else None)
    if deployment is None:
        return None
    meta = _mapping(deployment.get("metadata"))
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or "default")
    if not (_NAME.fullmatch(name) and _NAME.fullmatch(namespace)):
        return None
    replicas = _mapping(deployment.get("spec")).get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        replicas = 1
    return Workload(
        host.name,
        str(variables["terry_manifest"]),
        namespace,
        name,
        replicas,
        _containers(deployment),
    )


def read_workloads(inventory: Inventory, read: Callable[[str], str | None]) -> list[Workload]:
    """Every Argo CD target's workload; ``read`` gives a repository file's text (main's)."""
    found = []
    for name in sorted(inventory.hosts):
        host = inventory.hosts[name]
        path = host.variables.get("terry_manifest")
        if host.applier != "argocd" or not isinstance(path, str):
            continue
        text = read(path)
        workload = workload_of(host, text) if text is not None else None
        if workload is not None:
            found.append(workload)
    return found


def workload_monthly(workload: Workload, prices: PriceBook) -> float | None:
    """What the workload's requests cost a month, all replicas; None when not priced."""
    if prices.kubernetes is None:
        return None
    cores = sum(c.cpu_request or 0.0 for c in workload.containers)
    memory = sum(c.memory_request or 0.0 for c in workload.containers)
    return workload.replicas * prices.kubernetes.monthly(cores, memory, prices.hours_per_month)


def _span(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}h" if whole % 3600 == 0 else f"{whole}s"


def queries(workload: Workload, lookback: float) -> dict[str, str]:
    """The PromQL asked per workload (each answers one value per container)."""
    pods = (
        f'namespace="{workload.namespace}",pod=~"{workload.name}-[a-z0-9]+-[a-z0-9]+",'
        'container!="",container!="POD"'
    )
    w = _span(lookback)
    cpu = f"max by (container) (rate(container_cpu_usage_seconds_total{{{pods}}}[1h]))"
    memory = f"container_memory_working_set_bytes{{{pods}}}"
    return {
        "cpu_peak": f"max_over_time(({cpu})[{w}:1h])",
        "hours": f"count_over_time(({cpu})[{w}:1h])",
        "memory_peak": f"max by (container) (max_over_time({memory}[{w}]))",
    }


def workload_usage(
    workloads: list[Workload],
    prom: str | PrometheusConfig | None,
    *,
    lookback: float,
    at: float,
    timeout: float,
) -> tuple[dict[tuple[str, str], ContainerUsage], str | None]:
    """(target, container) -> its usage, and why none when Prometheus could not tell."""
    if not workloads:
        return {}, None
    if not prometheus_url(prom):
        return {}, "no Prometheus configured (prometheus.url): utilisation unknown"
    figures: dict[tuple[str, str], dict[str, float]] = {}
    assert prom is not None
    client = PromClient(prom, timeout)
    try:
        for workload in workloads:
            for key, query in queries(workload, lookback).items():
                for labels, value in client.vector(query, at):
                    container = labels.get("container", "")
                    if not math.isfinite(value):
                        continue
                    if key == "hours":
                        value = min(value / max(lookback / 3600.0, 1.0), 1.0)
                        key = "coverage"
                    figures.setdefault((workload.target, container), {})[key] = value
    except PromError as exc:
        return {}, f"utilisation unknown: {exc}"
    finally:
        client.close()
    return {k: ContainerUsage(**v) for k, v in figures.items()}, None


def _cut(
    request: float | None, peak: float | None, t: Thresholds, step: float, least: float
) -> float | None:
    """The smaller request, when the peak stayed under ``requests_used_percent`` of it."""
    if request is None or peak is None or peak >= request * t.requests_used_percent / 100:
        return None
    wanted = max(least, math.ceil(peak / (t.requests_target_percent / 100) / step) * step)
    return wanted if wanted < request else None


def _path(container: str, *keys: str) -> str:
    return f"spec.template.spec.containers[name={container}].resources." + ".".join(keys)


def recommend_requests(
    workload: Workload,
    usage: Mapping[tuple[str, str], ContainerUsage],
    prices: PriceBook,
    t: Thresholds,
) -> list[Recommendation]:
    """One recommendation per container whose requests are far above its use."""
    if prices.kubernetes is None:
        return []
    found = []
    for c in workload.containers:
        u = usage.get((workload.target, c.name))
        if u is None or u.coverage < MIN_COVERAGE:
            continue
        cpu = _cut(c.cpu_request, u.cpu_peak, t, 0.01, 0.01)
        memory = _cut(c.memory_request, u.memory_peak, t, 16 * MIB, 32 * MIB)
        if cpu is None and memory is None:
            continue
        change: dict[str, str | int] = {}
        now, then, why = [], [], []
        if cpu is not None and c.cpu_request is not None:
            change[_path(c.name, "requests", "cpu")] = format_cpu(cpu)
            if c.cpu_limit == c.cpu_request:  # Guaranteed: the limit follows
                change[_path(c.name, "limits", "cpu")] = format_cpu(cpu)
            now.append(f"cpu {format_cpu(c.cpu_request)}")
            then.append(f"cpu {format_cpu(cpu)}")
            why.append(f"CPU at most {format_cpu(u.cpu_peak or 0.0)}")
        if memory is not None and c.memory_request is not None:
            change[_path(c.name, "requests", "memory")] = format_memory(memory)
            if c.memory_limit == c.memory_request:
                change[_path(c.name, "limits", "memory")] = format_memory(memory)
            now.append(f"memory {format_memory(c.memory_request)}")
            then.append(f"memory {format_memory(memory)}")
            why.append(f"memory at most {format_memory(u.memory_peak or 0.0)}")
        cores = (c.cpu_request or 0.0) - (cpu if cpu is not None else c.cpu_request or 0.0)
        size = (c.memory_request or 0.0) - (
            memory if memory is not None else c.memory_request or 0.0
        )
        saving = workload.replicas * prices.kubernetes.monthly(cores, size, prices.hours_per_month)
        found.append(
            Recommendation(
                id=f"requests:{workload.target}/{c.name}",
                kind=Kind.REQUESTS,
                host=workload.target,
                monthly_saving=round(saving, 2),
                current=", ".join(now),
                proposed=", ".join(then),
                why=f"{' and '.join(why)} per pod in any hour of the lookback (under "
                f"{t.requests_used_percent:g}% of the request); {workload.replicas} replica(s) "
                f"of Deployment {workload.namespace}/{workload.name}",
                change=change,
            )
        )
    return found
