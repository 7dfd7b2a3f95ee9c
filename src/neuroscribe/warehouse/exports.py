"""The queries behind exports: filtered rows of ``scored_explanations`` in a stable order, their
provenance, and the per-explanation grouping of Neuronpedia's format.

Filters become SQL parameters (``$name``), never text in the query; only constant SQL is
wrapped around a filtered query, so user values stay in its parameters.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from neuroscribe.score.controls import SHUFFLED_CONTROL
from neuroscribe.warehouse.rows import fetch_dicts

# filter name -> SQL condition on scored_explanations, with a parameter of the same name.
FILTERS: dict[str, str] = {
    "subject": "(subject = $subject OR subject_id = $subject)",
    "site": "site = $site",
    "explainer": "explainer = $explainer",
    "simulator": "simulator = $simulator",
    "score_kind": "score_kind = $score_kind",
    "min_score": "score >= $min_score",
    "run_id": "run_id = $run_id",
}
ORDER = (
    "subject_id, site, sae_id NULLS FIRST, unit_index, explainer, explanation_id, simulator,"
    " score_kind"
)
"""The export order: the same warehouse exports byte-identical files."""


def scored_query(params: dict[str, Any]) -> str:
    """SQL selecting the rows of scored_explanations that pass the filters named in ``params``
    (names of ``FILTERS``; every value is used), in export order."""
    where = " AND ".join(FILTERS[k] for k in FILTERS if k in params) or "TRUE"
    return f"SELECT * FROM scored_explanations WHERE {where} ORDER BY {ORDER}"  # noqa: S608


def stream(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], batch_rows: int
) -> pa.RecordBatchReader:
    """The rows of ``sql`` as Arrow record batches of at most ``batch_rows`` rows."""
    return con.sql(sql, params=params).to_arrow_reader(batch_rows)


def provenance(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
) -> dict[str, tuple[Any, ...]]:
    """The distinct run_ids (scoring runs), explanation_run_ids, config_hashes and prompt_shas
    (non-NULL) of the rows of ``sql``, each sorted."""
    (row,) = fetch_dicts(
        con,
        "SELECT list(DISTINCT run_id ORDER BY run_id) AS run_ids,"
        " list(DISTINCT explanation_run_id ORDER BY explanation_run_id) AS explanation_run_ids,"
        " list(DISTINCT config_hash ORDER BY config_hash) AS config_hashes,"
        " list(DISTINCT prompt_sha ORDER BY prompt_sha) FILTER (prompt_sha IS NOT NULL)"
        "   AS prompt_shas"
        f" FROM ({sql}) AS filtered",  # noqa: S608
        params,
    )
    return {k: tuple(v or ()) for k, v in row.items()}


def neuronpedia_rows(filtered_sql: str) -> str:
    """Keep the rows Neuronpedia gets: selected explanations, not the shuffled control."""
    return (
        f"SELECT * FROM ({filtered_sql}) AS filtered"  # noqa: S608
        f" WHERE selected AND explainer <> '{SHUFFLED_CONTROL}'"
    )


def neuronpedia_grouped(filtered_sql: str) -> str:
    """One row per explanation of ``filtered_sql`` (rows of scored_explanations), scores listed."""
    return (
        "SELECT subject, site, unit_index, sae_id, unit_key, explanation_id, explainer,"
        " explanation, prompt_sha, explanation_run_id,"
        " list(DISTINCT run_id ORDER BY run_id) AS run_ids,"
        " list(DISTINCT config_hash ORDER BY config_hash) AS config_hashes,"
        " list({'kind': score_kind, 'simulator': simulator, 'value': score,"
        " 'reason': score_undefined_reason, 'ci_low': ci_low, 'ci_high': ci_high}"
        " ORDER BY simulator, score_kind) AS scores"
        f" FROM ({filtered_sql}) AS filtered"  # noqa: S608
        " GROUP BY ALL ORDER BY subject, site, sae_id NULLS FIRST, unit_index, explainer,"
        " explanation_id"
    )
