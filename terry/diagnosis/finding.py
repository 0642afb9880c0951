"""What a diagnosis finds, whatever its source: a ``Fix`` to propose, or ``NoFix`` (kept for
a person, with the reason). Every source (an alert, drift, a forecast, an inventory edit)
hands one of these with its incident to the pipeline's one door, ``Pipeline.handle``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from terry.diagnosis.rules import Diagnosis, NoFix
from terry.proposals.plan import APPLIER, MANUAL, Plan

if TYPE_CHECKING:
    from terry.ai.answer import AIAnswer
    from terry.remedies.render import Rendered

__all__ = ["Finding", "Fix", "NoFix"]


@dataclass(frozen=True)
class Fix:
    """A remedy on its hosts, and how its proposal is made and carried."""

    diagnosis: Diagnosis
    base: str  # main's commit the diagnosis read; the proposal branches from it
    # The playbook, when it is not the remedy's own: (proposal id, incident id) -> files
    # (None: nothing to run, e.g. an edit whose merge is the change).
    render: Callable[[int, int], Rendered | None] | None = None
    manifest: tuple[str, str] | None = None  # (path, edited text) for an Argo CD target
    edits: Mapping[str, str | None] = field(default_factory=dict)  # other files it changes
    applier: str | None = None  # default: the remedy's
    check: tuple[str, ...] | None = None  # appliers whose dry runs make it; default: applier
    ai: AIAnswer | None = None  # written by Claude

    @property
    def applier_name(self) -> str:
        return self.applier or self.diagnosis.remedy.applier

    def plan(self) -> Plan:
        remedy = self.diagnosis.remedy
        return Plan(
            check=self.check or (self.applier_name,),
            verify=remedy.verified_by,
            rollback=APPLIER if remedy.rolls_back else MANUAL,
            rollback_note="" if remedy.rolls_back else remedy.rollback_summary,
            resolves=remedy.resolves,
            edits=tuple(sorted(self.edits)),
            verify_with_apply=remedy.verify_in_apply_run,
        )


Finding = Fix | NoFix
