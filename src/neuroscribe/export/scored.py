"""Export rows of the ``scored_explanations`` view to Parquet, JSON Lines, CSV or Neuronpedia.

Filters become SQL parameters, never text in the query. Rows stream from DuckDB as Arrow record
batches into the writer, so an export needs memory for one batch, not the whole result. Rows are
ordered (subject, site, unit, explainer, explanation, simulator, score kind), so exporting the
same warehouse twice gives byte-identical files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import duckdb

from neuroscribe import __version__
from neuroscribe.export import neuronpedia
from neuroscribe.export.manifest import (
    ExportError,
    ExportManifest,
    check_writable,
    write_manifest,
)
from neuroscribe.export.writers import write_arrow, write_export, write_lines
from neuroscribe.warehouse import exports

Format = Literal["parquet", "jsonl", "csv", "neuronpedia"]
FORMATS: tuple[str, ...] = get_args(Format)
BATCH_ROWS = 10_000


def scored_query(**filters: Any) -> tuple[str, dict[str, Any]]:
    """SQL selecting the filtered rows of scored_explanations in export order, and its parameters.

    ``filters`` are the names in ``warehouse.exports.FILTERS``; None means "not filtered".
    """
    unknown = set(filters) - set(exports.FILTERS)
    if unknown:
        raise ExportError(f"unknown export filters: {sorted(unknown)}")
    params = {k: v for k, v in filters.items() if v is not None}
    return exports.scored_query(params), params


def export_scored(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    fmt: Format,
    *,
    subject: str | None = None,
    site: str | None = None,
    min_score: float | None = None,
    explainer: str | None = None,
    simulator: str | None = None,
    score_kind: str | None = None,
    run_id: str | None = None,
    force: bool = False,
    neuronpedia_model_id: str | None = None,
    neuronpedia_source_set: str | None = None,
) -> ExportManifest:
    """Write the filtered rows of ``scored_explanations`` to ``out`` and a manifest beside it.

    ``subject`` matches the subject name or id; ``min_score`` keeps rows with a defined score at
    least that high. An existing ``out`` (or manifest) raises OutputExistsError unless ``force``.
    The file appears only when complete (written to a temporary file, then renamed).
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}")
    out = Path(out)
    check_writable(out, force)
    filters = {
        "subject": subject,
        "site": site,
        "explainer": explainer,
        "simulator": simulator,
        "score_kind": score_kind,
        "min_score": min_score,
        "run_id": run_id,
    }
    sql, params = scored_query(**filters)
    if fmt == "neuronpedia":
        sql = neuronpedia.restrict(sql)  # the rows Neuronpedia takes; provenance reads them too

    def write(tmp: Path) -> tuple[int, tuple[str, ...]]:
        if fmt == "neuronpedia":
            lines = neuronpedia.iter_lines(
                con, sql, params, neuronpedia_model_id, neuronpedia_source_set, BATCH_ROWS
            )
            return write_lines(lines, tmp), neuronpedia.COLUMNS
        reader = exports.stream(con, sql, params, BATCH_ROWS)
        return write_arrow(reader, fmt, tmp), tuple(reader.schema.names)

    rows, columns, digest = write_export(out, fmt, write)
    traced = exports.provenance(con, sql, params)
    manifest = ExportManifest(
        output=out.name,
        format=fmt,
        rows=rows,
        sha256=digest,
        filters=filters,
        run_ids=traced["run_ids"],
        explanation_run_ids=traced["explanation_run_ids"],
        config_hashes=traced["config_hashes"],
        prompt_shas=traced["prompt_shas"],
        columns=columns,
        neuroscribe_version=__version__,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_manifest(out, manifest)
    return manifest
