"""Writing streamed rows to a file: Arrow record batches as Parquet, CSV or JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


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
