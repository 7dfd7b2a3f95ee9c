"""Explanation embeddings and the queries that search explanations by meaning or by text.

What a search can return (``SEARCHABLE``): explanations with status ``ok``, selected, with a
text, not the shuffled control, made by a finished run. Vectors are ranked in DuckDB with
``array_cosine_similarity``; text matches with ``contains`` or ``regexp_matches``, ignoring case.
Filters (explainer, site as a LIKE pattern) are parameters; None means not filtered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from neuroscribe.registry import HEADLINE_SCORE
from neuroscribe.score.controls import SHUFFLED_CONTROL
from neuroscribe.warehouse.rows import fetch_dicts, insert_rows, scalar, transaction

DIMENSIONS = 384
"""Length of a stored embedding (``FLOAT[384]``, MiniLM)."""

# The explanations a search can return. Parameters: none.
SEARCHABLE = f"""
    SELECT e.explanation_id, e.unit_key, e.explainer, e.text
    FROM explanations e JOIN runs r USING (run_id)
    WHERE e.status = 'ok' AND e.selected AND e.text IS NOT NULL
      AND e.explainer <> '{SHUFFLED_CONTROL}' AND r.status = 'finished'
"""

# Best headline score of each explanation over simulators (finished scoring runs).
BEST = f"""
    SELECT explanation_id, max(score) AS best_score, arg_max(simulator, score) AS best_simulator
    FROM scored_explanations
    WHERE score_kind = '{HEADLINE_SCORE}' AND score IS NOT NULL
    GROUP BY explanation_id
"""

# A match: columns of a search result. {sim}: the similarity; {join}: the embeddings, if any.
SELECT_MATCH = (
    "SELECT {sim} AS similarity, s.name AS subject, u.site, u.unit_index, u.sae_id,"
    " c.explainer, c.text AS explanation, b.best_score, b.best_simulator, c.unit_key,"
    f" c.explanation_id FROM ({SEARCHABLE}) c JOIN units u USING (unit_key)"
    " JOIN subjects s USING (subject_id) {join}"
    f" LEFT JOIN ({BEST}) b ON b.explanation_id = c.explanation_id"
)

FILTERS = "(? IS NULL OR c.explainer = ?) AND (? IS NULL OR u.site LIKE ?)"
"""Explainer and site (LIKE) filters; parameters from ``_filter_params``."""

EMBEDDED = (
    "JOIN explanation_embeddings v ON v.explanation_id = c.explanation_id"
    " AND v.model = ? AND v.weights_hash = ?"
)


def _filter_params(explainer: str | None, site_like: str | None) -> list[Any]:
    return [explainer, explainer, site_like, site_like]


def save_embeddings(
    con: duckdb.DuckDBPyConnection, model: str, rows: Sequence[dict[str, Any]]
) -> int:
    """Store embedding rows in one transaction, replacing vectors of other weights of the same
    model. Returns the rows added."""
    if not rows:
        return 0
    with transaction(con):
        con.execute(
            "DELETE FROM explanation_embeddings WHERE model = ? AND weights_hash <> ?"
            " AND list_contains(?, explanation_id)",
            [model, rows[0]["weights_hash"], [r["explanation_id"] for r in rows]],
        )
        return insert_rows(con, "explanation_embeddings", rows)


def missing_embeddings(
    con: duckdb.DuckDBPyConnection, model: str, weights_hash: str
) -> list[tuple[str, str]]:
    """(explanation id, text) of searchable explanations without a vector of these weights."""
    rows = fetch_dicts(
        con,
        f"SELECT c.explanation_id, c.text FROM ({SEARCHABLE}) c"  # noqa: S608
        " WHERE NOT EXISTS (SELECT 1 FROM explanation_embeddings v"
        "   WHERE v.explanation_id = c.explanation_id AND v.model = ? AND v.weights_hash = ?)"
        " ORDER BY c.explanation_id",
        [model, weights_hash],
    )
    return [(r["explanation_id"], r["text"]) for r in rows]


def has_embeddings_table(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the schema has ``explanation_embeddings`` (migration 0004)."""
    return bool(
        scalar(
            con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'explanation_embeddings'"
        )
    )


def count_all_searchable(con: duckdb.DuckDBPyConnection) -> int:
    """Searchable explanations, unfiltered."""
    return scalar(con, f"SELECT count(*) FROM ({SEARCHABLE})")  # noqa: S608


def count_searchable(
    con: duckdb.DuckDBPyConnection, explainer: str | None = None, site_like: str | None = None
) -> int:
    """Searchable explanations that pass the filters."""
    return scalar(
        con,
        f"SELECT count(*) FROM ({SEARCHABLE}) c JOIN units u USING (unit_key)"  # noqa: S608
        f" WHERE {FILTERS}",
        _filter_params(explainer, site_like),
    )


def count_embedded(
    con: duckdb.DuckDBPyConnection,
    model: str,
    weights_hash: str,
    explainer: str | None = None,
    site_like: str | None = None,
) -> int:
    """Searchable explanations that pass the filters and have a vector of these weights."""
    return scalar(
        con,
        f"SELECT count(*) FROM ({SEARCHABLE}) c JOIN units u USING (unit_key) {EMBEDDED}"  # noqa: S608
        f" WHERE {FILTERS}",
        [model, weights_hash, *_filter_params(explainer, site_like)],
    )


def match_text(
    con: duckdb.DuckDBPyConnection,
    query: str,
    regex: bool,
    limit: int,
    explainer: str | None = None,
    site_like: str | None = None,
) -> list[dict[str, Any]]:
    """Searchable explanations whose text contains ``query`` (or matches it as a regular
    expression), ignoring case, best score first; ``similarity`` is NULL. An invalid regular
    expression raises ``duckdb.InvalidInputException``."""
    match = "regexp_matches(c.text, ?, 'i')" if regex else "contains(lower(c.text), lower(?))"
    sql = (
        SELECT_MATCH.format(sim="NULL::DOUBLE", join="")
        + f" WHERE {FILTERS} AND {match}"
        + " ORDER BY b.best_score DESC NULLS LAST, c.unit_key, c.explainer, c.explanation_id"
        + " LIMIT ?"
    )
    return fetch_dicts(con, sql, [*_filter_params(explainer, site_like), query, limit])


def nearest(
    con: duckdb.DuckDBPyConnection,
    vector: Sequence[float],
    model: str,
    weights_hash: str,
    limit: int,
    explainer: str | None = None,
    site_like: str | None = None,
) -> list[dict[str, Any]]:
    """The searchable explanations whose vectors (of these weights) are most similar to
    ``vector`` by cosine similarity, most similar first."""
    sql = (
        SELECT_MATCH.format(
            sim=f"array_cosine_similarity(v.embedding, ?::FLOAT[{DIMENSIONS}])", join=EMBEDDED
        )
        + f" WHERE {FILTERS} ORDER BY similarity DESC, c.explanation_id LIMIT ?"
    )
    params = [list(vector), model, weights_hash, *_filter_params(explainer, site_like), limit]
    return fetch_dicts(con, sql, params)
