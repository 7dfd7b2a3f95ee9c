"""What the annotators produce: explanations, simulations, scores and agreements.

Each save is one transaction of ``INSERT OR IGNORE`` rows keyed by content ids; each load selects
columns named after the record's fields. A run passes its own explanation ids between stages, and
``current_explanation_ids`` names what later stages work on when they run alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb

from neuroscribe.records import Agreement, Explanation, Score, Simulation
from neuroscribe.warehouse.rows import fetch_column, fetch_records, insert_rows, transaction


def save_explanations(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    config_hash: str,
    explanations: Iterable[Explanation],
) -> int:
    """Store explanations (and failures to make one) of a run; returns the rows added."""
    with transaction(con):
        return insert_rows(con, "explanations", explanation_rows(run_id, config_hash, explanations))


def explanation_rows(
    run_id: str, config_hash: str, explanations: Iterable[Explanation]
) -> list[dict[str, Any]]:
    """The ``explanations`` rows of these explanations of a run."""
    return [
        {
            **e.model_dump(exclude={"prompt"}),
            "prompt_name": e.prompt.name if e.prompt else None,
            "prompt_version": e.prompt.version if e.prompt else None,
            "prompt_sha": e.prompt.sha if e.prompt else None,
            "run_id": run_id,
            "config_hash": config_hash,
        }
        for e in explanations
    ]


EXPLANATION_COLUMNS = (
    "explanation_id, unit_key, explainer, sample_index, status, text, failure,"
    " CASE WHEN prompt_name <> '' THEN"
    "   {'name': prompt_name, 'version': prompt_version, 'sha': prompt_sha} END AS prompt,"
    " selected, validation_score"
)
"""The columns of ``explanations`` as ``Explanation`` fields (the prompt as one struct)."""


def load_explanations(
    con: duckdb.DuckDBPyConnection, explanation_ids: Sequence[str], selected_only: bool = True
) -> list[Explanation]:
    """The explanations with these ids (a run passes its own ids between stages)."""
    return fetch_records(
        con,
        Explanation,
        f"SELECT {EXPLANATION_COLUMNS} FROM explanations"  # noqa: S608
        " WHERE list_contains(?, explanation_id) AND (selected OR NOT ?)"
        " ORDER BY unit_key, explainer, sample_index",
        [list(explanation_ids), selected_only],
    )


def save_simulations(
    con: duckdb.DuckDBPyConnection, run_id: str, simulations: Iterable[Simulation]
) -> int:
    """Store per-window simulations of a run; returns the rows added. Of the prompt, only its
    hash is stored."""
    with transaction(con):
        return insert_rows(con, "simulations", simulation_rows(run_id, simulations))


def simulation_rows(run_id: str, simulations: Iterable[Simulation]) -> list[dict[str, Any]]:
    """The ``simulations`` rows of these simulations of a run (of the prompt, its hash)."""
    return [
        {
            **s.model_dump(exclude={"prompt", "predictions"}),
            "predictions": [float(x) for x in s.predictions],
            "prompt_sha": s.prompt.sha if s.prompt else None,
            "run_id": run_id,
        }
        for s in simulations
    ]


def load_simulations(
    con: duckdb.DuckDBPyConnection, explanation_ids: Sequence[str]
) -> list[Simulation]:
    """Every simulation of these explanations (without their prompt, which is not stored)."""
    return fetch_records(
        con,
        Simulation,
        "SELECT simulation_id, explanation_id, simulator, window_id, status, predictions, failure"
        " FROM simulations WHERE list_contains(?, explanation_id)"
        " ORDER BY explanation_id, simulator, window_id",
        [list(explanation_ids)],
    )


def save_scores(con: duckdb.DuckDBPyConnection, run_id: str, scores: Iterable[Score]) -> int:
    """Store scores of a run; returns the rows added."""
    with transaction(con):
        return insert_rows(con, "scores", score_rows(run_id, scores))


def score_rows(run_id: str, scores: Iterable[Score]) -> list[dict[str, Any]]:
    """The ``scores`` rows of these scores of a run."""
    return [{**s.model_dump(), "run_id": run_id} for s in scores]


def load_scores(con: duckdb.DuckDBPyConnection, explanation_ids: Sequence[str]) -> list[Score]:
    """Every score of these explanations."""
    return fetch_records(
        con,
        Score,
        "SELECT explanation_id, simulator, kind, value, reason, n_tokens, n_windows, ci_low,"
        " ci_high FROM scores WHERE list_contains(?, explanation_id)"
        " ORDER BY explanation_id, simulator, kind",
        [list(explanation_ids)],
    )


def save_agreements(
    con: duckdb.DuckDBPyConnection, run_id: str, agreements: Iterable[Agreement]
) -> int:
    """Store a run's agreement statistics. Writing the same statistic again for the same run adds
    nothing (a retried task); another run's value is another row."""
    with transaction(con):
        return insert_rows(
            con,
            "agreements",
            [
                {
                    **a.model_dump(),
                    "annotators": list(a.annotators),
                    "run_id": run_id,
                    "statistic_key": statistic_key(a.unit_key, a.kind, a.annotators),
                }
                for a in agreements
            ],
        )


def statistic_key(unit_key: str | None, kind: str, annotators: Sequence[str]) -> str:
    """Which statistic an agreement row holds: the md5 of the unit key ('' over all units), the
    kind and the annotators, joined by chr(31); migration 0003 computes the same in SQL."""
    text = "\x1f".join([unit_key or "", kind, "\x1f".join(annotators)])
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 (an id, not security)


def current_explanation_ids(con: duckdb.DuckDBPyConnection, unit_keys: Sequence[str]) -> list[str]:
    """For each (unit, explainer): the selected explanation of the most recent finished run that
    made one (controls included). What later stages annotate and compare."""
    return fetch_column(
        con,
        "SELECT explanation_id FROM explanations e JOIN runs r USING (run_id)"
        " WHERE list_contains(?, e.unit_key) AND e.selected AND e.status = 'ok'"
        " AND r.status = 'finished'"
        " QUALIFY row_number() OVER (PARTITION BY e.unit_key, e.explainer"
        "   ORDER BY r.started_at DESC, e.explanation_id) = 1"
        " ORDER BY e.unit_key, e.explainer",
        [list(unit_keys)],
    )
