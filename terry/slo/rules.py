"""Prometheus rules from the SLO specs: what ``terry slo rules`` writes.

Per SLO, one group of recording rules (the error ratio over every window the alerts read,
``slo:sli_error:ratio_rate<window>``, labelled ``slo_service``, ``slo_name`` and
``slo_objective``) and one group of alerting rules: the SRE workbook's multiwindow,
multi-burn-rate alerts, one per pair (``1h/5m`` above 14.4x the budget, ``6h/30m`` above
6x, for a 30-day period: 2% and 5% of the period's budget, scaled to the SLO's own period as
Sloth does), both windows over the threshold. Alerts carry ``service`` so that Terry finds the
service's hosts from the alert, and ``severity: page``.

A Sloth spec's own settings are honoured as Sloth honours them (``objective.Alerting``):
its ``labels`` go on every rule, ``alerting.name`` names the alerts, ``alerting`` and
``page_alert`` labels and annotations go on them (over Terry's defaults, never over the
labels Terry reads back: ``service``, ``slo_service``, ``slo_name``, ``burn_window``), and
``page_alert.disable`` writes no alert for that SLO.

The file is built as Python data and written with ``yaml.safe_dump``: the specs' queries
are strings in it, never template text. ``promtool check rules`` accepts it
(tests/integration/test_slo_prometheus.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from terry.slo.budget import PAIRS, WINDOWS, objective_text
from terry.slo.objective import ALERT
from terry.slo.spec import SLO

__all__ = ["ALERT", "record_name", "rule_groups", "rules_yaml"]


def record_name(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


def _labels(slo: SLO) -> dict[str, str]:
    return {
        **slo.alerting.rule_labels,
        "slo_service": slo.service,
        "slo_name": slo.name,
        "slo_objective": objective_text(slo.objective),
    }


def _group(slo: SLO, kind: str) -> str:
    """A group's name, one per SLO: names never hold ``/``, so ``a-b``/``c`` and
    ``a``/``b-c`` stay apart."""
    return f"terry-slo-{slo.service}/{slo.name}-{kind}"


def _literal(text: str) -> str:
    """``text`` as Prometheus shows it in an annotation, which it expands as a Go template:
    text holding ``{{`` (a file's name, say) is written as a template that prints it."""
    return text if "{{" not in text else "{{ " + json.dumps(text) + " }}"


def _selector(slo: SLO) -> str:
    # service and name match fields.NAME (letters, digits, _ . -): nothing to escape
    return f'{{slo_service="{slo.service}",slo_name="{slo.name}"}}'


def rule_groups(slos: Sequence[SLO]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for slo in slos:
        labels = _labels(slo)
        groups.append(
            {
                "name": _group(slo, "recordings"),
                "rules": [
                    {
                        "record": record_name(w),
                        "expr": slo.error_ratio_query(w),
                        "labels": dict(labels),
                    }
                    for w in WINDOWS
                ],
            }
        )
        alerting = slo.alerting
        if not alerting.page:
            continue
        alerts = []
        for pair in PAIRS:
            threshold = pair.threshold(slo.period_seconds)
            limit = f"{threshold:g} * {slo.budget_fraction:.10g}"
            expr = (
                f"{record_name(pair.long)}{_selector(slo)} > ({limit}) and "
                f"{record_name(pair.short)}{_selector(slo)} > ({limit})"
            )
            alerts.append(
                {
                    "alert": alerting.name,
                    "expr": expr,
                    "labels": {
                        "severity": "page",
                        **alerting.rule_labels,
                        **alerting.labels,
                        "service": slo.service,
                        "slo_service": slo.service,
                        "slo_name": slo.name,
                        "burn_window": pair.name,
                    },
                    "annotations": {
                        "summary": (
                            f"{slo.service}: {slo.name} burns its error budget over "
                            f"{pair.name} faster than {threshold:g}x"
                        ),
                        "description": (
                            f"The error ratio over {pair.long} and {pair.short} is above "
                            f"{threshold:g} times the budget of {objective_text(slo.objective)}% "
                            f"({_literal(slo.source)})."
                        ),
                        **alerting.annotations,
                    },
                }
            )
        groups.append({"name": _group(slo, "alerts"), "rules": alerts})
    return groups


def rules_yaml(slos: Sequence[SLO]) -> str:
    header = "# Written by `terry slo rules` from slos/ (docs/slo.md); edit the specs, not this.\n"
    body = yaml.dump(
        {"groups": rule_groups(slos)},
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),  # libyaml's: ~10x faster
        sort_keys=False,
        width=1000,
    )
    return header + body
