"""Records <-> rows. No SQL strings about these tables live anywhere else in the library.

Every write is one transaction and keyed by content ids with ``INSERT OR IGNORE``, so a write
killed half-way leaves nothing, and writing the same records twice leaves one copy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from neuroscribe import __version__
from neuroscribe.config import RunConfig
from neuroscribe.llm.base import LLMCall
from neuroscribe.records import (
    Agreement,
    Explanation,
    PromptRef,
    Score,
    Simulation,
    Split,
    Subject,
    UnitExamples,
    UnitId,
    UnitStats,
    UnitWindow,
    Window,
)
from neuroscribe.warehouse.db import kill_point


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("run_id",),
    "subjects": ("subject_id",),
    "windows": ("window_id",),
    "units": ("unit_key",),
    "unit_windows": ("unit_key", "window_id"),
    "explanations": ("explanation_id",),
    "simulations": ("simulation_id",),
    "scores": ("explanation_id", "simulator", "kind"),
    "explanation_embeddings": ("explanation_id", "model"),
    "handoffs": ("handoff_id",),
    "agreements": ("run_id", "statistic_key"),
}
"""Tables keyed by content ids, where a repeated write is skipped. ``agreements`` is keyed per
run: each run records its own value of a statistic (once, however often it writes it).
``llm_calls`` is a log of every call and cache hit, and takes every row."""

ADOPTABLE = frozenset(
    {"units", "unit_windows", "explanations", "simulations", "scores", "agreements"}
)
"""Tables whose rows name the run that wrote them. A row left by a run that did not finish is
taken over by the next run that writes the same key (for ``agreements``, the same statistic), so
that finished work reappears under a finished run instead of staying hidden behind a failed
one. ``adopt`` does the same for rows a run reuses without writing them again."""


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict[str, Any]]) -> int:
    """Insert dict rows through Arrow (fast; never executemany), skipping existing keys."""
    if not rows:
        return 0
    return insert_arrow(con, table, pa.Table.from_pylist(list(rows)))


def insert_arrow(con: duckdb.DuckDBPyConnection, table: str, arrow: pa.Table) -> int:
    """Insert an Arrow table's rows (its columns named as the table's), skipping existing keys
    and adopting rows of unfinished runs as ``insert_rows`` does. Returns the rows added."""
    if arrow.num_rows == 0:
        return 0
    cols = ", ".join(arrow.column_names)
    con.register("_incoming", arrow)
    try:
        keys = TABLE_KEYS.get(table)
        if table in ADOPTABLE and keys:
            k = ", ".join(c for c in keys if c != "run_id")
            con.execute(
                f"DELETE FROM {table} WHERE ({k}) IN (SELECT ({k}) FROM _incoming)"  # noqa: S608
                " AND run_id IN (SELECT run_id FROM runs WHERE status <> 'finished')"
                " AND run_id NOT IN (SELECT DISTINCT run_id FROM _incoming)"
            )
        before = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]  # noqa: S608
        verb = "INSERT OR IGNORE" if keys else "INSERT"
        con.execute(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM _incoming")  # noqa: S608
        kill_point(f"write:{table}")  # fault injection for the resume tests; off by default
        after = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]  # noqa: S608
    finally:
        con.unregister("_incoming")
    return int(after - before)


def adopt(
    con: duckdb.DuckDBPyConnection, run_id: str, table: str, column: str, values: Sequence[str]
) -> int:
    """Take over, for ``run_id``, the rows of ``table`` whose ``column`` is in ``values`` and
    that a run which did not finish left: what a run reuses instead of writing again (units it
    finds collected, simulations it finds done) then shows under a finished run, as a row it
    wrote again would. Returns the rows taken over."""
    if table not in ADOPTABLE or table == "agreements":
        raise ValueError(f"cannot adopt rows of {table}")
    if not values:
        return 0
    rows = con.execute(
        f"UPDATE {table} SET run_id = ? WHERE list_contains(?, {column})"  # noqa: S608
        " AND run_id <> ? AND run_id IN (SELECT run_id FROM runs WHERE status <> 'finished')",
        [run_id, list(values), run_id],
    ).fetchall()
    return int(rows[0][0]) if rows else 0


class transaction:
    """``with transaction(con):`` commits on success, rolls back on any error."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con.execute("BEGIN TRANSACTION")
        return self.con

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.con.execute("ROLLBACK" if exc_type else "COMMIT")


