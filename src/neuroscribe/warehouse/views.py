"""The SQL views, applied in the order their declared dependencies give.

Each file of ``warehouse/views/`` creates one view named like the file (``best_explanations.sql``
creates ``best_explanations``) and declares the views it reads in a header line::

    -- depends: scored_explanations, units_compared

A view without the line reads tables only. Views are created after the views they depend on
(ties broken by name, so the order is stable); a dependency on a view that does not exist, a
cycle, or a view named in the SQL but not declared is an error that names it. Before the views,
the macros in ``MACROS`` are created from the constants they stand for, so that a view says
``headline_score_kind()``, ``shuffled_control()`` or ``baseline_explainer()`` where it would
otherwise spell a score kind or an explainer of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from neuroscribe.registry import HEADLINE_SCORE
from neuroscribe.score.controls import BASELINE_EXPLAINER, SHUFFLED_CONTROL

DEPENDS_RE = re.compile(r"^--\s*depends:(.*)$", re.MULTILINE)
CREATES_RE = re.compile(r"CREATE\s+OR\s+REPLACE\s+VIEW\s+(\w+)", re.IGNORECASE)
COMMENT_RE = re.compile(r"--[^\n]*")

MACROS: dict[str, str] = {
    "headline_score_kind": HEADLINE_SCORE,
    "shuffled_control": SHUFFLED_CONTROL,
    "baseline_explainer": BASELINE_EXPLAINER,
}
"""Macros without arguments that views use in place of constants: name -> the string value.
Persistent: read-only connections see them too."""


class ViewOrderError(ValueError):
    """The views' declared dependencies cannot be ordered; the message names the view."""


@dataclass(frozen=True)
class View:
    name: str
    depends: tuple[str, ...]
    sql: str


def parse_view(name: str, sql: str) -> View:
    """The view in ``sql`` (the file ``<name>.sql``), with its declared dependencies."""
    created = CREATES_RE.findall(sql)
    if created != [name]:
        raise ViewOrderError(f"{name}.sql must create exactly the view {name}, not {created}")
    depends: list[str] = []
    for line in DEPENDS_RE.findall(sql):
        depends += [d.strip() for d in line.split(",") if d.strip()]
    return View(name, tuple(depends), sql)


def read_views(folder: Path) -> list[View]:
    """Every view file in ``folder``, by name."""
    return [parse_view(f.stem, f.read_text(encoding="utf-8")) for f in sorted(folder.glob("*.sql"))]


def view_order(views: Iterable[View]) -> list[View]:
    """``views`` in an order where each comes after the views it depends on (ties by name).

    Raises ViewOrderError on a dependency that is not one of ``views``, on a cycle (naming its
    views in order), and on a view whose SQL reads another view without declaring it.
    """
    by_name = {v.name: v for v in views}
    for v in by_name.values():
        for d in v.depends:
            if d not in by_name:
                raise ViewOrderError(f"view {v.name} depends on {d}, which is not a view")
        code = COMMENT_RE.sub("", v.sql)
        for other in by_name:
            if other != v.name and other not in v.depends and re.search(rf"\b{other}\b", code):
                raise ViewOrderError(
                    f"view {v.name} reads {other} without declaring it (-- depends: {other})"
                )
    ordered: list[View] = []
    state: dict[str, str] = {}  # name -> "visiting" (on the current path) or "done"

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name) :] + [name]
            raise ViewOrderError(f"the views' dependencies form a cycle: {' -> '.join(cycle)}")
        state[name] = "visiting"
        for d in sorted(by_name[name].depends):
            visit(d, [*path, name])
        state[name] = "done"
        ordered.append(by_name[name])

    for name in sorted(by_name):
        visit(name, [])
    return ordered


def create_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create (or replace) the macros of ``MACROS``."""
    for name, value in MACROS.items():
        literal = "'" + value.replace("'", "''") + "'"
        con.execute(f"CREATE OR REPLACE MACRO {name}() AS {literal}")


def apply_views(con: duckdb.DuckDBPyConnection, folder: Path) -> list[str]:
    """Create the macros, then every view of ``folder`` in dependency order; returns the
    views' names in the order they were created."""
    create_macros(con)
    ordered = view_order(read_views(folder))
    for v in ordered:
        con.execute(v.sql)
    return [v.name for v in ordered]
