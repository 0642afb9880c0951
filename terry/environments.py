"""Environment names: how a host's ``terry_environment`` is read, and which one is production.

A name is compared without regard to case or the space around it: ``Production`` and
`` production `` are production. Ansible keeps a variable as it is written, and until
session 28 a name that differed only in case escaped every rule written for production (the
gate's review, the canary's order, separation of duties, variants). Every place an
environment name enters Terry reads it through ``environment_name``: the inventory, the
settings in terry.yml that list environments, a remedy's ``try_variants_in``, a chaos
experiment's target and the CLI; the shipped policies compare ``data.json``'s lists the
same way.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PRODUCTION", "UNKNOWN", "environment_name", "environment_names"]

PRODUCTION = "production"
# What a host of no environment is shown as (and judged as where it matters: variants).
UNKNOWN = "unknown"


def environment_name(value: object) -> str | None:
    """The environment ``value`` names, in lower case; None for no name (None, blank)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


def environment_names(values: Iterable[object]) -> list[str]:
    """``values`` as environment names, blanks left out, each once, in the order given."""
    names: list[str] = []
    for value in values:
        name = environment_name(value)
        if name is not None and name not in names:
            names.append(name)
    return names
