"""The shape of the code base, checked: no import cycles, Prefect only in flows/, SQL only in the
warehouse package, modules of a readable size."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGES = (SRC / "neuroscribe", ROOT / "flows")
MAX_LINES = 400
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE (TABLE|VIEW|MACRO))\b\s")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        base = package.parent
        for path in sorted(package.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node, except those under ``if TYPE_CHECKING:`` (never run)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                todo.extend(child.orelse)  # type: ignore[union-attr]
                continue
            todo.append(child)
    return out


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every project module that importing ``name`` runs, at any depth (function-level imports
    count): each imported module, and the packages above it whose ``__init__`` runs first
    (not the importer's own packages: those are already running)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # ``from M import N`` runs M.N when N is a module of M, else M alone.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            parts = t.split(".")
            for i in range(1, len(parts) + 1):
                ancestor = ".".join(parts[:i])
                if ancestor in known and ancestor != name and ancestor not in own:
                    found.add(ancestor)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycles():
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"a.x"}, "a.x": set()}) is None


def test_importing_a_module_runs_the_packages_above_it():
    """``x.y`` importing ``p.q.r`` runs ``p`` and ``p.q`` first: a cycle through a package's
    ``__init__`` is a cycle."""
    graph = _graph()
    assert "neuroscribe.llm" in graph["neuroscribe.simulate.json_mode"] or not any(
        t.startswith("neuroscribe.llm.") for t in graph["neuroscribe.simulate.json_mode"]
    )


def test_prefect_is_imported_only_in_flows():
    offenders = []
    for name, path in _modules().items():
        if name.startswith("flows"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            offenders += [f"{name}: {m}" for m in mods if m.split(".")[0] == "prefect"]
    assert offenders == []


def test_no_module_is_longer_than_the_limit():
    long = {
        name: n for name, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_sql_lives_only_in_the_warehouse_package():
    offenders = []
    for name, path in _modules().items():
        if name.startswith("neuroscribe.warehouse"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and SQL.search(node.value):
                offenders.append(f"{name}:{node.lineno}: {node.value[:60]!r}")
    assert offenders == []


def test_the_sql_pattern_matches_sql():
    assert SQL.search("SELECT a FROM b")
    assert SQL.search("x INSERT INTO t VALUES (1)")
    assert not SQL.search("Select the best explanation")  # prose is not SQL


def test_every_command_is_listed_by_python_m_neuroscribe():
    from neuroscribe.cli import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert {"run", "collect", "score", "agree", "query", "search", "export", "report",
            "ingest", "serve"} <= commands
    for module in ("neuroscribe", "neuroscribe.cli"):
        r = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True,
            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=120,
        )
        assert r.returncode == 0, r.stderr
        listed = {c for c in commands if re.search(rf"^\W*{c}\b", r.stdout, re.M)}
        assert listed == commands, (module, commands - listed)
    assert "NEUROSCRIBE_WAREHOUSE" in r.stdout  # help text with brackets is shown as written
