"""Writing streamed rows to a file: Arrow record batches as Parquet, CSV or JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from neuroscribe.export.manifest import ExportError, atomic_path, sha256_file


def write_export(
    out: Path, fmt: str, write: Callable[[Path], tuple[int, tuple[str, ...]]]
) -> tuple[int, tuple[str, ...], str]:
    """Run ``write`` (rows into the path it is given; returns rows and columns) on a temporary
    file that becomes ``out`` only when complete. Returns (rows, columns, sha256 of the file).
    A writer's failure is an ExportError naming the file; an ExportError passes as it is."""
    try:
        with atomic_path(out) as tmp:
            rows, columns = write(tmp)
            digest = sha256_file(tmp)
    except ExportError:
        raise
    except (ValueError, pa.ArrowException) as e:
        raise ExportError(f"cannot write {fmt} export {out}: {e}") from e
    return rows, columns, digest


def write_arrow(reader: pa.RecordBatchReader, fmt: str, path: Path) -> int:
    """Write every batch of ``reader`` to ``path`` as ``parquet``, ``csv`` or ``jsonl``;
    return the rows written."""
    rows = 0
    if fmt == "parquet":
        with pq.ParquetWriter(path, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    elif fmt == "csv":
        with pacsv.CSVWriter(path, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    else:  # jsonl
        lines = (
            json.dumps(row, ensure_ascii=False, allow_nan=False, default=str)
            for batch in reader
            for row in batch.to_pylist()
        )
        rows = write_lines(lines, path)
    return rows


def write_lines(lines: Iterable[str], path: Path) -> int:
    """Write one line per string (newline added); return the lines written."""
    n = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for line in lines:
            fh.write(line + "\n")
            n += 1
    return n
