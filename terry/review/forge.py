"""Review on a forge: a proposal the gate sends to review becomes a GitHub pull request, and
what people do there (approve, merge, close, ``/terry`` comments) moves the proposal.

``reconcile`` is the one place that reads the pull request and acts; webhooks only say
which proposal to reconcile, and ``terry sync`` reconciles every open one, so a missed or
repeated webhook changes nothing. Before merging or applying on a person's signal, Terry
re-reads the pull request: its head must be the commit that was dry-run and gated.
Merging on GitHub moves main there; Terry fetches it and fast-forwards its own main.

When a person merges what Terry refuses to apply (a head that moved after the dry run, or a
merger nobody allowed), main holds a change nobody gated: Terry records it
(``review.base.record_ungated``), says so on the pull request, and asks for a re-check of
main as it now is; until one is verified nothing that contains the change is applied.
Commands are answered whatever became of the pull request meanwhile: a ``/terry`` comment
posted just before a merge or a close still gets its reply.

Whose commands, approvals and merges count is ``terry.access``'s one table, through
``terry.review.principals`` (``allowed_users`` and the tenants' ``github``/``github_team``
members, each with a role): a refused command is answered with the reason, an approval that
does not count is said once on the pull request (audit entity ``forge_refusal``), a merge by
someone who may not approve is not applied.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from terry.access import Action, Decision
from terry.context import Context
from terry.errors import ForgeError, GitError, MergeConflict, StateError, TerryError
from terry.forges.body import ReviewPacket, fenced, pr_body, pr_title
from terry.forges.commands import Command, Verb, parse_command
from terry.forges.tasks import planned_tasks
from terry.inventory.hosts import most_sensitive
from terry.proposals.state import ProposalState, get, transition
from terry.proposals.view import proposal_detail
from terry.review.base import Reconciled, ReviewActions, merge_trailers, record_ungated
from terry.review.local import LocalReview
from terry.review.principals import PullAccess, TeamCache
from terry.store.audit import audit
from terry.store.models import AuditRow, IncidentRow, ProposalRow
from terry.tenants.loader import load_tenants
from terry.traces.evidence import TraceEvidence

if TYPE_CHECKING:
    from terry.forges.github import GitHubForge, PullState

__all__ = ["GitHubReview"]

_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
# What each /terry command needs (terry.access): apply approves, explain reads.
_NEEDS = {
    Verb.APPLY: Action.APPROVE,
    Verb.REJECT: Action.REJECT,
    Verb.ROLLBACK: Action.ROLLBACK,
    Verb.EXPLAIN: Action.READ,
}
_REFUSED = "forge_refusal"  # audit entity: a review or merge that did not count, and why


@contextmanager
def _one_at_a_time(proposal_id: int) -> Iterator[None]:
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(proposal_id, threading.Lock())
    with lock:
        yield


class GitHubReview:
    """Review on GitHub: pull requests, and what people do on them."""

    name = "github"

    def __init__(self, ctx: Context, *, forge: GitHubForge | None = None) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.store = ctx.store
        self.repo = ctx.repo
        self.reporter = ctx.reporter
        self.local = LocalReview(ctx)  # merges straight to main go through it
        self._forge = forge
        self._teams: TeamCache | None = None

    # -- the forge --------------------------------------------------------------------------
    @property
    def forge(self) -> GitHubForge:
        if self._forge is None:
            from terry.forges.github import GitHubForge, credentials_from_env

            github = self.config.forge.github
            self._forge = GitHubForge(github, credentials_from_env(github))
        return self._forge

    def _push_branch(self, branch: str) -> None:
        self.repo.push_branch(self.config.forge.github.remote, branch, env=self.forge.git_env())

    def _push_main(self) -> None:
        self.repo.push_main(self.config.forge.github.remote, env=self.forge.git_env())

    def _fetch_main(self) -> str:
        return self.repo.fetch_main(self.config.forge.github.remote, env=self.forge.git_env())

    def open_change(
        self, branch: str, *, title: str, body: str, labels: tuple[str, ...]
    ) -> str | None:
        self._push_branch(branch)
        pull = self.forge.open_pull(
            branch=branch, base=self.config.main_branch, title=title, body=body
        )
        self.forge.label(pull.number, list(labels))
        return pull.url

    # Argo CD reads the repository from GitHub: what it syncs must be there first.
    def share_branch(self, branch: str) -> None:
        self._push_branch(branch)

    def share_main(self) -> None:
        self._push_main()

    def refresh_main(self) -> None:
        self._fetch_main()

    def _set(self, proposal_id: int, **values: object) -> None:
        with self.store.session() as session:
            session.execute(
                update(ProposalRow)
                .where(ProposalRow.id == proposal_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    # -- publishing -------------------------------------------------------------------------
    def packet(self, proposal_id: int) -> ReviewPacket:
        return review_packet(self.ctx, proposal_id)

    def request(self, proposal_id: int, *, reason: str, changes: Mapping[str, object]) -> None:
        """Awaiting review, with its pull request pending until published."""
        transition(
            self.store,
            proposal_id,
            ProposalState.AWAITING_REVIEW,
            actor="policy",
            reason=reason,
            changes={**changes, "forge_state": "pending"},
        )
        self.publish(proposal_id)

    def publish(self, proposal_id: int) -> PullState | None:
        """Push the branch and open (or update) its pull request with labels, reviewers and
        the dry-run status. A forge error is recorded and the proposal waits for the next
        sync; it is never lost and never half-published twice."""
        try:
            packet = self.packet(proposal_id)
            github = self.config.forge.github
            self._push_branch(packet.branch)
            pull = self.forge.open_pull(
                branch=packet.branch,
                base=self.config.main_branch,
                title=pr_title(packet),
                body=pr_body(packet, details_url=github.details_url),
            )
            env = most_sensitive(packet.environments)  # as the gate judged it
            self.forge.label(pull.number, ["terry", f"risk:{packet.risk}", f"env:{env}"])
            users, teams = self._reviewers(packet)
            try:
                self.forge.request_reviewers(pull.number, users, teams)
            except ForgeError as exc:  # e.g. 422: not a collaborator; the PR still stands
                self.reporter.step(proposal_id, f"reviewers not requested: {exc}")
            check = packet.check_summary
            self.forge.set_status(
                packet.commit,
                ok=bool(check.get("ok")),
                description=f"check mode: {check.get('changed', 0)} change(s), "
                f"{'passed' if check.get('ok') else 'failed'}",
                url=pull.url,
            )
        except (ForgeError, TerryError) as exc:
            self._set(proposal_id, forge_state="pending", forge_error=str(exc))
            self.reporter.step(proposal_id, f"pull request waits: {exc}")
            return None
        self._set(
            proposal_id,
            forge_state="open",
            forge_error=None,
            pr_number=pull.number,
            pr_url=pull.url,
        )
        self.reporter.step(proposal_id, f"pull request #{pull.number} {pull.url}")
        return pull

    def _reviewers(self, packet: ReviewPacket) -> tuple[list[str], list[str]]:
        """Reviewers configured for any of the hosts' environments or tenants, or for "*"."""
        github = self.config.forge.github
        keys = ["*", *packet.environments, *packet.tenants]
        users = sorted({u for k in keys for u in github.reviewers.get(k, [])})
        teams = sorted({t for k in keys for t in github.team_reviewers.get(k, [])})
        return users, teams

    # -- who may ----------------------------------------------------------------------------
    def access(self, proposal_id: int) -> PullAccess:
        """The proposal's risk and tenants (its hosts' on main), for ``may``."""
        with self.store.session() as session:
            row = get(session, proposal_id)
            hosts, risk = list(row.hosts or []), row.risk
        sha, _catalogue, inventory = self.ctx.main.view()
        tenancy = load_tenants(self.repo.tree(sha), self.config.policy.path)
        return PullAccess.of(hosts, risk, tenancy, inventory)

    def may(self, access: PullAccess, login: str, action: Action) -> Decision:
        """Whether GitHub user ``login`` may ``action`` the proposal (terry.review.principals:
        allowed_users and the tenants' github and github_team members)."""
        if not login or login == self.forge.bot:
            return Decision(False, f"{login or 'nobody'} is Terry itself, not a reviewer")
        if self._teams is None:
            self._teams = TeamCache(self.forge.in_team)
        return access.decide(self.config, login, action, self._teams)

    def _refuse_once(self, proposal_id: int, number: int, key: str, text: str) -> None:
        """Say ``text`` on the pull request once per ``key`` (a review's or a merge's id),
        and keep it in the audit: every reconcile sees the same review again."""
        with self.store.session() as session:
            seen = session.scalar(
                select(AuditRow.id).where(
                    AuditRow.entity == _REFUSED,
                    AuditRow.entity_id == proposal_id,
                    AuditRow.from_state == key[:24],
                )
            )
        if seen is not None:
            return
        self.forge.comment(number, text)
        with self.store.session() as session:
            audit(
                session,
                entity=_REFUSED,
                entity_id=proposal_id,
                actor="terry",
                from_state=key[:24],
                to_state="refused",
                reason=text[:1000],
            )

    # -- merging ----------------------------------------------------------------------------
    def merge(self, proposal_id: int, *, actor: str, reason: str, from_state: ProposalState) -> str:
        with self.store.session() as session:
            row = get(session, proposal_id)
            number, commit, branch = row.pr_number, row.commit_sha, row.branch
        assert commit is not None and branch is not None
        if number is None and not self.config.forge.github.pr_for_merges:
            # Straight to main on the forge: merge locally on top of the forge's main, push.
            self._fetch_main()
            self._push_branch(branch)
            merge_sha = self.local.merge(
                proposal_id, actor=actor, reason=reason, from_state=from_state
            )
            self._push_main()
            return merge_sha
        if number is None:
            pull = self.publish(proposal_id)
            if pull is None:
                raise ForgeError(f"proposal {proposal_id}: pull request could not be opened")
            number = pull.number
        try:
            merge_sha = self.forge.merge(
                number,
                sha=commit,
                title=f"Merge {branch} (terry #{proposal_id})",
                message=merge_trailers(self.store, proposal_id),
            )
        except ForgeError as refused:
            merged = self._merged_meanwhile(number)
            if merged is not None:  # by a person, or a sync racing this merge: not refused
                raise StateError(
                    f"proposal {proposal_id}: pull request #{number} was merged meanwhile "
                    f"({merged}); `terry sync --proposal {proposal_id}` carries it on"
                ) from refused
            conflict = self._conflict(branch, commit)
            if conflict is not None:  # it never will merge: rejected (by the caller), closed
                self._close_conflicted(proposal_id, number, conflict)
                raise conflict from refused
            # said once per answer: every sync tries again
            key = "merge " + hashlib.sha256(str(refused).encode()).hexdigest()[:16]
            with suppress(ForgeError):  # GitHub down: the refusal is what the caller is told
                self._refuse_once(
                    proposal_id,
                    number,
                    key,
                    f"GitHub did not merge this: {fenced(str(refused))}\nTerry tries again "
                    "at every sync; close this pull request or comment `/terry reject "
                    "<reason>` to give up on it.",
                )
            raise
        self._fetch_main()
        transition(
            self.store,
            proposal_id,
            ProposalState.MERGED,
            actor=actor,
            reason=f"merged pull request #{number} as {merge_sha[:10]}: {reason}",
            allowed_from=(from_state,),
            changes={"merge_sha": merge_sha, "forge_state": "merged"},
        )
        self.reporter.step(proposal_id, f"merged #{number} into {self.config.main_branch}")
        return merge_sha

    def _merged_meanwhile(self, number: int) -> str | None:
        """Who merged the pull request, when GitHub refused Terry's merge because it is
        merged already; None when it is not (or GitHub cannot say now)."""
        try:
            pull = self.forge.pull(number)
        except ForgeError:
            return None
        return f"by {pull.merged_by or 'someone'} on GitHub" if pull.merged else None

    def _conflict(self, branch: str, commit: str) -> MergeConflict | None:
        """Whether GitHub refused the merge because the checked commit conflicts with main
        as main now is on GitHub. GitHub's 405 does not tell a conflict from a branch
        protection (and its ``mergeable_state`` is computed lazily), so git answers it here:
        the forge's main fetched, then merged in memory. None: no conflict, or it could
        not be told (GitHub down): a later sync tries the merge again."""
        try:
            self._fetch_main()
            self.repo.check_merge(commit, branch=branch)
        except MergeConflict as conflict:
            return conflict
        except (GitError, ForgeError):
            return None
        return None

    def _close_conflicted(self, proposal_id: int, number: int, conflict: MergeConflict) -> None:
        """Say why on the pull request and close it: nothing a person does there can merge
        the commit Terry checked (a new commit on its branch would not be that commit)."""
        self._set(proposal_id, forge_state="closed")
        main = self.config.main_branch
        with suppress(ForgeError):  # the proposal is rejected whatever GitHub answers now
            self.forge.comment(
                number,
                f"Not merged: {main} changed these files since this branch was made, and "
                f"the two changes conflict:{fenced(chr(10).join(conflict.paths))}Terry "
                "rejected this proposal and closes the pull request; the change can be "
                f"proposed again from {main} as it now is.",
            )
            self.forge.close(number)

    # -- what people did on the pull request ------------------------------------------------
    def reconcile(self, proposal_id: int, actions: ReviewActions) -> Reconciled:
        with _one_at_a_time(proposal_id):
            notes: list[str] = []
            error: str | None = None
            with self.store.session() as session:
                row = get(session, proposal_id)
                number, state, forge_state = (
                    row.pr_number,
                    ProposalState(row.state),
                    row.forge_state,
                )
            if forge_state == "pending" and state is not ProposalState.AWAITING_REVIEW:
                self._set(proposal_id, forge_state=None)  # decided meanwhile (e.g. the CLI)
                notes.append(f"not published: the proposal is {state.value}")
            elif forge_state == "pending" or (
                number is None and state is ProposalState.AWAITING_REVIEW
            ):
                pull = self.publish(proposal_id)
                if pull is None:
                    with self.store.session() as session:
                        error = get(session, proposal_id).forge_error
                notes.append(f"published #{pull.number}" if pull else "still waiting for GitHub")
                number = pull.number if pull else None
            elif number is not None:
                try:
                    self._reconcile_pull(proposal_id, number, notes, actions)
                except MergeConflict as exc:  # rejected, its pull request closed
                    notes.append(f"not merged: {exc}")
                except ForgeError as exc:
                    self._set(proposal_id, forge_error=str(exc))
                    error = str(exc)
                    notes.append(f"GitHub: {exc}")
            state_now = actions.state(proposal_id).value
            return Reconciled(proposal_id, number, state_now, tuple(notes), error)

    def _withdraw(
        self,
        proposal_id: int,
        *,
        actor: str,
        reason: str,
        outcome: str,
        forge_state: str,
        allowed_from: tuple[ProposalState, ...] = (ProposalState.AWAITING_REVIEW,),
    ) -> None:
        """The proposal will not be applied: rejected, with what became of its pull request."""
        transition(
            self.store,
            proposal_id,
            ProposalState.REJECTED,
            actor=actor,
            reason=reason,
            allowed_from=allowed_from,
            changes={"outcome": outcome, "forge_state": forge_state},
        )

    def _reconcile_pull(
        self, proposal_id: int, number: int, notes: list[str], actions: ReviewActions
    ) -> None:
        pull = self.forge.pull(number)
        with self.store.session() as session:
            row = get(session, proposal_id)
            commit, state, cursor = row.commit_sha, ProposalState(row.state), row.forge_cursor
        assert commit is not None
        if pull.merged:
            if state in (ProposalState.AWAITING_REVIEW, ProposalState.APPROVED):
                self._merged_by_person(proposal_id, pull, commit, notes, actions)
            self._answer_comments(proposal_id, number, commit, cursor, notes, actions, "merged")
            return
        waiting = (ProposalState.AWAITING_REVIEW, ProposalState.APPROVED)
        if pull.state == "closed":
            if state in waiting:  # approved too: GitHub refused its merge, a person gave up
                self._withdraw(
                    proposal_id,
                    actor="github",
                    reason=f"pull request #{number} closed without merging",
                    outcome="rejected: pull request closed",
                    forge_state="closed",
                    allowed_from=waiting,
                )
                notes.append("closed on GitHub: rejected")
            self._answer_comments(proposal_id, number, commit, cursor, notes, actions, "closed")
            return
        self._answer_comments(proposal_id, number, commit, cursor, notes, actions, None)
        state = actions.state(proposal_id)
        if state is ProposalState.AWAITING_REVIEW:
            approvers = self._approvers(proposal_id, number, commit)
            if len(approvers) >= self.config.forge.github.required_approvals:
                notes.append(
                    self._approve_and_merge(proposal_id, number, commit, approvers, actions)
                )
        elif state is ProposalState.APPROVED:
            notes.append(self._merge_again(proposal_id, number, commit, actions))

    def _answer_comments(
        self,
        proposal_id: int,
        number: int,
        commit: str,
        cursor: int | None,
        notes: list[str],
        actions: ReviewActions,
        ended: str | None,
    ) -> None:
        """Run and answer every ``/terry`` command posted after the cursor. ``ended`` says
        the pull request was merged or closed meanwhile: commands that would merge or
        reject it are answered with what became of it instead."""
        access: PullAccess | None = None
        for comment in self.forge.comments(number, after=cursor):
            self._set(proposal_id, forge_cursor=comment.id)
            if comment.user == self.forge.bot:
                continue
            command = parse_command(comment.body)
            if command is None:
                continue
            access = access or self.access(proposal_id)
            needs = _NEEDS.get(command.verb, Action.READ)
            if (
                ended
                and command.verb in (Verb.APPLY, Verb.REJECT)
                and self.may(access, comment.user, needs)
            ):
                state = actions.state(proposal_id).value
                self.forge.comment(
                    number,
                    f"`{command.verb.value}` from @{comment.user}: the pull request was "
                    f"{ended} before Terry read this; proposal {proposal_id} is now "
                    f"`{state}`.",
                )
                notes.append(f"{command.verb.value} from {comment.user}: already {ended}")
                continue
            notes.append(
                self._command(proposal_id, number, commit, comment.user, command, actions, access)
            )

    def _approvers(self, proposal_id: int, number: int, commit: str) -> list[str]:
        """Who approved the checked commit and may approve; an approval by someone who may
        not is answered once on the pull request, with the reason, and does not count."""
        latest: dict[str, tuple[int, str, str | None]] = {}
        for review in self.forge.reviews(number):
            counts = review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED")
            if counts and (review.user not in latest or latest[review.user][0] < review.id):
                latest[review.user] = (review.id, review.state, review.commit)
        approved = sorted(
            (user, review_id)
            for user, (review_id, state, on) in latest.items()
            if state == "APPROVED" and on == commit
        )
        if not approved:
            return []
        access = self.access(proposal_id)
        found: list[str] = []
        for user, review_id in approved:
            decision = self.may(access, user, Action.APPROVE)
            if decision:
                found.append(user)
            elif user != self.forge.bot:
                self._refuse_once(
                    proposal_id,
                    number,
                    f"review {review_id}",
                    f"The approval by @{user} does not count: {fenced(decision.reason)}",
                )
        return found

    def _head_is_checked(self, proposal_id: int, number: int, commit: str) -> bool:
        pull = self.forge.pull(number)  # read again, right before acting
        if pull.head_sha == commit:
            return True
        self.forge.comment(
            number,
            f"Terry will not merge or apply this: the head is now `{pull.head_sha[:12]}`, "
            f"but the dry run and the gate saw `{commit[:12]}`. A new alert makes a new "
            "proposal; push nothing to Terry's branches.",
        )
        self._set(proposal_id, forge_error=f"head moved to {pull.head_sha[:12]}")
        return False

    def _approve_and_merge(
        self,
        proposal_id: int,
        number: int,
        commit: str,
        approvers: list[str],
        actions: ReviewActions,
    ) -> str:
        if not self._head_is_checked(proposal_id, number, commit):
            return "head moved: not merged"
        who = ", ".join(approvers)
        try:
            actions.approve(proposal_id, actor=who, apply=False)
        except StateError as pending:  # ApprovalPending: some tenants approved, others
            # must still; or these approvers may approve for none of the tenants missing.
            # Said once per set of approvers (every reconcile sees the same reviews), and
            # the sync goes on to the other proposals.
            key = "pending " + hashlib.sha256(who.encode()).hexdigest()[:16]
            self._refuse_once(proposal_id, number, key, f"Not merged yet: {pending}")
            return f"approved by {who} for some tenants: {pending}"
        return self._apply_merged(proposal_id, number, who, actions, "merged")

    def _merge_again(
        self, proposal_id: int, number: int, commit: str, actions: ReviewActions
    ) -> str:
        """Approved, but GitHub did not merge it then (down, or refused: the base moved, a
        branch protection): try again, on the same checks as the first time. Closing the
        pull request (or ``/terry reject``) gives up on it."""
        if not self._head_is_checked(proposal_id, number, commit):
            return "head moved: not merged"
        with self.store.session() as session:
            who = get(session, proposal_id).approved_by or "terry"
        actions.merge_approved(proposal_id, actor=who, reason=f"approved by {who}; merged again")
        return self._apply_merged(proposal_id, number, who, actions, "merged on a second try")

    def _apply_merged(
        self, proposal_id: int, number: int, who: str, actions: ReviewActions, how: str
    ) -> str:
        """Say on the pull request that ``who``'s approval merged it, apply, report."""
        self.forge.comment(number, f"Approved by {who}: {how}; applying now.")
        actions.apply(proposal_id, actor=who)
        self._report(proposal_id, number)
        return f"approved by {who}: {how} and applied"

    def _merged_by_person(
        self,
        proposal_id: int,
        pull: PullState,
        commit: str,
        notes: list[str],
        actions: ReviewActions,
    ) -> None:
        who = pull.merged_by or "github"
        refusal = None
        if pull.head_sha != commit:
            refusal = (
                f"the merged head `{pull.head_sha[:12]}` is not the commit the dry run and "
                f"the gate saw (`{commit[:12]}`)"
            )
        elif not (decision := self.may(self.access(proposal_id), who, Action.APPROVE)):
            refusal = decision.reason
        if refusal:
            self._withdraw(
                proposal_id,
                actor="terry",
                reason=f"merged on GitHub but not applied: {refusal}",
                outcome=f"not applied: {refusal}",
                forge_state="merged",
                allowed_from=(ProposalState.AWAITING_REVIEW, ProposalState.APPROVED),
            )
            flagged = self._ungated_merge(proposal_id, pull, refusal, actions)
            self.forge.comment(pull.number, f"Terry did not apply this: {refusal}.\n\n{flagged}")
            notes.append(f"merged by {who}: not applied ({refusal}); main flagged as ungated")
            return
        assert pull.merge_sha is not None
        self._fetch_main()
        if actions.state(proposal_id) is ProposalState.AWAITING_REVIEW:
            actions.record_approval(proposal_id, actor=who, reason=f"merged on GitHub by {who}")
        transition(
            self.store,
            proposal_id,
            ProposalState.MERGED,
            actor=who,
            reason=f"pull request #{pull.number} merged by {who} as {pull.merge_sha[:10]}",
            allowed_from=(ProposalState.APPROVED,),
            changes={"merge_sha": pull.merge_sha, "forge_state": "merged"},
        )
        actions.apply(proposal_id, actor=who)
        self._report(proposal_id, pull.number)
        notes.append(f"merged by {who}: applied")

    def _ungated_merge(
        self, proposal_id: int, pull: PullState, refusal: str, actions: ReviewActions
    ) -> str:
        """Main now holds what nobody gated: record it, fetch main, ask for a re-check of
        main as it now is. What to tell the pull request."""
        merged = pull.merge_sha or pull.head_sha
        incident_id = record_ungated(
            self.store,
            commit=merged,
            detail=f"pull request #{pull.number} merged by {pull.merged_by or 'someone'}, "
            f"not applied: {refusal}",
            labels={"pull": str(pull.number), "proposal": str(proposal_id)},
            holder=self.ctx.holder,
        )
        said = (
            f"Main now holds `{merged[:12]}`, which no dry run or gate saw (incident "
            f"{incident_id}). Terry applies nothing that contains it until main, as it now "
            "is, has been re-checked: a dry run and a decision of main, then approved and "
            "verified."
        )
        try:
            self._fetch_main()
            recheck = actions.recheck_main(incident_id)
        except TerryError as exc:  # the next refused apply asks again
            self.reporter.step(proposal_id, f"re-check of main not proposed yet: {exc}")
            return said
        if recheck is not None:
            said += f" The re-check is proposal {recheck}."
        return said

    def _command(
        self,
        proposal_id: int,
        number: int,
        commit: str,
        user: str,
        cmd: Command,
        actions: ReviewActions,
        access: PullAccess,
    ) -> str:
        said = f"`{cmd.verb.value}` from @{user}"
        decision = self.may(access, user, _NEEDS.get(cmd.verb, Action.READ))
        if not decision:
            self.forge.comment(number, f"Refused {said}: {fenced(decision.reason)}")
            return f"refused {cmd.verb.value} from {user}: {decision.reason}"
        try:
            if cmd.verb is Verb.APPLY:
                state = actions.state(proposal_id)
                if state is not ProposalState.AWAITING_REVIEW:
                    raise StateError(f"proposal {proposal_id} is {state.value}")
                return self._approve_and_merge(proposal_id, number, commit, [user], actions)
            if cmd.verb is Verb.REJECT:
                reason = cmd.argument or "no reason given"
                actions.reject(proposal_id, actor=user, reason=reason)
                self._set(proposal_id, forge_state="closed")
                self.forge.comment(number, f"Rejected by {user}: {fenced(reason)}\nClosing.")
                self.forge.close(number)
                return f"rejected by {user}"
            if cmd.verb is Verb.ROLLBACK:
                state = actions.rollback(proposal_id, actor=user)
                self.forge.comment(number, f"Rollback requested by {user}: now `{state.value}`.")
                return f"rolled back by {user}: {state.value}"
            if cmd.verb is Verb.EXPLAIN:
                self.forge.comment(number, self.explain(proposal_id))
                return f"explained to {user}"
            self.forge.comment(
                number,
                "Unknown command. Terry understands `/terry apply`, `/terry reject <reason>`, "
                "`/terry rollback` and `/terry explain`.",
            )
            return f"unknown command from {user}"
        except TerryError as exc:
            self.forge.comment(number, f"Refused {said}: {fenced(str(exc))}")
            return f"refused {cmd.verb.value} from {user}: {exc}"

    def explain(self, proposal_id: int) -> str:
        from terry.reports.views import incident_story

        detail = proposal_detail(self.store, proposal_id)
        story = incident_story(self.store, detail.summary.incident_id)
        lines = [f"{e.at.isoformat()} {e.what} ({e.actor}) {e.detail}" for e in story.timeline]
        lines += [f"{e.at.isoformat()} {e.what} ({e.actor}) {e.detail}" for e in detail.history]
        return (
            f"Proposal {proposal_id} is **{detail.summary.state}** "
            f"(decision: {detail.summary.decision or 'pending'}).\n\n" + fenced("\n".join(lines))
        )

    def _report(self, proposal_id: int, number: int) -> None:
        with self.store.session() as session:
            row = get(session, proposal_id)
            state, outcome = row.state, row.outcome or ""
        self.forge.comment(number, f"Result: **{state}**. {fenced(outcome) if outcome else ''}")

    # -- the incident moved on --------------------------------------------------------------
    def incident_changed(self, incident_id: int, *, resolved: bool, detail: str) -> None:
        """Tell open pull requests of this incident; close them when it resolved by itself."""
        with self.store.session() as session:
            rows = session.execute(
                select(ProposalRow.id, ProposalRow.pr_number).where(
                    ProposalRow.incident_id == incident_id,
                    ProposalRow.state == ProposalState.AWAITING_REVIEW.value,
                    ProposalRow.pr_number.is_not(None),
                )
            ).all()
        for proposal_id, number in rows:
            try:
                if resolved:
                    self.forge.comment(
                        number, f"The alert resolved by itself ({detail}); closing unmerged."
                    )
                    self.forge.close(number)
                    self._withdraw(
                        proposal_id,
                        actor="terry",
                        reason=f"alert resolved by itself: {detail}",
                        outcome="withdrawn: alert resolved",
                        forge_state="closed",
                    )
                else:
                    self.forge.comment(number, f"The alert fired again: {detail}.")
            except ForgeError as exc:
                self._set(proposal_id, forge_error=str(exc))

    def sync(self, actions: ReviewActions) -> list[Reconciled]:
        """Reconcile every proposal whose pull request is pending or open (polling)."""
        with self.store.session() as session:
            ids = list(
                session.scalars(
                    select(ProposalRow.id)
                    .where(ProposalRow.forge_state.in_(("pending", "open")))
                    .order_by(ProposalRow.id)
                )
            )
        return [self.reconcile(i, actions) for i in ids]


