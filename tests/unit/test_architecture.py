"""The floor plan holds: no import cycles, no reaching into another module's private names,
every applier in the registry speaks the applier protocol, and the layers in pyproject.toml
are kept (``lint-imports``, run here too so a plain ``pytest`` catches a broken layer)."""

from __future__ import annotations

import ast
import importlib
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from terry.appliers.base import APPLIERS, Applier

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "terry"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) of every import at any depth of the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("terry")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if not base.startswith("terry"):
                continue
            names = [a.name for a in node.names]
            submodules = [n for n in names if f"{base}.{n}" in known]
            out += [(f"{base}.{n}", []) for n in submodules]
            out.append((base, [n for n in names if n not in submodules]))
    return out


def _top_level_imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Modules imported when the module is imported (module level, TYPE_CHECKING included);
    ``from package import module`` counts as importing the module."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        blocks = [node]
        if isinstance(node, ast.If):
            blocks = list(node.body)
        for stmt in blocks:
            if isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith("terry"):
                subs = {f"{stmt.module}.{a.name}" for a in stmt.names} & set(known)
                found.update(subs or {stmt.module or ""})
            elif isinstance(stmt, ast.Import):
                found.update(a.name for a in stmt.names if a.name.startswith("terry"))
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    known = _modules()
    private = [
        f"{name} takes {taken} from {source}"
        for name, path in known.items()
        for source, names in _imports(name, path, known)
        for taken in names
        if taken.startswith("_") and not taken.startswith("__") and source != name
    ]
    assert private == []


def test_there_are_no_import_cycles() -> None:
    known = _modules()
    graph = {
        name: {m for m in _top_level_imports(path, known) if m in known and m != name}
        for name, path in known.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


@pytest.mark.parametrize("name", sorted(APPLIERS))
def test_every_registered_applier_speaks_the_protocol(name: str) -> None:
    module = importlib.import_module(APPLIERS[name].module)
    build = module.build
    returned = inspect.signature(build).return_annotation
    applier = getattr(module, str(returned).strip("'\""))
    assert applier.name == name
    assert isinstance(applier.check_words, str) and applier.check_words
    for verb in ("check", "apply", "verify", "rollback"):
        params = list(inspect.signature(getattr(applier, verb)).parameters)
        assert params == ["self", "job", "on_event"], f"{name}.{verb}{params}"
    assert {"check", "apply", "verify", "rollback"} <= set(dir(Applier))


def test_the_declared_layers_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a test dependency (pip install -e .[test])"
    done = subprocess.run(
        [lint, "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout
