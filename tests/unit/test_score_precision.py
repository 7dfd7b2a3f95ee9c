"""Precision-based kinds: average precision over tokens and windows and F1 at the calibrated cut,
by hand and against sklearn as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from neuroscribe.config import ScoreConfig
from neuroscribe.records import Simulation, Split, UnitExamples, UnitId, UnitStats, UnitWindow
from neuroscribe.score import SCORE_KINDS, score_explanation
from neuroscribe.score.precision import average_precision, f1

KINDS = ("auprc_tokens", "auprc_windows", "f1_calibrated")


def test_average_precision_by_hand_with_ties() -> None:
    # Thresholds from the top: score 1 takes both tied examples (1 of 2 firing: P 1/2, R 1/2),
    # score 0 takes all (P 2/3, R 1) → AP = 1/2 · 1/2 + 1/2 · 2/3 = 7/12.
    labels, scores = [True, False, True], [1.0, 1.0, 0.0]
    assert average_precision(labels, scores).value == pytest.approx(7 / 12)
    assert average_precision(labels, scores).value == pytest.approx(
        average_precision_score(labels, scores)
    )
    # All scores equal: precision is the share of positives at the only threshold.
    assert average_precision([True, False, False, False], [2.0] * 4).value == pytest.approx(0.25)


def test_f1_by_hand() -> None:
    labels = [True, True, False, False, False]
    predicted = [True, False, True, True, False]
    # TP 1, FP 2, FN 1 → 2 / (2 + 2 + 1) = 0.4.
    assert f1(labels, predicted).value == pytest.approx(0.4)
    assert f1(labels, predicted).value == pytest.approx(f1_score(labels, predicted))
    assert f1([True, False], [False, False]).value == 0.0  # nothing predicted: no true positive


def test_precision_metrics_match_sklearn_on_random_inputs() -> None:
    rng = np.random.default_rng(1)
    for n in (2, 5, 17, 300):
        labels = rng.random(n) < 0.3
        labels[0], labels[1] = True, False
        scores = rng.integers(0, 11, size=n).astype(float)  # ties, as on the 0-10 scale
        assert average_precision(labels, scores).value == pytest.approx(
            average_precision_score(labels, scores), abs=1e-12
        )
        predicted = scores > 4.5
        assert f1(labels, predicted).value == pytest.approx(f1_score(labels, predicted), abs=1e-12)


@pytest.mark.parametrize("metric", [average_precision, f1])
def test_one_class_is_null_with_reason(metric) -> None:
    assert metric([True, True], [1.0, 0.0]) == (None, "only firing windows")
    assert metric([False, False], [1.0, 0.0]) == (None, "no firing windows")
    assert metric([], []) == (None, "no windows")
    assert average_precision([False], [1.0], "tokens") == (None, "no firing tokens")


# --- inside score_explanation: the unit of test_score_detection ---------------------------------

SIM = "baseline/lexical"


def make_unit(windows: dict[Split, list[list[float]]], unit_max: float = 10.0) -> UnitExamples:
    return UnitExamples(
        unit=UnitId(subject_id="toy@0", site="layers.0.mlp", index=0),
        stats=UnitStats(
            n_tokens=100, max=unit_max, mean=0.5, firing_rate=0.1, quantiles=(), dead=False
        ),
        windows=tuple(
            UnitWindow(window_id=f"{split.value}-{i}", split=split, rank=i, activations=tuple(a))
            for split, per_split in windows.items()
            for i, a in enumerate(per_split)
        ),
    )


def make_sims(predictions: dict[str, list[float]]) -> list[Simulation]:
    return [
        Simulation(
            simulation_id=f"s-{w}", explanation_id="E", simulator=SIM, window_id=w, predictions=p
        )
        for w, p in predictions.items()
    ]


# Unit max 10 → a token or window fires at (max) true activation >= 3.
UNIT = make_unit(
    {
        Split.CALIBRATE: [[0.0, 1.0], [4.0, 0.0]],
        Split.SCORE_TOP: [[5.0, 1.0], [2.0, 0.0]],
        Split.SCORE_RANDOM: [[0.0, 4.0], [0.0, 0.0]],
    }
)
PREDICTIONS = {
    "calibrate-0": [0.0, 2.0],
    "calibrate-1": [4.0, 0.0],  # → calibrated cut 3
    "score_top-0": [4.5, 0.0],
    "score_top-1": [2.5, 1.0],
    "score_random-0": [0.0, 3.5],
    "score_random-1": [4.0, 0.0],
}


def test_precision_kinds_by_hand() -> None:
    assert set(KINDS) <= set(SCORE_KINDS)
    scores = {
        s.kind: s for s in score_explanation("E", SIM, UNIT, make_sims(PREDICTIONS), ScoreConfig())
    }
    # Windows: truth [T, F, T, F], max predictions [4.5, 2.5, 3.5, 4.0]. From the top: 4.5 (T:
    # P 1, R 1/2), 4.0 (F), 3.5 (T: P 2/3, R 1), 2.5 (F) → AP = 1/2 + 1/2 · 2/3 = 5/6.
    windows = scores["auprc_windows"]
    assert windows.value == pytest.approx(5 / 6)
    assert windows.value == pytest.approx(
        average_precision_score([1, 0, 1, 0], [4.5, 2.5, 3.5, 4.0])
    )
    # Tokens: truth [5, 1, 2, 0, 0, 4, 0, 0] >= 3 → [T, F, F, F, F, T, F, F]; predictions
    # [4.5, 0, 2.5, 1, 0, 3.5, 4, 0]: 4.5 (T), 4 (F), 3.5 (T) → AP = 1/2 + 1/2 · 2/3 = 5/6.
    tokens = scores["auprc_tokens"]
    assert tokens.value == pytest.approx(5 / 6)
    assert tokens.value == pytest.approx(
        average_precision_score([1, 0, 0, 0, 0, 1, 0, 0], [4.5, 0, 2.5, 1, 0, 3.5, 4, 0])
    )
    # Cut 3 from calibration: predicted [T, F, T, T] → TP 2, FP 1, FN 0 → F1 4/5.
    cut = scores["f1_calibrated"]
    assert cut.value == pytest.approx(0.8)
    assert cut.value == pytest.approx(f1_score([1, 0, 1, 0], [1, 0, 1, 1]))
    for s in (windows, tokens, cut):
        assert (s.n_windows, s.n_tokens, s.reason) == (4, 8, None)
        assert s.ci_low is not None and s.ci_low <= s.value <= s.ci_high


def test_f1_falls_back_to_the_midpoint_cut_and_says_so() -> None:
    preds = dict(PREDICTIONS)
    del preds["calibrate-1"]
    scores = {s.kind: s for s in score_explanation("E", SIM, UNIT, make_sims(preds), ScoreConfig())}
    assert scores["f1_calibrated"].value == 0.0  # cut 5: nothing predicted firing
    assert scores["f1_calibrated"].reason == (
        "cut at scale midpoint: calibration windows hold one class; "
        "calibration: 1 of 2 windows missing (1 not simulated)"
    )
    assert scores["auprc_windows"].reason is None  # threshold-free


def test_precision_kinds_null_for_one_class_and_for_a_silent_unit() -> None:
    unit = make_unit({Split.SCORE_TOP: [[5.0], [6.0]], Split.SCORE_RANDOM: [[9.0]]})
    sims = make_sims({"score_top-0": [1.0], "score_top-1": [2.0], "score_random-0": [3.0]})
    scores = {s.kind: s for s in score_explanation("E", SIM, unit, sims, ScoreConfig())}
    assert scores["auprc_tokens"].reason.startswith("only firing tokens")
    for kind in ("auprc_windows", "f1_calibrated"):
        assert scores[kind].value is None and scores[kind].reason.startswith("only firing windows")
    silent = make_unit({Split.SCORE_TOP: [[0.0]], Split.SCORE_RANDOM: [[0.0]]}, unit_max=0.0)
    sims = make_sims({"score_top-0": [1.0], "score_random-0": [0.0]})
    scores = {s.kind: s for s in score_explanation("E", SIM, silent, sims, ScoreConfig())}
    for kind in KINDS:
        assert scores[kind].value is None
        assert scores[kind].reason == "unit never fires (corpus max activation 0 <= 0)"
