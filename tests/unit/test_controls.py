"""The control comparison by hand: ``reads.control_comparisons`` on one run's explanations, and
the ``control_comparison`` view (per site) over the warehouse, both from the rules of the view
``control_comparison_units``."""

from __future__ import annotations

from contextlib import closing

import duckdb
import pytest

from neuroscribe.config import RunConfig
from neuroscribe.records import (
    Explanation,
    Score,
    Subject,
    UnitExamples,
    UnitId,
    UnitStats,
)
from neuroscribe.score import BASELINE_EXPLAINER, SHUFFLED_CONTROL
from neuroscribe.warehouse import connect
from neuroscribe.warehouse.annotations import save_explanations, save_scores
from neuroscribe.warehouse.collection import save_collection
from neuroscribe.warehouse.reads import ControlComparison, control_comparisons
from neuroscribe.warehouse.runs import finish_run, start_run

SUBJECT = Subject(name="tiny", weights_hash="abc123", architecture="llama", n_layers=2)
SIM, OTHER_SIM = "baseline/lexical", "local/m"
REAL, SECOND = "local/x", "openai/m"


def unit(index: int, site: str = "layers.1.mlp") -> UnitExamples:
    return UnitExamples(
        unit=UnitId(subject_id=SUBJECT.subject_id, site=site, index=index),
        stats=UnitStats(n_tokens=9, max=3.0, mean=0.5, firing_rate=0.3, quantiles=(), dead=False),
        windows=(),
    )


UNITS = [unit(i) for i in range(8)]
KEYS = [u.unit.key for u in UNITS]

# (unit, explainer, simulator, kind) -> value; a missing key means no score row.
TABLE: dict[tuple[int, str, str, str], float | None] = {
    # u0: beats both.
    (0, REAL, SIM, "corr_top_random"): 0.8,
    (0, SHUFFLED_CONTROL, SIM, "corr_top_random"): 0.1,
    (0, BASELINE_EXPLAINER, SIM, "corr_top_random"): 0.5,
    # u1: beats the shuffled control only.
    (1, REAL, SIM, "corr_top_random"): 0.4,
    (1, SHUFFLED_CONTROL, SIM, "corr_top_random"): 0.1,
    (1, BASELINE_EXPLAINER, SIM, "corr_top_random"): 0.6,
    # u2: the annotator's score is undefined: it beats nothing (the baseline's constant
    # predictions count as 0).
    (2, REAL, SIM, "corr_top_random"): None,
    (2, SHUFFLED_CONTROL, SIM, "corr_top_random"): 0.2,
    (2, BASELINE_EXPLAINER, SIM, "corr_top_random"): None,
    # u3: the shuffled control predicted a constant (counted 0): 0.3 beats it; a tie with the
    # baseline does not beat it.
    (3, REAL, SIM, "corr_top_random"): 0.3,
    (3, SHUFFLED_CONTROL, SIM, "corr_top_random"): None,
    (3, BASELINE_EXPLAINER, SIM, "corr_top_random"): 0.3,
    # u4: all three undefined: not compared.
    (4, REAL, SIM, "corr_top_random"): None,
    (4, SHUFFLED_CONTROL, SIM, "corr_top_random"): None,
    (4, BASELINE_EXPLAINER, SIM, "corr_top_random"): None,
    # u5: no baseline row: not compared.
    (5, REAL, SIM, "corr_top_random"): 0.9,
    (5, SHUFFLED_CONTROL, SIM, "corr_top_random"): 0.0,
    # u6: a negative score does not beat a constant-prediction control (0); it beats -0.5.
    (6, REAL, SIM, "corr_top_random"): -0.2,
    (6, SHUFFLED_CONTROL, SIM, "corr_top_random"): None,
    (6, BASELINE_EXPLAINER, SIM, "corr_top_random"): -0.5,
    # u7: controls undefined for other reasons (REASONS): NULL, beaten by any defined score.
    (7, REAL, SIM, "corr_top_random"): 0.1,
    (7, SHUFFLED_CONTROL, SIM, "corr_top_random"): None,
    (7, BASELINE_EXPLAINER, SIM, "corr_top_random"): None,
    # Another kind, another explainer, and a simulator whose controls were never run.
    (0, REAL, SIM, "ev_calibrated"): 0.2,
    (0, SHUFFLED_CONTROL, SIM, "ev_calibrated"): 0.3,
    (0, BASELINE_EXPLAINER, SIM, "ev_calibrated"): 0.1,
    (0, SECOND, SIM, "corr_top_random"): 0.6,
    (0, REAL, OTHER_SIM, "corr_top_random"): 0.7,
}
# Why a NULL is NULL where it is not "constant predictions" (the default below).
REASONS = {
    (7, SHUFFLED_CONTROL, SIM, "corr_top_random"): "no score_random windows",
    (7, BASELINE_EXPLAINER, SIM, "corr_top_random"): "non-finite values",
}


