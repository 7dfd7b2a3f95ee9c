"""The views ``export`` writes: one entry per view, read by ``export_view``, validation and
the CLI's help."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from neuroscribe.export.diff import DIFF_FORMATS, export_model_diff
from neuroscribe.export.manifest import ExportError, ExportManifest
from neuroscribe.export.scored import FORMATS, export_scored
from neuroscribe.warehouse.exports import FILTERS


@dataclass(frozen=True)
class ExportedView:
    formats: tuple[str, ...]
    filters: tuple[str, ...]
    """Filters besides ``run_id``, which every view takes."""
    write: Callable[..., ExportManifest]


VIEWS: dict[str, ExportedView] = {
    "scored_explanations": ExportedView(
        FORMATS, tuple(f for f in FILTERS if f != "run_id"), export_scored
    ),
    "model_diff": ExportedView(DIFF_FORMATS, (), export_model_diff),
}


def check_view(view: str, fmt: str) -> ExportedView:
    """The view's entry; ExportError for an unknown view or a format it cannot be written in."""
    if view not in VIEWS:
        raise ExportError(f"unknown view '{view}'; export writes one of: {', '.join(VIEWS)}")
    entry = VIEWS[view]
    if fmt not in entry.formats:
        raise ExportError(
            f"unknown format '{fmt}' for {view}; use one of: {', '.join(entry.formats)}"
        )
    return entry


def export_view(
    con: duckdb.DuckDBPyConnection,
    view: str,
    out: Path,
    fmt: str,
    *,
    run_id: str | None = None,
    force: bool = False,
    **filters: Any,
) -> ExportManifest:
    """Write ``view`` to ``out`` (and its manifest); ``filters`` that are None are not given.
    ExportError, before anything is written, for a filter the view does not take."""
    entry = check_view(view, fmt)
    given = {k: v for k, v in filters.items() if v is not None}
    if extra := sorted(set(given) - set(entry.filters)):
        takes = ", ".join(_flag(f) for f in ("run_id", *entry.filters))
        raise ExportError(
            f"{view} cannot be filtered by {', '.join(map(_flag, extra))}; it takes {takes}"
        )
    return entry.write(con, out, fmt, run_id=run_id, force=force, **given)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
