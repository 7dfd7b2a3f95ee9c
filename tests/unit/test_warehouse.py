from contextlib import closing

import duckdb
import pytest

from neuroscribe.config import RunConfig
from neuroscribe.llm.base import LLMCall
from neuroscribe.records import (
    Explanation,
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
from neuroscribe.warehouse import WarehouseError, connect, open_readonly, store
from neuroscribe.warehouse.db import migrate, migrations


def _records():
    subject = Subject(name="tiny", weights_hash="abc123", architecture="llama", n_layers=2)
    windows = [
        Window(
            window_id=f"w{i}",
            corpus_id="c",
            doc_id=f"d{i}",
            start=0,
            token_ids=(1, 2, 3),
            tokens=("a", " b", " c"),
        )
        for i in range(3)
    ]
    unit = UnitExamples(
        unit=UnitId(subject_id=subject.subject_id, site="layers.1.mlp", index=4),
        stats=UnitStats(
            n_tokens=9, max=3.0, mean=0.5, firing_rate=0.3, quantiles=(0.0, 1.0), dead=False
        ),
        windows=(
            UnitWindow(window_id="w0", split=Split.EXPLAIN, rank=0, activations=(0, 3, 0)),
            UnitWindow(window_id="w1", split=Split.SCORE_TOP, rank=1, activations=(0, 2, 1)),
            UnitWindow(window_id="w2", split=Split.SCORE_RANDOM, rank=-1, activations=(0, 0, 0)),
        ),
    )
    return subject, windows, unit


def test_migrations_are_numbered_and_idempotent(warehouse_path):
    assert [n for n, _, _ in migrations()][0] == 1
    with closing(connect(warehouse_path)) as con:
        assert migrate(con) == []  # already applied by connect
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    assert {"runs", "units", "unit_windows", "scores", "llm_calls", "scored_explanations"} <= tables


def test_records_round_trip_and_writes_are_idempotent(warehouse_path):
    subject, windows, unit = _records()
    cfg = RunConfig()
    expl = Explanation(
        explanation_id="e1",
        unit_key=unit.unit.key,
        explainer="baseline/ngram",
        text='the token " b"',
    )
    sim = Simulation(
        simulation_id="s1",
        explanation_id="e1",
        simulator="baseline/lexical",
        window_id="w1",
        predictions=(0.0, 10.0, 0.0),
    )
    score = Score(
        explanation_id="e1",
        simulator="baseline/lexical",
        kind="corr_top_random",
        value=0.9,
        n_tokens=6,
        n_windows=2,
        ci_low=0.5,
        ci_high=1.0,
    )
    with closing(connect(warehouse_path)) as con:
        store.start_run(con, "r1", cfg)
        for _ in range(2):  # the second write of the same records adds nothing
            store.save_collection(con, "r1", subject, "c", windows, [unit])
            store.save_explanations(con, "r1", cfg.config_hash, [expl])
            store.save_simulations(con, "r1", [sim])
            store.save_scores(con, "r1", [score])
        assert store.load_units(con, [unit.unit.key]) == [unit]
        assert store.load_windows(con, ["w0", "w1", "w2"]) == {w.window_id: w for w in windows}
        assert store.load_explanations(con, ["e1"]) == [expl]
        assert store.load_simulations(con, ["e1"]) == [sim]
        assert store.load_scores(con, ["e1"]) == [score]
        # A running run's scores are not in the contract view; a finished run's are.
        assert con.execute("SELECT count(*) FROM scored_explanations").fetchall()[0][0] == 0
        store.finish_run(con, "r1", "finished")
        row = con.execute(
            "SELECT subject, site, unit_index, explainer, explanation, simulator,"
            " score_kind, score, run_id FROM scored_explanations"
        ).fetchall()
    assert row == [
        (
            "tiny",
            "layers.1.mlp",
            4,
            "baseline/ngram",
            'the token " b"',
            "baseline/lexical",
            "corr_top_random",
            0.9,
            "r1",
        )
    ]


def test_a_window_cannot_be_in_two_splits_of_one_unit(warehouse_path):
    subject, windows, unit = _records()
    clash = unit.model_copy(
        update={
            "windows": unit.windows
            + (UnitWindow(window_id="w0", split=Split.SCORE_TOP, rank=5, activations=(1, 1, 1)),)
        }
    )
    with closing(connect(warehouse_path)) as con:
        store.save_collection(con, "r1", subject, "c", windows, [clash])
        # INSERT OR IGNORE keeps the first assignment; the second split never lands.
        splits = con.execute("SELECT split FROM unit_windows WHERE window_id='w0'").fetchall()
        assert splits == [("explain",)]
        assert con.execute("SELECT count(*) FROM split_overlaps").fetchall()[0][0] == 0


def test_failed_write_leaves_nothing(warehouse_path):
    with closing(connect(warehouse_path)) as con:
        with pytest.raises(duckdb.Error), store.transaction(con):
            store.insert_rows(
                con,
                "subjects",
                [
                    {
                        "subject_id": "s",
                        "name": "n",
                        "weights_hash": "h",
                        "architecture": "a",
                        "n_layers": 1,
                    }
                ],
            )
            con.execute("SELECT no_such_column FROM subjects")
        assert con.execute("SELECT count(*) FROM subjects").fetchall()[0][0] == 0


def test_readonly_refuses_writes_and_missing_file(warehouse_path, tmp_path):
    with pytest.raises(WarehouseError, match="no warehouse"):
        open_readonly(tmp_path / "nope.duckdb")
    connect(warehouse_path).close()
    with closing(open_readonly(warehouse_path)) as con, pytest.raises(duckdb.Error):
        con.execute("DELETE FROM runs")


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(WarehouseError, match="cannot create the warehouse folder"):
        connect(blocker / "w.duckdb")


def test_rows_of_a_failed_run_are_taken_over_by_the_next_run(warehouse_path):
    """A run that fails after scoring leaves its rows hidden (not finished); the next run that
    computes the same keys adopts them, so they show under a finished run, once."""
    subject, windows, unit = _records()
    cfg = RunConfig()
    expl = Explanation(
        explanation_id="e1", unit_key=unit.unit.key, explainer="baseline/ngram", text="x"
    )
    score = Score(
        explanation_id="e1",
        simulator="baseline/lexical",
        kind="corr_top_random",
        value=0.5,
        n_tokens=6,
        n_windows=2,
    )
    with closing(connect(warehouse_path)) as con:
        for run in ("r1", "r2"):
            store.start_run(con, run, cfg)
            store.save_collection(con, run, subject, "c", windows, [unit])
            store.save_explanations(con, run, cfg.config_hash, [expl])
            store.save_scores(con, run, [score])
            store.finish_run(con, run, "failed" if run == "r1" else "finished")
        rows = con.execute("SELECT run_id FROM scored_explanations").fetchall()
        assert rows == [("r2",)]
        # A finished run's rows are never taken over.
        store.start_run(con, "r3", cfg)
        store.save_scores(con, "r3", [score])
        assert con.execute("SELECT run_id FROM scores").fetchall() == [("r2",)]


def test_a_unit_collected_differently_is_refused(warehouse_path):
    subject, windows, unit = _records()
    other = unit.model_copy(update={"windows": unit.windows[:2]})
    with closing(connect(warehouse_path)) as con:
        store.save_collection(con, "r1", subject, "c", windows, [unit])
        store.save_collection(con, "r2", subject, "c", windows, [unit])  # same: fine
        with pytest.raises(store.CollectionConflict, match="other windows or splits"):
            store.save_collection(con, "r3", subject, "c", windows, [other])


def test_a_warehouse_of_an_older_schema_is_migrated_without_losing_rows(warehouse_path):
    """A file made by schema 1 (before ``llm_calls.retries``) opens with every row kept."""
    number, name, sql = migrations()[0]
    warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse_path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    con.execute(sql)
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name])
    con.execute(
        "INSERT INTO llm_calls (request_hash, annotator, purpose, prompt_sha, params, response,"
        " status, error, prompt_tokens, completion_tokens, latency_ms, cost_usd, cache_hit,"
        " run_id, called_at) VALUES ('old', 'openai/m', 'explain', NULL, '{}', 'x', 'ok', NULL,"
        " 5, 1, 2.0, NULL, false, 'r0', now())"
    )
    con.close()

    with closing(connect(warehouse_path)) as con:
        versions = [r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()]
        assert sorted(versions) == [n for n, _, _ in migrations()]
        assert con.execute("SELECT request_hash, retries FROM llm_calls").fetchall() == [("old", 0)]
        call = LLMCall(
            request_hash="new",
            annotator="openai/m",
            purpose="simulate",
            prompt_sha=None,
            params={},
            response="y",
            status="ok",
            retries=3,
        )
        store.save_llm_calls(con, "r1", [call])
        rows = con.execute("SELECT request_hash, retries FROM llm_calls ORDER BY 1").fetchall()
    assert rows == [("new", 3), ("old", 0)]
