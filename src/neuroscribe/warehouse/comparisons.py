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
    from neuroscribe.compare.stream import Comparison, UnitMatches


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
            "sae_a_id": p.sae_a,
            "sae_b_id": p.sae_b,
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
        for basis, m in (("activation", p.matches), ("decoder", p.by_decoder)):
            if m is not None:
                matches.append(_match_rows(key, basis, m))
    with transaction(con):
        insert_rows(con, "subjects", subjects)
        insert_rows(con, "site_comparisons", pairs)
        for table in matches:
            insert_arrow(con, "unit_matches", table)


def _match_rows(key: dict[str, Any], basis: str, m: UnitMatches) -> pa.Table:
    """``unit_matches`` rows of one site pair and basis; -1 (no partner) and NaN (undefined r)
    are stored as NULL."""
    n = len(m.kind)
    columns = {k: pa.array([v] * n, pa.string()) for k, v in {**key, "basis": basis}.items()}
    columns["kind"] = pa.array(m.kind, pa.string())
    columns["unit_a"] = pa.array(m.unit_a, pa.int32(), mask=m.unit_a < 0)
    columns["unit_b"] = pa.array(m.unit_b, pa.int32(), mask=m.unit_b < 0)
    columns["r"] = pa.array(m.r, pa.float64(), mask=np.isnan(m.r))
    return pa.table(columns)


def universality_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The ``universality`` rows of one comparison run, by subject pair and site."""
    return fetch_dicts(
        con,
        "SELECT * FROM universality WHERE run_id = ?"
        " ORDER BY subject_a_id, subject_b_id, site_a, site_b, sae_a_id NULLS FIRST,"
        " sae_b_id NULLS FIRST, basis",
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
    """Every site pair's CKA in one comparison run (matched or CKA-only), with the SAEs of SAE
    pairs: the heatmap's cells."""
    return fetch_dicts(
        con,
        "SELECT subject_a_id, subject_b_id, site_a, site_b, cka, cka_method, matched,"
        " sae_a_id, sae_b_id FROM site_comparisons WHERE run_id = ?"
        " ORDER BY subject_a_id, subject_b_id, sae_a_id NULLS FIRST, sae_b_id NULLS FIRST,"
        " site_a, site_b",
        [run_id],
    )


def diff_candidates(
    con: duckdb.DuckDBPyConnection, run_id: str, top: int
) -> list[dict[str, Any]]:
    """The ``top`` units of a comparison run with the largest activation change (1 - best
    partner r, matches by activation): each as ``subject_id``, ``site``, ``unit_index``,
    ``sae_id`` (None: the subject's own unit), and, where its one-to-one partner has r at or
    above the threshold (a candidate for 'changed' in ``model_diff``), that partner as
    ``partner_subject_id``, ``partner_site``, ``partner_index``, ``partner_sae_id`` (else
    those are None). Read from the tables, so it works before the run is marked finished."""
    return fetch_dicts(
        con,
        """
        WITH m AS (
            SELECT m.*, c.threshold
            FROM unit_matches m
            JOIN site_comparisons c
                ON c.run_id = m.run_id AND c.subject_a_id = m.subject_a_id
               AND c.subject_b_id = m.subject_b_id AND c.site_a = m.site_a
               AND c.site_b = m.site_b AND c.sae_a_id IS NOT DISTINCT FROM m.sae_a_id
               AND c.sae_b_id IS NOT DISTINCT FROM m.sae_b_id
            WHERE m.run_id = ? AND m.basis = 'activation' AND m.r IS NOT NULL
        ),
        p AS (
            SELECT b.subject_b_id AS subject_id, b.site_b AS site, b.unit_b AS unit_index,
                   b.sae_b_id AS sae_id, b.r,
                   o.subject_a_id AS o_subject, o.site_a AS o_site, o.unit_a AS o_unit,
                   o.sae_a_id AS o_sae
            FROM m b
            LEFT JOIN m o
                ON o.kind = 'one_to_one' AND o.r >= o.threshold
               AND o.subject_a_id = b.subject_a_id AND o.subject_b_id = b.subject_b_id
               AND o.site_a = b.site_a AND o.site_b = b.site_b
               AND o.sae_a_id IS NOT DISTINCT FROM b.sae_a_id
               AND o.sae_b_id IS NOT DISTINCT FROM b.sae_b_id AND o.unit_b = b.unit_b
            WHERE b.kind = 'best_b'
            UNION ALL
            SELECT subject_a_id, site_a, unit_a, sae_a_id, r, NULL, NULL, NULL, NULL
            FROM m WHERE kind = 'best_a' AND r < threshold
        )
        SELECT subject_id, site, unit_index, sae_id, o_subject AS partner_subject_id,
               o_site AS partner_site, o_unit AS partner_index, o_sae AS partner_sae_id
        FROM p
        ORDER BY round(1 - r, 6) DESC, site, subject_id, sae_id NULLS FIRST, unit_index
        LIMIT ?
        """,
        [run_id, int(top)],
    )


def explained_units(
    con: duckdb.DuckDBPyConnection, units: list[tuple[str, str, int, str | None]]
) -> set[tuple[str, str, int, str | None]]:
    """Those of ``units`` (subject_id, site, unit_index, sae_id or None) that already have a best
    explanation (``best_explanations``: scored, selected, of a finished run)."""
    if not units:
        return set()
    rows = con.execute(
        "SELECT DISTINCT subject_id, site, unit_index, sae_id FROM best_explanations"
        " WHERE subject_id IN (SELECT unnest(?::VARCHAR[]))",
        [sorted({u[0] for u in units})],
    ).fetchall()
    return {(s, t, int(u), e) for s, t, u, e in rows} & set(units)
