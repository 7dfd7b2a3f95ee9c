"""A static HTML report of a run: explanations, scores, and tokens shaded by true and simulated
activation, in one self-contained ``index.html`` (inline CSS and SVG, no scripts, no network);
and, when the warehouse holds finished comparison runs, ``compare.html`` beside it (CKA
heatmaps, universality, the top of model_diff), linked from index.html."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import duckdb

from neuroscribe.report.compare import render_compare_page
from neuroscribe.report.compare_data import load_comparisons
from neuroscribe.report.data import ReportData, ReportError, load_report
from neuroscribe.report.page import render_page

__all__ = ["ReportData", "ReportError", "load_report", "render_page", "write_report"]

COMPARE_PAGE = "compare.html"


def write_report(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    run_id: str | None = None,
    *,
    max_units: int | None = 500,
    windows_per_split: int = 5,
) -> Path:
    """Write ``out_dir/index.html`` for one run (else every finished run); return its path.

    Shows at most ``max_units`` units (None: all) and ``windows_per_split`` windows of each split.
    When ``run_id`` is a finished comparison run (else: when any is in the warehouse and no run
    is given), ``compare.html`` is written too and linked. Existing pages are replaced
    atomically (the report is derived data).
    """
    data = load_report(con, run_id, max_units, windows_per_split)
    comparisons = load_comparisons(con, run_id)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"{out_dir} is a file; give a folder for the report")
    out_dir.mkdir(parents=True, exist_ok=True)
    if comparisons:
        _write_atomic(out_dir / COMPARE_PAGE, render_compare_page(comparisons))
    path = out_dir / "index.html"
    _write_atomic(path, render_page(data, compare_page=COMPARE_PAGE if comparisons else None))
    return path


def _write_atomic(path: Path, html: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