def expl_id(u: int, explainer: str) -> str:
    return f"e-{u}-{explainer}"


def records() -> tuple[list[Explanation], list[Score]]:
    pairs = sorted({(u, e) for u, e, _, _ in TABLE})
    explanations = [
        Explanation(explanation_id=expl_id(u, e), unit_key=KEYS[u], explainer=e, text=f"{e} {u}")
        for u, e in pairs
    ]
    # A losing best-of-n sample with a high score must be ignored.
    explanations.append(
        Explanation(
            explanation_id="loser", unit_key=KEYS[1], explainer=REAL, text="x", selected=False
        )
    )
    scores = [
        Score(
            explanation_id=expl_id(u, e),
            simulator=s,
            kind=k,
            value=v,
            reason=None if v is not None else REASONS.get((u, e, s, k), "constant predictions"),
            n_tokens=10,
            n_windows=2,
        )
        for (u, e, s, k), v in TABLE.items()
    ]
    scores.append(
        Score(explanation_id="loser", simulator=SIM, kind="corr_top_random", value=0.99,
              n_tokens=10, n_windows=2)
    )  # fmt: skip
    return explanations, scores


def store(
    path, explanations: list[Explanation], scores: list[Score], extra_units=()
) -> duckdb.DuckDBPyConnection:
    """A warehouse holding these records, written by one finished run."""
    cfg = RunConfig()
    con = connect(path)
    start_run(con, "r1", cfg)
    save_collection(con, "r1", SUBJECT, "c", [], [*UNITS, *extra_units])
    save_explanations(con, "r1", cfg.config_hash, explanations)
    save_scores(con, "r1", scores)
    finish_run(con, "r1", "finished")
    return con


def ids(explanations: list[Explanation]) -> list[str]:
    return [e.explanation_id for e in explanations]


def test_control_comparisons_by_hand(warehouse_path) -> None:
    explanations, scores = records()
    with closing(store(warehouse_path, explanations, scores)) as con:
        rows = {
            (r.explainer, r.simulator, r.score_kind): r
            for r in control_comparisons(con, ids(explanations))
        }
        only_corr = control_comparisons(con, ids(explanations), ["ev_calibrated"])
        # Without the baseline's explanations among the ids, no unit has both controls.
        no_baseline = [e for e in explanations if e.explainer != BASELINE_EXPLAINER]
        assert control_comparisons(con, ids(no_baseline), ["corr_top_random"]) == []
    assert set(rows) == {
        (REAL, SIM, "corr_top_random"),
        (REAL, SIM, "ev_calibrated"),
        (SECOND, SIM, "corr_top_random"),
    }  # no row for the controls themselves, nor for OTHER_SIM (no controls under it)
    main = rows[(REAL, SIM, "corr_top_random")]
    assert main.model_dump() == {
        "explainer": REAL,
        "simulator": SIM,
        "score_kind": "corr_top_random",
        "n_units": 6,  # u0-u3, u6, u7
        "n_beats_shuffled": 4,  # u0, u1, u3, u7
        "n_beats_baseline": 3,  # u0, u6, u7
        "n_beats_both": 2,  # u0, u7
        "share_beats_both": pytest.approx(2 / 6),
        "mean_score": pytest.approx((0.8 + 0.4 + 0.3 - 0.2 + 0.1) / 5),
        # constant predictions count as 0 (u3, u6; u2's baseline); other NULLs are left out
        "mean_shuffled": pytest.approx((0.1 + 0.1 + 0.2 + 0.0 + 0.0) / 5),
        "mean_baseline": pytest.approx((0.5 + 0.6 + 0.0 + 0.3 - 0.5) / 5),
        "n_shuffled_constant": 2,  # u3, u6
        "n_baseline_constant": 1,  # u2
    }
    assert isinstance(main, ControlComparison)
    ev = rows[(REAL, SIM, "ev_calibrated")]
    assert (ev.n_units, ev.n_beats_shuffled, ev.n_beats_baseline, ev.share_beats_both) == (
        1,
        0,
        1,
        0.0,
    )
    assert rows[(SECOND, SIM, "corr_top_random")].share_beats_both == 1.0
    assert [r.score_kind for r in only_corr] == ["ev_calibrated"]


