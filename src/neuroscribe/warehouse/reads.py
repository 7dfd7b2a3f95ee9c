"""Read-only questions the CLI and the flows ask the warehouse, answered as plain rows.

Each function returns dicts keyed by column name (or records), so that callers format results
without writing SQL. ``query`` runs a user's own SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from neuroscribe.records import Record
from neuroscribe.warehouse.db import WarehouseError
from neuroscribe.warehouse.rows import fetch_dicts


def run_table(
    con: duckdb.DuckDBPyConnection, explanation_ids: list[str], kind: str
) -> list[dict[str, Any]]:
    """Scores of ``kind`` of these explanations (``scored_explanations``: finished runs, ok
    explanations), ordered by unit index, site, explainer, simulator. Keys: site, unit_index,
    explainer, explanation, simulator, score, ci_low, ci_high, score_undefined_reason."""
    return fetch_dicts(
        con,
        "SELECT site, unit_index, explainer, explanation, simulator, score, ci_low, ci_high,"
        " score_undefined_reason FROM scored_explanations"
        " WHERE list_contains(?, explanation_id) AND score_kind = ?"
        " ORDER BY unit_index, site, explainer, simulator",
        [explanation_ids, kind],
    )


def clarity_by_unit(
    con: duckdb.DuckDBPyConnection, explanation_ids: list[str]
) -> dict[tuple[str, int], float | None]:
    """(site, unit index) -> clarity of the units of these explanations, from the latest
    finished run that measured it (None when undefined)."""
    rows = fetch_dicts(
        con,
        "SELECT u.site, u.unit_index, arg_max(a.value, r.started_at) AS clarity"
        " FROM agreements a"
        " JOIN units u USING (unit_key) JOIN runs r ON r.run_id = a.run_id"
        " JOIN explanations e ON e.unit_key = a.unit_key"
        " WHERE a.kind = 'clarity' AND r.status = 'finished'"
        " AND list_contains(?, e.explanation_id) GROUP BY u.site, u.unit_index",
        [explanation_ids],
    )
    return {(r["site"], r["unit_index"]): r["clarity"] for r in rows}


class ControlComparison(Record):
    """How often one annotator's scores of one kind beat both controls, over units (the rules:
    view ``control_comparison_units``)."""

    explainer: str
    simulator: str
    score_kind: str
    n_units: int
    """Units compared; at least 1."""
    n_beats_shuffled: int
    n_beats_baseline: int
    n_beats_both: int
    share_beats_both: float
    """n_beats_both / n_units."""
    mean_score: float | None
    """Mean of the annotator's defined scores on the compared units (None if none defined)."""
    mean_shuffled: float | None
    """Mean of the controls' values, a constant-prediction control counted as 0."""
    mean_baseline: float | None
    n_shuffled_constant: int
    """Units where the shuffled control's predictions were constant (its score counted as 0)."""
    n_baseline_constant: int


def control_comparisons(
    con: duckdb.DuckDBPyConnection,
    explanation_ids: Sequence[str],
    kinds: Sequence[str] | None = None,
) -> list[ControlComparison]:
    """One row per (explainer, simulator, score kind) with at least one compared unit, sorted,
    pooling every unit of these explanations (the annotator's and both controls' explanations
    must all be among them). ``kinds`` limits the score kinds (None: all).

    Raises ValueError when two of these explanations (selected, ok) have a score of one
    (unit, explainer, simulator, kind): a unit would be counted twice.
    """
    ids, all_kinds = list(explanation_ids), kinds is None
    wanted = [] if kinds is None else list(kinds)
    twice = fetch_dicts(
        con,
        "SELECT e.unit_key, e.explainer, s.simulator, s.kind FROM scores s"
        " JOIN explanations e USING (explanation_id)"
        " WHERE list_contains(?, s.explanation_id) AND e.status = 'ok' AND e.selected"
        " AND (? OR list_contains(?, s.kind))"
        " GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT 1",
        [ids, all_kinds, wanted],
    )
    if twice:
        t = twice[0]
        raise ValueError(
            f"two {t['kind']} scores of unit {t['unit_key']} by {t['explainer']}|{t['simulator']}"
        )
    rows = fetch_dicts(
        con,
        "SELECT explainer, simulator, score_kind, count(*) AS n_units,"
        " count(*) FILTER (WHERE beats_shuffled) AS n_beats_shuffled,"
        " count(*) FILTER (WHERE beats_baseline) AS n_beats_baseline,"
        " count(*) FILTER (WHERE beats_shuffled AND beats_baseline) AS n_beats_both,"
        " n_beats_both / n_units AS share_beats_both,"
        " avg(score) AS mean_score, avg(shuffled) AS mean_shuffled,"
        " avg(baseline) AS mean_baseline,"
        " count(*) FILTER (WHERE shuffled_constant) AS n_shuffled_constant,"
        " count(*) FILTER (WHERE baseline_constant) AS n_baseline_constant"
        " FROM control_comparison_units"
        " WHERE list_contains(?, explanation_id) AND list_contains(?, shuffled_explanation_id)"
        " AND baseline_explanation_id IS NOT NULL AND list_contains(?, baseline_explanation_id)"
        " AND (? OR list_contains(?, score_kind))"
        " GROUP BY explainer, simulator, score_kind ORDER BY explainer, simulator, score_kind",
        [ids, ids, ids, all_kinds, wanted],
    )
    return [ControlComparison.model_validate(r) for r in rows]


