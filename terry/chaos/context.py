"""What the extension's actions and probes are handed by chaostoolkit-lib: the experiment's
``configuration``, into which ``terry.chaos.run`` puts the repository, the run and the
target. Each call opens the configuration and the store from those (a probe may run in
chaostoolkit-lib's worker threads, so nothing is shared between calls)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terry.config import Config, load_config
from terry.errors import InputError
from terry.store import Store

__all__ = ["RunContext", "log", "run_context"]

log = logging.getLogger("terry.chaos")


@dataclass(frozen=True)
class RunContext:
    config: Config
    store: Store
    run_id: int
    target: str


def run_context(configuration: dict[str, Any] | None) -> RunContext:
    configuration = configuration or {}
    try:
        repo = Path(str(configuration["terry_repo"]))
        run_id = int(configuration["terry_run"])
        target = str(configuration["terry_target"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            "terry.chaos actions and probes run under 'terry chaos run', which sets "
            "terry_repo, terry_run and terry_target in the experiment's configuration"
        ) from exc
    config = load_config(repo)
    return RunContext(config=config, store=Store(config.store_url), run_id=run_id, target=target)
