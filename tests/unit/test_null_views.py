"""The random-model null's views (``null_percentiles``, ``null_comparison``) on hand-chosen
scores, checked against values worked out by hand; and the link rows written once."""

from __future__ import annotations

from contextlib import closing

import pytest

from neuroscribe.config import RunConfig
from neuroscribe.warehouse import connect
from neuroscribe.warehouse.nulls import null_comparison, null_run_id, save_null_model
from neuroscribe.warehouse.runs import finish_run, start_run

TRAINED, RANDOM, UNFINISHED = "20250101T000000-trained", "20250101T000001-random", "2025-x"
EXPLAINER, SIMULATOR = "baseline/ngram", "baseline/lexical"
# unit index -> corr_top_random on each side (None: undefined). Random defined values
# 0.1, 0.2, 0.5, 0.9 (and one NULL); trained 0.5, 0.95, NULL, 0.0.
RANDOM_CORR = {0: 0.1, 1: 0.2, 2: 0.5, 3: None, 4: 0.9}
TRAINED_CORR = {0: 0.5, 1: 0.95, 2: None, 3: 0.0}
LINK = {
    "trained_run_id": TRAINED,
    "null_run_id": RANDOM,
    "subject": "tiny",
    "subject_weights_hash": "aaaa",
    "null_model": "/cache/null_models/x",
    "null_weights_hash": "bbbb",
    "method": "reinitialised",
    "seed": 0,
}


def _unit(con, subject: str, index: int) -> str:
    key = f"{subject}@h/layers.1.mlp/{index}"
    con.execute(
        "INSERT INTO units VALUES (?, ?, 'layers.1.mlp', ?, NULL, ?, 'c', 10, 1.0, 0.1, 0.5,"
        " [0.0], false)",
        [key, f"{subject}@h", index, TRAINED],
    )
    return key


def _explanation(con, eid: str, key: str, run_id: str, selected: bool = True) -> str:
    con.execute(
        "INSERT INTO explanations (explanation_id, unit_key, explainer, sample_index, status,"
        " text, selected, run_id, config_hash) VALUES (?, ?, ?, 0, 'ok', 'x', ?, ?, 'h')",
        [eid, key, EXPLAINER, selected, run_id],
    )
    return eid


def _score(con, eid: str, kind: str, value: float | None, run_id: str) -> None:
    con.execute(
        "INSERT INTO scores (explanation_id, simulator, kind, value, n_tokens, n_windows, run_id)"
        " VALUES (?, ?, ?, ?, 8, 2, ?)",
        [eid, SIMULATOR, kind, value, run_id],
    )


@pytest.fixture
def con(tmp_path):
    with closing(connect(tmp_path / "w.duckdb")) as c:
        for run_id in (TRAINED, RANDOM, UNFINISHED):
            start_run(c, run_id, RunConfig())
        finish_run(c, TRAINED, "finished")
        finish_run(c, RANDOM, "finished")
        trained, random = [], []
        for i, value in TRAINED_CORR.items():
            eid = _explanation(c, f"t{i}", _unit(c, "trained", i), TRAINED)
            _score(c, eid, "corr_top_random", value, TRAINED)
            _score(c, eid, "corr_random", 0.3, TRAINED)
            trained.append(eid)
        for i, value in RANDOM_CORR.items():
            eid = _explanation(c, f"r{i}", _unit(c, "random", i), RANDOM)
            _score(c, eid, "corr_top_random", value, RANDOM)
            _score(c, eid, "corr_random", None, RANDOM)  # every random score undefined
            random.append(eid)
        # Left out: a best-of-n loser, a score of a run that did not finish, and an explanation
        # the linked runs did not work on.
        loser = _explanation(c, "t0-loser", "trained@h/layers.1.mlp/0", TRAINED, selected=False)
        _score(c, loser, "corr_top_random", 0.99, TRAINED)
        late = _explanation(c, "r9", _unit(c, "random", 9), RANDOM)
        _score(c, late, "corr_top_random", 0.99, UNFINISHED)
        other = _explanation(c, "o1", _unit(c, "other", 1), TRAINED)
        _score(c, other, "corr_top_random", 0.99, TRAINED)
        save_null_model(c, LINK, [*trained, loser], [*random, late])
        save_null_model(c, LINK, trained, random)  # written again: nothing changes
        yield c


def _rows(con, sql, params=()):
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_link_rows_are_written_once(con):
    assert con.execute("SELECT count(*) FROM null_models").fetchone() == (1,)
    sides = con.execute(
        "SELECT side, count(*) FROM null_model_explanations GROUP BY side ORDER BY side"
    ).fetchall()
    assert sides == [("random", 6), ("trained", 5)]
    assert null_run_id(con, TRAINED) == RANDOM and null_run_id(con, RANDOM) is None


def test_percentile_of_each_trained_unit_among_the_random_scores(con):
    rows = _rows(
        con,
        "SELECT unit_index, score, percentile, above_random_p95, n_random, n_random_defined"
        " FROM null_percentiles WHERE score_kind = 'corr_top_random' ORDER BY unit_index",
    )
    # 0.5: two random scores below, one equal -> (2 + 0.5) / 4; 0.95: all four below;
    # NULL: no percentile; 0.0: none below. Random p95 = 0.5 + 0.85 * (0.9 - 0.5) = 0.84.
    got = [(r["unit_index"], r["percentile"], r["above_random_p95"]) for r in rows]
    assert got == [(0, 62.5, False), (1, 100.0, True), (2, None, False), (3, 0.0, False)]
    assert {(r["n_random"], r["n_random_defined"]) for r in rows} == {(5, 4)}


def test_null_comparison_means_p95_and_share_above(con):
    (row,) = null_comparison(con, TRAINED, "corr_top_random")
    assert row["null_run_id"] == RANDOM
    assert (row["n_trained"], row["n_trained_defined"]) == (4, 3)
    assert (row["n_random"], row["n_random_defined"]) == (5, 4)
    assert row["trained_mean"] == pytest.approx((0.5 + 0.95 + 0.0) / 3)
    assert row["random_mean"] == pytest.approx((0.1 + 0.2 + 0.5 + 0.9) / 4)
    assert row["mean_gap"] == pytest.approx(row["trained_mean"] - row["random_mean"])
    assert row["random_p95"] == pytest.approx(0.84)
    assert row["n_above_random_p95"] == 1 and row["share_above_random_p95"] == 0.25
    assert row["mean_percentile"] == pytest.approx((62.5 + 100.0 + 0.0) / 3)


def test_no_defined_random_score_leaves_the_comparison_undefined(con):
    (row,) = null_comparison(con, TRAINED, "corr_random")
    assert row["n_random_defined"] == 0 and row["random_mean"] is None
    assert row["random_p95"] is None and row["share_above_random_p95"] is None
    assert row["trained_mean"] == pytest.approx(0.3) and row["n_trained"] == 4
    percentiles = con.execute(
        "SELECT DISTINCT percentile, above_random_p95 FROM null_percentiles"
        " WHERE score_kind = 'corr_random'"
    ).fetchall()
    assert percentiles == [(None, None)]


def test_a_trained_run_that_did_not_finish_is_not_compared(con):
    con.execute("UPDATE runs SET status = 'failed' WHERE run_id = ?", [TRAINED])
    assert null_comparison(con, TRAINED, "corr_top_random") == []
