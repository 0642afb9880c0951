"""SLO specs as people write them, read into one ``SLO``: which format a YAML document is
in, and every spec under ``slos/``.

- Sloth's ``prometheus/v1`` (``version``): ``terry.slo.sloth``;
- OpenSLO's ``kind: SLO``, ``apiVersion: openslo/v1`` (``terry.slo.openslo``) or
  ``openslo/v1alpha`` as Sloth reads it (``terry.slo.openslo_alpha``), their ratios read by
  ``terry.slo.ratio``, their windows by ``terry.slo.calendar``.

A YAML file may hold several documents; documents of other OpenSLO kinds are skipped (an
``SLI`` or ``DataSource`` anywhere under ``slos/`` may be named by an SLO's ``indicatorRef``
or ``metricSourceRef``).

Every field that is wrong is a ``ConfigError`` naming the file and the field
(``slos/checkout.yml: slos[0].objective: ...``). Queries are the repository's text: they are
sent to Prometheus as queries and written into rule files as YAML strings, never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from terry import yaml_unique
from terry.errors import ConfigError
from terry.slo.calendar import CalendarWindow
from terry.slo.fields import explain
from terry.slo.objective import DEFAULT_PERIOD, MIN_ELAPSED, SLO, SLO_DIR, WINDOW
from terry.slo.openslo import Refs, collect_refs, from_openslo
from terry.slo.openslo_alpha import from_openslo_alpha
from terry.slo.sloth import from_sloth

__all__ = [
    "DEFAULT_PERIOD",
    "MIN_ELAPSED",
    "SLO",
    "SLO_DIR",
    "WINDOW",
    "CalendarWindow",
    "load_slos",
    "parse_document",
    "parse_text",
]

_OPENSLO_SLO_VERSIONS = ("openslo/v1", "openslo/v1alpha")


def _documents(text: str, source: str) -> list[dict[str, Any]]:
    """The file's mappings: each YAML document, or each item of a document that is a list
    of them (as OpenSLO's tools accept several objects in one)."""
    try:
        docs = [d for d in yaml_unique.load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not YAML: {exc}") from exc
    out: list[dict[str, Any]] = []
    for n, doc in enumerate(docs):
        items = doc if isinstance(doc, list) else [doc]
        for k, item in enumerate(items):
            if not isinstance(item, dict):
                at = f"document {n + 1}" + (f", item {k + 1}," if isinstance(doc, list) else "")
                raise ConfigError(f"{source}: {at} is not a mapping")
            out.append(item)
    return out


def _openslo_slo(doc: dict[str, Any], source: str, refs: Refs) -> list[SLO]:
    version = doc.get("apiVersion")
    if version == "openslo/v1alpha":
        return from_openslo_alpha(doc, source)
    if version == "openslo/v1":
        return from_openslo(doc, source, refs)
    raise ConfigError(
        f"{source}: apiVersion: Terry reads OpenSLO SLOs of {' and '.join(_OPENSLO_SLO_VERSIONS)}"
        f", not {version!r}"
    )


def parse_document(doc: dict[str, Any], source: str, refs: Refs | None = None) -> list[SLO]:
    """The SLOs of one YAML document: Sloth's when it has ``version``, OpenSLO's ``SLO``
    when it has ``kind``; other OpenSLO kinds hold none. ``refs``: the SLIs and DataSources
    that ``indicatorRef`` and ``metricSourceRef`` may name."""
    version = doc.get("apiVersion")
    try:
        if "version" in doc:
            return from_sloth(doc, source)
        if doc.get("kind") == "SLO":
            return _openslo_slo(doc, source, refs or Refs())
        if isinstance(version, str) and version.startswith("sloth.slok.dev/"):
            raise ConfigError(
                f"{source}: apiVersion: {version} ({doc.get('kind')}) is Sloth's Kubernetes "
                "resource, which Terry does not read: write its spec as a Sloth file "
                "(version: prometheus/v1, service, labels, slos with sli.events.error_query "
                "and total_query)"
            )
        if "kind" in doc and version is not None:
            return []  # Service, SLI, DataSource, AlertPolicy...: not objectives
    except ValidationError as exc:
        raise explain(exc, source) from exc
    raise ConfigError(
        f"{source}: neither a Sloth spec (version: prometheus/v1) nor an OpenSLO document "
        "(apiVersion: openslo/v1, kind: SLO)"
    )


def parse_text(text: str, source: str) -> list[SLO]:
    """The SLOs in one file's text (tests and single files)."""
    docs = [(d, source) for d in _documents(text, source)]
    refs = collect_refs(docs)
    return [s for doc, where in docs for s in parse_document(doc, where, refs)]


def load_slos(base: Path, directory: str = SLO_DIR) -> list[SLO]:
    """Every SLO under ``base/directory`` (``*.yml``, ``*.yaml``), sorted by service and
    name; none when the directory is missing. The same service and name twice is an error."""
    root = base / directory
    if not root.is_dir():
        return []
    files = sorted([*root.rglob("*.yml"), *root.rglob("*.yaml")])
    docs: list[tuple[dict[str, Any], str]] = []
    for path in files:
        source = str(path.relative_to(base))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read: {exc}") from exc
        docs += [(d, source) for d in _documents(text, source)]
    refs = collect_refs(docs)
    slos = [s for doc, source in docs for s in parse_document(doc, source, refs)]
    seen: dict[str, str] = {}
    for slo in slos:
        if slo.key in seen:
            raise ConfigError(f"{slo.source}: SLO {slo.key} is also defined in {seen[slo.key]}")
        seen[slo.key] = slo.source
    return sorted(slos, key=lambda s: (s.service, s.name))
