"""A static HTML report of a run: explanations, scores, and tokens shaded by true and simulated
activation. One self-contained ``index.html`` (inline CSS and SVG, no scripts, no network)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import duckdb

from neuroscribe.report.data import ReportData, ReportError, load_report
from neuroscribe.report.page import render_page

__all__ = ["ReportData", "ReportError", "load_report", "render_page", "write_report"]


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
    An existing index.html is replaced atomically (the report is derived data).
    """
    data = load_report(con, run_id, max_units, windows_per_split)
    html = render_page(data)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"{out_dir} is a file; give a folder for the report")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".index.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
