"""Audit rows: ``audits`` (one per audit) and ``audit_units`` (one per collected unit and
explainer), written together in one transaction, and the views ``audit_recovery`` and
``audit_unit_scores`` read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from neuroscribe.warehouse.rows import fetch_dicts, insert_arrow, transaction

AUDIT_UNIT_TYPES = pa.schema(
    [
        ("run_id", pa.string()), ("unit_key", pa.string()), ("unit_index", pa.int32()),
        ("planted", pa.bool_()), ("kind", pa.string()), ("trigger", pa.string()),
        ("trigger_words", pa.list_(pa.string())), ("trigger_token_ids", pa.list_(pa.int32())),
        ("trigger_windows", pa.int32()), ("relocated_to", pa.int32()),
        ("plant_auroc", pa.float64()), ("function_change", pa.float64()),
        ("explainer", pa.string()), ("explanation_id", pa.string()),
        ("explanation", pa.string()), ("recovered", pa.bool_()), ("why", pa.string()),
        ("similarity", pa.float64()), ("plant_trigger_median", pa.float64()),
        ("plant_trigger_spread", pa.float64()), ("plant_max_other", pa.float64()),
        ("plant_outlier_triggers", pa.int32()),
    ]
)
"""Typed so that a column that is NULL in every row (e.g. ``similarity`` of word plants)
still has the table's type."""


def save_audit(
    con: duckdb.DuckDBPyConnection, audit: dict[str, Any], units: Sequence[dict[str, Any]]
) -> None:
    """Write one audit and its unit rows, all or nothing."""
    with transaction(con):
        insert_arrow(con, "audits", pa.Table.from_pylist([audit]))
        insert_arrow(con, "audit_units", pa.Table.from_pylist(list(units), AUDIT_UNIT_TYPES))


def audit_recovery(
    con: duckdb.DuckDBPyConnection, run_id: str, score_kind: str
) -> list[dict[str, Any]]:
    """The audit's rows of ``audit_recovery`` for one score kind, by explainer and simulator."""
    return fetch_dicts(
        con,
        "SELECT * FROM audit_recovery WHERE run_id = ? AND score_kind = ?"
        " ORDER BY explainer, simulator",
        [run_id, score_kind],
    )


def audit_units(
    con: duckdb.DuckDBPyConnection, run_id: str, score_kind: str
) -> list[dict[str, Any]]:
    """The audit's planted units, by unit, explainer and simulator: the verdict, the score of
    ``score_kind`` with its interval, and whether it beats the controls (view
    ``audit_unit_scores``)."""
    return fetch_dicts(
        con,
        "SELECT unit_index, trigger, explainer, explanation, recovered, why, simulator, score,"
        " ci_low, ci_high, score_undefined_reason, beats_controls, plant_max_other"
        " FROM audit_unit_scores WHERE run_id = ? AND planted"
        " AND (score_kind = ? OR score_kind IS NULL) ORDER BY unit_index, explainer, simulator",
        [run_id, score_kind],
    )
