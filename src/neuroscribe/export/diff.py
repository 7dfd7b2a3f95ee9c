"""Export rows of the ``model_diff`` view (what changed between compared subjects) to Parquet,
JSON Lines or CSV, with the same manifest as every export.

The rows of finished comparison runs (one run, or all) stream in export order (largest change
first, ties by subject, site and unit), so the same warehouse gives byte-identical files. The
manifest's ``run_ids`` are the comparison runs exported, even where a run found no change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

import duckdb

from neuroscribe import __version__
from neuroscribe.export.manifest import (
    ExportError,
    ExportManifest,
    check_writable,
    write_manifest,
)
from neuroscribe.export.writers import write_arrow, write_export
from neuroscribe.warehouse import exports

DiffFormat = Literal["parquet", "jsonl", "csv"]
DIFF_FORMATS: tuple[str, ...] = get_args(DiffFormat)
SOURCE = "model_diff"
BATCH_ROWS = 10_000


def export_model_diff(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    fmt: DiffFormat,
    *,
    run_id: str | None = None,
    force: bool = False,
) -> ExportManifest:
    """Write the ``model_diff`` rows of comparison run ``run_id`` (else of every finished
    comparison run) to ``out`` and a manifest beside it.

    ExportError, before anything is written, when the warehouse holds no finished comparison
    run (or ``run_id`` is none of them); an existing ``out`` raises OutputExistsError unless
    ``force``. The file appears only when complete.
    """
    if fmt not in DIFF_FORMATS:
        raise ExportError(
            f"format '{fmt}' cannot hold {SOURCE}; use one of {', '.join(DIFF_FORMATS)}"
        )
    runs = _runs(con, run_id)
    out = Path(out)
    check_writable(out, force)
    sql, params = exports.model_diff_query([r["run_id"] for r in runs])

    def write(tmp: Path) -> tuple[int, tuple[str, ...]]:
        reader = exports.stream(con, sql, params, BATCH_ROWS)
        return write_arrow(reader, fmt, tmp), tuple(reader.schema.names)

    rows, columns, digest = write_export(out, fmt, write)
    traced = exports.model_diff_provenance(con, sql, params)
    manifest = ExportManifest(
        output=out.name,
        format=fmt,
        source=SOURCE,
        rows=rows,
        sha256=digest,
        filters={"run_id": run_id},
        run_ids=tuple(r["run_id"] for r in runs),
        explanation_run_ids=traced["explanation_run_ids"],
        config_hashes=tuple(sorted({r["config_hash"] for r in runs})),
        prompt_shas=traced["prompt_shas"],
        columns=columns,
        neuroscribe_version=__version__,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_manifest(out, manifest)
    return manifest


def _runs(con: duckdb.DuckDBPyConnection, run_id: str | None) -> list[dict[str, str]]:
    runs = exports.comparison_runs(con)
    if not runs:
        raise ExportError(
            f"the warehouse holds no finished comparison run, so {SOURCE} is empty; run "
            "`neuroscribe compare --model A --model B` first"
        )
    if run_id is None:
        return runs
    chosen = [r for r in runs if r["run_id"] == run_id]
    if not chosen:
        raise ExportError(
            f"'{run_id}' is not a finished comparison run; the warehouse's are: "
            + ", ".join(r["run_id"] for r in runs[-5:])
        )
    return chosen

