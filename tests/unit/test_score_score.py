"""score_explanation and validation_score on small hand-built units."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscribe.config import ScoreConfig
from neuroscribe.records import (
    Simulation,
    Split,
    UnitExamples,
    UnitId,
    UnitStats,
    UnitWindow,
)
from neuroscribe.score import SCORE_KINDS, pearson_pooled, score_explanation, validation_score

EXPLANATION = "expl-1"
SIMULATOR = "baseline/lexical"


def make_unit(windows: dict[Split, list[list[float]]]) -> UnitExamples:
    """A unit whose windows are named ``<split>-<i>``."""
    unit_windows = tuple(
        UnitWindow(window_id=f"{split.value}-{i}", split=split, rank=i, activations=tuple(acts))
        for split, per_split in windows.items()
        for i, acts in enumerate(per_split)
    )
    return UnitExamples(
        unit=UnitId(subject_id="toy@0", site="layers.0.mlp", index=0),
        stats=UnitStats(n_tokens=100, max=5.0, mean=0.5, firing_rate=0.1, quantiles=(), dead=False),
        windows=unit_windows,
    )


def make_sim(window_id: str, predictions: list[float], status: str = "ok") -> Simulation:
    return Simulation(
        simulation_id=f"sim-{window_id}",
        explanation_id=EXPLANATION,
        simulator=SIMULATOR,
        window_id=window_id,
        status=status,  # type: ignore[arg-type]
        predictions=tuple(predictions) if status == "ok" else (),
        failure=None if status == "ok" else "unparseable",
    )


UNIT = make_unit(
    {
        Split.CALIBRATE: [[0.0, 2.0, 4.0]],
        Split.SCORE_TOP: [[1.0, 2.0], [4.0, 0.0]],
        Split.SCORE_RANDOM: [[0.0, 0.0, 3.0]],
        Split.VALIDATE: [[0.0, 1.0]],
    }
)
PREDICTIONS = {
    "calibrate-0": [0.0, 1.0, 2.0],
    "score_top-0": [1.0, 3.0],
    "score_top-1": [2.0, 0.0],
    "score_random-0": [0.0, 1.0, 1.0],
    "validate-0": [0.0, 10.0],
}
CFG = ScoreConfig(bootstrap=50, ci_level=0.9)


def by_kind(scores: list) -> dict:
    return {s.kind: s for s in scores}


def test_scores_every_kind_with_pooled_values() -> None:
    sims = [make_sim(w, p) for w, p in PREDICTIONS.items()]
    scores = by_kind(score_explanation(EXPLANATION, SIMULATOR, UNIT, sims, CFG))
    assert set(scores) == set(SCORE_KINDS) - {"corr_ood"}  # no OOD windows in this unit

    top_random = scores["corr_top_random"]
    # Pooled true [1, 2, 4, 0, 0, 0, 3] vs pred [1, 3, 2, 0, 0, 1, 1].
    expected = np.corrcoef([1, 2, 4, 0, 0, 0, 3], [1, 3, 2, 0, 0, 1, 1])[0, 1]
    assert top_random.value == pytest.approx(expected, abs=1e-12)
    assert (top_random.n_windows, top_random.n_tokens, top_random.reason) == (3, 7, None)
    assert top_random.ci_low is not None and top_random.ci_high is not None

    # Random windows only: true [0, 0, 3] vs pred [0, 1, 1]: da = [-1, -1, 2], dp = [-2/3, 1/3,
    # 1/3]; Σda·dp = 2/3 - 1/3 + 2/3 = 1, Σda² = 6, Σdp² = 2/3 → r = 1/√4 = 0.5.
    random_only = scores["corr_random"]
    assert random_only.value == pytest.approx(0.5)
    assert (random_only.n_windows, random_only.n_tokens) == (1, 3)
    assert random_only.ci_low is None  # one window: nothing to resample

    # Calibration true [0, 2, 4] ~ pred [0, 1, 2] → true = 2·pred. Calibrated eval predictions
    # [2, 6, 4, 0, 0, 2, 2] vs true [1, 2, 4, 0, 0, 0, 3]: SSE = 1+16+0+0+0+4+1 = 22;
    # mean true 10/7, SST = Σt² - 7·(10/7)² = 30 - 100/7 = 110/7 → EV = 1 - 22·7/110 = -0.4.
    ev = scores["ev_calibrated"]
    assert ev.value == pytest.approx(-0.4)
    assert (ev.n_windows, ev.n_tokens) == (3, 7)


def test_failed_and_absent_simulations_are_missing_not_zero() -> None:
    sims = [make_sim(w, p) for w, p in PREDICTIONS.items() if w != "score_top-1"]
    sims.append(make_sim("score_top-1", [], status="failed"))
    scores = by_kind(score_explanation(EXPLANATION, SIMULATOR, UNIT, sims, CFG))
    top_random = scores["corr_top_random"]
    expected = pearson_pooled([[1.0, 2.0], [0.0, 0.0, 3.0]], [[1.0, 3.0], [0.0, 1.0, 1.0]])
    assert top_random.value == pytest.approx(expected.value)
    assert (top_random.n_windows, top_random.n_tokens) == (2, 5)
    assert top_random.reason == "1 of 3 windows missing (1 failed)"

    # Drop the random window's simulation entirely: that split has nothing left.
    sims = [s for s in sims if s.window_id != "score_random-0"]
    scores = by_kind(score_explanation(EXPLANATION, SIMULATOR, UNIT, sims, CFG))
    assert scores["corr_random"].value is None
    assert scores["corr_random"].reason == "no tokens; 1 of 1 windows missing (1 not simulated)"
    assert scores["corr_top_random"].reason == (
        "2 of 3 windows missing (1 failed, 1 not simulated)"
    )
    assert scores["corr_random"].n_windows == 0


def test_constant_predictions_give_null_with_reason() -> None:
    sims = [make_sim(w, [0.0] * len(p)) for w, p in PREDICTIONS.items()]
    scores = by_kind(score_explanation(EXPLANATION, SIMULATOR, UNIT, sims, CFG))
    for kind in ("corr_top_random", "corr_random"):
        assert scores[kind].value is None
        assert scores[kind].reason == "constant predictions"
        assert scores[kind].ci_low is None and scores[kind].ci_high is None
    assert scores["ev_calibrated"].reason == "constant calibration predictions"


def test_ood_scored_only_when_present_and_calibration_failures_noted() -> None:
    unit = make_unit(
        {
            Split.CALIBRATE: [[0.0, 1.0]],
            Split.SCORE_TOP: [[0.0, 3.0]],
            Split.SCORE_RANDOM: [[1.0, 0.0]],
            Split.SCORE_OOD: [[0.0, 2.0], [1.0, 1.0]],
        }
    )
    sims = [
        make_sim("calibrate-0", [], status="failed"),
        make_sim("score_top-0", [0.0, 9.0]),
        make_sim("score_random-0", [2.0, 0.0]),
        make_sim("score_ood-0", [0.0, 2.0]),
        make_sim("score_ood-1", [1.0, 0.0]),
    ]
    scores = by_kind(score_explanation(EXPLANATION, SIMULATOR, unit, sims, CFG))
    # OOD pooled true [0, 2, 1, 1] vs pred [0, 2, 1, 0]: means 1 and 0.75;
    # da = [-1, 1, 0, 0], dp = [-0.75, 1.25, 0.25, -0.75]: Σda·dp = 2, Σda² = 2,
    # Σdp² = 0.5625 + 1.5625 + 0.0625 + 0.5625 = 2.75 → r = 2 / √5.5.
    assert scores["corr_ood"].value == pytest.approx(2 / np.sqrt(5.5))
    assert scores["corr_ood"].n_windows == 2
    assert scores["ev_calibrated"].value is None
    assert scores["ev_calibrated"].reason == (
        "no calibration tokens; calibration: 1 of 1 windows missing (1 failed)"
    )


def test_scores_are_deterministic_for_a_seed() -> None:
    sims = [make_sim(w, p) for w, p in PREDICTIONS.items()]
    first = score_explanation(EXPLANATION, SIMULATOR, UNIT, sims, CFG, seed=3)
    assert first == score_explanation(EXPLANATION, SIMULATOR, UNIT, sims, CFG, seed=3)
    no_ci = score_explanation(EXPLANATION, SIMULATOR, UNIT, sims, ScoreConfig(bootstrap=0))
    assert all(s.ci_low is None and s.ci_high is None for s in no_ci)


def test_rejects_foreign_duplicate_or_misaligned_simulations() -> None:
    good = make_sim("score_top-0", [1.0, 3.0])
    with pytest.raises(ValueError, match="not"):
        foreign = good.model_copy(update={"simulator": "other/sim"})
        score_explanation(EXPLANATION, SIMULATOR, UNIT, [foreign], CFG)
    with pytest.raises(ValueError, match="two simulations"):
        score_explanation(EXPLANATION, SIMULATOR, UNIT, [good, good], CFG)
    with pytest.raises(ValueError, match="predictions for"):
        score_explanation(EXPLANATION, SIMULATOR, UNIT, [make_sim("score_top-0", [1.0])], CFG)


def test_validation_score_uses_only_validate_windows() -> None:
    sims = [make_sim(w, p) for w, p in PREDICTIONS.items()]
    # Validate window: true [0, 1] vs pred [0, 10] → r = 1.
    assert validation_score(UNIT, sims) == pytest.approx(1.0)
    assert validation_score(UNIT, [s for s in sims if s.window_id != "validate-0"]) is None
    failed = [make_sim("validate-0", [], status="failed")]
    assert validation_score(UNIT, failed) is None