def test_duplicate_scores_are_refused(warehouse_path) -> None:
    explanations, scores = records()
    twin = explanations[0].model_copy(update={"explanation_id": "twin"})
    dup = [
        s.model_copy(update={"explanation_id": "twin"})
        for s in scores
        if s.explanation_id == explanations[0].explanation_id
    ]
    with (
        closing(store(warehouse_path, [*explanations, twin], scores + dup)) as con,
        pytest.raises(ValueError, match="two .* scores of unit"),
    ):
        control_comparisons(con, ids([*explanations, twin]))


VIEW_COLUMNS = (
    "explainer, simulator, score_kind, n_units, n_beats_shuffled, n_beats_baseline, n_beats_both,"
    " share_beats_both, mean_score, mean_shuffled, mean_baseline, n_shuffled_constant,"
    " n_baseline_constant"
)


def test_view_agrees_with_the_run_comparison(warehouse_path) -> None:
    explanations, scores = records()
    cfg = RunConfig()
    # Units of a second site, with scores from a run that failed: neither may leak in.
    other_site = [unit(i, site="layers.0.mlp") for i in range(2)]
    stray = [
        Explanation(explanation_id=f"stray-{e}", unit_key=other_site[0].unit.key, explainer=e,
                    text="t")
        for e in (REAL, SHUFFLED_CONTROL, BASELINE_EXPLAINER)
    ]  # fmt: skip
    stray_scores = [
        Score(explanation_id=e.explanation_id, simulator=SIM, kind="corr_top_random",
              value=0.5 if e.explainer == REAL else 0.0, n_tokens=1, n_windows=1)
        for e in stray
    ]  # fmt: skip
    with closing(store(warehouse_path, explanations + stray, scores, other_site)) as con:
        start_run(con, "r2", cfg)
        save_scores(con, "r2", stray_scores)
        finish_run(con, "r2", "failed")
        got = con.execute(
            f"SELECT {VIEW_COLUMNS}, subject_id, site FROM control_comparison"  # noqa: S608
            " ORDER BY explainer, simulator, score_kind"
        ).fetchall()
        expected = control_comparisons(con, ids(explanations + stray))
    assert len(got) == len(expected) == 3
    assert expected[0].n_units == 6  # the hand-worked row above; stray units left out
    for row, want in zip(got, expected, strict=True):
        assert row[:8] == (
            want.explainer,
            want.simulator,
            want.score_kind,
            want.n_units,
            want.n_beats_shuffled,
            want.n_beats_baseline,
            want.n_beats_both,
            pytest.approx(want.share_beats_both),
        )
        for got_mean, want_mean in zip(
            row[8:11], (want.mean_score, want.mean_shuffled, want.mean_baseline), strict=True
        ):
            assert got_mean == pytest.approx(want_mean)
        assert row[11:13] == (want.n_shuffled_constant, want.n_baseline_constant)
        assert row[13:] == (SUBJECT.subject_id, "layers.1.mlp")


def test_the_baseline_is_read_against_the_shuffled_control_alone(warehouse_path) -> None:
    explanations, scores = records()
    with closing(store(warehouse_path, explanations, scores)) as con:
        rows = con.execute(
            "SELECT unit_key, score, shuffled, shuffled_constant, baseline, beats_shuffled,"
            " beats_baseline FROM control_comparison_units"
            " WHERE explainer = ? AND score_kind = 'corr_top_random' ORDER BY unit_key",
            [BASELINE_EXPLAINER],
        ).fetchall()
        views = con.execute(
            "SELECT count(*) FROM control_comparison WHERE explainer = ?", [BASELINE_EXPLAINER]
        ).fetchone()
    # u4 and u7: all NULL (u7's NULLs are not constant predictions), not compared; u5: no
    # baseline score
    assert rows == [
        (KEYS[0], 0.5, 0.1, False, None, True, None),
        (KEYS[1], 0.6, 0.1, False, None, True, None),
        (KEYS[2], None, 0.2, False, None, False, None),
        (KEYS[3], 0.3, 0.0, True, None, True, None),  # constant shuffled control counted as 0
        (KEYS[6], -0.5, 0.0, True, None, False, None),
    ]
    assert views == (0,)  # control_comparison has rows for annotators only
