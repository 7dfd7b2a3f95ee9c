"""The random-model null's rows: ``null_models`` (a trained run linked to the run on its
re-initialised copy) and ``null_model_explanations`` (what each side worked on), written together
in one transaction; the ``null_comparison`` view read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from neuroscribe.warehouse.rows import fetch_dicts, insert_arrow, now, transaction

SIDES = ("trained", "random")


def save_null_model(
    con: duckdb.DuckDBPyConnection,
    link: dict[str, Any],
    trained_ids: Sequence[str],
    random_ids: Sequence[str],
) -> None:
    """Write the link of ``link["trained_run_id"]`` to its null run and the explanation ids of
    both sides, all or nothing (a repeated write of the same link changes nothing)."""
    run_id = link["trained_run_id"]
    sides = [
        {"trained_run_id": run_id, "side": side, "explanation_id": e}
        for side, ids in zip(SIDES, (trained_ids, random_ids), strict=True)
        for e in dict.fromkeys(ids)
    ]
    with transaction(con):
        insert_arrow(con, "null_models", pa.Table.from_pylist([{**link, "created_at": now()}]))
        insert_arrow(con, "null_model_explanations", pa.Table.from_pylist(sides))


def null_run_id(con: duckdb.DuckDBPyConnection, trained_run_id: str) -> str | None:
    """The null run linked to ``trained_run_id``, if any."""
    row = con.execute(
        "SELECT null_run_id FROM null_models WHERE trained_run_id = ?", [trained_run_id]
    ).fetchone()
    return None if row is None else str(row[0])


def null_comparison(
    con: duckdb.DuckDBPyConnection, trained_run_id: str, score_kind: str
) -> list[dict[str, Any]]:
    """The run's rows of ``null_comparison`` for one score kind, by explainer and simulator."""
    return fetch_dicts(
        con,
        "SELECT * FROM null_comparison WHERE trained_run_id = ? AND score_kind = ?"
        " ORDER BY explainer, simulator",
        [trained_run_id, score_kind],
    )
