"""The shop: a Kubernetes application in a GitOps repository made by ``terry init``,
deployed by Argo CD (an inventory target with ``terry_applier: argocd``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from terry.cli import main

__all__ = ["MANIFEST", "git", "ingest_one", "shop_repo"]

MANIFEST = """\
# The shop, as the team wants it. Terry edits this file in place.
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  namespace: shop
spec:
  replicas: 2  # the HPA's floor
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: app
          image: "registry.example/shop:1.4"
          resources:
            limits:
              memory: 256Mi   # raised by hand twice already
---
apiVersion: v1
kind: Service
metadata:
  name: shop
  namespace: shop
spec:
  ports:
    - port: 80
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def shop_repo(repo: Path, argocd_url: str, **config: Any) -> None:
    """A repository made by ``terry init`` with the shop: its manifest, its inventory entry
    (an Argo CD target) and Argo CD's URL in terry.yml, committed on main."""
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    (repo / "apps" / "shop").mkdir(parents=True)
    (repo / "apps" / "shop" / "shop.yaml").write_text(MANIFEST)
    (repo / "inventories" / "k8s").mkdir(parents=True)
    (repo / "inventories" / "k8s" / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "k8s_apps": {
                    "hosts": {
                        "shop": {
                            "ansible_connection": "local",
                            "terry_environment": "staging",
                            "terry_applier": "argocd",
                            "terry_argocd_app": "shop",
                            "terry_manifest": "apps/shop/shop.yaml",
                        }
                    }
                }
            }
        )
    )
    settings = yaml.safe_load((repo / "terry.yml").read_text())
    settings["inventory"] = [*settings["inventory"], "inventories/k8s"]
    settings["argocd"] = {"url": argocd_url, "timeout": 20, "poll_interval": 0.05}
    settings.update(config)
    (repo / "terry.yml").write_text(yaml.safe_dump(settings))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", "the shop")


def ingest_one(cli: Any, name: str, fingerprint: str, **labels: str) -> dict[str, Any]:
    """Feed one firing alert through ``terry alert ingest``; its one proposal outcome."""
    from tests.conftest import alert, payload

    out = cli.json(
        "alert", "ingest", "-", input=payload([alert(name, fingerprint=fingerprint, **labels)])
    )
    [outcome] = out["proposals"]
    return outcome
