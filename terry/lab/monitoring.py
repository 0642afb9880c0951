"""The lab's Prometheus and Alertmanager: real binaries from the Debian packages, with
their own configuration and data under the lab state dir, listening on the bridge
address only, scraping and evaluating every 2 seconds so alerts fire within seconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

import terry
from terry.errors import ConfigError
from terry.lab.model import LabConfig, LabError, LabHost, LabProcess
from terry.lab.procs import http_ok, process_alive, spawn, wait_until

__all__ = [
    "ALERTMANAGER",
    "PROMETHEUS",
    "alertmanager_config",
    "prometheus_config",
    "rules_source",
    "start_alertmanager",
    "start_prometheus",
]

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
INTERVAL = "1s"


def rules_source() -> Path:
    """``lab/prometheus/rules.yml``: next to the package in a checkout, or in its content."""
    package = Path(terry.__file__).resolve().parent
    candidates = (
        package / "content" / "lab" / "prometheus" / "rules.yml",
        package.parent / "lab" / "prometheus" / "rules.yml",
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"lab alerting rules not found (looked at {', '.join(map(str, candidates))})")


def _targets(hosts: Sequence[LabHost], config: LabConfig) -> dict[str, list[dict[str, Any]]]:
    node = [
        {
            "targets": [f"{h.address}:{config.node_exporter_port}"],
            "labels": {"host": h.name, "environment": h.environment, "tenant": h.tenant},
        }
        for h in hosts
    ]
    service = [
        {
            "targets": [f"{s.bind}:{s.port}"],
            "labels": {
                "host": h.name,
                "service": s.name,
                "environment": h.environment,
                "tenant": h.tenant,
            },
        }
        for h in hosts
        for s in h.services
    ]
    return {"node": node, "service": service}


# Every series gets `host`: from the target's labels, or else the target's address.
_HOST_RELABEL = {
    "source_labels": ["host", "__address__"],
    "separator": ";",
    "regex": r";\[?([^\]]+?)\]?(?::\d+)?",
    "target_label": "host",
    "replacement": "$1",
}


def prometheus_config(config: LabConfig, *, targets_dir: Path, rules: Path) -> dict[str, Any]:
    def job(name: str) -> dict[str, Any]:
        return {
            "job_name": name,
            "metrics_path": "/metrics",
            "file_sd_configs": [{"files": [str(targets_dir / f"{name}.json")]}],
            "relabel_configs": [_HOST_RELABEL],
        }

    return {
        "global": {
            "scrape_interval": INTERVAL,
            "scrape_timeout": "900ms",
            "evaluation_interval": INTERVAL,
            "external_labels": {"lab": "terry"},
        },
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"{config.gateway}:{config.alertmanager_port}"]}]}
            ]
        },
        "scrape_configs": [job("node"), job("service")],
    }


def alertmanager_config(webhook_url: str, *, token_file: Path | None) -> dict[str, Any]:
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True, "max_alerts": 0}
    if token_file is not None:
        webhook["http_config"] = {
            "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
        }
    return {
        "route": {
            "receiver": "terry",
            "group_by": ["alertname", "host"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "30s",
        },
        "receivers": [{"name": "terry", "webhook_configs": [webhook]}],
    }


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by 'terry lab up'.\n" + yaml.safe_dump(data, sort_keys=False),
        encoding="utf-8",
    )


def _wait_ready(proc: LabProcess, url: str, log: Path) -> None:
    if not wait_until(lambda: http_ok(url) or not process_alive(proc), timeout=60.0):
        raise LabError(f"{proc.name} did not become ready at {url}; see {log}")
    if not process_alive(proc):
        raise LabError(f"{proc.name} exited while starting; see {log}")


def start_alertmanager(
    config: LabConfig, *, webhook_url: str, webhook_token: str | None
) -> LabProcess:
    home = config.state_dir / "alertmanager"
    (home / "data").mkdir(parents=True, exist_ok=True)
    token_file = None
    if webhook_token:
        token_file = home / "webhook_token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(webhook_token)
    cfg = home / "alertmanager.yml"
    _write_yaml(cfg, alertmanager_config(webhook_url, token_file=token_file))
    listen = f"{config.gateway}:{config.alertmanager_port}"
    log = home / "alertmanager.log"
    proc = spawn(
        "alertmanager",
        [
            ALERTMANAGER,
            f"--config.file={cfg}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address={listen}",
            f"--web.external-url=http://{listen}/",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        log=log,
    )
    _wait_ready(proc, f"http://{listen}/-/ready", log)
    return proc


def start_prometheus(config: LabConfig, hosts: Sequence[LabHost], *, rules: Path) -> LabProcess:
    home = config.state_dir / "prometheus"
    targets_dir = home / "targets"
    targets_dir.mkdir(parents=True, exist_ok=True)
    (home / "data").mkdir(parents=True, exist_ok=True)
    for name, groups in _targets(hosts, config).items():
        (targets_dir / f"{name}.json").write_text(json.dumps(groups, indent=2) + "\n")
    lab_rules = home / "rules.yml"
    lab_rules.write_text(rules.read_text(encoding="utf-8"), encoding="utf-8")
    cfg = home / "prometheus.yml"
    _write_yaml(cfg, prometheus_config(config, targets_dir=targets_dir, rules=lab_rules))
    listen = f"{config.gateway}:{config.prometheus_port}"
    log = home / "prometheus.log"
    proc = spawn(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={home / 'data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address={listen}",
            f"--web.external-url=http://{listen}/",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ],
        log=log,
    )
    _wait_ready(proc, f"http://{listen}/-/ready", log)
    return proc
