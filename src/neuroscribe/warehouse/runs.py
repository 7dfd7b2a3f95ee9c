"""The run lifecycle: a run is recorded when it starts, names the stage it is in, and ends
``finished`` (every stage completed) or ``failed``.

A killed run stays ``running`` in the table: nothing is left to record its end, and history is
not rewritten. Each run records its process (id, host, start time) and a heartbeat
(``last_seen``); reads show a ``running`` run whose process is gone as ``abandoned``
(``shown_status``). A later run that takes over its rows says so (``adoptions``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from typing import Any

import duckdb

from neuroscribe import __version__
from neuroscribe.config import RunConfig
from neuroscribe.records import Record
from neuroscribe.warehouse.db import WarehouseError, connect
from neuroscribe.warehouse.processes import is_gone, this_process
from neuroscribe.warehouse.rows import fetch_dicts, insert_rows, now

ABANDONED = "abandoned"
"""The status reads show for a ``running`` run whose process is gone (never stored)."""

RECORD_ATTEMPTS = 5
"""Tries at recording a run's end, each waiting for the file's lock as ``connect`` does: a run
must not stay ``running`` because a reader held the file at the moment it ended."""

_RUNS_ROW = threading.Lock()
"""Serialises this process's updates of run rows (the ledger's flushes beat from other
threads), so two of them never conflict in DuckDB's optimistic concurrency."""


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, cfg: RunConfig) -> None:
    """Record ``run_id`` as running, with its config and its hash, and the calling process as
    the one that runs it."""
    me = this_process()
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
                "started_at": now(),
                "finished_at": None,
                "neuroscribe_version": __version__,
                "pid": me.pid,
                "host": me.host,
                "process_started": me.started,
                "last_seen": now(),
            }
        ],
    )


def set_stage(con: duckdb.DuckDBPyConnection, run_id: str, stage: str) -> None:
    """Record the stage the run has started (a heartbeat too)."""
    with _RUNS_ROW:
        con.execute(
            "UPDATE runs SET stage = ?, last_seen = ? WHERE run_id = ?", [stage, now(), run_id]
        )


def beat(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Record that the run's process is alive now."""
    with _RUNS_ROW:
        con.execute("UPDATE runs SET last_seen = ? WHERE run_id = ?", [now(), run_id])


def set_started_at(con: duckdb.DuckDBPyConnection, run_id: str, started_at: datetime) -> None:
    """Record when the run really started (a worker's run, written after the fact)."""
    con.execute("UPDATE runs SET started_at = ? WHERE run_id = ?", [started_at, run_id])


def finish_run(
    con: duckdb.DuckDBPyConnection, run_id: str, status: str, error: str | None = None
) -> None:
    """Mark a run finished or failed. Only a run that completed every stage is 'finished'."""
    with _RUNS_ROW:
        at = now()
        con.execute(
            "UPDATE runs SET status = ?, error = ?, finished_at = ?, last_seen = ?"
            " WHERE run_id = ?",
            [status, error, at, at, run_id],
        )


def record_end(
    warehouse: str | os.PathLike[str],
    run_id: str,
    status: str,
    error: str | None = None,
    *,
    attempts: int = RECORD_ATTEMPTS,
    wait_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Open the warehouse and ``finish_run``, trying ``attempts`` times (each waiting up to
    ``wait_s`` for the file's lock) before the last error is raised. A run whose end could not
    be recorded at all stays ``running`` and shows as abandoned once its process is gone."""
    for attempt in range(1, attempts + 1):
        try:
            with closing(connect(warehouse, wait_s=wait_s)) as con:
                finish_run(con, run_id, status, error)
            return
        except (WarehouseError, duckdb.Error):
            if attempt == attempts:
                raise
            sleep(1.0)


def abandoned_run_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Runs recorded ``running`` whose process is gone (see ``processes.is_gone``)."""
    running = fetch_dicts(
        con,
        "SELECT run_id, pid, host, process_started FROM runs"
        " WHERE status = 'running' AND pid IS NOT NULL",
    )
    return {r["run_id"] for r in running if is_gone(r["pid"], r["host"], r["process_started"])}


def shown_status(status: str, run_id: str, abandoned: set[str]) -> str:
    """``abandoned`` for a run of ``abandoned``, else the stored status."""
    return ABANDONED if status == "running" and run_id in abandoned else status


def run_infos(con: duckdb.DuckDBPyConnection, run_id: str | None) -> list[dict[str, Any]]:
    """The given run (any status), else every finished run, oldest first: dicts with keys
    run_id, status (``abandoned`` for a running run whose process is gone), config_hash,
    started_at, finished_at, version."""
    where = "run_id = ?" if run_id else "status = 'finished'"
    infos = fetch_dicts(
        con,
        "SELECT run_id, status, config_hash, started_at, finished_at,"
        " neuroscribe_version AS version"
        f" FROM runs WHERE {where} ORDER BY started_at, run_id",  # noqa: S608
        [run_id] if run_id else [],
    )
    abandoned = abandoned_run_ids(con) if any(i["status"] == "running" for i in infos) else set()
    return [{**i, "status": shown_status(i["status"], i["run_id"], abandoned)} for i in infos]


class Adoption(Record):
    """Rows that ``run_id`` took over from a run that did not finish."""

    run_id: str
    adopted_from: str
    from_status: str
    """``failed``, ``abandoned`` (its process is gone) or ``running`` (still alive, or on
    another host)."""
    rows: int
    tables: tuple[str, ...]

    def sentence(self) -> str:
        """One line for the command line, e.g. ``took over 12 rows (scores, simulations) of
        abandoned run X``."""
        s = "s" if self.rows != 1 else ""
        return (
            f"took over {self.rows} row{s} ({', '.join(self.tables)}) of {self.from_status} "
            f"run {self.adopted_from}"
        )


def adoptions(con: duckdb.DuckDBPyConnection, run_id: str) -> list[Adoption]:
    """The runs whose rows ``run_id`` took over, by run id."""
    found = fetch_dicts(
        con,
        "SELECT a.run_id, a.adopted_from, coalesce(r.status, 'unknown') AS status,"
        " sum(a.rows)::BIGINT AS rows, list(a.table_name ORDER BY a.table_name) AS tables"
        " FROM run_adoptions a LEFT JOIN runs r ON r.run_id = a.adopted_from"
        " WHERE a.run_id = ? GROUP BY ALL ORDER BY a.adopted_from",
        [run_id],
    )
    abandoned = abandoned_run_ids(con) if any(f["status"] == "running" for f in found) else set()
    return [
        Adoption(
            run_id=f["run_id"],
            adopted_from=f["adopted_from"],
            from_status=shown_status(f["status"], f["adopted_from"], abandoned),
            rows=f["rows"],
            tables=tuple(f["tables"]),
        )
        for f in found
    ]
