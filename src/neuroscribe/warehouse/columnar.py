"""Chunks of work as Arrow tables: what the Dask engine (``flows.engine``) reads for a chunk of
units and writes for it, without a record in between on the process that owns the warehouse.

The flow's process reads a chunk's units, their windows and the stored work on them as Arrow
(``unit_tables``, ``stored_simulations``); a worker builds the records from them
(``unit_records``, ``simulation_records``: the records ``collection.load_units``,
``collection.load_windows`` and ``annotations.load_simulations`` return), and returns its
rows as Arrow tables (``result_tables``: the rows ``annotations.save_*``, ``calls`` and
``embeddings`` write), which the flow's process stores in one transaction (``save_tables``).
An Arrow table pickles as a few buffers, so a chunk costs the flow's process a query and a copy
each way, however many records it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from neuroscribe.records import Split, UnitExamples, UnitWindow, Window
from neuroscribe.warehouse.rows import adopt, insert_arrow, transaction

SPLIT_ORDER = [s.value for s in Split]
"""The canonical order of a unit's windows: split as declared, then rank, then window id."""


@dataclass
class UnitTables:
    """Units (``units``), their windows' activations and splits (``unit_windows``, in each
    unit's canonical order) and the windows they use (``windows``), as Arrow."""

    units: pa.Table
    unit_windows: pa.Table
    windows: pa.Table

    @property
    def unit_keys(self) -> list[str]:
        return [str(k) for k in self.units.column("unit_key").to_pylist()]


def unit_tables(
    con: duckdb.DuckDBPyConnection, unit_keys: Sequence[str], windows: bool = True
) -> UnitTables:
    """The Arrow tables of these units (in the given order) and, unless ``windows`` is False
    (then an empty table), of the windows they use; ``KeyError`` for a key not in the
    warehouse."""
    keys = list(unit_keys)
    con.register("_chunk_keys", pa.table({"unit_key": pa.array(keys, pa.string())}))
    try:
        units = con.sql(
            "SELECT u.unit_key, subject_id, site, unit_index AS index, sae_id, n_tokens,"
            " max_activation AS max, mean_activation AS mean, firing_rate, quantiles, dead"
            " FROM (SELECT unit_key, row_number() OVER () AS pos FROM _chunk_keys) k"
            " JOIN units u USING (unit_key) ORDER BY k.pos"
        ).to_arrow_table()
        unit_windows = con.sql(
            "SELECT unit_key, window_id, split, top_rank AS rank, activations"
            " FROM unit_windows WHERE unit_key IN (SELECT unit_key FROM _chunk_keys)"
            " ORDER BY unit_key, list_position(?, split), top_rank, window_id",
            params=[SPLIT_ORDER],
        ).to_arrow_table()
        used = con.sql(
            "SELECT window_id, corpus_id, doc_id, start_token AS start, token_ids, tokens"
            " FROM windows WHERE window_id IN (SELECT window_id FROM unit_windows"
            "   WHERE unit_key IN (SELECT unit_key FROM _chunk_keys))"
            + ("" if windows else " AND false")
        ).to_arrow_table()
    finally:
        con.unregister("_chunk_keys")
    found = set(units.column("unit_key").to_pylist())
    if len(found) != len(set(keys)):
        raise KeyError(f"units not in the warehouse: {[k for k in keys if k not in found][:3]}")
    return UnitTables(units, unit_windows, used)


def unit_records(tables: UnitTables) -> tuple[list[UnitExamples], dict[str, Window]]:
    """The records of ``tables``: the units in their order (each with its windows in canonical
    order) and the windows by id, equal to those ``collection.load_units`` and
    ``collection.load_windows`` return."""
    by_unit: dict[str, list[UnitWindow]] = {}
    for w in tables.unit_windows.to_pylist():
        by_unit.setdefault(w.pop("unit_key"), []).append(UnitWindow.model_validate(w))
    units = [
        UnitExamples.model_validate(
            {
                "unit": {k: u[k] for k in ("subject_id", "site", "index", "sae_id")},
                "stats": {
                    k: u[k] for k in ("n_tokens", "max", "mean", "firing_rate", "quantiles", "dead")
                },
                "windows": by_unit.get(u["unit_key"], []),
            }
        )
        for u in tables.units.to_pylist()
    ]
    windows = {w["window_id"]: Window.model_validate(w) for w in tables.windows.to_pylist()}
    return units, windows


