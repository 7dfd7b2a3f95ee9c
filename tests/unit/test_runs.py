"""The run lifecycle against a second process (issue 14, point 2): a writer waits for a reader
holding the file, a run is recorded ``failed`` whatever stops it, and a run whose process is
gone shows as ``abandoned`` (with the next run saying whose rows it took over)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from contextlib import closing

import duckdb
import pytest

from flows.pipeline import _recorded, _stage
from neuroscribe.config import RunConfig
from neuroscribe.report.data import load_runs
from neuroscribe.warehouse import connect
from neuroscribe.warehouse.db import WarehouseLockedError
from neuroscribe.warehouse.rows import adopt, fetch_dicts, transaction
from neuroscribe.warehouse.runs import abandoned_run_ids, adoptions, beat, run_infos, start_run


def hold_readonly(path, seconds: float) -> subprocess.Popen:
    """Another process holding the warehouse open read-only (a notebook, the DuckDB CLI) for
    ``seconds``; returns once it holds the file."""
    code = textwrap.dedent(f"""
        import time, duckdb
        con = duckdb.connect({str(path)!r}, read_only=True)
        print("holding", flush=True)
        time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def run_row(path, run_id: str) -> dict:
    with closing(duckdb.connect(str(path), read_only=True)) as con:
        (row,) = fetch_dicts(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])
    return row


def test_a_writer_waits_for_a_reader_and_names_it_when_giving_up(warehouse_path):
    connect(warehouse_path).close()
    reader = hold_readonly(warehouse_path, 1.5)
    try:
        with pytest.raises(WarehouseLockedError) as e:
            connect(warehouse_path, wait_s=0.2)
        assert e.value.holder is not None and f"(PID {reader.pid})" in e.value.holder
        assert f"(PID {reader.pid})" in str(e.value) and "NEUROSCRIBE_LOCK_WAIT" in str(e.value)
        assert reader.poll() is None  # it still held the file when the long wait began
        connect(warehouse_path, wait_s=30).close()  # waits until the reader lets go
    finally:
        reader.wait(timeout=30)


def test_a_run_waits_for_a_reader_between_stages_and_finishes(warehouse_path):
    connect(warehouse_path).close()
    readers = []

    def body() -> list[str]:
        _stage(str(warehouse_path), "r1", "collect")
        readers.append(hold_readonly(warehouse_path, 1.5))
        _stage(str(warehouse_path), "r1", "explain")  # waits for the reader
        return ["e1"]

    try:
        assert _recorded(RunConfig(), str(warehouse_path), "r1", body) == ["e1"]
    finally:
        for r in readers:
            r.wait(timeout=30)
    row = run_row(warehouse_path, "r1")
    assert (row["status"], row["stage"], row["error"]) == ("finished", "explain", None)


def test_a_run_that_gives_up_on_the_lock_is_recorded_failed(warehouse_path, monkeypatch):
    """The stage gives up after its (short) wait; recording the failure meets the same reader,
    and retries until it can: the run ends ``failed`` with the holder in its error."""
    monkeypatch.setenv("NEUROSCRIBE_LOCK_WAIT", "0.3")
    connect(warehouse_path).close()
    readers = []

    def body() -> list[str]:
        _stage(str(warehouse_path), "r2", "collect")
        readers.append(hold_readonly(warehouse_path, 2.5))
        _stage(str(warehouse_path), "r2", "explain")
        return []

    try:
        with pytest.raises(WarehouseLockedError):
            _recorded(RunConfig(), str(warehouse_path), "r2", body)
    finally:
        for r in readers:
            r.wait(timeout=30)
    row = run_row(warehouse_path, "r2")
    assert row["status"] == "failed" and row["stage"] == "collect"
    assert row["error"].startswith("WarehouseLockedError")
    assert f"PID {readers[0].pid}" in row["error"]


def test_any_exception_records_the_run_failed(warehouse_path):
    def body() -> list[str]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _recorded(RunConfig(), str(warehouse_path), "r3", body)
    assert run_row(warehouse_path, "r3")["status"] == "failed"


def _start_in_another_process(path, run_id: str) -> None:
    """A run started by a process that then dies without recording its end (kill -9)."""
    code = textwrap.dedent(f"""
        import os
        from neuroscribe.config import RunConfig
        from neuroscribe.warehouse import connect
        from neuroscribe.warehouse.runs import start_run
        con = connect({str(path)!r})
        start_run(con, {run_id!r}, RunConfig())
        con.close()
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), timeout=120)


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def test_heartbeat_records_the_process_and_last_seen(warehouse_path):
    import os
    import socket

    with closing(connect(warehouse_path)) as con:
        start_run(con, "live", RunConfig())
        first = fetch_dicts(con, "SELECT * FROM runs WHERE run_id = 'live'")[0]
        beat(con, "live")
        second = fetch_dicts(con, "SELECT * FROM runs WHERE run_id = 'live'")[0]
    assert (first["pid"], first["host"]) == (os.getpid(), socket.gethostname())
    assert first["process_started"] is not None and second["last_seen"] >= first["last_seen"]


def test_a_running_run_whose_process_is_gone_shows_as_abandoned(warehouse_path):
    _start_in_another_process(warehouse_path, "dead")
    with closing(connect(warehouse_path)) as con:
        start_run(con, "alive", RunConfig())  # this process: alive
        start_run(con, "elsewhere", RunConfig())
        start_run(con, "reused", RunConfig())
        start_run(con, "old", RunConfig())
        con.execute("UPDATE runs SET host = 'another-host' WHERE run_id = 'elsewhere'")
        # our pid, but recorded with another start time: the pid was reused
        con.execute(
            "UPDATE runs SET process_started = process_started - 100 WHERE run_id = 'reused'"
        )
        con.execute("UPDATE runs SET pid = NULL, host = NULL WHERE run_id = 'old'")  # pre-0005
        assert abandoned_run_ids(con) == {"dead", "reused"}
        shown = {r: run_infos(con, r)[0]["status"] for r in ("dead", "alive", "elsewhere", "old")}
        assert load_runs(con, "dead")[0].status == "abandoned"  # what the report shows
        stored = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    assert shown == {
        "dead": "abandoned", "alive": "running", "elsewhere": "running", "old": "running"
    }  # fmt: skip
    assert set(stored.values()) == {"running"}  # history is not rewritten


def test_the_next_run_says_whose_rows_it_took_over(warehouse_path):
    from test_warehouse import _records

    from neuroscribe.warehouse.collection import save_collection

    _start_in_another_process(warehouse_path, "dead")
    subject, windows, unit = _records()
    with closing(connect(warehouse_path)) as con:
        save_collection(con, "dead", subject, "c", windows, [unit])
        start_run(con, "next", RunConfig())
        with transaction(con):
            assert adopt(con, "next", "units", "unit_key", [unit.unit.key]) == 1
        save_collection(con, "next", subject, "c", windows, [unit])  # written again: adopted too
        found = adoptions(con, "next")
    n = 1 + len(unit.windows)
    assert [(a.adopted_from, a.from_status, a.rows, a.tables) for a in found] == [
        ("dead", "abandoned", n, ("unit_windows", "units"))
    ]
    assert found[0].sentence() == f"took over {n} rows (unit_windows, units) of abandoned run dead"
