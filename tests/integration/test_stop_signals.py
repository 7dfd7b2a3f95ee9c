"""No process outlives the command that started it: a run stopped by SIGTERM (what ``timeout``,
a scheduler or a container stop sends) is recorded ``failed`` and takes its temporary Prefect
server down with it; after SIGKILL the kernel stops the server (it dies with its parent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import duckdb
import pytest
from collect_fixtures import build_tiny_model, random_documents, write_txt

pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def running_run(warehouse: Path) -> bool:
    """The run is recorded and collecting (collection holds no connection, so we can read)."""
    if not warehouse.exists():
        return False
    try:
        with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
            rows = con.execute("SELECT status, stage FROM runs").fetchall()
    except duckdb.Error:
        return False
    return rows == [("running", "collect")]


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stop")
    model = build_tiny_model("gpt2", root / "model")
    corpus = write_txt(root / "corpus.txt", random_documents(20000, seed=5))
    return model, corpus


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_run_leaves_no_process_behind(inputs, tmp_path, sig):
    model, corpus = inputs
    warehouse = tmp_path / "w.duckdb"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    cmd = [
        str(Path(sys.executable).parent / "neuroscribe"), "--warehouse", str(warehouse),
        "collect", "--model", str(model), "--corpus", str(corpus), "--site", "layers.1.mlp",
        "--units", "2", "--window-tokens", "8", "--max-windows", "1000000", "--batch-size", "1",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: running_run(warehouse), 240, "the run to start collecting")
        servers = children(proc.pid)
        assert servers, "the temporary Prefect server is a child of the command"
        proc.send_signal(sig)
        proc.wait(timeout=120)
        wait_for(lambda: not any(alive(p) for p in servers), 30, "the server to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGTERM:
        assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
        with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
            status, error = con.execute("SELECT status, error FROM runs").fetchall()[0]
        assert status == "failed" and "stopped by signal 15" in error, error