def review_packet(ctx: Context, proposal_id: int) -> ReviewPacket:
    """What a reviewer is shown on the forge: the proposal's read model, with its incident,
    the environments and tenants of its hosts (from main's inventory), and the proposal
    commit's message (what, why, parameters, verify, rollback)."""
    detail = proposal_detail(ctx.store, proposal_id)
    summary = detail.summary
    _sha, _catalogue, inventory = ctx.main.view()
    known = [h for n in summary.hosts if (h := inventory.hosts.get(n))]
    with ctx.store.session() as session:
        incident = session.get(IncidentRow, summary.incident_id)
        assert incident is not None
        alertname, labels, annotations = (
            incident.title,
            dict(incident.labels),
            dict(incident.annotations),
        )
        opened_at, recurrence = incident.opened_at, incident.recurrence
        incident_ref = incident.ref or ""
        traced = incident.trace_evidence
    assert detail.commit and summary.branch
    return ReviewPacket(
        proposal_id=summary.id,
        incident_id=summary.incident_id,
        incident_ref=incident_ref,
        remedy=summary.remedy,
        hosts=summary.hosts,
        environments=tuple(sorted({h.environment for h in known if h.environment})),
        tenants=tuple(sorted({h.tenant for h in known if h.tenant})),
        risk=summary.risk,
        decision=summary.decision,
        reasons=detail.reasons,
        policy_commit=detail.policy_commit,
        commit=detail.commit,
        branch=summary.branch,
        alertname=alertname,
        labels=labels,
        annotations=annotations,
        opened_at=opened_at,
        recurrence=recurrence,
        diagnosis=ctx.repo.message(detail.commit),
        playbook_path=detail.playbook_path,
        playbook=detail.playbook,
        check_summary=dict(detail.check_summary),
        check_diff=detail.check_diff,
        applier=detail.applier,
        tasks=planned_tasks(
            detail.playbook,
            detail.playbook_path,
            lambda path: ctx.repo.read_text(detail.commit or "", path),
            roles_path=ctx.config.roles_path,
        ),
        target=detail.target,
        ai_authored=detail.ai is not None,
        confidence=detail.ai["confidence"] if detail.ai else None,
        score=summary.confidence,
        waves=_waves(detail.host_outcomes),
        traces=tuple(TraceEvidence.from_json(traced).lines()) if traced else (),
    )


def _waves(hosts: tuple[dict[str, Any], ...]) -> tuple[tuple[str, ...], ...]:
    """The hosts of each planned wave, in order (terry.proposals.waves, as the gate kept it)."""
    planned: dict[int, list[str]] = {}
    for h in hosts:
        if h.get("wave") is not None:
            planned.setdefault(int(h["wave"]), []).append(str(h["host"]))
    return tuple(tuple(planned[n]) for n in sorted(planned))