def calls_summary(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """LLM calls of a run per (annotator, purpose): keys annotator, purpose, calls (made),
    cached (answered from the cache), failed, failure_kinds (comma-separated), tokens_in and
    tokens_out (of calls made), cost_usd."""
    return fetch_dicts(
        con,
        "SELECT annotator, purpose, count(*) FILTER (WHERE NOT cache_hit) AS calls,"
        " count(*) FILTER (WHERE cache_hit) AS cached,"
        " count(*) FILTER (WHERE status <> 'ok') AS failed,"
        " string_agg(DISTINCT split_part(error, ':', 1), ', ')"
        "   FILTER (WHERE status <> 'ok') AS failure_kinds,"
        " sum(prompt_tokens) FILTER (WHERE NOT cache_hit) AS tokens_in,"
        " sum(completion_tokens) FILTER (WHERE NOT cache_hit) AS tokens_out,"
        " sum(cost_usd) AS cost_usd"
        " FROM llm_calls WHERE run_id = ? GROUP BY ALL ORDER BY ALL",
        [run_id],
    )


def failures(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Typed failures of a run's explanations and simulations: keys what (``explanation`` or
    ``simulation``), who (the explainer or simulator), failure (its kind), n."""
    return fetch_dicts(
        con,
        "SELECT 'explanation' AS what, explainer AS who, failure, count(*) AS n"
        " FROM explanations WHERE run_id = ? AND status = 'failed' GROUP BY ALL UNION ALL"
        " SELECT 'simulation', simulator, failure, count(*) FROM simulations"
        " WHERE run_id = ? AND status = 'failed' GROUP BY ALL ORDER BY ALL",
        [run_id, run_id],
    )


def agreement_summary(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """A run's agreement statistics per kind: keys kind, rows, mean_value (rounded to 3
    places; None when no value is defined), defined (rows with a value)."""
    return fetch_dicts(
        con,
        "SELECT kind, count(*) AS rows, round(avg(value), 3) AS mean_value,"
        " count(value) AS defined FROM agreements"
        " WHERE run_id = ? GROUP BY kind ORDER BY kind",
        [run_id],
    )


QUERY_REFUSALS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("read-only", "read only"),
        "the warehouse is opened read-only for queries; writes are refused",
    ),
    (
        ("disabled by configuration", "disabled through configuration"),
        "queries cannot attach databases, read or write files, or install or load extensions",
    ),
    (("configuration has been locked",), "queries cannot change settings"),
)
"""What a refused statement's DuckDB error contains -> what to tell the user (the connection's
settings: ``db.READONLY_CONFIG``)."""


def query(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run a user's SQL (on a connection of ``open_readonly``) and return its column names and
    rows. Raises WarehouseError with the first line of DuckDB's error, saying so when the
    statement was refused (a write, file access, ATTACH, INSTALL/LOAD, SET)."""
    try:
        rel = con.execute(sql)
    except duckdb.Error as e:
        first = str(e).splitlines()[0]
        for needles, why in QUERY_REFUSALS:
            if any(n in first.lower() for n in needles):
                raise WarehouseError(f"{why} ({first})") from None
        raise WarehouseError(first) from None
    columns = [d[0] for d in rel.description or []]
    return columns, rel.fetchall()
