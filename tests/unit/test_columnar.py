"""Chunks of the Dask engine as Arrow (``warehouse.columnar``): the records a worker builds from
a chunk's tables equal what the warehouse's loaders return, the stored work a chunk is sent is
that of its units or explanations, and a chunk's tables are stored as the ``save_*`` functions
store records, taking over the rows of a run that did not finish."""

from __future__ import annotations

import pickle
import shutil
from contextlib import closing

import pytest
from warehouse_fixtures import UNFINISHED_RUN_ID, build_warehouse

from neuroscribe.config import RunConfig
from neuroscribe.records import Score
from neuroscribe.warehouse import annotations, collection, columnar, connect, runs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_warehouse(tmp_path_factory.mktemp("columnar") / "w.duckdb")


@pytest.fixture
def copy(built, tmp_path):
    path = tmp_path / "copy.duckdb"
    shutil.copyfile(built.path, path)
    return path


def _score(explanation_id: str, simulator: str, kind: str, value: float) -> Score:
    return Score(explanation_id=explanation_id, simulator=simulator, kind=kind, value=value,
                 n_tokens=4, n_windows=1)


def test_a_chunk_rebuilds_the_records_the_loaders_return(built):
    keys = list(built.unit_keys.values())[::-1]  # not the stored order
    with closing(connect(built.path)) as con:
        tables = columnar.unit_tables(con, keys)
        want_units = collection.load_units(con, keys)
        want_windows = collection.load_windows(
            con, (w.window_id for u in want_units for w in u.windows)
        )
    arrived = pickle.loads(pickle.dumps(tables))  # as a worker receives it
    units, windows = columnar.unit_records(arrived)
    assert [u.unit.key for u in units] == keys
    assert units == want_units
    assert windows == want_windows and len(windows) == 8 * len(keys)


def test_a_chunk_of_a_unit_not_stored_is_refused(built):
    with closing(connect(built.path)) as con, pytest.raises(KeyError, match="not/a/unit"):
        columnar.unit_tables(con, [next(iter(built.unit_keys.values())), "not/a/unit"])


def test_a_chunk_is_sent_the_work_stored_for_its_units_or_explanations(built, copy):
    first = next(iter(built.unit_keys.values()))
    mine = sorted(e.explanation_id for e in built.explanations if e.unit_key == first)
    with closing(connect(copy)) as con:
        want = annotations.load_simulations(con, mine)
        simulated = sorted({s.explanation_id for s in want})
        fuzz = _score(simulated[0], "sim/x", "fuzz_bacc", 0.7)
        annotations.save_scores(con, built.run_id, [fuzz, _score(simulated[1], "x", "corr", 1)])
        by_unit, fuzzed = columnar.stored_simulations(con, unit_keys=[first])
        by_id, fuzzed_by_id = columnar.stored_simulations(con, explanation_ids=simulated[1:])
        nothing, none = columnar.stored_simulations(con)
    some = [s for s in want if s.explanation_id in simulated[1:]]
    assert len(simulated) > 1 and want and some
    assert columnar.simulation_records(by_unit, mine) == want
    assert columnar.simulation_records(by_id, mine) == some
    assert columnar.simulation_records(by_unit, simulated[1:]) == some
    assert fuzzed == [(simulated[0], "sim/x")] and fuzzed_by_id == []
    assert nothing.num_rows == 0 and none == []


def test_a_chunks_tables_store_what_the_savers_store(built, copy):
    first = next(iter(built.unit_keys.values()))
    mine = [e for e in built.explanations if e.unit_key == first]
    with closing(connect(copy)) as con:
        sims = annotations.load_simulations(con, [e.explanation_id for e in mine])
        runs.start_run(con, "r2", RunConfig())
        tables = columnar.result_tables(
            {
                "simulations": annotations.simulation_rows("r2", sims),
                "scores": [],
            }
        )
        assert list(tables) == ["simulations"]  # empty tables are left out
        con.execute("DELETE FROM simulations")
        columnar.save_tables(con, "r2", pickle.loads(pickle.dumps(tables)))
        got = annotations.load_simulations(con, [e.explanation_id for e in mine])
        owners = con.execute("SELECT DISTINCT run_id FROM simulations").fetchall()
    assert got == sims and owners == [("r2",)]


def test_a_chunk_takes_over_the_rows_of_a_run_that_did_not_finish(copy):
    with closing(connect(copy)) as con:
        ((ghost,),) = con.execute(
            "SELECT DISTINCT explanation_id FROM scores WHERE run_id = ?", [UNFINISHED_RUN_ID]
        ).fetchall()
        ((before,),) = con.execute(
            "SELECT count(*) FROM scores WHERE explanation_id = ?", [ghost]
        ).fetchall()
        runs.start_run(con, "r2", RunConfig())
        tables = columnar.result_tables(
            {"scores": annotations.score_rows("r2", [_score(ghost, "sim/new", "corr", 0.5)])}
        )
        columnar.save_tables(con, "r2", tables, adopted=[ghost])
        got = con.execute(
            "SELECT simulator, run_id FROM scores WHERE explanation_id = ? ORDER BY ALL", [ghost]
        ).fetchall()
    assert before and len(got) == before + 1
    assert {r[1] for r in got} == {"r2"} and ("sim/new", "r2") in got