# --- runs -----------------------------------------------------------------------------------


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, cfg: RunConfig) -> None:
    insert_rows(
        con,
        "runs",
        [
            {
                "run_id": run_id,
                "config_hash": cfg.config_hash,
                "config_json": json.dumps(cfg.model_dump(mode="json"), sort_keys=True),
                "status": "running",
                "stage": "start",
                "error": None,
                "started_at": _now(),
                "finished_at": None,
                "neuroscribe_version": __version__,
            }
        ],
    )


def set_stage(con: duckdb.DuckDBPyConnection, run_id: str, stage: str) -> None:
    con.execute("UPDATE runs SET stage = ? WHERE run_id = ?", [stage, run_id])


def finish_run(
    con: duckdb.DuckDBPyConnection, run_id: str, status: str, error: str | None = None
) -> None:
    """Mark a run finished or failed. Only a run that completed every stage is 'finished'."""
    con.execute(
        "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE run_id = ?",
        [status, error, _now(), run_id],
    )


# --- collection -----------------------------------------------------------------------------


def save_collection(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    subject: Subject,
    corpus_id: str,
    windows: Iterable[Window],
    units: Iterable[UnitExamples],
) -> None:
    units = list(units)
    _check_same_collection(con, units)
    with transaction(con):
        for table, rows in collection_rows(run_id, subject, corpus_id, windows, units).items():
            insert_rows(con, table, rows)


def collection_rows(
    run_id: str,
    subject: Subject,
    corpus_id: str,
    windows: Iterable[Window],
    units: Iterable[UnitExamples],
) -> dict[str, list[dict[str, Any]]]:
    """The rows a collection writes, per table, in the order they are written (subjects,
    windows, units, unit_windows). ``save_collection`` stores them; a worker hands them off."""
    units = list(units)
    return {
        "subjects": [
            {
                "subject_id": subject.subject_id,
                "name": subject.name,
                "weights_hash": subject.weights_hash,
                "architecture": subject.architecture,
                "n_layers": subject.n_layers,
            }
        ],
        "windows": [
            {
                "window_id": w.window_id,
                "corpus_id": w.corpus_id,
                "doc_id": w.doc_id,
                "start_token": w.start,
                "token_ids": list(w.token_ids),
                "tokens": list(w.tokens),
            }
            for w in windows
        ],
        "units": [
            {
                "unit_key": u.unit.key,
                "subject_id": u.unit.subject_id,
                "site": u.unit.site,
                "unit_index": u.unit.index,
                "sae_id": u.unit.sae_id,
                "run_id": run_id,
                "corpus_id": corpus_id,
                "n_tokens": u.stats.n_tokens,
                "max_activation": u.stats.max,
                "mean_activation": u.stats.mean,
                "firing_rate": u.stats.firing_rate,
                "quantiles": list(u.stats.quantiles),
                "dead": u.stats.dead,
            }
            for u in units
        ],
        "unit_windows": [
            {
                "unit_key": u.unit.key,
                "window_id": w.window_id,
                "split": w.split.value,
                "top_rank": w.rank,
                "activations": list(w.activations),
                "run_id": run_id,
            }
            for u in units
            for w in u.windows
        ],
    }


def unit_collections(
    con: duckdb.DuckDBPyConnection, unit_keys: Sequence[str]
) -> dict[str, tuple[str | None, str, list[str]]]:
    """How each stored unit among ``unit_keys`` was collected: the config (JSON) of the run that
    collected it (None when that run is not in ``runs``), its corpus id, and the corpus ids of
    its windows (the main corpus and, for ``score_ood``, the out-of-distribution one)."""
    if not unit_keys:
        return {}
    rows = con.execute(
        "SELECT u.unit_key, r.config_json, u.corpus_id,"
        " (SELECT list(DISTINCT w.corpus_id ORDER BY w.corpus_id) FROM unit_windows uw"
        "  JOIN windows w USING (window_id) WHERE uw.unit_key = u.unit_key)"
        " FROM units u LEFT JOIN runs r USING (run_id) WHERE list_contains(?, u.unit_key)",
        [list(unit_keys)],
    ).fetchall()
    return {key: (cfg, corpus, list(ids or [])) for key, cfg, corpus, ids in rows}


class CollectionConflict(ValueError):
    """A unit is already in the warehouse with other windows or splits (another corpus or
    collection settings). Mixing them would break the held-out splits, so it is refused."""


