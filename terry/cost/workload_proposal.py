"""A ``requests`` recommendation as a manifest edit for Argo CD (issue 21).

The edit is the one a manifest remedy makes (``terry.remedies.manifests``): the container's
``resources.requests`` (and a limit that equalled its request) set on the parsed manifest
and written back by ruamel.yaml, so the rest of the file keeps its bytes (comments, order,
quoting). It takes the path every fix takes: an incident (source ``cost``), a proposal
commit, an Argo CD dry-run sync, the gate (``policies/cost.rego``: a person always reviews a
cost recommendation; the monthly change of the requests is in ``input.cost``), review,
merge, the sync, Argo CD's health as the verification, and a revert of the merge as the
rollback.

The pipeline runs it (the CLI hands the incident and the ``Fix`` to its one door): this
module only opens the incident and builds the fix.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from terry.cost.rules import Kind, Recommendation
from terry.diagnosis.finding import Fix
from terry.diagnosis.rules import Diagnosis
from terry.errors import InputError
from terry.gitops.repo import Repo
from terry.incidents.lifecycle import open_incident
from terry.inventory.hosts import Inventory
from terry.remedies.catalogue import ARGOCD_MODULE, Match, Remedy, Risk
from terry.remedies.manifests import ManifestEdit, ManifestError, edit_manifest, parse_path
from terry.store import Store

__all__ = ["REMEDY", "requests_fix", "requests_remedy"]

# The remedy name the gate sees (policies/cost.rego always sends it to a person).
REMEDY = "cost-requests"


def requests_remedy(rec: Recommendation) -> Remedy:
    """What the gate and the reviewer see: medium risk, Argo CD's sync as what it runs."""
    edit = ManifestEdit(
        "Deployment", tuple((parse_path(path), value) for path, value in rec.change.items())
    )
    return Remedy(
        name=REMEDY,
        summary=f"Cost: {rec.id}, requests {rec.current} -> {rec.proposed}",
        role="cost",
        risk=Risk.MEDIUM,
        match=Match(("CostRecommendation",)),
        params=(),
        apply="",
        verify="",
        rollback="",
        verify_summary="Argo CD reports the application Synced at the merge commit and Healthy",
        rollback_summary="Revert the merge commit on main and sync the application again",
        prometheus_verify=None,
        modules=(ARGOCD_MODULE,),
        source="cost (terry cost propose)",
        manifest=edit,
        resolves="cost recommendation applied",
    )


def requests_fix(
    store: Store,
    repo: Repo,
    *,
    sha: str,
    inventory: Inventory,
    rec: Recommendation,
    author: str,
    holder: str,
) -> tuple[int, Fix]:
    """The incident (source ``cost``) and the fix that edits the target's manifest on a
    branch from main at ``sha``; an InputError when the manifest cannot take it."""
    if rec.kind is not Kind.REQUESTS or not rec.change:
        raise InputError(f"{rec.id} is not a Kubernetes requests recommendation")
    target = inventory.hosts.get(rec.host)
    path = target.variables.get("terry_manifest") if target is not None else None
    if target is None or target.applier != "argocd" or not isinstance(path, str):
        raise InputError(f"{rec.host} is no longer an Argo CD target with terry_manifest")
    if path.startswith("/") or ".." in PurePosixPath(path).parts:
        raise InputError(f"terry_manifest {path[:120]!r} must be a path in the repository")
    text = repo.read_text(sha, path)
    if text is None:
        raise InputError(f"{path} is not on main")
    remedy = requests_remedy(rec)
    assert remedy.manifest is not None
    name = target.variables.get("terry_k8s_name")
    try:
        edited = edit_manifest(
            text, remedy.manifest, {}, name=name if isinstance(name, str) else None
        )
    except ManifestError as exc:
        raise InputError(f"{path}: {exc}") from exc
    if edited == text:
        raise InputError(f"{path} already says so: the edit changes nothing")
    digest = hashlib.sha256(f"{rec.id} {sorted(rec.change.items())}".encode()).hexdigest()
    incident_id = open_incident(
        store,
        source="cost",
        fingerprint=f"cost:{digest[:24]}",
        title=f"Cost: {rec.id}",
        host=rec.host,
        labels={
            "alertname": "CostRecommendation",
            "recommendation": rec.id,
            "host": rec.host,
            "author": author,
        },
        annotations={"summary": f"{rec.current} -> {rec.proposed}: {rec.why}"},
        holder=holder,
        actor=author,
    )
    return incident_id, Fix(Diagnosis(remedy, (target,), {}), base=sha, manifest=(path, edited))
