"""Rows in and out: inserts through Arrow keyed by content ids, adoption of unfinished runs'
rows, transactions, and records built from rows by column name.

Every write is one transaction and keyed by content ids with ``INSERT OR IGNORE``, so a write
killed half-way leaves nothing, and writing the same records twice leaves one copy. Reads name
their columns after the record's fields and validate each row as a dict, so no code depends on
the position of a column in a SELECT.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
from pydantic import BaseModel

from neuroscribe.faults import kill_point

M = TypeVar("M", bound=BaseModel)


def now() -> datetime:
    """The current time as the warehouse stores it: UTC, without a time zone."""
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
    "null_models": ("trained_run_id",),
    "null_model_explanations": ("trained_run_id", "explanation_id"),
    "unit_budget": ("run_id", "unit_key"),
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
            taken = (
                f" FROM {table} WHERE ({k}) IN (SELECT ({k}) FROM _incoming)"  # noqa: S608
                " AND run_id IN (SELECT run_id FROM runs WHERE status <> 'finished')"
                " AND run_id NOT IN (SELECT DISTINCT run_id FROM _incoming)"
            )
            counts = con.execute(f"SELECT run_id, count(*){taken} GROUP BY run_id").fetchall()
            if counts:
                con.execute(f"DELETE{taken}")
                adopters = fetch_column(con, "SELECT DISTINCT run_id FROM _incoming")
                if len(adopters) == 1:  # a write of one run (a handoff may hold several)
                    _log_adoptions(con, adopters[0], table, counts)
        before = count_rows(con, table)
        verb = "INSERT OR IGNORE" if keys else "INSERT"
        con.execute(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM _incoming")  # noqa: S608
        kill_point(f"write:{table}")
        after = count_rows(con, table)
    finally:
        con.unregister("_incoming")
    return after - before


def count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """How many rows ``table`` holds."""
    return scalar(con, f"SELECT count(*) FROM {table}")  # noqa: S608


def table_arrow(con: duckdb.DuckDBPyConnection, table: str) -> pa.Table:
    """Every row of ``table`` as Arrow, typed by the warehouse's schema."""
    return con.sql(f"SELECT * FROM {table}").to_arrow_table()  # noqa: S608


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
    where = (
        f" WHERE list_contains(?, {column})"
        " AND run_id <> ? AND run_id IN (SELECT run_id FROM runs WHERE status <> 'finished')"
    )
    params = [list(values), run_id]
    counts = con.execute(
        f"SELECT run_id, count(*) FROM {table}{where} GROUP BY run_id",  # noqa: S608
        params,
    ).fetchall()
    if not counts:
        return 0
    con.execute(f"UPDATE {table} SET run_id = ?{where}", [run_id, *params])  # noqa: S608
    _log_adoptions(con, run_id, table, counts)
    return sum(int(n) for _, n in counts)


def _log_adoptions(
    con: duckdb.DuckDBPyConnection, run_id: str, table: str, counts: Sequence[tuple[str, int]]
) -> None:
    """Add to ``run_adoptions`` the rows of ``table`` that ``run_id`` took over, per run that
    had written them: so the run can say whose work it reused (``runs.adoptions``)."""
    for adopted_from, n in counts:
        con.execute(
            "INSERT INTO run_adoptions (run_id, adopted_from, table_name, rows)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET rows = rows + excluded.rows",
            [run_id, adopted_from, table, int(n)],
        )


class transaction:
    """``with transaction(con):`` commits on success, rolls back on any error."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con.execute("BEGIN TRANSACTION")
        return self.con

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.con.execute("ROLLBACK" if exc_type else "COMMIT")


def fetch_dicts(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | dict[str, Any] = ()
) -> list[dict[str, Any]]:
    """The rows of ``sql`` as dicts keyed by column name."""
    cur = con.execute(sql, params if isinstance(params, dict) else list(params))
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def fetch_records(
    con: duckdb.DuckDBPyConnection, model: type[M], sql: str, params: Sequence[Any] = ()
) -> list[M]:
    """The rows of ``sql`` as ``model`` records: its columns are named after the model's fields
    (nested records as DuckDB structs), and a column the model lacks is an error."""
    return [model.model_validate(row) for row in fetch_dicts(con, sql, params)]


def fetch_column(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """The values of the one column that ``sql`` selects."""
    return [value for (value,) in con.execute(sql, list(params)).fetchall()]


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> int:
    """The one integer that ``sql`` selects (a count)."""
    ((value,),) = con.execute(sql, list(params)).fetchall()
    return int(value)
