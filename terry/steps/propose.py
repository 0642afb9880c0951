"""Propose: record the proposal and commit it on its own branch, from main's commit the
diagnosis read: a playbook and its parameters (``!unsafe`` extra vars), or, for a target
applied by Argo CD, the edited manifest; plus any desired-state files it edits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from terry.context import Context
from terry.diagnosis.finding import Fix
from terry.errors import BranchTaken, GitError, StateError
from terry.gitops.messages import one_line
from terry.gitops.repo import Repo
from terry.proposals.hosts import HostState, ProposalHost, add_hosts, set_hosts
from terry.proposals.state import ProposalState, get, transition
from terry.remedies.catalogue import Remedy
from terry.remedies.render import branch_name, render
from terry.remedies.variants import variant_said
from terry.store.audit import audit
from terry.store.models import IncidentRow, ProposalRow, utcnow

__all__ = ["Propose"]


@dataclass(frozen=True)
class Propose:
    ctx: Context

    def __call__(
        self,
        incident_id: int,
        fix: Fix,
        *,
        incidents: Mapping[str, int] | None = None,
        follows: int | None = None,
    ) -> int:
        """The new proposal's id; its branch and commit are recorded on it. ``incidents``:
        the incident of each host when a storm folded several (terry.proposals.storm);
        ``follows``: the proposal whose next wave this is."""
        found, ai = fix.diagnosis, fix.ai
        remedy = found.remedy
        hosts = tuple(h.name for h in found.hosts)
        target = found.hosts[0].variables.get("terry_argocd_app") if fix.manifest else None
        now = utcnow()
        store = self.ctx.store
        with store.session() as session:
            incident = session.get(IncidentRow, incident_id)
            assert incident is not None
            row = ProposalRow(
                incident_id=incident_id,
                remedy=remedy.name,
                role=remedy.role,
                hosts=list(hosts),
                params=found.params,
                risk=remedy.risk.value,
                state=ProposalState.PROPOSED.value,
                modules=list(remedy.modules),
                created_at=now,
                updated_at=now,
                reasons=[],
                check_summary={},
                applier=fix.applier_name,
                target=str(target) if target else None,
                ai_authored=ai is not None,
                confidence=ai.confidence if ai else None,
                ai_model=ai.model if ai else None,
                ai_diagnosis=ai.diagnosis if ai else None,
                plan=fix.plan().to_json(),
                follows_id=follows,
            )
            session.add(row)
            session.flush()
            proposal_id = row.id
            audit(
                session,
                entity="proposal",
                entity_id=proposal_id,
                actor="terry",
                from_state=None,
                to_state=ProposalState.PROPOSED.value,
                reason=f"remedy {remedy.name} matches {incident.title} on {', '.join(hosts)}",
            )
            title, source = incident.title, incident.source
        owners = incidents or {}
        add_hosts(
            store,
            proposal_id,
            [(h.name, owners.get(h.name, incident_id), h.environment) for h in found.hosts],
        )
        files: dict[str, str | None] = {}
        paths: tuple[str | None, str | None, str | None] = (None, None, None)
        if fix.manifest is not None:
            files = {fix.manifest[0]: fix.manifest[1]}
            paths = (fix.manifest[0], None, fix.manifest[1])
        else:
            # A playbook of its own (drift fixes, inventory edits; none for an edit with
            # nothing to run), else the remedy's.
            rendered = (
                fix.render(proposal_id, incident_id)
                if fix.render is not None
                else render(
                    remedy=remedy,
                    proposal_id=proposal_id,
                    incident_id=incident_id,
                    hosts=hosts,
                    params=found.params,
                )
            )
            if rendered is not None:
                files = {
                    rendered.playbook_path: rendered.playbook,
                    rendered.vars_path: rendered.vars_text,
                }
                paths = (rendered.playbook_path, rendered.vars_path, rendered.playbook)
        files.update(fix.edits)
        repo = self.ctx.repo
        params_line = json.dumps(found.params, ensure_ascii=True, sort_keys=True)
        scope = hosts[0] if len(hosts) == 1 else f"{len(hosts)} hosts"
        variant = variant_said(remedy, found.params)  # "" for the remedy's own parameters
        message = (
            f"fix({scope}): {remedy.name}: {one_line(remedy.summary, 60)}\n\n"
            f"What: {one_line(remedy.summary, 200)}\n"
            + (f"Variant: {one_line(variant, 200)}\n" if variant else "")
            + f"Why: {source} {one_line(title)} on {', '.join(hosts)} (incident {incident_id})\n"
            f"Parameters: {one_line(params_line, 400)}\n"
            f"Verify: {one_line(remedy.verify_summary, 200)}\n"
            f"Rollback: {one_line(remedy.rollback_summary, 200)}\n\n"
            f"Terry-Incident: {incident_id}\n"
            f"Terry-Proposal: {proposal_id}\n"
            f"Terry-Remedy: {remedy.name}\n"
            f"Terry-Risk: {remedy.risk.value}\n"
            "Terry-Decision: pending (dry run, then the gate)\n"
        )
        if ai is not None:
            message += (
                f"Terry-AI-Authored: {one_line(ai.model or 'Claude', 80)} "
                f"(confidence {ai.confidence}%)\n"
            )
        try:
            branch, commit = _commit(
                repo, branch_name(incident_id, remedy.name, hosts[0]), files, message, fix.base
            )
        except Exception as exc:  # the row must not wait in "proposed" with no branch
            transition(
                store,
                proposal_id,
                ProposalState.FAILED,
                actor="terry",
                reason=f"could not commit the proposal: {one_line(str(exc), 300)}",
            )
            raise
        with store.session() as session:
            row = get(session, proposal_id)
            row.branch, row.commit_sha = branch, commit
            row.playbook_path, row.vars_path, row.playbook = paths
        self.ctx.reporter.step(
            proposal_id,
            f"proposal {proposal_id}: {remedy.name} on "
            f"{', '.join(hosts)} · branch {branch} · commit {commit[:10]}",
        )
        return proposal_id

    def widen(self, proposal_id: int, joined: Sequence[ProposalHost], remedy: Remedy) -> str | None:
        """Add the hosts that joined a storm's proposal before its decision (queued by
        ``terry.proposals.storm.join``): its playbook rendered again over every host, one
        more commit on its branch, those hosts pending, and the proposal ``proposed``
        again, so that one dry run and one decision cover them all. The new commit; None
        when its branch or the proposal moved meanwhile (then nothing changed, and the
        hosts are queued again for its next wave)."""
        store = self.ctx.store
        with store.session() as session:
            row = get(session, proposal_id)
            hosts = tuple(dict.fromkeys([*row.hosts, *(h.host for h in joined)]))
            branch, tip, incident_id = row.branch, row.commit_sha, row.incident_id
            params = dict(row.params)
        assert branch is not None and tip is not None, "a proposal's commit is recorded with it"
        rendered = render(
            remedy=remedy,
            proposal_id=proposal_id,
            incident_id=incident_id,
            hosts=hosts,
            params=params,
        )
        said = ", ".join(f"{h.host} (incident {h.incident_id})" for h in joined)
        message = (
            f"fix({len(hosts)} hosts): {remedy.name}: {len(joined)} more host(s) joined "
            "before the decision\n\n"
            f"Joined: {one_line(said, 600)}\n"
            f"Hosts: {one_line(', '.join(hosts), 600)}\n\n"
            f"Terry-Proposal: {proposal_id}\n"
            f"Terry-Remedy: {remedy.name}\n"
            "Terry-Decision: pending (dry run again over every host, then the gate)\n"
        )
        repo = self.ctx.repo
        try:
            commit = repo.commit_on(
                branch=branch,
                tip=tip,
                files={rendered.playbook_path: rendered.playbook},
                message=message,
            )
        except GitError as exc:  # someone committed there: the dry run did not see it either
            return self._not_taken(proposal_id, joined, f"its branch {branch} moved ({exc})")
        try:
            transition(
                store,
                proposal_id,
                ProposalState.PROPOSED,
                actor="terry",
                reason=f"{said} joined before the decision: dry run again over {len(hosts)} hosts",
                allowed_from=(ProposalState.CHECKED,),
                changes={
                    "hosts": list(hosts),
                    "commit_sha": commit,
                    "playbook_path": rendered.playbook_path,
                    "playbook": rendered.playbook,
                },
            )
        except StateError as exc:  # decided meanwhile: its branch must be what was decided
            repo.set_branch(branch, tip, was=commit)
            return self._not_taken(proposal_id, joined, str(exc))
        set_hosts(
            store,
            proposal_id,
            {h.host: (HostState.PENDING, "joined before the decision") for h in joined},
        )
        self.ctx.reporter.step(
            proposal_id,
            f"proposal {proposal_id}: {said} joined before the decision · commit "
            f"{commit[:10]} · dry run again over {len(hosts)} hosts",
        )
        return commit

    def _not_taken(self, proposal_id: int, joined: Sequence[ProposalHost], why: str) -> None:
        """The joined hosts queued again (its next wave carries them), and why."""
        set_hosts(
            self.ctx.store,
            proposal_id,
            {
                h.host: (HostState.QUEUED, f"not taken in before the decision: {why}")
                for h in joined
            },
        )
        self.ctx.reporter.step(
            proposal_id,
            f"proposal {proposal_id}: {', '.join(h.host for h in joined)} not taken in ({why}); "
            "they go in its next wave",
        )
        return None


def _commit(
    repo: Repo, name: str, files: dict[str, str | None], message: str, base: str | None
) -> tuple[str, str]:
    """Commit on the first free branch named after ``name``: another proposal made at the
    same moment may take a name between choosing and creating it (a storm's hosts, two
    processes), then the next one is tried."""
    for _attempt in range(8):
        branch = repo.free_branch(name)
        try:
            return branch, repo.commit_files(branch=branch, files=files, message=message, base=base)
        except BranchTaken:
            continue
    raise BranchTaken(f"no free branch named after {name} after 8 attempts")
