"""A recommendation as an inventory edit: the change a cloud role applies (issue 21).

Downsize sets ``terry_instance_type``, an over-sized volume ``terry_volume_gb``, on the host,
through the inventory edit every person's edit takes (``terry inventory set``): a branch, a
dry run, the gate (an inventory edit always waits for a person), review, merge. Idle and spot
recommendations are advice: they change what is run or how it is bought, not a variable.
"""

from __future__ import annotations

from terry.cost.rules import Kind, Recommendation
from terry.errors import InputError
from terry.inventory.editor import Assignment, EditAction, InventoryEdit

__all__ = ["edit_for"]


def edit_for(rec: Recommendation) -> InventoryEdit:
    if rec.kind is Kind.REQUESTS:
        raise InputError(f"{rec.id} is a manifest edit (terry.cost.workload_proposal)")
    if not rec.proposable:
        raise InputError(
            f"{rec.id} is advice, not a change Terry can propose ({rec.kind.value}: "
            f"{rec.proposed}); downsize and volume recommendations become proposals"
        )
    return InventoryEdit(
        EditAction.SET,
        rec.host,
        assignments=tuple(Assignment((name,), value) for name, value in rec.change.items()),
    )
