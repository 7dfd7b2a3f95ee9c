"""The warehouse side of worker handoffs: which handoffs were loaded, and the record of one.

A handoff's rows are written with ``rows.insert_arrow`` and checked with
``collection.check_same_collection_arrow``; ``handoffs`` records each one loaded, under a hash
of its manifest, so that offering it again changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from neuroscribe.warehouse.rows import fetch_column, insert_rows, now


def ingested_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The ids of every handoff loaded so far."""
    return set(fetch_column(con, "SELECT handoff_id FROM handoffs"))


def record_handoff(
    con: duckdb.DuckDBPyConnection,
    handoff_id: str,
    name: str,
    manifest: dict[str, Any],
    added: dict[str, int],
) -> int:
    """Record a loaded handoff: its id and folder name, its kind and run (from ``manifest``),
    the rows its manifest lists per table and the rows that were new (``added``)."""
    return insert_rows(
        con,
        "handoffs",
        [
            {
                "handoff_id": handoff_id,
                "name": name,
                "kind": manifest["kind"],
                "run_id": manifest["run_id"],
                "rows_written": json.dumps(
                    {t: m["rows"] for t, m in manifest["tables"].items()}, sort_keys=True
                ),
                "rows_added": json.dumps(added, sort_keys=True),
                "ingested_at": now(),
            }
        ],
    )
