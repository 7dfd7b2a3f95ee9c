"""End to end: the installed ``neuroscribe`` command, a real Prefect run, a real DuckDB file and
the real embedded SmolLM2 (marked slow), on a very small configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

SMALL = """
[corpus]
max_documents = 60
[collect]
units = 2
window_tokens = 16
max_windows = 120
n_explain = 4
n_validate = 2
n_calibrate = 2
n_score_top = 3
n_random = 3
[explain]
samples = 2
max_tokens = 24
[score]
bootstrap = 50
"""


def neuroscribe(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    # The console script installed beside this interpreter, as a user would run it.
    exe = Path(sys.executable).parent / "neuroscribe"
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bad_input_exits_with_one_clear_message(tmp_path):
    wh = str(tmp_path / "w.duckdb")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    cases = [
        (["run", "--corpus", str(tmp_path / "missing.txt")], "missing.txt"),
        (["run", "--corpus", str(empty)], "yields no window"),
        (["run", "--model", str(tmp_path / "no-such-model")], "no-such-model"),
        (["run", "--explainers", "psychic/oracle"], "unknown explainer 'psychic/oracle'"),
    ]
    for args, needle in cases:
        r = neuroscribe("--warehouse", wh, *args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("[collect]\nlayer = 3\n")
    r = neuroscribe("--warehouse", wh, "--config", str(bad_cfg), "run", cwd=tmp_path)
    assert r.returncode == 2 and "unknown key 'collect.layer'" in r.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    r = neuroscribe("--warehouse", str(blocker / "w.duckdb"), "run", cwd=tmp_path)
    assert r.returncode == 2 and "warehouse" in r.stderr
    # Nothing ran, so nothing was written: not even an empty warehouse.
    assert not Path(wh).exists()


def test_more_bad_input_gets_one_line_and_writes_nothing(tmp_path):
    from collect_fixtures import build_tiny_model

    wh = str(tmp_path / "w.duckdb")
    corrupt = build_tiny_model("gpt2", tmp_path / "corrupt")
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    cases = [
        (["collect", "--model", str(corrupt)], "could not load model"),
        (["--config", str(tmp_path), "run"], "is a directory"),
        (["run", "--units", "99999999999999999999"], "collect.units = 99999999999999999999"),
        (["run", "--explainers", ","], "explain.explainers"),
        (["query", ""], "the query is empty"),
        (["report", "--max-units", "-5"], "--max-units"),
        (["export", "--out", str(tmp_path / "x.csv"), "--min-score", "nan"], "--min-score"),
    ]
    for args, needle in cases:
        r = neuroscribe("--warehouse", wh, *args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr) < 2000, (args, r.stderr)
    assert not Path(wh).exists()


def test_export_bad_input_names_the_problem_in_the_command_line_s_words(tmp_path):
    """A folder as --out is named as such (no --force, no Python's force=True); an existing
    file suggests --force."""
    from neuroscribe.warehouse import connect

    wh = tmp_path / "w.duckdb"
    connect(wh).close()
    folder = tmp_path / "exports"
    folder.mkdir()
    r = neuroscribe("--warehouse", str(wh), "export", "--out", str(folder), cwd=tmp_path)
    assert r.returncode == 2 and "is a folder; give the export a file name" in r.stderr
    assert "force" not in r.stderr and "Traceback" not in r.stderr
    existing = tmp_path / "scores.parquet"
    existing.write_text("")
    r = neuroscribe("--warehouse", str(wh), "export", "--out", str(existing), cwd=tmp_path)
    assert r.returncode == 2 and "use --force" in r.stderr and "force=True" not in r.stderr


@pytest.mark.slow
def test_run_small_default_then_query(tmp_path):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    wh = tmp_path / "w.duckdb"
    r = neuroscribe("--warehouse", str(wh), "--config", str(cfg), "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "finished" in r.stdout and str(wh.resolve()) in r.stdout.replace("\n", "")

    q = neuroscribe(
        "--warehouse",
        str(wh),
        "query",
        "--format",
        "json",
        "select * from scored_explanations",
        cwd=tmp_path,
    )
    assert q.returncode == 0, q.stderr
    rows = json.loads(q.stdout)
    con = duckdb.connect(str(wh), read_only=True)
    units = con.execute("SELECT unit_key FROM units WHERE NOT dead").fetchall()
    assert con.execute("SELECT status FROM runs").fetchall() == [("finished",)]
    # Every live unit has scored explanations from every explainer and every simulator.
    for (key,) in units:
        mine = [r for r in rows if r["unit_key"] == key and r["score_kind"] == "corr_top_random"]
        assert {r["explainer"] for r in mine} >= {"local/smollm2-135m-instruct", "baseline/ngram"}
        assert {r["simulator"] for r in mine} == {"local/smollm2-135m-instruct", "baseline/lexical"}
    # Held-out discipline: no window in two splits, and nothing scored on an explain window.
    assert con.execute("SELECT count(*) FROM split_overlaps").fetchall()[0][0] == 0
    leaked = con.execute("""
        SELECT count(*) FROM simulations s JOIN explanations e USING (explanation_id)
        JOIN unit_windows uw ON uw.unit_key = e.unit_key AND uw.window_id = s.window_id
        WHERE uw.split IN ('explain', 'validate')""").fetchall()[0][0]
    assert leaked == 0
    # Real LLM generations were made and logged.
    calls = con.execute(
        "SELECT count(*) FROM llm_calls WHERE annotator LIKE 'local/%' AND status = 'ok'"
    ).fetchall()[0][0]
    assert calls > 0

    w = neuroscribe("--warehouse", str(wh), "query", "delete from runs", cwd=tmp_path)
    assert w.returncode == 2 and "read-only" in w.stderr

    # The stages alone: scoring again with the same simulators finds nothing missing and makes
    # no LLM call; agreement is recomputed from stored predictions only.
    def count(sql: str) -> int:
        with duckdb.connect(str(wh), read_only=True) as c:
            return c.execute(sql).fetchall()[0][0]

    sims, calls = count("SELECT count(*) FROM simulations"), count("SELECT count(*) FROM llm_calls")
    con.close()
    s = neuroscribe("--warehouse", str(wh), "--config", str(cfg), "score", cwd=tmp_path)
    assert s.returncode == 0, s.stderr[-3000:]
    a = neuroscribe("--warehouse", str(wh), "--config", str(cfg), "agree", cwd=tmp_path)
    assert a.returncode == 0, a.stderr[-3000:]
    assert count("SELECT count(*) FROM simulations") == sims
    assert count("SELECT count(*) FROM llm_calls") == calls
    assert count("SELECT count(*) FROM runs WHERE status = 'finished'") == 3
    assert count("SELECT count(DISTINCT run_id) FROM agreements") == 2

    # Running the same config again makes no LLM call: every request is answered from the
    # ledger of the first run, and the results (same content ids) are not stored twice.
    again = neuroscribe("--warehouse", str(wh), "--config", str(cfg), "run", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "local/smollm2-135m-instruct" in again.stdout  # the table shows the results
    last = "(SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)"
    assert count(f"SELECT count(*) FROM llm_calls WHERE run_id = {last} AND NOT cache_hit") == 0
    assert count(f"SELECT count(*) FROM llm_calls WHERE run_id = {last} AND cache_hit") > 0
    assert count("SELECT count(*) FROM simulations") == sims
