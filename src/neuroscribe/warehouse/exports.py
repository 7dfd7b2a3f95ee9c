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


DIFF_ORDER = (
    "run_id, change_size DESC, change, subject_id, site, unit_index, other_subject_id, other_site"
)
"""The model_diff export order (largest change first); the same warehouse, the same file."""


def comparison_runs(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Finished comparison runs (runs with rows in site_comparisons), oldest first: run_id and
    config_hash."""
    return fetch_dicts(
        con,
        "SELECT r.run_id, r.config_hash FROM runs r WHERE r.status = 'finished'"
        " AND EXISTS (SELECT 1 FROM site_comparisons c WHERE c.run_id = r.run_id)"
        " ORDER BY r.started_at, r.run_id",
    )


def model_diff_query(run_ids: list[str]) -> tuple[str, dict[str, Any]]:
    """SQL selecting the model_diff rows of these comparison runs in export order, and its
    parameters."""
    return (
        f"SELECT * FROM model_diff WHERE list_contains($run_ids, run_id) ORDER BY {DIFF_ORDER}",
        {"run_ids": run_ids},
    )


def model_diff_provenance(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
) -> dict[str, tuple[Any, ...]]:
    """The runs that wrote the explanations shown in the rows of ``sql`` (model_diff rows) and
    their prompts' content hashes: explanation_run_ids and prompt_shas, each sorted."""
    (row,) = fetch_dicts(
        con,
        "SELECT list(DISTINCT b.explanation_run_id ORDER BY b.explanation_run_id)"
        "   AS explanation_run_ids,"
        " list(DISTINCT b.prompt_sha ORDER BY b.prompt_sha) FILTER (b.prompt_sha IS NOT NULL)"
        "   AS prompt_shas"
        f" FROM ({sql}) AS d JOIN best_explanations b"  # noqa: S608
        " ON b.sae_id IS NOT DISTINCT FROM d.sae_id AND b.subject_id = d.subject_id"
        " AND b.site = d.site"
        " AND b.unit_index = d.unit_index AND b.explainer = d.explainer"
        " AND b.explanation = d.explanation",
        params,
    )
    return {k: tuple(v or ()) for k, v in row.items()}