def _check_same_collection(con: duckdb.DuckDBPyConnection, units: Sequence[UnitExamples]) -> None:
    keys = [u.unit.key for u in units]
    rows = con.execute(
        "SELECT unit_key, list(window_id || ':' || split ORDER BY window_id) FROM unit_windows"
        " WHERE list_contains(?, unit_key) GROUP BY unit_key",
        [keys],
    ).fetchall()
    stored = dict(rows)
    for u in units:
        old = stored.get(u.unit.key)
        new = sorted(f"{w.window_id}:{w.split.value}" for w in u.windows)
        if old is not None and sorted(old) != new:
            raise CollectionConflict(
                f"unit {u.unit.key} is already in this warehouse with other windows or splits "
                "(another corpus, or other collect settings); use another --warehouse for this "
                "collection"
            )


def load_units(con: duckdb.DuckDBPyConnection, unit_keys: Sequence[str]) -> list[UnitExamples]:
    """UnitExamples for the given keys, in the given order."""
    if not unit_keys:
        return []
    rows = con.execute(
        "SELECT unit_key, subject_id, site, unit_index, sae_id, n_tokens, max_activation,"
        " mean_activation, firing_rate, quantiles, dead FROM units"
        " WHERE list_contains(?, unit_key)",
        [list(unit_keys)],
    ).fetchall()
    wrows = con.execute(
        "SELECT unit_key, window_id, split, top_rank, activations FROM unit_windows"
        " WHERE list_contains(?, unit_key) ORDER BY unit_key, split, top_rank, window_id",
        [list(unit_keys)],
    ).fetchall()
    by_unit: dict[str, list[UnitWindow]] = {}
    for key, wid, split, rank, acts in wrows:
        by_unit.setdefault(key, []).append(
            UnitWindow(window_id=wid, split=Split(split), rank=rank, activations=tuple(acts))
        )
    order = {s: i for i, s in enumerate(Split)}
    for ws in by_unit.values():  # canonical order: split as declared, then rank
        ws.sort(key=lambda w: (order[w.split], w.rank, w.window_id))
    found = {}
    for key, subj, site, idx, sae, n, mx, mean, rate, q, dead in rows:
        found[key] = UnitExamples(
            unit=UnitId(subject_id=subj, site=site, index=idx, sae_id=sae),
            stats=UnitStats(
                n_tokens=n, max=mx, mean=mean, firing_rate=rate, quantiles=tuple(q), dead=dead
            ),
            windows=tuple(by_unit.get(key, [])),
        )
    missing = [k for k in unit_keys if k not in found]
    if missing:
        raise KeyError(f"units not in the warehouse: {missing[:3]}")
    return [found[k] for k in unit_keys]


def load_windows(con: duckdb.DuckDBPyConnection, window_ids: Iterable[str]) -> dict[str, Window]:
    ids = sorted(set(window_ids))
    if not ids:
        return {}
    rows = con.execute(
        "SELECT window_id, corpus_id, doc_id, start_token, token_ids, tokens FROM windows"
        " WHERE list_contains(?, window_id)",
        [ids],
    ).fetchall()
    return {
        r[0]: Window(
            window_id=r[0],
            corpus_id=r[1],
            doc_id=r[2],
            start=r[3],
            token_ids=tuple(r[4]),
            tokens=tuple(r[5]),
        )
        for r in rows
    }


# --- annotations ----------------------------------------------------------------------------


def save_explanations(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    config_hash: str,
    explanations: Iterable[Explanation],
) -> int:
    with transaction(con):
        return insert_rows(
            con,
            "explanations",
            [
                {
                    "explanation_id": e.explanation_id,
                    "unit_key": e.unit_key,
                    "explainer": e.explainer,
                    "sample_index": e.sample_index,
                    "status": e.status,
                    "text": e.text,
                    "failure": e.failure,
                    "prompt_name": e.prompt.name if e.prompt else None,
                    "prompt_version": e.prompt.version if e.prompt else None,
                    "prompt_sha": e.prompt.sha if e.prompt else None,
                    "selected": e.selected,
                    "validation_score": e.validation_score,
                    "run_id": run_id,
                    "config_hash": config_hash,
                }
                for e in explanations
            ],
        )


def load_explanations(
    con: duckdb.DuckDBPyConnection, explanation_ids: Sequence[str], selected_only: bool = True
) -> list[Explanation]:
    """The explanations with these ids (a run passes its own ids between stages)."""
    rows = con.execute(
        "SELECT explanation_id, unit_key, explainer, sample_index, status, text, failure,"
        " prompt_name, prompt_version, prompt_sha, selected, validation_score FROM explanations"
        " WHERE list_contains(?, explanation_id) AND (selected OR NOT ?)"
        " ORDER BY unit_key, explainer, sample_index",
        [list(explanation_ids), selected_only],
    ).fetchall()
    return [
        Explanation(
            explanation_id=r[0],
            unit_key=r[1],
            explainer=r[2],
            sample_index=r[3],
            status=r[4],
            text=r[5],
            failure=r[6],
            prompt=PromptRef(name=r[7], version=r[8], sha=r[9]) if r[7] else None,
            selected=r[10],
            validation_score=r[11],
        )
        for r in rows
    ]


