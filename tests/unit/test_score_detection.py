"""Detection scores: AUROC, balanced accuracy and the calibrated cut, by hand and vs sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from neuroscribe.config import ScoreConfig
from neuroscribe.records import (
    Simulation,
    Split,
    UnitExamples,
    UnitId,
    UnitStats,
    UnitWindow,
)
from neuroscribe.score import (
    DETECTION_FRACTION,
    SCORE_KINDS,
    auroc,
    balanced_accuracy,
    choose_cut,
    score_explanation,
)
from neuroscribe.score.detection import SCALE_MIDPOINT, window_max

# --- metrics ----------------------------------------------------------------------------------


def test_auroc_by_hand_with_ties() -> None:
    labels = [True, False, True, False, False]
    scores = [3.0, 1.0, 2.0, 2.0, 0.0]
    # Positive-negative pairs: 3 beats 1, 2, 0 (3); 2 beats 1 and 0, ties 2 (2.5) → 5.5 of 6.
    assert auroc(labels, scores).value == pytest.approx(5.5 / 6)
    assert auroc(labels, scores).value == pytest.approx(roc_auc_score(labels, scores))


def test_balanced_accuracy_by_hand() -> None:
    labels = [True, True, False, False, False]
    predicted = [True, False, False, True, False]
    # TPR = 1/2, TNR = 2/3 → (1/2 + 2/3) / 2 = 7/12.
    assert balanced_accuracy(labels, predicted).value == pytest.approx(7 / 12)
    assert balanced_accuracy(labels, predicted).value == pytest.approx(
        balanced_accuracy_score(labels, predicted)
    )


def test_metrics_match_sklearn_on_random_inputs() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 5, 17, 200):
        labels = rng.random(n) < 0.4
        labels[0], labels[1] = True, False  # both classes present
        scores = rng.integers(0, 11, size=n).astype(float)  # many ties, as on a 0-10 scale
        assert auroc(labels, scores).value == pytest.approx(
            roc_auc_score(labels, scores), abs=1e-12
        )
        predicted = scores > 4.5
        assert balanced_accuracy(labels, predicted).value == pytest.approx(
            balanced_accuracy_score(labels, predicted), abs=1e-12
        )


def test_one_class_is_undefined_not_half() -> None:
    for metric in (auroc, balanced_accuracy):
        assert metric([True, True], [1.0, 0.0]) == (None, "only firing windows")
        assert metric([False, False], [1.0, 0.0]) == (None, "no firing windows")
        assert metric([], []) == (None, "no windows")
    assert auroc([True, False], [np.inf, 0.0]) == (None, "non-finite values")
    with pytest.raises(ValueError, match="one length"):
        auroc([True], [1.0, 2.0])


def test_constant_scores_are_chance() -> None:
    assert auroc([True, False, False], [3.0, 3.0, 3.0]).value == pytest.approx(0.5)


def test_choose_cut_maximises_balanced_accuracy_on_calibration() -> None:
    # Cuts 2, 5, 8 give balanced accuracy 0.75, 1.0, 0.75.
    assert choose_cut([False, False, True, True], [0.0, 4.0, 6.0, 10.0]) == (5.0, None)
    # Cuts 1.5 and 6 both give 0.75; the one closer to the scale midpoint (5) wins.
    assert choose_cut([False, True, False, True], [0.0, 3.0, 3.0, 9.0]) == (6.0, None)
    # A separating cut far from the midpoint is kept.
    assert choose_cut([False, True], [1.0, 2.0]) == (1.5, None)


def test_choose_cut_falls_back_to_the_midpoint() -> None:
    assert choose_cut([], []) == (SCALE_MIDPOINT, "cut at scale midpoint: no calibration windows")
    cut, note = choose_cut([True, True], [1.0, 9.0])
    assert (cut, note) == (
        SCALE_MIDPOINT,
        "cut at scale midpoint: calibration windows hold one class",
    )
    cut, note = choose_cut([True, False], [4.0, 4.0])
    assert (cut, note) == (
        SCALE_MIDPOINT,
        "cut at scale midpoint: constant calibration predictions",
    )


def test_window_max() -> None:
    np.testing.assert_array_equal(window_max([[0.0, 2.0, 1.0], [], (-1.0, -3.0)]), [2.0, 0.0, -1.0])


# --- inside score_explanation -----------------------------------------------------------------

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


# Unit max 10 → a window fires at max activation >= 3.
UNIT = make_unit(
    {
        Split.CALIBRATE: [[0.0, 1.0], [4.0, 0.0]],  # silent, firing
        Split.SCORE_TOP: [[5.0, 1.0], [2.0, 0.0]],  # firing, silent
        Split.SCORE_RANDOM: [[0.0, 4.0], [0.0, 0.0]],  # firing, silent
    }
)
PREDICTIONS = {
    "calibrate-0": [0.0, 2.0],  # max 2 (silent)
    "calibrate-1": [4.0, 0.0],  # max 4 (fires) → calibrated cut 3
    "score_top-0": [4.5, 0.0],
    "score_top-1": [2.5, 1.0],
    "score_random-0": [0.0, 3.5],
    "score_random-1": [4.0, 0.0],
}


def test_detection_scores_by_hand() -> None:
    assert DETECTION_FRACTION == 0.3
    scores = {
        s.kind: s for s in score_explanation("E", SIM, UNIT, make_sims(PREDICTIONS), ScoreConfig())
    }
    assert {"detection_bacc", "detection_auroc"} <= set(scores) <= set(SCORE_KINDS)
    # Score windows: truth [T, F, T, F], window max predictions [4.5, 2.5, 3.5, 4.0].
    # AUROC pairs: 4.5 > 2.5, 4.5 > 4.0, 3.5 > 2.5, 3.5 < 4.0 → 3/4.
    area = scores["detection_auroc"]
    assert area.value == pytest.approx(0.75)
    assert area.value == pytest.approx(roc_auc_score([1, 0, 1, 0], [4.5, 2.5, 3.5, 4.0]))
    # Cut 3 (from calibration): predicted [T, F, T, T] → TPR 1, TNR 1/2 → 0.75. The scale
    # midpoint 5 would have predicted nothing firing (0.5).
    bacc = scores["detection_bacc"]
    assert bacc.value == pytest.approx(0.75)
    assert bacc.value == pytest.approx(balanced_accuracy_score([1, 0, 1, 0], [1, 0, 1, 1]))
    for s in (area, bacc):
        assert (s.n_windows, s.n_tokens, s.reason) == (4, 8, None)
        assert s.ci_low is not None and s.ci_low <= s.value <= s.ci_high


def test_detection_falls_back_to_midpoint_and_says_so() -> None:
    preds = dict(PREDICTIONS)
    del preds["calibrate-1"]  # calibration now holds one (silent) window
    scores = {s.kind: s for s in score_explanation("E", SIM, UNIT, make_sims(preds), ScoreConfig())}
    # Cut 5: nothing predicted firing → TPR 0, TNR 1 → 0.5.
    assert scores["detection_bacc"].value == pytest.approx(0.5)
    assert scores["detection_bacc"].reason == (
        "cut at scale midpoint: calibration windows hold one class; "
        "calibration: 1 of 2 windows missing (1 not simulated)"
    )
    assert scores["detection_auroc"].reason is None  # threshold-free


def test_detection_one_class_is_null_with_reason() -> None:
    # Every score window fires (max >= 3): nothing to separate, so NULL rather than 0.5.
    unit = make_unit({Split.SCORE_TOP: [[5.0], [6.0]], Split.SCORE_RANDOM: [[9.0]]})
    sims = make_sims({"score_top-0": [1.0], "score_top-1": [2.0], "score_random-0": [3.0]})
    scores = {s.kind: s for s in score_explanation("E", SIM, unit, sims, ScoreConfig())}
    for kind in ("detection_bacc", "detection_auroc"):
        assert scores[kind].value is None
        assert scores[kind].reason.startswith("only firing windows")
        assert scores[kind].ci_low is None


def test_detection_null_for_a_unit_that_never_fires() -> None:
    unit = make_unit({Split.SCORE_TOP: [[0.0]], Split.SCORE_RANDOM: [[0.0]]}, unit_max=0.0)
    sims = make_sims({"score_top-0": [1.0], "score_random-0": [0.0]})
    scores = {s.kind: s for s in score_explanation("E", SIM, unit, sims, ScoreConfig())}
    assert scores["detection_auroc"].value is None
    assert scores["detection_auroc"].reason == "unit never fires (corpus max activation 0 <= 0)"
    assert scores["detection_bacc"].n_windows == 2
