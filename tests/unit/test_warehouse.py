from contextlib import closing

import duckdb
import pytest

from neuroscribe.config import RunConfig
from neuroscribe.llm.base import LLMCall
from neuroscribe.records import (
    Agreement,
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
from neuroscribe.warehouse import WarehouseError, connect, open_readonly
from neuroscribe.warehouse.annotations import (
    load_explanations,
    load_scores,
    load_simulations,
    save_agreements,
    save_explanations,
    save_scores,
    save_simulations,
    statistic_key,
)
from neuroscribe.warehouse.calls import save_llm_calls
from neuroscribe.warehouse.collection import (
    CollectionConflict,
    live_unit_keys,
    load_units,
    load_windows,
    save_collection,
    unit_collections,
)
from neuroscribe.warehouse.db import migrate, migrations
from neuroscribe.warehouse.rows import adopt, insert_rows, transaction
from neuroscribe.warehouse.runs import finish_run, start_run


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


def test_live_unit_keys_keep_the_order_and_leave_dead_units_out(warehouse_path):
    subject, windows, unit = _records()
    dead_stats = unit.stats.model_copy(update={"max": 0.0, "firing_rate": 0.0, "dead": True})
    others = [
        unit.model_copy(update={"unit": unit.unit.model_copy(update={"index": i}), "stats": stats})
        for i, stats in ((1, dead_stats), (2, unit.stats))
    ]
    units = [unit, *others]
    with closing(connect(warehouse_path)) as con:
        start_run(con, "r1", RunConfig())
        save_collection(con, "r1", subject, "c", windows, units)
        keys = [u.unit.key for u in reversed(units)]
        expected = [u.unit.key for u in load_units(con, keys) if not u.stats.dead]
        assert live_unit_keys(con, keys) == expected == [keys[0], keys[2]]
        assert live_unit_keys(con, []) == []
        with pytest.raises(KeyError, match="not in the warehouse"):
            live_unit_keys(con, [*keys, "nowhere"])


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
        start_run(con, "r1", cfg)
        for _ in range(2):  # the second write of the same records adds nothing
            save_collection(con, "r1", subject, "c", windows, [unit])
            save_explanations(con, "r1", cfg.config_hash, [expl])
            save_simulations(con, "r1", [sim])
            save_scores(con, "r1", [score])
        assert load_units(con, [unit.unit.key]) == [unit]
        assert load_windows(con, ["w0", "w1", "w2"]) == {w.window_id: w for w in windows}
        assert load_explanations(con, ["e1"]) == [expl]
        assert load_simulations(con, ["e1"]) == [sim]
        assert load_scores(con, ["e1"]) == [score]
        # A running run's scores are not in the contract view; a finished run's are.
        assert con.execute("SELECT count(*) FROM scored_explanations").fetchall()[0][0] == 0
        finish_run(con, "r1", "finished")
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
        save_collection(con, "r1", subject, "c", windows, [clash])
        # INSERT OR IGNORE keeps the first assignment; the second split never lands.
        splits = con.execute("SELECT split FROM unit_windows WHERE window_id='w0'").fetchall()
        assert splits == [("explain",)]
        assert con.execute("SELECT count(*) FROM split_overlaps").fetchall()[0][0] == 0


def test_failed_write_leaves_nothing(warehouse_path):
    with closing(connect(warehouse_path)) as con:
        with pytest.raises(duckdb.Error), transaction(con):
            insert_rows(
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
            start_run(con, run, cfg)
            save_collection(con, run, subject, "c", windows, [unit])
            save_explanations(con, run, cfg.config_hash, [expl])
            save_scores(con, run, [score])
            finish_run(con, run, "failed" if run == "r1" else "finished")
        rows = con.execute("SELECT run_id FROM scored_explanations").fetchall()
        assert rows == [("r2",)]
        # A finished run's rows are never taken over.
        start_run(con, "r3", cfg)
        save_scores(con, "r3", [score])
        assert con.execute("SELECT run_id FROM scores").fetchall() == [("r2",)]


def test_a_unit_collected_differently_is_refused(warehouse_path):
    subject, windows, unit = _records()
    other = unit.model_copy(update={"windows": unit.windows[:2]})
    with closing(connect(warehouse_path)) as con:
        save_collection(con, "r1", subject, "c", windows, [unit])
        save_collection(con, "r2", subject, "c", windows, [unit])  # same: fine
        with pytest.raises(CollectionConflict, match="other windows or splits"):
            save_collection(con, "r3", subject, "c", windows, [other])


def _tables(unit: UnitExamples):
    """The tables collection would yield for ``unit`` (``CollectResult.tables``)."""
    from neuroscribe.collect.assemble import tables_from_rows

    s = unit.stats
    return tables_from_rows(
        {
            "units": [
                {
                    "unit_key": unit.unit.key,
                    "subject_id": unit.unit.subject_id,
                    "site": unit.unit.site,
                    "index": unit.unit.index,
                    "sae_id": unit.unit.sae_id,
                    "n_tokens": s.n_tokens,
                    "max": s.max,
                    "mean": s.mean,
                    "firing_rate": s.firing_rate,
                    "quantiles": list(s.quantiles),
                    "dead": s.dead,
                }
            ],
            "unit_windows": [
                {
                    "unit_key": unit.unit.key,
                    "window_id": w.window_id,
                    "split": w.split.value,
                    "rank": w.rank,
                    "activations": list(w.activations),
                }
                for w in unit.windows
            ],
        }
    )


def test_a_collection_saved_from_its_tables_stores_what_its_records_store(tmp_path):
    subject, windows, unit = _records()
    stored = {}
    for name, units in (("records", [unit]), ("tables", _tables(unit))):
        with closing(connect(tmp_path / f"{name}.duckdb")) as con:
            save_collection(con, "r1", subject, "c", windows, units)
            stored[name] = {
                t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                for t in ("subjects", "windows", "units", "unit_windows")
            }
            assert load_units(con, [unit.unit.key]) == [unit]
    assert stored["records"] == stored["tables"]
    other = unit.model_copy(update={"windows": unit.windows[:2]})
    with (
        closing(connect(tmp_path / "tables.duckdb")) as con,
        pytest.raises(CollectionConflict, match="other windows or splits"),
    ):
        save_collection(con, "r2", subject, "c", windows, _tables(other))


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
        save_llm_calls(con, "r1", [call])
        rows = con.execute("SELECT request_hash, retries FROM llm_calls ORDER BY 1").fetchall()
    assert rows == [("new", 3), ("old", 0)]


# --- agreements keyed per run (migration 0003) -------------------------------------------------


def _schema_2_warehouse(path):
    """A warehouse made by migrations 0001 and 0002 only (agreements without a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    for number, name, sql in migrations()[:2]:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name])
    return con


def test_migration_0003_keys_agreements_and_keeps_one_copy_per_run(warehouse_path):
    con = _schema_2_warehouse(warehouse_path)
    rows = [  # (unit_key, kind, annotators, value, run_id); the first two are one statistic
        ("u/0", "alpha_simulators", ["a", "b"], 0.5, "r1"),
        ("u/0", "alpha_simulators", ["a", "b"], 0.5, "r1"),
        ("u/0", "alpha_simulators", ["a", "b"], 0.4, "r2"),
        ("u/0", "clarity", [], 0.3, "r1"),
        (None, "spearman_corr_top_random", ["x|a", "y|a"], None, "r1"),
    ]
    for unit, kind, annotators, value, run in rows:
        con.execute(
            "INSERT INTO agreements VALUES (?, ?, ?, ?, NULL, 3, ?)",
            [unit, kind, annotators, value, run],
        )
    con.close()

    with closing(connect(warehouse_path)) as con:
        got = con.execute(
            "SELECT unit_key, kind, annotators, value, run_id, statistic_key FROM agreements"
            " ORDER BY run_id, kind"
        ).fetchall()
        assert [r[:5] for r in got] == [
            ("u/0", "alpha_simulators", ["a", "b"], 0.5, "r1"),
            ("u/0", "clarity", [], 0.3, "r1"),
            (None, "spearman_corr_top_random", ["x|a", "y|a"], None, "r1"),
            ("u/0", "alpha_simulators", ["a", "b"], 0.4, "r2"),
        ]
        # The SQL of the migration and statistic_key name each statistic alike.
        assert [r[5] for r in got] == [statistic_key(r[0], r[1], r[2]) for r in got]
        assert len({r[5] for r in got}) == 3


def _agreement(unit, kind, annotators, value):
    return Agreement(unit_key=unit, kind=kind, annotators=annotators, value=value, n=4)


def test_agreement_writes_are_idempotent_per_run_and_adopted_from_unfinished_runs(
    warehouse_path,
):
    stats = [
        _agreement("u/0", "alpha_simulators", ("a", "b"), 0.5),
        _agreement(None, "alpha_simulators_all_units", ("a", "b"), 0.2),
        _agreement("u/0", "clarity", (), 0.5),
    ]
    cfg = RunConfig()

    def rows(con):
        return con.execute(
            "SELECT run_id, count(*) FROM agreements GROUP BY run_id ORDER BY run_id"
        ).fetchall()

    with closing(connect(warehouse_path)) as con:
        for run in ("r1", "r2", "r3"):
            start_run(con, run, cfg)
        assert save_agreements(con, "r1", stats) == 3
        assert save_agreements(con, "r1", stats) == 0  # a retried task adds nothing
        finish_run(con, "r1", "finished")
        assert save_agreements(con, "r2", stats[:2]) == 2  # r2 is then killed
        assert rows(con) == [("r1", 3), ("r2", 2)]
        # r3 computes the same statistics: r2's rows (never finished) are taken over, r1's stay.
        assert save_agreements(con, "r3", stats) == 3
        assert rows(con) == [("r1", 3), ("r3", 3)]


def test_adopt_takes_over_only_rows_of_unfinished_runs(warehouse_path):
    subject, windows, unit = _records()
    cfg = RunConfig()
    with closing(connect(warehouse_path)) as con:
        start_run(con, "r1", cfg)
        save_collection(con, "r1", subject, "c", windows, [unit])  # then r1 dies
        start_run(con, "r2", cfg)
        assert adopt(con, "r2", "units", "unit_key", [unit.unit.key]) == 1
        assert adopt(con, "r2", "unit_windows", "unit_key", [unit.unit.key]) == 3
        assert adopt(con, "r2", "units", "unit_key", []) == 0
        finish_run(con, "r2", "finished")
        start_run(con, "r3", cfg)
        assert adopt(con, "r3", "units", "unit_key", [unit.unit.key]) == 0  # r2 finished
        assert con.execute("SELECT DISTINCT run_id FROM unit_windows").fetchall() == [("r2",)]
        with pytest.raises(ValueError, match="cannot adopt"):
            adopt(con, "r3", "llm_calls", "run_id", ["r1"])


# --- which units are collected already ------------------------------------------------------------


def test_unit_collections_and_uncollected(warehouse_path, tmp_path):
    from neuroscribe.collect.incremental import uncollected, with_units

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one document\n\nanother one\n", encoding="utf-8")
    cfg = RunConfig.model_validate(
        {"corpus": {"source": str(corpus)}, "collect": {"units": [4, 5], "max_windows": 50}}
    )
    from neuroscribe.collect.corpus import open_corpus

    corpus_id = open_corpus(str(corpus)).corpus_id
    subject, windows, unit = _records()
    windows = [w.model_copy(update={"corpus_id": corpus_id}) for w in windows]
    other = UnitId(subject_id=subject.subject_id, site="layers.1.mlp", index=5)
    with closing(connect(warehouse_path)) as con:
        start_run(
            con,
            "r1",
            cfg.model_copy(update={"collect": cfg.collect.model_copy(update={"units": [4]})}),
        )
        save_collection(con, "r1", subject, corpus_id, windows, [unit])
        stored = unit_collections(con, [unit.unit.key, other.key])
    assert stored == {unit.unit.key: (stored[unit.unit.key][0], corpus_id, [corpus_id])}
    # Unit 4 was collected with other units but the same settings: only unit 5 is missing.
    assert uncollected(cfg, [unit.unit, other], stored) == [other]
    assert with_units(cfg, [other]).unit_indices == [5]
    assert with_units(cfg, [unit.unit, other]) is cfg
    # Other collect settings, another corpus content, or an unknown collecting run: collect.
    more = cfg.model_copy(update={"collect": cfg.collect.model_copy(update={"max_windows": 60})})
    assert uncollected(more, [unit.unit], stored) == [unit.unit]
    assert uncollected(cfg, [unit.unit], {unit.unit.key: (None, corpus_id, [corpus_id])}) == [
        unit.unit
    ]
    corpus.write_text("one document\n\nchanged\n", encoding="utf-8")
    assert uncollected(cfg, [unit.unit], stored) == [unit.unit]


def test_uncollected_reads_each_stored_run_config_once(monkeypatch, tmp_path):
    """A catalogue's units were mostly collected by one run: its config is validated once, not
    once per unit (46,080 validations took minutes before)."""
    from neuroscribe.collect import incremental

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one document\n", encoding="utf-8")
    cfg = RunConfig.model_validate({"corpus": {"source": str(corpus)}, "collect": {"units": 50}})
    corpus_id = incremental.open_corpus(str(corpus)).corpus_id
    units = [UnitId(subject_id="s", site="layers.0.mlp", index=i) for i in range(50)]
    stored = {u.key: (cfg.model_dump_json(), corpus_id, [corpus_id]) for u in units}
    reads = []
    real = incremental._stored_settings
    monkeypatch.setattr(incremental, "_stored_settings", lambda j: reads.append(j) or real(j))
    assert incremental.uncollected(cfg, units, stored) == []
    assert len(reads) == 1


# --- the ledger writes calls as they are made -----------------------------------------------------


def _call(i: int) -> LLMCall:
    return LLMCall(
        request_hash=f"h{i}",
        annotator="openai/m",
        purpose="explain",
        prompt_sha=None,
        params={},
        response="x",
        status="ok",
    )


def test_ledger_hands_calls_to_its_sink_in_batches_and_at_close():
    from neuroscribe.llm.base import Ledger

    batches = []
    ledger = Ledger(batches.append, flush_every=3, flush_seconds=3600)
    with ledger:
        for i in range(7):
            ledger.add(_call(i))
        assert [[c.request_hash for c in b] for b in batches] == [
            ["h0", "h1", "h2"],
            ["h3", "h4", "h5"],
        ]
    assert [c.request_hash for c in batches[-1]] == ["h6"]  # the rest, on close
    assert len(ledger.drain()) == 7  # every call, also those handed over


def test_ledger_flushes_an_old_call_without_a_new_one():
    import threading

    from neuroscribe.llm.base import Ledger

    arrived = threading.Event()
    ledger = Ledger(lambda calls: arrived.set(), flush_every=100, flush_seconds=0.05)
    with ledger:
        ledger.add(_call(0))
        assert arrived.wait(30)  # the background thread writes it; no further add needed


def test_a_sink_error_keeps_the_calls_and_is_raised_by_close_not_add():
    from neuroscribe.llm.base import Ledger

    written, fail = [], [True]

    def sink(calls):
        if fail[0]:
            raise WarehouseError("disk full")
        written.extend(calls)

    ledger = Ledger(sink, flush_every=1, flush_seconds=3600)
    ledger.add(_call(0))  # the sink fails here; the backend thread that added is not told
    ledger.add(_call(1))
    with pytest.raises(WarehouseError, match="disk full"):
        ledger.close()
    fail[0] = False
    ledger.close()
    assert [c.request_hash for c in written] == ["h0", "h1"]


# --- fault injection ----------------------------------------------------------------------------


def test_kill_at_a_write_leaves_no_row_of_that_transaction(warehouse_path):
    """NEUROSCRIBE_KILL_AT=write:scores kills the process inside the scores transaction; the
    next open finds the rows committed before, and none of the killed transaction."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        from neuroscribe.config import RunConfig
        from neuroscribe.records import Score
        from neuroscribe.warehouse import connect
        from neuroscribe.warehouse.annotations import save_scores
        from neuroscribe.warehouse.runs import start_run
        con = connect({str(warehouse_path)!r})
        start_run(con, "r1", RunConfig())
        score = Score(explanation_id="e", simulator="s", kind="corr_top_random", value=0.5,
                      n_tokens=3, n_windows=1)
        save_scores(con, "r1", [score])
        print("unreachable")
    """)
    env = {**os.environ, "NEUROSCRIBE_KILL_AT": "write:scores", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert "unreachable" not in r.stdout
    with closing(connect(warehouse_path)) as con:
        assert con.execute("SELECT run_id, status FROM runs").fetchall() == [("r1", "running")]
        assert con.execute("SELECT count(*) FROM scores").fetchall() == [(0,)]


def test_kill_point_counts_and_ignores_other_points(monkeypatch):
    from neuroscribe import faults

    killed = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: killed.append(sig))
    monkeypatch.setattr(faults, "_kill_counts", {})
    monkeypatch.setenv(faults.KILL_AT_VAR, "write:units#2")
    faults.kill_point("write:scores")
    faults.kill_point("write:units")
    assert killed == []
    faults.kill_point("write:units")
    assert len(killed) == 1
    faults.kill_point("write:units")
    assert len(killed) == 1


def _file_state(path):
    return path.read_bytes(), sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE customers (id INTEGER, name VARCHAR); INSERT INTO customers VALUES (1, 'a')",
        # named like one of our views: once crashed after 16 tables were committed
        "CREATE TABLE scored_explanations (x INTEGER); INSERT INTO scored_explanations VALUES (1)",
    ],
)
def test_someone_elses_duckdb_file_is_refused_and_left_unchanged(tmp_path, ddl):
    path = tmp_path / "theirs.duckdb"
    with closing(duckdb.connect(str(path))) as con:
        con.execute(ddl)
    before = _file_state(path)
    with pytest.raises(WarehouseError, match="not a neuroscribe warehouse") as e:
        connect(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert _file_state(path) == before  # nothing written (not even a WAL file left behind)
    with closing(duckdb.connect(str(path), read_only=True)) as con:
        tables = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    assert len(tables) == 1
    connect(tmp_path / "new.duckdb").close()  # an empty (new) file is fine


def test_an_empty_duckdb_file_becomes_a_warehouse(tmp_path):
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with closing(connect(path)) as con:
        assert [n for (n,) in con.execute("SELECT version FROM schema_migrations").fetchall()]


def test_a_failed_migration_leaves_nothing(warehouse_path, monkeypatch):
    """Each migration is one transaction with its schema_migrations row: one that fails half-way
    leaves neither its tables nor its row, and the migrations before it stay applied."""
    import neuroscribe.warehouse.db as db

    good = db.migrations()
    broken = (len(good) + 1, f"{len(good) + 1:04d}_broken.sql",
              "CREATE TABLE half_done (x INTEGER); ALTER TABLE runs ADD COLUMN y INTEGER;"
              " SELEC oops;")  # fmt: skip
    monkeypatch.setattr(db, "migrations", lambda: [*good, broken])
    with pytest.raises(WarehouseError, match="migration .*_broken.sql failed"):
        connect(warehouse_path)
    monkeypatch.setattr(db, "migrations", lambda: good)
    with closing(connect(warehouse_path)) as con:
        names = {n for (n,) in con.execute("SELECT table_name FROM information_schema.tables")
                 .fetchall()}  # fmt: skip
        versions = [v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()]
        columns = [c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'"
        ).fetchall()]  # fmt: skip
    assert "half_done" not in names and "y" not in columns
    assert sorted(versions) == [n for n, _, _ in good]


def test_a_failed_first_migration_leaves_an_empty_file(warehouse_path, monkeypatch):
    import neuroscribe.warehouse.db as db

    monkeypatch.setattr(db, "migrations", lambda: [(1, "0001_broken.sql", "CREATE TABLE t (x INT"
                                                    "EGER); SELEC oops;")])  # fmt: skip
    with pytest.raises(WarehouseError, match="0001_broken.sql failed"):
        connect(warehouse_path)
    with closing(duckdb.connect(str(warehouse_path))) as con:
        assert con.execute("SELECT count(*) FROM information_schema.tables").fetchall() == [(0,)]
