"""The rows an HTML report shows, read in a few bulk queries.

Scores come from ``scored_explanations`` (finished runs, ``ok`` explanations), limited to
selected explanations; windows, true activations and simulations from their tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

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
