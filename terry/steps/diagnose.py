"""Diagnose: which remedy fits an incident, on which hosts, with which parameters (the
catalogue's rules, read from main); for an Argo CD target, the manifest as the remedy would
edit it; and, when no rule matches and Claude is configured, Claude's proposal, checked
like any other. Otherwise the reason the incident is kept for a person."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from terry.context import Context
from terry.diagnosis.finding import Finding, Fix
from terry.diagnosis.rules import Diagnosis, NoFix, diagnose
from terry.errors import StateError
from terry.remedies.manifests import ManifestError, edit_manifest
from terry.remedies.variants import with_variant
from terry.store.models import IncidentRow

__all__ = ["Diagnose"]


@dataclass(frozen=True)
class Diagnose:
    ctx: Context

    def __call__(self, incident_id: int) -> Finding:
        ctx = self.ctx
        with ctx.store.session() as session:
            incident = session.get(IncidentRow, incident_id)
            if incident is None:
                raise StateError(f"incident {incident_id} does not exist")
            alertname, labels, annotations = incident.title, incident.labels, incident.annotations
        sha, catalogue, inventory = ctx.main.view()
        if ctx.config.traces.jaeger_url or ctx.config.traces.tempo_url:
            from terry.traces.evidence import consider  # the services' traces: evidence

            labels = consider(
                ctx.config.traces,
                ctx.store,
                incident_id,
                labels=labels,
                annotations=annotations,
                inventory=inventory,
                host_labels=ctx.config.host_labels,
            )
        found = diagnose(
            alertname=alertname,
            labels=labels,
            annotations=annotations,
            catalogue=catalogue,
            inventory=inventory,
            host_labels=ctx.config.host_labels,
        )
        if isinstance(found, Diagnosis):
            if found.remedy.manifest is None:
                if found.remedy.variants:  # which of its variants (terry.remedies.variants)
                    envs = [h.environment for h in found.hosts]
                    params = with_variant(ctx.store, found.remedy, envs, found.params)
                    found = replace(found, params=params)
                # Carried by the host's applier: Ansible's playbook, or AWX running it.
                return Fix(found, base=sha, applier=found.hosts[0].applier)
            try:
                return Fix(found, base=sha, manifest=self._edited_manifest(found, sha))
            except ManifestError as exc:
                return NoFix(f"remedy {found.remedy.name}: {exc}", host=found.hosts[0].name)
        if not (found.unmatched and found.host in inventory.hosts):
            return found
        # No rule matches a known host: Claude, when configured (imported only then).
        from terry.ai.consult import consult
        from terry.ai.remedy import ai_diagnosis

        host = inventory.hosts[found.host]
        ctx.reporter.step(None, f"incident {incident_id}: {found.reason}; asking Claude")
        consulted = consult(
            ctx.config,
            ctx.store,
            incident_id=incident_id,
            alertname=alertname,
            labels=labels,
            annotations=annotations,
            host=host,
            inventory=inventory,
            catalogue=catalogue,
            rule_reason=found.reason,
        )
        if consulted is None:
            return found
        if consulted.answer is None:
            return NoFix(consulted.reason, host=host.name)
        answer = consulted.answer
        proposed, renderer = ai_diagnosis(answer, host, catalogue, alertname, incident_id)
        if isinstance(proposed, NoFix):
            return proposed
        return Fix(proposed, base=sha, render=renderer, ai=answer)

    def _edited_manifest(self, found: Diagnosis, sha: str) -> tuple[str, str]:
        """The manifest of the target (path, text on main with the remedy's edit)."""
        variables = found.hosts[0].variables
        path = str(variables["terry_manifest"])
        parts = PurePosixPath(path).parts
        if not parts or path.startswith("/") or ".." in parts or path.startswith(".terry"):
            raise ManifestError(f"terry_manifest {path[:120]!r} must be a path in the repository")
        text = self.ctx.repo.read_text(sha, path)
        if text is None:
            raise ManifestError(f"{path} is not on {self.ctx.config.main_branch}")
        name = variables.get("terry_k8s_name")
        assert found.remedy.manifest is not None
        edited = edit_manifest(
            text, found.remedy.manifest, found.params, name=name if isinstance(name, str) else None
        )
        if edited == text:
            raise ManifestError(f"{path} already says so: the edit changes nothing")
        return path, edited
