"""Metric sanity rows (``metric_sanity``, one per audit, simulator and score kind): written in
one transaction, read back for the audit's report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from neuroscribe.warehouse.rows import fetch_dicts, insert_arrow, now, transaction

SANITY_TYPES = pa.schema(
    [
        ("run_id", pa.string()), ("simulator", pa.string()), ("score_kind", pa.string()),
        ("n_units", pa.int32()), ("n_missing_passed", pa.int32()),
        ("n_extra_passed", pa.int32()), ("n_passed", pa.int32()), ("n_undefined", pa.int32()),
        ("pass_share", pa.float64()), ("passes", pa.bool_()), ("created_at", pa.timestamp("us")),
    ]
)


def save_metric_sanity(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Write one audit's sanity rows, all or nothing."""
    stamp = now()
    table = pa.Table.from_pylist([{**r, "created_at": stamp} for r in rows], SANITY_TYPES)
    with transaction(con):
        insert_arrow(con, "metric_sanity", table)


def metric_sanity(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The audit's sanity rows, by simulator, then in the order the kinds were stored."""
    return fetch_dicts(
        con,
        "SELECT * EXCLUDE (created_at) FROM metric_sanity WHERE run_id = ?"
        " ORDER BY simulator, rowid",
        [run_id],
    )
