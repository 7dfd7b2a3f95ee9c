"""What a comparison stores (subjects, ``site_comparisons``, ``unit_matches``) and the questions
asked of it (the ``universality`` and ``model_diff`` views, the CKA matrix)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from neuroscribe.warehouse.rows import fetch_dicts, insert_arrow, insert_rows, transaction

if TYPE_CHECKING:  # the warehouse does not load torch to store numbers
    from neuroscribe.compare.stream import Comparison


def save_comparison(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    comparison: Comparison,
    threshold: float,
    similarity: float | None = None,
    score_change: float | None = None,
) -> None:
    """Write a comparison's rows in one transaction, with the run's thresholds (``threshold``
    for a partner; ``similarity`` and ``score_change`` for a changed unit, None: none is)."""
    subjects = [
        {
            "subject_id": s.subject_id,
            "name": s.name,
            "weights_hash": s.weights_hash,
            "architecture": s.architecture,
            "n_layers": s.n_layers,
        }
        for s in {s.subject_id: s for s in comparison.subjects}.values()
    ]
    pairs = []
    matches: list[pa.Table] = []
    for p in comparison.pairs:
        key = {
            "run_id": run_id,
            "subject_a_id": p.subject_a.subject_id,
            "subject_b_id": p.subject_b.subject_id,
            "site_a": p.site_a,
            "site_b": p.site_b,
        }
        pairs.append(
            {
                **key,
                "corpus_id": comparison.corpus_id,
                "n_tokens": p.n_tokens,
                "n_a": p.n_a,
                "n_b": p.n_b,
                "live_a": p.live_a,
                "live_b": p.live_b,
                "cka": None if math.isnan(p.cka) else p.cka,
                "matched": p.matches is not None,
                "threshold": threshold,
                "similarity": similarity,
                "score_change": score_change,
                "cka_method": p.cka_method,
            }
        )
        if p.matches is None:
            continue
        m = p.matches
        n = len(m.kind)
        columns = {k: pa.array([v] * n, pa.string()) for k, v in key.items()}
        columns["kind"] = pa.array(m.kind, pa.string())
        # -1 (no partner) and NaN (undefined r) are stored as NULL
        columns["unit_a"] = pa.array(m.unit_a, pa.int32(), mask=m.unit_a < 0)
        columns["unit_b"] = pa.array(m.unit_b, pa.int32(), mask=m.unit_b < 0)
        columns["r"] = pa.array(m.r, pa.float64(), mask=np.isnan(m.r))
        matches.append(pa.table(columns))
    with transaction(con):
        insert_rows(con, "subjects", subjects)
        insert_rows(con, "site_comparisons", pairs)
        for table in matches:
            insert_arrow(con, "unit_matches", table)


def universality_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The ``universality`` rows of one comparison run, by subject pair and site."""
    return fetch_dicts(
        con,
        "SELECT * FROM universality WHERE run_id = ?"
        " ORDER BY subject_a_id, subject_b_id, site_a, site_b",
        [run_id],
    )


def model_diff_rows(
    con: duckdb.DuckDBPyConnection, run_id: str, limit: int | None = None
) -> list[dict[str, Any]]:
    """The ``model_diff`` rows of one comparison run, largest change first."""
    sql = (
        "SELECT * FROM model_diff WHERE run_id = ?"
        " ORDER BY change_size DESC, change, site, unit_index"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return fetch_dicts(con, sql, [run_id])


def cka_matrix(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Every site pair's CKA in one comparison run (matched or CKA-only): the heatmap's cells."""
    return fetch_dicts(
        con,
        "SELECT subject_a_id, subject_b_id, site_a, site_b, cka, cka_method, matched"
        " FROM site_comparisons"
        " WHERE run_id = ? ORDER BY subject_a_id, subject_b_id, site_a, site_b",
        [run_id],
    )


def diff_candidates(
    con: duckdb.DuckDBPyConnection, run_id: str, top: int
) -> list[dict[str, Any]]:
    """The ``top`` units of a comparison run with the largest activation change (1 - best
    partner r): each as ``subject_id``, ``site``, ``unit_index``, and, where its partner has r
    at or above the threshold (a candidate for 'changed'), the partner as ``partner_subject_id``,
    ``partner_site``, ``partner_index`` (else those are None). Read from the tables, so it works
    before the run is marked finished."""
    return fetch_dicts(
        con,
        """
        WITH p AS (
            SELECT m.subject_b_id AS subject_id, m.site_b AS site, m.unit_b AS unit_index,
                   m.subject_a_id AS o_subject, m.site_a AS o_site, m.unit_a AS o_unit,
                   m.r, c.threshold
            FROM unit_matches m
            JOIN site_comparisons c USING (run_id, subject_a_id, subject_b_id, site_a, site_b)
            WHERE m.run_id = ? AND m.kind = 'best_b' AND m.r IS NOT NULL
            UNION ALL
            SELECT m.subject_a_id, m.site_a, m.unit_a, m.subject_b_id, m.site_b, m.unit_b,
                   m.r, c.threshold
            FROM unit_matches m
            JOIN site_comparisons c USING (run_id, subject_a_id, subject_b_id, site_a, site_b)
            WHERE m.run_id = ? AND m.kind = 'best_a' AND m.r IS NOT NULL AND m.r < c.threshold
        )
        SELECT subject_id, site, unit_index,
               CASE WHEN r >= threshold THEN o_subject END AS partner_subject_id,
               CASE WHEN r >= threshold THEN o_site END    AS partner_site,
               CASE WHEN r >= threshold THEN o_unit END    AS partner_index
        FROM p
        ORDER BY 1 - r DESC, site, subject_id, unit_index
        LIMIT ?
        """,
        [run_id, run_id, int(top)],
    )


def explained_units(
    con: duckdb.DuckDBPyConnection, units: list[tuple[str, str, int]]
) -> set[tuple[str, str, int]]:
    """Those of ``units`` (subject_id, site, unit_index) that already have a best explanation
    (``best_explanations``: scored, selected, of a finished run)."""
    if not units:
        return set()
    rows = con.execute(
        "SELECT DISTINCT subject_id, site, unit_index FROM best_explanations"
        " WHERE sae_id IS NULL AND subject_id IN (SELECT unnest(?::VARCHAR[]))",
        [sorted({s for s, _, _ in units})],
    ).fetchall()
    return {(s, t, int(u)) for s, t, u in rows} & set(units)
