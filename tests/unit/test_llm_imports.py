"""The llm package has no import circle: its modules' imports, function-level ones included,
form a graph without cycles (``TYPE_CHECKING`` blocks are left out: they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[2] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports anywhere, except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in node.body
        for n in ast.walk(child)
    }
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        out.update(n for n in names if n in known)
    return out


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in (SRC / "neuroscribe").rglob("*.py")}
    return {name: imports(path, set(paths)) for name, path in paths.items()}


def cycle_in(edges: dict[str, set[str]], nodes: set[str]) -> list[str] | None:
    """One cycle among ``nodes`` (following only edges between them), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, set()) & nodes):
            if state.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(nodes):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_llm_modules_import_no_circle() -> None:
    edges = graph()
    llm = {n for n in edges if n == "neuroscribe.llm" or n.startswith("neuroscribe.llm.")}
    assert "neuroscribe.llm.factory" in llm
    assert cycle_in(edges, llm) is None, " -> ".join(cycle_in(edges, llm) or [])


def test_the_registry_imports_no_plugin() -> None:
    assert graph()["neuroscribe.registry"] <= {"neuroscribe.errors"}  # a leaf: one class
