"""A budget's rows: ``unit_budget`` (each unit's escalation decision per run) and the
``unit_spend`` view read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from neuroscribe.budget.decide import UnitBudget
from neuroscribe.warehouse.rows import fetch_dicts, insert_rows, now, transaction


def save_unit_budget(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    decisions: Sequence[UnitBudget],
    escalated_annotators: Sequence[str],
) -> int:
    """Write the run's decisions in one transaction (a repeated write changes nothing);
    returns the rows added."""
    decided_at = now()
    rows = [
        {
            **d.model_dump(mode="json"),
            "run_id": run_id,
            "escalated_annotators": list(escalated_annotators),
            "decided_at": decided_at,
        }
        for d in decisions
    ]
    with transaction(con):
        return insert_rows(con, "unit_budget", rows)


def unit_budget(con: duckdb.DuckDBPyConnection, run_id: str) -> list[UnitBudget]:
    """The run's decisions, by unit key."""
    rows = fetch_dicts(
        con,
        "SELECT unit_key, escalated, reason, cheap_score, cheap_explainer, cheap_simulator,"
        " spread, threshold, disagree FROM unit_budget WHERE run_id = ? ORDER BY unit_key",
        [run_id],
    )
    return [UnitBudget.model_validate(r) for r in rows]


def unit_spend(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The run's rows of ``unit_spend``, by site and unit index."""
    return fetch_dicts(
        con,
        "SELECT * FROM unit_spend WHERE run_id = ? ORDER BY site, unit_index, unit_key",
        [run_id],
    )


def escalated_units(con: duckdb.DuckDBPyConnection, unit_keys: Sequence[str]) -> list[str]:
    """The units among ``unit_keys`` that the latest stored decision (of a finished run)
    escalated, in the order given."""
    rows = con.execute(
        "SELECT unit_key, escalated FROM unit_budget b JOIN runs r USING (run_id)"
        " WHERE r.status = 'finished' AND unit_key IN (SELECT unnest(?))"
        " QUALIFY row_number() OVER (PARTITION BY unit_key ORDER BY decided_at DESC) = 1",
        [list(unit_keys)],
    ).fetchall()
    escalated = {key for key, flag in rows if flag}
    return [k for k in unit_keys if k in escalated]
