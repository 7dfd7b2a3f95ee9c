"""What collection stores: subjects, windows, units and their windows (the held-out splits).

A unit is stored once with one set of windows and splits. Collecting it again the same way adds
nothing; collecting it another way (another corpus, other settings) is refused, because mixing
two collections would break the held-out discipline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from neuroscribe.errors import BadInput
from neuroscribe.records import Subject, UnitExamples, Window
from neuroscribe.warehouse import columnar
from neuroscribe.warehouse.columnar import UnitTables
from neuroscribe.warehouse.rows import (
    fetch_column,
    fetch_dicts,
    fetch_records,
    insert_arrow,
    insert_rows,
    transaction,
)


class CollectionConflict(BadInput):
    """A unit is already in the warehouse with other windows or splits (another corpus or
    collection settings). Mixing them would break the held-out splits, so it is refused."""


def save_collection(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    subject: Subject,
    corpus_id: str,
    windows: Iterable[Window],
    units: Iterable[UnitExamples] | UnitTables,
) -> None:
    """Store a collection in one transaction; raises CollectionConflict (writing nothing) when
    a unit is already stored with other windows or splits. ``units``: the records, or their
    tables as collection makes them (``CollectResult.tables``), written without a record."""
    if isinstance(units, UnitTables):
        tables = collection_tables(run_id, subject, corpus_id, windows, units)
        clash = _clashing_unit(con, tables["unit_windows"])
        if clash:
            raise CollectionConflict(_conflict(clash))
        with transaction(con):
            for table, arrow in tables.items():
                insert_arrow(con, table, arrow)
        return
    units = list(units)
    check_same_collection(con, units)
    with transaction(con):
        for table, rows in collection_rows(run_id, subject, corpus_id, windows, units).items():
            insert_rows(con, table, rows)


def collection_tables(
    run_id: str, subject: Subject, corpus_id: str, windows: Iterable[Window], units: UnitTables
) -> dict[str, pa.Table]:
    """As ``collection_rows``, as Arrow tables in the warehouse's columns, from the tables that
    collection makes (``CollectResult.tables``)."""
    rows = collection_rows(run_id, subject, corpus_id, windows, [])
    u, uw = units.units, units.unit_windows
    n, m = u.num_rows, uw.num_rows
    return {
        "subjects": pa.Table.from_pylist(rows["subjects"]),
        "windows": pa.Table.from_pylist(rows["windows"]),
        "units": pa.table(
            {
                "unit_key": u["unit_key"],
                "subject_id": u["subject_id"],
                "site": u["site"],
                "unit_index": u["index"],
                "sae_id": u["sae_id"],
                "run_id": pa.array([run_id] * n, pa.string()),
                "corpus_id": pa.array([corpus_id] * n, pa.string()),
                "n_tokens": u["n_tokens"],
                "max_activation": u["max"],
                "mean_activation": u["mean"],
                "firing_rate": u["firing_rate"],
                "quantiles": u["quantiles"],
                "dead": u["dead"],
            }
        ),
        "unit_windows": pa.table(
            {
                "unit_key": uw["unit_key"],
                "window_id": uw["window_id"],
                "split": uw["split"],
                "top_rank": uw["rank"],
                "activations": uw["activations"],
                "run_id": pa.array([run_id] * m, pa.string()),
            }
        ),
    }


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
    rows = fetch_dicts(
        con,
        "SELECT u.unit_key, r.config_json, u.corpus_id,"
        " (SELECT list(DISTINCT w.corpus_id ORDER BY w.corpus_id) FROM unit_windows uw"
        "  JOIN windows w USING (window_id) WHERE uw.unit_key = u.unit_key) AS window_corpora"
        " FROM units u LEFT JOIN runs r USING (run_id) WHERE list_contains(?, u.unit_key)",
        [list(unit_keys)],
    )
    return {
        r["unit_key"]: (r["config_json"], r["corpus_id"], list(r["window_corpora"] or []))
        for r in rows
    }


def _stored_splits(con: duckdb.DuckDBPyConnection, unit_keys: list[str]) -> dict[str, list[str]]:
    rows = fetch_dicts(
        con,
        "SELECT unit_key, list(window_id || ':' || split ORDER BY window_id) AS splits"
        " FROM unit_windows WHERE list_contains(?, unit_key) GROUP BY unit_key",
        [unit_keys],
    )
    return {r["unit_key"]: r["splits"] for r in rows}


def check_same_collection(con: duckdb.DuckDBPyConnection, units: Sequence[UnitExamples]) -> None:
    """Raise CollectionConflict when one of ``units`` is stored with other windows or splits."""
    stored = _stored_splits(con, [u.unit.key for u in units])
    for u in units:
        old = stored.get(u.unit.key)
        new = sorted(f"{w.window_id}:{w.split.value}" for w in u.windows)
        if old is not None and sorted(old) != new:
            raise CollectionConflict(_conflict(u.unit.key))


def check_same_collection_arrow(
    con: duckdb.DuckDBPyConnection, unit_windows: pa.Table, path: Path
) -> None:
    """As ``check_same_collection``, for the ``unit_windows`` rows of a worker's handoff at
    ``path``: raise CollectionConflict naming the first unit stored with other windows."""
    clash = _clashing_unit(con, unit_windows)
    if clash:
        raise CollectionConflict(
            f"handoff {path}: unit {clash} is already in this warehouse with other windows "
            "or splits (another corpus, or other collect settings); ingest it into another "
            "warehouse"
        )


def _conflict(unit_key: str) -> str:
    return (
        f"unit {unit_key} is already in this warehouse with other windows or splits "
        "(another corpus, or other collect settings); use another --warehouse for this "
        "collection"
    )


def _clashing_unit(con: duckdb.DuckDBPyConnection, unit_windows: pa.Table) -> str | None:
    """The first unit of the ``unit_windows`` rows that is stored with other windows or
    splits, or None."""
    con.register("_handoff_uw", unit_windows)
    try:
        clash = fetch_column(
            con,
            "WITH incoming AS (SELECT unit_key, list(window_id || ':' || split ORDER BY window_id)"
            "   AS ws FROM _handoff_uw GROUP BY unit_key),"
            " stored AS (SELECT unit_key, list(window_id || ':' || split ORDER BY window_id)"
            "   AS ws FROM unit_windows WHERE unit_key IN (SELECT unit_key FROM incoming)"
            "   GROUP BY unit_key)"
            " SELECT unit_key FROM incoming JOIN stored USING (unit_key)"
            " WHERE incoming.ws <> stored.ws ORDER BY unit_key LIMIT 1",
        )
    finally:
        con.unregister("_handoff_uw")
    return str(clash[0]) if clash else None


def load_units(con: duckdb.DuckDBPyConnection, unit_keys: Sequence[str]) -> list[UnitExamples]:
    """UnitExamples for the given keys, in the given order (each unit's windows in canonical
    order: split as declared, then rank); ``KeyError`` for a key not in the warehouse."""
    if not unit_keys:
        return []
    return columnar.unit_records(columnar.unit_tables(con, unit_keys, windows=False))[0]


def live_unit_keys(con: duckdb.DuckDBPyConnection, unit_keys: Sequence[str]) -> list[str]:
    """The keys among ``unit_keys`` of units that are not dead, in the given order, without
    loading their windows (``KeyError`` for a key not in the warehouse, as ``load_units``)."""
    if not unit_keys:
        return []
    rows = fetch_dicts(
        con,
        "SELECT unit_key, dead FROM units WHERE list_contains(?, unit_key)",
        [list(unit_keys)],
    )
    dead = {r["unit_key"]: r["dead"] for r in rows}
    missing = [k for k in unit_keys if k not in dead]
    if missing:
        raise KeyError(f"units not in the warehouse: {missing[:3]}")
    return [k for k in unit_keys if not dead[k]]


def load_windows(con: duckdb.DuckDBPyConnection, window_ids: Iterable[str]) -> dict[str, Window]:
    """The stored windows with these ids, by id."""
    ids = sorted(set(window_ids))
    if not ids:
        return {}
    windows = fetch_records(
        con,
        Window,
        "SELECT window_id, corpus_id, doc_id, start_token AS start, token_ids, tokens"
        " FROM windows WHERE list_contains(?, window_id)",
        [ids],
    )
    return {w.window_id: w for w in windows}


def find_unit_keys(
    con: duckdb.DuckDBPyConnection,
    subject_id: str,
    site_patterns: Sequence[str],
    indices: Sequence[int] | None,
    sae_id: str | None = None,
) -> list[str]:
    """Keys of a subject's collected units whose site matches one of the site patterns
    (``layers.*.mlp``: ``*`` for any layer), with these indices (None: any index) and this SAE
    (or none), in site and index order."""
    like = [p.replace("%", "\\%").replace("_", "\\_").replace("*", "%") for p in site_patterns]
    return fetch_column(
        con,
        "SELECT unit_key FROM units WHERE subject_id = ?"
        " AND len(list_filter(?, lambda p: site LIKE p ESCAPE '\\')) > 0"
        " AND (? OR list_contains(?, unit_index)) AND sae_id IS NOT DISTINCT FROM ?"
        " ORDER BY site, unit_index",
        [subject_id, like, indices is None, list(indices or ()), sae_id],
    )
