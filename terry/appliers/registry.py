"""Appliers by name. A proposal stores its applier's name (``proposals.applier``), the
inventory names it for a target (``terry_applier``), and the steps ask this registry.

Each entry of ``terry.appliers.base.APPLIERS`` names a module with a ``build(ctx, share)``
function, imported on first use, so a heavy client (Argo CD's httpx, ansible-runner) loads
only when a proposal needs it. A new applier is one module and one line there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib import import_module

from terry.appliers.base import APPLIERS, Applier, Share
from terry.context import Context
from terry.errors import ConfigError
from terry.store.runs import Reaped, reap

log = logging.getLogger("terry.appliers.registry")

__all__ = ["APPLIERS", "Appliers", "Build"]

# How an applier is made: a module's ``build``, or one given instead (a benchmark's timed one).
Build = Callable[[Context, Share], Applier]


class Appliers:
    """The appliers of one application, built on first use and kept."""

    def __init__(
        self, ctx: Context, share: Share, *, builds: Mapping[str, Build] | None = None
    ) -> None:
        self._ctx = ctx
        self._share = share
        self._builds = dict(builds or {})
        self._built: dict[str, Applier] = {}

    def reap(self) -> Reaped:
        """Release what dead processes left (``terry.store.runs.reap``): their ansible on
        this machine stopped, their runs elsewhere stopped by the applier that started them
        (``stop_remote``)."""
        return reap(self._ctx.store, self._ctx.config.state_dir / "runs", self.stop_remote)

    def stop_remote(self, remote: str) -> bool:
        """Stop a run that goes on elsewhere (``awx:<job id>``) through its applier's
        ``stop_remote``; whether it has ended there. False when no applier here can."""
        name, _, ref = remote.partition(":")
        try:
            applier = self.get(name)
        except ConfigError as exc:
            log.warning("run at %s: no applier can stop it here: %s", remote, exc)
            return False
        stop: Callable[[str], bool] | None = getattr(applier, "stop_remote", None)
        return stop is not None and stop(ref)

    def get(self, name: str) -> Applier:
        found = self._built.get(name)
        if found is None:
            build = self._builds.get(name)
            if build is None:
                registered = APPLIERS.get(name)
                if registered is None:
                    known = ", ".join(sorted(APPLIERS))
                    raise ConfigError(f"unknown applier {name!r} (known: {known})")
                build = import_module(registered.module).build
            found = build(self._ctx, self._share)
            self._built[name] = found
        return found
