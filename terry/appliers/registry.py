"""Appliers by name. A proposal stores its applier's name (``proposals.applier``), the
inventory names it for a target (``terry_applier``), and the steps ask this registry.

Each entry is a module with a ``build(ctx, share)`` function, imported on first use, so a
heavy client (Argo CD's httpx, ansible-runner) loads only when a proposal needs it. A new
applier is one module and one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module

from terry.appliers.base import Applier, Share
from terry.context import Context
from terry.errors import ConfigError

__all__ = ["APPLIERS", "Appliers"]

APPLIERS: Mapping[str, str] = {
    "ansible": "terry.appliers.ansible_runner",
    "argocd": "terry.appliers.argocd",
    "git": "terry.appliers.git",
}


class Appliers:
    """The appliers of one application, built on first use and kept."""

    def __init__(
        self, ctx: Context, share: Share, *, given: Mapping[str, Applier] | None = None
    ) -> None:
        self._ctx = ctx
        self._share = share
        self._built: dict[str, Applier] = dict(given or {})

    def get(self, name: str) -> Applier:
        found = self._built.get(name)
        if found is None:
            module = APPLIERS.get(name)
            if module is None:
                known = ", ".join(sorted(APPLIERS))
                raise ConfigError(f"unknown applier {name!r} (known: {known})")
            found = import_module(module).build(self._ctx, self._share)
            self._built[name] = found
        return found
