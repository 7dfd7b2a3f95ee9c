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
import numpy as np

from neuroscribe.embed import EMBEDDING_MODEL
from neuroscribe.errors import BadInput
from neuroscribe.progress import track_chunks
from neuroscribe.records import Explanation
from neuroscribe.score.controls import SHUFFLED_CONTROL
from neuroscribe.warehouse import embeddings as stored

Mode = Literal["meaning", "text", "regex"]

EMBED_CHUNK = 2048
"""Explanations embedded per call; the progress advances by each (a catalogue has thousands)."""
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


class SearchError(BadInput):
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

    texts = [text for _, text in items]
    parts = [embed_texts(chunk) for chunk in track_chunks(texts, EMBED_CHUNK, "embed explanations")]
    vectors = np.concatenate(parts, axis=0)
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
    return stored.save_embeddings(con, EMBEDDING_MODEL, rows)


def missing_embeddings(con: duckdb.DuckDBPyConnection, weights_hash: str) -> list[tuple[str, str]]:
    """(explanation id, text) of searchable explanations without a vector of these weights."""
    return stored.missing_embeddings(con, EMBEDDING_MODEL, weights_hash)


def backfill_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Embedding rows for every searchable explanation that lacks a current vector. Reads
    only: compute with a read-only connection, then write with ``save_embeddings``."""
    return _rows(missing_embeddings(con, embedding_weights_hash()))


def has_embeddings_table(con: duckdb.DuckDBPyConnection) -> bool:
    return stored.has_embeddings_table(con)


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
    total = stored.count_searchable(con, explainer, site_like)
    if total == 0:
        if not stored.count_all_searchable(con):
            raise SearchError(
                "no explanations of a finished run are stored yet; run `neuroscribe run` first"
            )
        return SearchResult([], 0, 0)
    if mode == "meaning":
        rows, unembedded = _by_meaning(con, query, explainer, site_like, limit, total)
    else:
        try:
            rows = stored.match_text(con, query, mode == "regex", limit, explainer, site_like)
        except duckdb.InvalidInputException as e:
            raise SearchError(
                f"invalid regular expression '{query}': {str(e).splitlines()[0]}"
            ) from None
        unembedded = 0
    return SearchResult([{c: r[c] for c in COLUMNS} for r in rows], total, unembedded)


def _by_meaning(
    con: duckdb.DuckDBPyConnection,
    query: str,
    explainer: str | None,
    site_like: str | None,
    limit: int,
    total: int,
) -> tuple[list[dict[str, Any]], int]:
    if not has_embeddings_table(con):
        raise SearchError(
            "this warehouse has no explanation embeddings yet (its schema predates search); "
            "run the search once with --backfill, which upgrades it and embeds every explanation"
        )
    from neuroscribe.embed import embed_texts

    whash = embedding_weights_hash()
    embedded = stored.count_embedded(con, EMBEDDING_MODEL, whash, explainer, site_like)
    if embedded == 0:
        raise SearchError(
            f"none of the {total} stored explanations has an embedding yet; "
            "search with --backfill to embed them"
        )
    vector = [float(x) for x in embed_texts([query])[0]]
    rows = stored.nearest(con, vector, EMBEDDING_MODEL, whash, limit, explainer, site_like)
    return rows, total - embedded
