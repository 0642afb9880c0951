"""The lab tests' preamble: the ``lab`` mark, when a lab module may skip, and its lab.

Every test under ``tests/lab`` is marked ``lab``. Each module says what it needs in
``NEEDS`` (the programs it runs, as ``shutil.which`` finds them); a module that uses the
``lab_config`` fixture names its own lab in ``NAMES`` (bridge, subnet and prefixes that no
other module, and no developer's ``terry lab up``, uses; ``data_volume`` to pin its hosts'
/srv/data to one kind). ``TERRY_LAB_DATA_VOLUME=tmpfs`` runs every other lab on tmpfs, as a
machine without loop devices does. Plain helpers (ssh, waiting,
Prometheus' alerts) are in ``tests/lab/helpers.py``.

Outside CI a module skips when it is not run as root or when a program in ``NEEDS`` is
missing. In CI (``CI`` set; ``scripts/test.sh`` runs as root there) nothing skips: the tests
run and a missing prerequisite fails the run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from terry import lab

HERE = Path(__file__).resolve().parent
# In CI (CI=true) nothing skips: a missing prerequisite fails the run instead.
MAY_SKIP = not os.environ.get("CI")
INSTALL = (
    "apt-get install openssh-server prometheus prometheus-alertmanager prometheus-node-exporter"
)


def _preamble(module: object) -> list[pytest.MarkDecorator]:
    missing = [tool for tool in getattr(module, "NEEDS", ()) if shutil.which(tool) is None]
    return [
        pytest.mark.lab,
        pytest.mark.skipif(MAY_SKIP and os.geteuid() != 0, reason="the lab needs root"),
        pytest.mark.skipif(
            MAY_SKIP and bool(missing), reason=f"missing {', '.join(missing)} ({INSTALL})"
        ),
    ]


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    marks: dict[object, list[pytest.MarkDecorator]] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is None or HERE not in item.path.resolve().parents:
            continue
        if module not in marks:
            marks[module] = _preamble(module)
        for mark in marks[module]:
            item.add_marker(mark)


@pytest.fixture(scope="module")
def lab_config(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> lab.LabConfig:
    """The module's own lab (its ``NAMES``), with a fresh state directory. Its data volumes
    are ``$TERRY_LAB_DATA_VOLUME`` (``tmpfs``: as on a CI machine without loop devices)
    unless the module's ``NAMES`` says which."""
    names = {"data_volume": os.environ.get("TERRY_LAB_DATA_VOLUME", "loop"), **request.module.NAMES}
    return lab.LabConfig(state_dir=tmp_path_factory.mktemp("lab") / "state", **names)