def save_simulations(
    con: duckdb.DuckDBPyConnection, run_id: str, simulations: Iterable[Simulation]
) -> int:
    with transaction(con):
        return insert_rows(
            con,
            "simulations",
            [
                {
                    "simulation_id": s.simulation_id,
                    "explanation_id": s.explanation_id,
                    "simulator": s.simulator,
                    "window_id": s.window_id,
                    "status": s.status,
                    "predictions": [float(x) for x in s.predictions],
                    "failure": s.failure,
                    "prompt_sha": s.prompt.sha if s.prompt else None,
                    "run_id": run_id,
                }
                for s in simulations
            ],
        )


def load_simulations(
    con: duckdb.DuckDBPyConnection, explanation_ids: Sequence[str]
) -> list[Simulation]:
    rows = con.execute(
        "SELECT simulation_id, explanation_id, simulator, window_id, status, predictions, failure"
        " FROM simulations WHERE list_contains(?, explanation_id)"
        " ORDER BY explanation_id, simulator, window_id",
        [list(explanation_ids)],
    ).fetchall()
    return [
        Simulation(
            simulation_id=r[0],
            explanation_id=r[1],
            simulator=r[2],
            window_id=r[3],
            status=r[4],
            predictions=tuple(r[5]),
            failure=r[6],
        )
        for r in rows
    ]


def save_scores(con: duckdb.DuckDBPyConnection, run_id: str, scores: Iterable[Score]) -> int:
    with transaction(con):
        return insert_rows(con, "scores", [{**s.model_dump(), "run_id": run_id} for s in scores])


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


def save_llm_calls(con: duckdb.DuckDBPyConnection, run_id: str, calls: Iterable[LLMCall]) -> int:
    now = _now()
    with transaction(con):
        return insert_rows(
            con,
            "llm_calls",
            [
                {
                    **c.model_dump(),
                    "params": json.dumps(c.params, sort_keys=True, default=str),
                    "run_id": run_id,
                    "called_at": now,
                }
                for c in calls
            ],
        )


def load_scores(con: duckdb.DuckDBPyConnection, explanation_ids: Sequence[str]) -> list[Score]:
    rows = con.execute(
        "SELECT explanation_id, simulator, kind, value, reason, n_tokens, n_windows, ci_low,"
        " ci_high FROM scores WHERE list_contains(?, explanation_id)"
        " ORDER BY explanation_id, simulator, kind",
        [list(explanation_ids)],
    ).fetchall()
    return [
        Score(
            explanation_id=r[0],
            simulator=r[1],
            kind=r[2],
            value=r[3],
            reason=r[4],
            n_tokens=r[5],
            n_windows=r[6],
            ci_low=r[7],
            ci_high=r[8],
        )
        for r in rows
    ]


def find_unit_keys(
    con: duckdb.DuckDBPyConnection,
    subject_id: str,
    site_patterns: Sequence[str],
    indices: Sequence[int],
    sae_id: str | None = None,
) -> list[str]:
    """Keys of a subject's collected units whose site matches one of the LIKE patterns, with
    these indices (and this SAE, or none), in site and index order."""
    rows = con.execute(
        "SELECT unit_key FROM units WHERE subject_id = ?"
        " AND len(list_filter(?, lambda p: site LIKE p)) > 0"
        " AND list_contains(?, unit_index) AND sae_id IS NOT DISTINCT FROM ?"
        " ORDER BY site, unit_index",
        [subject_id, list(site_patterns), list(indices), sae_id],
    ).fetchall()
    return [r[0] for r in rows]


def current_explanation_ids(con: duckdb.DuckDBPyConnection, unit_keys: Sequence[str]) -> list[str]:
    """For each (unit, explainer): the selected explanation of the most recent finished run that
    made one (controls included). What later stages annotate and compare."""
    rows = con.execute(
        "SELECT explanation_id FROM explanations e JOIN runs r USING (run_id)"
        " WHERE list_contains(?, e.unit_key) AND e.selected AND e.status = 'ok'"
        " AND r.status = 'finished'"
        " QUALIFY row_number() OVER (PARTITION BY e.unit_key, e.explainer"
        "   ORDER BY r.started_at DESC, e.explanation_id) = 1"
        " ORDER BY e.unit_key, e.explainer",
        [list(unit_keys)],
    ).fetchall()
    return [r[0] for r in rows]