SIMULATION_COLUMNS = (
    "simulation_id, explanation_id, simulator, window_id, status, predictions, failure"
)


def stored_simulations(
    con: duckdb.DuckDBPyConnection,
    explanation_ids: Sequence[str] = (),
    unit_keys: Sequence[str] = (),
) -> tuple[pa.Table, list[tuple[str, str]]]:
    """The stored simulations (as Arrow) of the explanations with these ids or of these units,
    and the (explanation, simulator) pairs among them that have a fuzzing score: the work a
    chunk finds done. ``FUZZ_KINDS`` of ``neuroscribe.score`` name the fuzzing scores."""
    from neuroscribe.score import FUZZ_KINDS

    which = (
        "explanation_id IN (SELECT unnest(?::VARCHAR[]))"
        " OR explanation_id IN (SELECT explanation_id FROM explanations"
        "   WHERE unit_key IN (SELECT unnest(?::VARCHAR[])))"
    )
    params = [list(explanation_ids), list(unit_keys)]
    simulations = con.sql(
        f"SELECT {SIMULATION_COLUMNS} FROM simulations WHERE {which}"  # noqa: S608
        " ORDER BY explanation_id, simulator, window_id",
        params=params,
    ).to_arrow_table()
    fuzzed = con.execute(
        f"SELECT DISTINCT explanation_id, simulator FROM scores WHERE ({which})"  # noqa: S608
        " AND list_contains(?, kind) ORDER BY ALL",
        [*params, list(FUZZ_KINDS)],
    ).fetchall()
    return simulations, [(str(e), str(s)) for e, s in fuzzed]


def simulation_records(simulations: pa.Table, explanation_ids: Iterable[str]) -> list[Any]:
    """The ``Simulation`` records of ``simulations`` (a ``stored_simulations`` table) of these
    explanations, as ``annotations.load_simulations`` returns them."""
    from neuroscribe.records import Simulation

    ids = set(explanation_ids)
    return [
        Simulation.model_validate(s) for s in simulations.to_pylist() if s["explanation_id"] in ids
    ]


def result_tables(rows: dict[str, list[dict[str, Any]]]) -> dict[str, pa.Table]:
    """Arrow tables of the rows a chunk writes, per table (empty ones left out), as
    ``rows.insert_rows`` would make them."""
    return {table: pa.Table.from_pylist(r) for table, r in rows.items() if r}


def save_tables(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    tables: dict[str, pa.Table],
    adopted: Sequence[str] = (),
) -> None:
    """Store a chunk's Arrow tables (``result_tables``) in one transaction, in their order,
    after taking over for ``run_id`` the simulations and scores of the explanations ``adopted``
    that a run which did not finish left (as the simulate stage does). Embeddings replace
    vectors of other weights of the same model, as ``embeddings.save_embeddings`` does."""
    with transaction(con):
        if adopted:
            adopt(con, run_id, "simulations", "explanation_id", adopted)
            adopt(con, run_id, "scores", "explanation_id", adopted)
        for table, arrow in tables.items():
            if table == "explanation_embeddings" and arrow.num_rows:
                con.register("_new_vectors", arrow)
                try:
                    con.execute(
                        "DELETE FROM explanation_embeddings e USING _new_vectors n"
                        " WHERE e.explanation_id = n.explanation_id AND e.model = n.model"
                        " AND e.weights_hash <> n.weights_hash"
                    )
                finally:
                    con.unregister("_new_vectors")
            insert_arrow(con, table, arrow)
