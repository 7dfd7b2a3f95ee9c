"""The rows an HTML report shows, read in a few bulk queries.

Scores come from ``scored_explanations`` (finished runs, ``ok`` explanations), limited to
selected explanations; windows, true activations and simulations from their tables. The
compare page reads finished comparison runs: CKA per site pair, ``universality``, ``model_diff``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from neuroscribe.warehouse import comparisons
from neuroscribe.warehouse.rows import fetch_dicts


def scored_rows(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Every score of a selected explanation written by one of these runs, in the report's
    order (subject, site, SAE, unit, explainer, explanation, simulator, kind)."""
    return fetch_dicts(
        con,
        "SELECT unit_key, subject, site, unit_index, sae_id, explanation_id, explainer,"
        " explanation, simulator, score_kind, score, score_undefined_reason, ci_low, ci_high,"
        " run_id FROM scored_explanations WHERE selected AND list_contains(?, run_id)"
        " ORDER BY subject, site, sae_id NULLS FIRST, unit_index, explainer, explanation_id,"
        " simulator, score_kind",
        [list(run_ids)],
    )


def unit_activity(con: duckdb.DuckDBPyConnection, unit_keys: Sequence[str]) -> list[dict[str, Any]]:
    """``unit_key``, ``max_activation`` and ``firing_rate`` of these units."""
    return fetch_dicts(
        con,
        "SELECT unit_key, max_activation, firing_rate FROM units WHERE list_contains(?, unit_key)",
        [list(unit_keys)],
    )


def first_windows(
    con: duckdb.DuckDBPyConnection,
    unit_keys: Sequence[str],
    splits: Sequence[str],
    per_split: int,
) -> list[dict[str, Any]]:
    """The first ``per_split`` windows of each unit in each of these splits (top windows by
    rank, then the others), with their tokens: keys unit_key, window_id, split, top_rank,
    activations, tokens; ordered by unit, split and that rank."""
    return fetch_dicts(
        con,
        "SELECT unit_key, window_id, split, top_rank, activations, tokens FROM ("
        "  SELECT uw.*, w.tokens, row_number() OVER (PARTITION BY uw.unit_key, uw.split"
        "    ORDER BY CASE WHEN uw.top_rank < 0 THEN 1 ELSE 0 END, uw.top_rank, uw.window_id) AS n"
        "  FROM unit_windows uw JOIN windows w USING (window_id)"
        "  WHERE list_contains(?, uw.unit_key) AND list_contains(?, uw.split))"
        " WHERE n <= ? ORDER BY unit_key, split, n",
        [list(unit_keys), list(splits), per_split],
    )


def ok_simulations(
    con: duckdb.DuckDBPyConnection, explanation_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The successful simulations of these explanations: keys explanation_id, simulator,
    window_id, unit_key (of the explanation), predictions."""
    return fetch_dicts(
        con,
        "SELECT s.explanation_id, s.simulator, s.window_id, e.unit_key, s.predictions"
        " FROM simulations s JOIN explanations e USING (explanation_id)"
        " WHERE s.status = 'ok' AND list_contains(?, s.explanation_id)",
        [list(explanation_ids)],
    )


def comparison_runs(con: duckdb.DuckDBPyConnection, run_id: str | None) -> list[dict[str, Any]]:
    """The finished comparison runs (runs with rows in ``site_comparisons``), oldest first, or
    only ``run_id`` when it is one: run_id, config_hash, started_at, finished_at, version."""
    return fetch_dicts(
        con,
        "SELECT run_id, config_hash, started_at, finished_at, neuroscribe_version AS version"
        " FROM runs r WHERE status = 'finished'"
        " AND EXISTS (SELECT 1 FROM site_comparisons c WHERE c.run_id = r.run_id)"
        " AND (CAST(? AS VARCHAR) IS NULL OR run_id = ?) ORDER BY started_at, run_id",
        [run_id, run_id],
    )


def comparison_subjects(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, str]:
    """subject_id -> name of the subjects a comparison run compared."""
    rows = fetch_dicts(
        con,
        "SELECT DISTINCT s.subject_id, s.name FROM site_comparisons c JOIN subjects s"
        " ON s.subject_id IN (c.subject_a_id, c.subject_b_id) WHERE c.run_id = ?",
        [run_id],
    )
    return {r["subject_id"]: r["name"] for r in rows}


def cka_cells(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Every site pair's CKA in a comparison run: the heatmap's cells."""
    return comparisons.cka_matrix(con, run_id)


def universality(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The ``universality`` rows of a comparison run."""
    return comparisons.universality_rows(con, run_id)


def top_changes(
    con: duckdb.DuckDBPyConnection, run_id: str, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` ``model_diff`` rows of a comparison run (largest change first) and
    how many it has in all."""
    (total,) = fetch_dicts(
        con, "SELECT count(*) AS n FROM model_diff WHERE run_id = ?", [run_id]
    )
    return comparisons.model_diff_rows(con, run_id, limit), int(total["n"])
