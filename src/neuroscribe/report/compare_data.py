"""What the report's compare page shows, per finished comparison run: the CKA of every site
pair, the ``universality`` rows and the top of ``model_diff``, read through
``warehouse.report_rows``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import duckdb

from neuroscribe.warehouse import report_rows

TOP_CHANGES = 50
"""Rows of ``model_diff`` shown per comparison run."""
_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class CkaGrid:
    """One subject pair's layer x layer CKA: ``values[(site_a, site_b)]`` (None = undefined,
    a side constant), a missing key = the pair was not accumulated (runs made before pairs over
    ``compare.cka_budget_mb`` got the minibatch estimate)."""

    subject_a_id: str
    subject_b_id: str
    sites_a: tuple[str, ...]
    sites_b: tuple[str, ...]
    values: dict[tuple[str, str], float | None]
    matched: frozenset[tuple[str, str]]
    minibatch: frozenset[tuple[str, str]] = frozenset()
    """Cells whose CKA is the minibatch estimate (pairs over ``compare.cka_budget_mb``)."""
    """Site pairs whose units were matched (the same site in both)."""


@dataclass(frozen=True)
class ComparisonView:
    run_id: str
    config_hash: str
    started_at: Any
    finished_at: Any
    version: str
    subjects: dict[str, str]
    """subject_id -> name."""
    grids: list[CkaGrid]
    universality: list[dict[str, Any]]
    changes: list[dict[str, Any]]
    """The first ``TOP_CHANGES`` rows of ``model_diff``, largest change first."""
    changes_total: int


def site_order(site: str) -> tuple[Any, ...]:
    """Sort key that puts ``layers.2.mlp`` before ``layers.10.mlp``."""
    return tuple(int(p) if p.isdigit() else p for p in _NUMBER.split(site))


def cka_grids(cells: list[dict[str, Any]]) -> list[CkaGrid]:
    """The cells of ``report_rows.cka_cells`` grouped by subject pair, sites in layer order."""
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in cells:
        by_pair.setdefault((c["subject_a_id"], c["subject_b_id"]), []).append(c)
    grids = []
    for (a, b), pair_cells in by_pair.items():
        grids.append(
            CkaGrid(
                a,
                b,
                tuple(sorted({c["site_a"] for c in pair_cells}, key=site_order)),
                tuple(sorted({c["site_b"] for c in pair_cells}, key=site_order)),
                {(c["site_a"], c["site_b"]): c["cka"] for c in pair_cells},
                frozenset((c["site_a"], c["site_b"]) for c in pair_cells if c["matched"]),
                frozenset(
                    (c["site_a"], c["site_b"])
                    for c in pair_cells
                    if c.get("cka_method") == "minibatch"
                ),
            )
        )
    return grids


def load_comparisons(
    con: duckdb.DuckDBPyConnection, run_id: str | None = None, top_changes: int = TOP_CHANGES
) -> list[ComparisonView]:
    """Every finished comparison run (or ``run_id`` when it is one), oldest first."""
    views = []
    for run in report_rows.comparison_runs(con, run_id):
        rid = run["run_id"]
        changes, total = report_rows.top_changes(con, rid, top_changes)
        views.append(
            ComparisonView(
                **run,
                subjects=report_rows.comparison_subjects(con, rid),
                grids=cka_grids(report_rows.cka_cells(con, rid)),
                universality=report_rows.universality(con, rid),
                changes=changes,
                changes_total=total,
            )
        )
    return views
