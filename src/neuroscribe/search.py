"""Search stored explanations by meaning (MiniLM embeddings) or by text.

Each explanation that users see (status ``ok``, ``selected``, not the shuffled control) gets a
sentence embedding from the offline MiniLM model (``neuroscribe.embed``), stored in
``explanation_embeddings`` with the model's weights hash. The explain stage stores them as it
stores the explanations; ``backfill`` embeds those that lack one (explanations written before
migration 0004, or under other weights). A search by meaning embeds the query with the same
model and ranks the vectors by cosine similarity in DuckDB (``array_cosine_similarity``); a
search by text matches a substring or a regular expression, ignoring case. Only explanations of
finished runs are searched, as in ``scored_explanations``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb

from neuroscribe.embed import EMBEDDING_MODEL
from neuroscribe.records import Explanation
from neuroscribe.score.controls import SHUFFLED_CONTROL
from neuroscribe.warehouse import store

Mode = Literal["meaning", "text", "regex"]
DIMENSIONS = 384

# The explanations a search can return. Parameters: none.
SEARCHABLE = f"""
    SELECT e.explanation_id, e.unit_key, e.explainer, e.text
    FROM explanations e JOIN runs r USING (run_id)
    WHERE e.status = 'ok' AND e.selected AND e.text IS NOT NULL
      AND e.explainer <> '{SHUFFLED_CONTROL}' AND r.status = 'finished'
"""

# Best correlation score of each explanation over simulators (finished scoring runs).
BEST = """
    SELECT explanation_id, max(score) AS best_score, arg_max(simulator, score) AS best_simulator
    FROM scored_explanations
    WHERE score_kind = 'corr_top_random' AND score IS NOT NULL
    GROUP BY explanation_id
"""

COLUMNS = (
    "similarity",
    "subject",
    "site",
    "unit_index",
    "sae_id",
    "explainer",
    "explanation",
    "best_score",
    "best_simulator",
    "unit_key",
    "explanation_id",
)


class SearchError(ValueError):
    """Nothing to search, or a search that cannot run; the message says what to do."""


@dataclass(frozen=True)
class SearchResult:
    rows: list[dict[str, Any]]
    """One dict per match, keys ``COLUMNS`` (``similarity`` is None for text searches)."""
    searched: int
    """Explanations that were searched."""
    unembedded: int
    """Explanations left out of a search by meaning because they have no current vector."""


def embedding_weights_hash() -> str:
    """Hash of the MiniLM weights (cheap: memoised per file), without loading the model."""
    from neuroscribe.models import resolve_source, weights_hash

    return weights_hash(resolve_source(EMBEDDING_MODEL))


def searchable(explanations: Iterable[Explanation]) -> list[Explanation]:
    """The explanations that are embedded and searched."""
    return [
        e
        for e in explanations
        if e.status == "ok" and e.selected and e.text and e.explainer != SHUFFLED_CONTROL
    ]


def embedding_rows(explanations: Iterable[Explanation]) -> list[dict[str, Any]]:
    """Rows of ``explanation_embeddings`` for the searchable ones among ``explanations``
    (computes the embeddings; loads MiniLM once per process)."""
    mine = searchable(explanations)
    return _rows([(e.explanation_id, e.text or "") for e in mine])


def _rows(items: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    if not items:
        return []
    from neuroscribe.embed import embed_texts

    vectors = embed_texts([text for _, text in items])
    whash, now = embedding_weights_hash(), datetime.now(UTC).replace(tzinfo=None)
    return [
        {
            "explanation_id": eid,
            "model": EMBEDDING_MODEL,
            "weights_hash": whash,
            "embedding": [float(x) for x in vec],
            "created_at": now,
        }
        for (eid, _), vec in zip(items, vectors, strict=True)
    ]


def save_embeddings(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]]) -> int:
    """Store embedding rows in one transaction, replacing vectors of other weights of the same
    model. Returns the rows added."""
    if not rows:
        return 0
    with store.transaction(con):
        con.execute(
            "DELETE FROM explanation_embeddings WHERE model = ? AND weights_hash <> ?"
            " AND list_contains(?, explanation_id)",
            [EMBEDDING_MODEL, rows[0]["weights_hash"], [r["explanation_id"] for r in rows]],
        )
        return store.insert_rows(con, "explanation_embeddings", rows)


def missing_embeddings(con: duckdb.DuckDBPyConnection, weights_hash: str) -> list[tuple[str, str]]:
    """(explanation id, text) of searchable explanations without a vector of these weights."""
    return con.execute(
        f"SELECT c.explanation_id, c.text FROM ({SEARCHABLE}) c"  # noqa: S608
        " WHERE NOT EXISTS (SELECT 1 FROM explanation_embeddings v"
        "   WHERE v.explanation_id = c.explanation_id AND v.model = ? AND v.weights_hash = ?)"
        " ORDER BY c.explanation_id",
        [EMBEDDING_MODEL, weights_hash],
    ).fetchall()


def backfill_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Embedding rows for every searchable explanation that lacks a current vector. Reads
    only: compute with a read-only connection, then write with ``save_embeddings``."""
    return _rows(missing_embeddings(con, embedding_weights_hash()))


