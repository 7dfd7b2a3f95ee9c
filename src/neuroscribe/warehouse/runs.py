"""The run lifecycle: a run is recorded when it starts, names the stage it is in, and ends
``finished`` (every stage completed) or ``failed``. A killed run stays ``running``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from neuroscribe import __version__
from neuroscribe.config import RunConfig
from neuroscribe.warehouse.rows import fetch_dicts, insert_rows, now


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, cfg: RunConfig) -> None:
    """Record ``run_id`` as running, with its config and its hash."""
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
            }
        ],
    )


def set_stage(con: duckdb.DuckDBPyConnection, run_id: str, stage: str) -> None:
    """Record the stage the run has started."""
    con.execute("UPDATE runs SET stage = ? WHERE run_id = ?", [stage, run_id])


def set_started_at(con: duckdb.DuckDBPyConnection, run_id: str, started_at: datetime) -> None:
    """Record when the run really started (a worker's run, written after the fact)."""
    con.execute("UPDATE runs SET started_at = ? WHERE run_id = ?", [started_at, run_id])


def finish_run(
    con: duckdb.DuckDBPyConnection, run_id: str, status: str, error: str | None = None
) -> None:
    """Mark a run finished or failed. Only a run that completed every stage is 'finished'."""
    con.execute(
        "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE run_id = ?",
        [status, error, now(), run_id],
    )


def run_infos(con: duckdb.DuckDBPyConnection, run_id: str | None) -> list[dict[str, Any]]:
    """The given run (any status), else every finished run, oldest first: dicts with keys
    run_id, status, config_hash, started_at, finished_at, version."""
    where = "run_id = ?" if run_id else "status = 'finished'"
    return fetch_dicts(
        con,
        "SELECT run_id, status, config_hash, started_at, finished_at,"
        " neuroscribe_version AS version"
        f" FROM runs WHERE {where} ORDER BY started_at, run_id",  # noqa: S608
        [run_id] if run_id else [],
    )
