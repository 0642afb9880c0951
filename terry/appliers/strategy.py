"""Ansible's strategy for Terry's runs (``runner.strategy`` in terry.yml).

``linear`` is Ansible's own default. Mitogen's strategies (``mitogen_linear``,
``mitogen_free``; the optional extra ``terry[mitogen]``) keep one Python interpreter per
host over the SSH connection and send modules to it, instead of uploading and starting a
module per task: fewer round trips for remedies of several tasks. The plugins are found
where the package is installed, without importing it (it patches Ansible on import).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from terry.errors import TerryError

__all__ = ["strategy_env"]


def strategy_env(strategy: str) -> dict[str, str]:
    """The ANSIBLE_* settings that select ``strategy`` (none for Ansible's default)."""
    if strategy == "linear":
        return {}
    if strategy == "free":
        return {"ANSIBLE_STRATEGY": "free"}
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        raise TerryError(
            f"runner.strategy {strategy} needs Mitogen for Ansible: pip install 'terry[mitogen]'"
            " (or set runner.strategy: linear)"
        )
    plugins = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": strategy}