def has_embeddings_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'explanation_embeddings'"
        ).fetchall()[0][0]
    )


def search(
    con: duckdb.DuckDBPyConnection,
    query: str,
    mode: Mode = "meaning",
    *,
    limit: int = 10,
    explainer: str | None = None,
    site: str | None = None,
) -> SearchResult:
    """Explanations matching ``query``: by meaning, most similar first, or by text (substring
    or regular expression, ignoring case), best score first. ``site`` may use ``*`` as a
    wildcard (``layers.*.mlp``). Raises SearchError when there is nothing to search."""
    if not query.strip():
        raise SearchError("the search query is empty")
    if limit < 1:
        raise SearchError(f"--limit must be at least 1, not {limit}")
    if mode not in ("meaning", "text", "regex"):
        raise SearchError(f"unknown search mode '{mode}'")
    site_like = site.replace("*", "%") if site else None
    filters = "(? IS NULL OR c.explainer = ?) AND (? IS NULL OR u.site LIKE ?)"
    fparams: list[Any] = [explainer, explainer, site_like, site_like]
    total = con.execute(
        f"SELECT count(*) FROM ({SEARCHABLE}) c JOIN units u USING (unit_key)"  # noqa: S608
        f" WHERE {filters}",
        fparams,
    ).fetchall()[0][0]
    if total == 0:
        any_stored = con.execute(f"SELECT count(*) FROM ({SEARCHABLE})").fetchall()[0][0]  # noqa: S608
        if not any_stored:
            raise SearchError(
                "no explanations of a finished run are stored yet; run `neuroscribe run` first"
            )
        return SearchResult([], 0, 0)
    select = (
        "SELECT {sim} AS similarity, s.name AS subject, u.site, u.unit_index, u.sae_id,"
        " c.explainer, c.text AS explanation, b.best_score, b.best_simulator, c.unit_key,"
        f" c.explanation_id FROM ({SEARCHABLE}) c JOIN units u USING (unit_key)"
        " JOIN subjects s USING (subject_id) {join}"
        f" LEFT JOIN ({BEST}) b ON b.explanation_id = c.explanation_id"
    )
    if mode == "meaning":
        rows, unembedded = _by_meaning(con, query, select, filters, fparams, limit, total)
    else:
        match = (
            "contains(lower(c.text), lower(?))"
            if mode == "text"
            else "regexp_matches(c.text, ?, 'i')"
        )
        sql = (
            select.format(sim="NULL::DOUBLE", join="")
            + f" WHERE {filters} AND {match}"
            + " ORDER BY b.best_score DESC NULLS LAST, c.unit_key, c.explainer, c.explanation_id"
            + " LIMIT ?"
        )
        try:
            rows = con.execute(sql, [*fparams, query, limit]).fetchall()
        except duckdb.InvalidInputException as e:
            raise SearchError(
                f"invalid regular expression '{query}': {str(e).splitlines()[0]}"
            ) from None
        unembedded = 0
    return SearchResult([dict(zip(COLUMNS, r, strict=True)) for r in rows], total, unembedded)


def _by_meaning(
    con: duckdb.DuckDBPyConnection,
    query: str,
    select: str,
    filters: str,
    fparams: list[Any],
    limit: int,
    total: int,
) -> tuple[list[tuple[Any, ...]], int]:
    if not has_embeddings_table(con):
        raise SearchError(
            "this warehouse has no explanation embeddings yet (its schema predates search); "
            "run the search once with --backfill, which upgrades it and embeds every explanation"
        )
    from neuroscribe.embed import embed_texts

    whash = embedding_weights_hash()
    embedded = con.execute(
        f"SELECT count(*) FROM ({SEARCHABLE}) c JOIN units u USING (unit_key)"  # noqa: S608
        " JOIN explanation_embeddings v ON v.explanation_id = c.explanation_id"
        f" AND v.model = ? AND v.weights_hash = ? WHERE {filters}",
        [EMBEDDING_MODEL, whash, *fparams],
    ).fetchall()[0][0]
    if embedded == 0:
        raise SearchError(
            f"none of the {total} stored explanations has an embedding yet; "
            "search with --backfill to embed them"
        )
    vector = [float(x) for x in embed_texts([query])[0]]
    sql = (
        select.format(
            sim=f"array_cosine_similarity(v.embedding, ?::FLOAT[{DIMENSIONS}])",
            join="JOIN explanation_embeddings v ON v.explanation_id = c.explanation_id"
            " AND v.model = ? AND v.weights_hash = ?",
        )
        + f" WHERE {filters} ORDER BY similarity DESC, c.explanation_id LIMIT ?"
    )
    rows = con.execute(sql, [vector, EMBEDDING_MODEL, whash, *fparams, limit]).fetchall()
    return rows, total - embedded
