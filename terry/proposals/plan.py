"""How a proposal is carried: which appliers dry-run it, how it is verified, who rolls it
back. Decided once, when it is proposed, from the remedy's data, and kept on the proposal
(``proposals.plan``), so the steps read it instead of asking what kind of remedy it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["APPLIER", "MANUAL", "PER_HOST", "Plan"]

APPLIER = "applier"  # the proposal's applier does it
MANUAL = "manual"  # a person does it, as the note says


# The verify checks that tell each host apart (terry.steps.verify.CHECKS): the applier's own
# verify play and Prometheus per instance; a drift scan or an inventory check judges the whole.
PER_HOST = frozenset({APPLIER, "prometheus"})


@dataclass(frozen=True)
class Plan:
    check: tuple[str, ...]  # appliers whose dry runs, in order, make the proposal's dry run
    verify: tuple[str, ...]  # named checks, in order (terry.steps.verify)
    rollback: str = APPLIER  # APPLIER or MANUAL
    rollback_note: str = ""  # what a person does when it is MANUAL
    resolves: str | None = None  # verified: resolve the incident with these words
    edits: tuple[str, ...] = ()  # desired-state files it edits (the gate reads them edited)
    # The applier's verify runs in the apply's own run (one ansible start instead of two),
    # when the remedy says its verify may (``verify_in_apply_run``) and the applier can.
    verify_with_apply: bool = False

    def in_waves(self, hosts: int) -> bool:
        """Whether a proposal over ``hosts`` hosts is applied host by host, in canary waves:
        several hosts, and checks that tell each host apart. Otherwise it is one apply, and
        its plan is one wave: the gate is never shown a canary the apply will not do."""
        return hosts > 1 and bool(self.verify) and set(self.verify) <= PER_HOST

    def to_json(self) -> dict[str, Any]:
        return {
            "check": list(self.check),
            "verify": list(self.verify),
            "rollback": self.rollback,
            "rollback_note": self.rollback_note,
            "resolves": self.resolves,
            "edits": list(self.edits),
            "verify_with_apply": self.verify_with_apply,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, *, applier: str) -> Plan:
        """The stored plan; a proposal made before plans were stored gets the default."""
        if not data:
            return cls(check=(applier,), verify=(APPLIER, "prometheus"))
        return cls(
            check=tuple(data.get("check") or (applier,)),
            verify=tuple(data.get("verify") or ()),
            rollback=str(data.get("rollback") or APPLIER),
            rollback_note=str(data.get("rollback_note") or ""),
            resolves=data.get("resolves"),
            edits=tuple(data.get("edits") or ()),
            verify_with_apply=bool(data.get("verify_with_apply", False)),
        )
