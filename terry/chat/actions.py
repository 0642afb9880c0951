"""Runs what a chat user asks: a typed command in, a typed ``Answer`` out.

Reads come from the read models (``terry.chat.reads``); writes go through the pipeline the
service hands in (``pipeline_factory``, ``terry.app.build_pipeline`` in ``terry serve``), with
the CLI's rules: ``approve`` is the pipeline's ``approve`` then its apply, ``reject`` needs a
reason, ``rollback HOST --to=1h-ago`` rolls back, newest first, each proposal applied on the
host since then (``Pipeline.rollback``), ``prevent disk-full`` runs the forecast for the
hosts the caller may act on and carries its preventive proposals through the pipeline
(``terry.sources.forecast``). Whatever the proposal's state does not allow is the
pipeline's to refuse, and its refusal is the answer.

Who may do what is ``terry.chat.identity``: the person's principals (the tenants' members,
``terry.yml``'s allow-list), each write judged by ``terry.access.allowed`` with the
proposal's risk and tenants before the pipeline is asked, reads limited to the hosts of the
person's tenants (another tenant's host, incident or proposal answers as an unknown one).
Every command, run or refused, is one audit row (entity ``chat``, the proposal's id or 0,
the actor ``slack:U456 (alice)``); what a write changes is in the proposal's own audit rows
under the same actor.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from terry.access import Action
from terry.chat.answer import Answer, Button, ButtonAction
from terry.chat.confirm import ConfirmTokens
from terry.chat.grammar import (
    COMMANDS,
    NAME,
    USAGE,
    Approve,
    Command,
    Explain,
    Help,
    Incidents,
    ParseError,
    Prevent,
    Reject,
    Retry,
    Rollback,
    Status,
    near,
    parse,
)
from terry.chat.identity import ChatAccess, ChatUser, access_of, tenants_of_hosts
from terry.chat.language import CommandReader, NotUnderstood
from terry.chat.reads import explain_answer, incidents_answer, review_buttons, status_answer
from terry.config import Config
from terry.context import MainView
from terry.errors import InputError, NotFound, TerryError
from terry.gitops.repo import Repo
from terry.incidents.refs import resolve_incident
from terry.inert import inert
from terry.inventory.hosts import Inventory
from terry.pipeline import Pipeline
from terry.proposals.view import proposal_detail
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import AuditRow, IncidentRow, ProposalRow
from terry.tenants.loader import load_tenants
from terry.tenants.model import Tenants
from terry.tenants.scope import Scope

__all__ = ["ChatActions"]

log = logging.getLogger("terry.chat")

_APPLIED = ("applied",)  # the audit state every apply passes through
_DISCORD_ID_MAX = 100  # a Discord button's custom_id
_WRITES = {
    Approve: Action.APPROVE,
    Reject: Action.REJECT,
    Rollback: Action.ROLLBACK,
    Retry: Action.RETRY,
}


@dataclass(frozen=True)
class Asker:
    """Who asks, with what main says of tenants and hosts when they ask."""

    user: ChatUser
    access: ChatAccess
    tenancy: Tenants | None
    inventory: Inventory
    scope: Scope

    @property
    def hosts(self) -> frozenset[str]:
        """The inventory hosts they may name (another tenant's answer as unknown ones)."""
        return frozenset(str(h) for h in self.inventory.hosts if self.scope.sees_host(str(h)))


class ChatActions:
    """What chat users ask, run for them. One per server; safe to use from several threads."""

    def __init__(
        self,
        config: Config,
        store: Store,
        pipeline_factory: Callable[[], Pipeline],
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.config = config
        self.store = store
        self._pipeline = pipeline_factory
        self._main = MainView(config, Repo(config.repo, main_branch=config.main_branch))
        self.tokens = ConfirmTokens.from_environment(
            config.chat.confirm_secret_env, minutes=config.chat.confirm_minutes, environ=env
        )
        self.reader = CommandReader.from_config(config.ai, env)
        self._tenants_lock = threading.Lock()
        self._tenants: tuple[str, Tenants | None] | None = None

    # -- the doors ----------------------------------------------------------------------
    def say(self, user: ChatUser, text: str, *, now: datetime | None = None) -> Answer:
        """A typed line (``/terry approve 12``) or, with a key, a sentence."""
        now = now or datetime.now(UTC)
        text = " ".join(text.split())[:2000]
        try:
            asker = self.asker(user)
        except TerryError as exc:
            return self._failed(user, text, exc)
        if (why := asker.access.refusal()) is not None:
            return self._refused(user, text or "(empty)", why)
        try:
            command = parse(text, hosts=asker.hosts, now=now)
        except ParseError as exc:
            if self.reader is None or not self._sentence(text):
                self._audit(user, "refused", 0, text, str(exc))
                return Answer(f"{exc}\nType /terry help for the commands.", ok=False)
            return self._understand(asker, text, now)
        return self.run(asker, command)

    def press(self, user: ChatUser, action: str, value: str) -> Answer:
        """A button pressed: approve or reject a proposal, confirm or cancel a command."""
        try:
            asker = self.asker(user)
        except TerryError as exc:
            return self._failed(user, f"button {action}", exc)
        if (why := asker.access.refusal()) is not None:
            return self._refused(user, f"button {action}", why)
        try:
            if action == ButtonAction.CANCEL:
                self._audit(user, "cancel", 0, "cancel", "nothing done")
                return Answer("Cancelled: nothing done.")
            if action == ButtonAction.CONFIRM:
                confirmed = self.tokens.redeem(value, user.key)
                return self.run(asker, parse(confirmed.command, hosts=asker.hosts))
            if action == ButtonAction.APPROVE:
                return self.run(asker, Approve(int(value)))
            if action == ButtonAction.REJECT:
                reason = f"rejected in {user.platform} by {user.name or user.key}"
                return self.run(asker, Reject(int(value), reason))
        except (TerryError, ValueError) as exc:
            return self._failed(user, f"button {action}", exc)
        return self._failed(user, "button", InputError(f"unknown button {inert(action)[:40]}"))

    def asker(self, user: ChatUser) -> Asker:
        """``user`` with their principals and the hosts they may see, from main as it is."""
        sha, _catalogue, inventory = self._main.view()
        with self._tenants_lock:
            if self._tenants is None or self._tenants[0] != sha:
                tree = self._main.repo.tree(sha)
                self._tenants = (sha, load_tenants(tree, self.config.policy.path))
            tenancy = self._tenants[1]
        access = access_of(self.config, user, tenancy)
        return Asker(user, access, tenancy, inventory, access.scope(tenancy, inventory))

    def run(self, asker: Asker, command: Command) -> Answer:
        """``command`` for ``asker``: refused with the reason when they may not."""
        user, text = asker.user, command.text()
        if (why := asker.access.refusal()) is not None:
            return self._refused(user, text, why)
        try:
            if command.writes and (why := self._judge(asker, command)) is not None:
                return self._refused(user, text, why)
            answer = self._dispatch(asker, command)
        except TerryError as exc:
            return self._failed(user, text, exc)
        except Exception:  # logged in full; the person gets a line, not a stack
            log.exception("chat command %r of %s crashed", text, user.actor)
            return self._failed(user, text, TerryError("Terry failed; its log has the details"))
        entity = command.proposal_id if isinstance(command, Approve | Reject) else 0
        self._audit(user, text.split()[0], entity, text, "ran" if answer.ok else "failed")
        return answer

    def _judge(self, asker: Asker, command: Command) -> str | None:
        """Why ``asker`` may not run the write ``command`` (``terry.access.allowed`` with the
        proposal's risk and tenants); None when they may. Another tenant's proposal is
        NotFound, as a missing one."""
        risk: str | None = None
        if isinstance(command, Approve | Reject):
            hosts, risk = self._visible_proposal(asker, command.proposal_id)
        elif isinstance(command, Rollback):
            hosts = [command.host]
        elif isinstance(command, Retry):
            hosts = [self._visible_incident(asker, command.incident)]
        else:  # prevent: the forecast's proposals on the hosts they may act on
            hosts = sorted(asker.hosts)
        action = _WRITES.get(type(command), Action.APPROVE)
        tenants = tenants_of_hosts(hosts, asker.tenancy, asker.inventory)
        decision = asker.access.decide(action, risk=risk, tenants=tenants)
        return None if decision else decision.reason

    def _visible_incident(self, asker: Asker, key: str) -> str:
        """The incident's host; NotFound, worded as for a missing one, when the incident is
        another tenant's."""
        with self.store.session() as session:
            row = session.get(IncidentRow, resolve_incident(session, key))
            host = row.host if row is not None else None
        if row is None or not asker.scope.sees_host(host):
            raise NotFound(f"incident {key} does not exist")
        return host or ""

    def _visible_proposal(self, asker: Asker, proposal_id: int) -> tuple[list[str], str]:
        with self.store.session() as session:
            row = session.get(ProposalRow, proposal_id)
            found = (list(row.hosts or []), row.risk) if row is not None else None
        if found is None or not asker.scope.sees_hosts(found[0]):
            raise NotFound(f"proposal {proposal_id} does not exist")
        return found

    # -- plain language -------------------------------------------------------------------
    @staticmethod
    def _sentence(text: str) -> bool:
        """Plain language rather than a mistyped command: not a near miss of a command."""
        first = text.split()[0].lower().strip(",.!?:") if text.split() else ""
        if first == NAME:  # "Terry, ...": addressed by name, not a near miss of retry
            return True
        return first not in COMMANDS and not near(first, COMMANDS)

    def _understand(self, asker: Asker, text: str, now: datetime) -> Answer:
        assert self.reader is not None
        user = asker.user
        try:
            command = self.reader.read(text, asker.hosts, now)
        except NotUnderstood as exc:
            self._audit(user, "not-understood", 0, text, str(exc))
            return Answer(
                f"I could not turn that into a command: {inert(exc)}\n"
                "Nothing was done. Type /terry help for the commands.",
                ok=False,
            )
        understood = f"I understood: {inert(command.text())}"
        if not command.writes:
            return Answer(f"{understood}\n\n{self.run(asker, command).text}")
        try:
            why = self._judge(asker, command)
        except TerryError as exc:
            return self._failed(user, command.text(), exc)
        if why is not None:
            return self._refused(user, command.text(), why)
        token = self.tokens.issue(command.text(), user.key)
        self._audit(user, "to-confirm", 0, command.text(), "awaits the person's confirmation")
        fits = user.platform != "discord" or len(token) + 20 <= _DISCORD_ID_MAX
        if not fits:
            return Answer(
                f"{understood}\nThat is too long for a button: type it as a command to run it.",
                ok=False,
            )
        return Answer(
            f"{understood}\nNothing is done until you confirm "
            f"(within {self.config.chat.confirm_minutes} minutes).",
            (
                Button("Confirm", ButtonAction.CONFIRM, token, danger=True),
                Button("Cancel", ButtonAction.CANCEL, "-"),
            ),
        )

    # -- the commands ---------------------------------------------------------------------
    def _dispatch(self, asker: Asker, command: Command) -> Answer:
        user, name = asker.user, asker.user.name or asker.user.key
        match command:
            case Status(host=host):
                return status_answer(self.config, self.store, host)
            case Incidents():
                return incidents_answer(self.store, asker.inventory, command, asker.scope)
            case Explain():
                self._explainable(asker, command)
                return explain_answer(self.config, self.store, command)
            case Approve(proposal_id=pid):
                pipeline = self._pipeline()
                pipeline.approve(pid, actor=user.actor)
                return self._proposal(pid, f"approved by {name}", public=True)
            case Reject(proposal_id=pid, reason=reason):
                self._pipeline().reject(pid, actor=user.actor, reason=reason)
                return self._proposal(pid, f"rejected by {name}", public=True)
            case Rollback():
                return self._rollback(user, command)
            case Retry(incident=key, reason=reason):
                return self._retry(user, key, reason)
            case Prevent():
                return self._prevent(asker)
            case Help():
                return Answer("Commands:\n" + "\n".join(f"  /terry {u}" for u in USAGE.values()))
        raise InputError(f"unknown command {type(command).__name__}")

    def _explainable(self, asker: Asker, command: Explain) -> None:
        """NotFound, worded as for a missing one, when the incident is another tenant's."""
        if not asker.scope.everything:
            self._visible_incident(asker, command.incident)

    def _retry(self, user: ChatUser, key: str, reason: str) -> Answer:
        """The incident diagnosed and proposed again (terry.incidents.retry), carried here."""
        from terry.incidents.retry import ask_retry

        asked = ask_retry(self.store, key, actor=user.actor, reason=reason)
        name = asked.ref or f"incident {asked.incident_id}"
        [outcome] = self._pipeline().remediate_many([asked.incident_id])
        if outcome.proposal_id is None:
            return Answer(f"{name}: tried again by {user.name or user.key}; {inert(outcome.note)}")
        return self._proposal(
            outcome.proposal_id, f"proposed again for {name} by {user.name or user.key}"
        )

    def _proposal(self, pid: int, what: str, *, public: bool = False) -> Answer:
        d = proposal_detail(self.store, pid)
        s = d.summary
        line = (
            f"Proposal {pid} ({inert(s.remedy)} on {inert(', '.join(s.hosts))}) {what}: "
            f"now {s.state}"
        )
        if d.outcome:
            line += f": {inert(d.outcome)[:500]}"
        ok = s.state not in ("failed", "rolled_back", "escalated", "interrupted")
        return Answer(line, ok=ok, public=public)

    def _rollback(self, user: ChatUser, command: Rollback) -> Answer:
        with self.store.session() as session:
            applied = session.execute(
                select(AuditRow.entity_id, AuditRow.at)
                .where(
                    AuditRow.entity == "proposal",
                    AuditRow.to_state.in_(_APPLIED),
                    AuditRow.at >= command.to,
                )
                .order_by(AuditRow.at.desc(), AuditRow.id.desc())
            ).all()
            ids = list(dict.fromkeys(pid for pid, _at in applied))
            rows = {
                p.id: p for p in session.scalars(select(ProposalRow).where(ProposalRow.id.in_(ids)))
            }
            chosen = [pid for pid in ids if command.host in (rows[pid].hosts or [])]
        since = command.to.strftime("%Y-%m-%d %H:%M:%S UTC")
        if not chosen:
            return Answer(
                f"Nothing was applied on {command.host} since {since}: nothing to roll back."
            )
        pipeline = self._pipeline()
        lines = [f"Rolling back on {command.host}, newest first (applied since {since}):"]
        ok = True
        for pid in chosen:
            try:
                state = pipeline.rollback(pid, actor=user.actor)
                lines.append(f"  proposal {pid}: {state.value}")
                ok = ok and state.value == "rolled_back"
            except TerryError as exc:
                ok = False
                lines.append(f"  proposal {pid}: not rolled back: {inert(exc)[:300]}")
        return Answer("\n".join(lines), ok=ok, public=True)

    def _prevent(self, asker: Asker) -> Answer:
        from terry.forecast.prometheus import forecast_fleet
        from terry.sources.forecast import act

        hosts = sorted(asker.hosts)
        pipeline = self._pipeline()
        _sha, _catalogue, main_inventory = pipeline.ctx.main.view()
        fleet = forecast_fleet(self.config, main_inventory, hosts=hosts)
        actions = act(pipeline, fleet)
        if not actions:
            return Answer(
                f"Forecast for {len(hosts)} host(s): no disk will fill within the lead time."
            )
        lines = [f"Forecast for {len(hosts)} host(s):"]
        buttons: list[Button] = []
        for a in actions:
            where = f"{inert(a.host)} {inert(a.mountpoint or a.kind)}"
            if a.proposal_id is not None:
                lines.append(
                    f"  {where}: incident {a.incident_id}, proposal {a.proposal_id}: {a.state}"
                )
                if a.state == "awaiting_review":
                    buttons.extend(review_buttons(a.proposal_id))
            else:
                lines.append(f"  {where}: {a.effect}: {inert(a.note)[:200]}")
        return Answer("\n".join(lines), tuple(buttons[:10]), public=True)

    # -- refusals, failures, the audit trail ----------------------------------------------------
    def _refused(self, user: ChatUser, text: str, why: str) -> Answer:
        self._audit(user, "refused", 0, text, why)
        return Answer(f"Refused: {inert(why)}", ok=False)

    def _failed(self, user: ChatUser, text: str, exc: Exception) -> Answer:
        self._audit(user, "failed", 0, text, str(exc))
        return Answer(f"Not done: {inert(exc)[:500]}", ok=False)

    def _audit(self, user: ChatUser, verb: str, entity_id: int, text: str, outcome: str) -> None:
        try:
            with self.store.session() as session:
                audit(
                    session,
                    entity="chat",
                    entity_id=entity_id,
                    actor=user.actor[:200],
                    from_state=None,
                    to_state=verb[:24],
                    reason=f"{inert(text)[:500]} -> {inert(outcome)[:500]}",
                )
        except TerryError:
            log.exception("chat: could not audit %s of %s", verb, user.actor)
