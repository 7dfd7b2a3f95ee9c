"""Score metrics against hand-worked values, scipy, sklearn and OpenAI's own scoring code."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from neuroscribe.score import (
    MetricValue,
    bootstrap_ci,
    explained_variance_calibrated,
    pearson_pooled,
)
from neuroscribe.score.metrics import Metric, Windows


def openai_reference(true: list[list[float]], pred: list[list[float]]) -> float:
    """OpenAI's correlation_score on flattened sequences, written out."""
    return float(np.corrcoef(np.concatenate(true), np.concatenate(pred))[0, 1])


def random_windows(
    rng: np.random.Generator, n_windows: int, noise: float = 1.0
) -> tuple[list[list[float]], list[list[float]]]:
    lengths = rng.integers(1, 12, size=n_windows)
    true = [rng.gamma(1.0, 2.0, size=n).tolist() for n in lengths]
    pred = [(np.asarray(t) * 3 + rng.normal(0, noise, size=len(t))).tolist() for t in true]
    return true, pred


# --- pearson_pooled ---------------------------------------------------------------------------


def test_pearson_pooled_by_hand() -> None:
    # Pooled a = [1, 2, 3], p = [1, 3, 2]; means 2 and 2.
    # da = [-1, 0, 1], dp = [-1, 1, 0]: Σda·dp = 1, Σda² = 2, Σdp² = 2 → r = 1 / √4 = 0.5.
    # (Averaging per window instead would give window 1: r = 1, window 2: undefined.)
    got = pearson_pooled([[1, 2], [3]], [[1, 3], [2]])
    assert got.value == pytest.approx(0.5) and got.reason is None


def test_pearson_pooled_matches_scipy_and_openai_formula() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        true, pred = random_windows(rng, int(rng.integers(2, 8)), noise=float(rng.uniform(0, 20)))
        got = pearson_pooled(true, pred).value
        assert got is not None
        assert abs(got - openai_reference(true, pred)) < 1e-9
        scipy_r = stats.pearsonr(np.concatenate(true), np.concatenate(pred)).statistic
        assert abs(got - scipy_r) < 1e-9


def test_pearson_pooled_matches_neuron_explainer_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenAI's own package refuses to import without an API key; nothing is sent.
    monkeypatch.setenv("OPENAI_API_KEY", "placeholder")
    scoring = pytest.importorskip("neuron_explainer.explanations.scoring")
    from neuron_explainer.explanations.explanations import (
        ActivationScale,
        ScoredSequenceSimulation,
        SequenceSimulation,
    )

    rng = np.random.default_rng(2)
    for _ in range(10):
        true, pred = random_windows(rng, 6, noise=5.0)
        sequences = [
            ScoredSequenceSimulation(
                simulation=SequenceSimulation(
                    tokens=["x"] * len(t),
                    expected_activations=p,
                    activation_scale=ActivationScale.SIMULATED_NORMALIZED_ACTIVATIONS,
                    distribution_values=[],
                    distribution_probabilities=[],
                ),
                true_activations=t,
                ev_correlation_score=0.0,
            )
            for t, p in zip(true, pred, strict=True)
        ]
        expected = scoring.aggregate_scored_sequence_simulations(sequences).ev_correlation_score
        got = pearson_pooled(true, pred).value
        assert got is not None and abs(got - expected) < 1e-9


def test_pearson_pooled_undefined_cases() -> None:
    assert pearson_pooled([], []) == MetricValue(None, "no tokens")
    assert pearson_pooled([[]], [[]]) == MetricValue(None, "no tokens")
    assert pearson_pooled([[1.0, 2.0]], [[0.0, 0.0]]) == MetricValue(None, "constant predictions")
    assert pearson_pooled([[0.0], [0.0]], [[1.0], [2.0]]) == MetricValue(
        None, "constant activations"
    )
    assert pearson_pooled([[5.0]], [[3.0]]).value is None  # one token is constant
    # 0.1 repeated: its float mean is not exactly 0.1, yet it is constant, not "noise".
    assert pearson_pooled([[1, 2, 3] * 3], [[0.1] * 9]).reason == "constant predictions"
    assert pearson_pooled([[1.0, np.nan]], [[1.0, 2.0]]).reason == "non-finite values"


def test_pearson_pooled_rejects_misaligned_windows() -> None:
    with pytest.raises(ValueError):
        pearson_pooled([[1, 2]], [[1, 2, 3]])
    with pytest.raises(ValueError):
        pearson_pooled([[1, 2]], [[1, 2], [3]])


# --- explained_variance_calibrated --------------------------------------------------------------


def test_explained_variance_by_hand() -> None:
    # Calibration: true [0, 2, 4] vs pred [0, 1, 2] → slope 2, intercept 0.
    # Evaluation: pred [1, 2, 3] → calibrated [2, 4, 6]; true [0, 4, 8].
    # SSE = (0-2)² + 0 + (8-6)² = 8; mean true 4, SST = 16 + 0 + 16 = 32 → EV = 1 - 8/32 = 0.75.
    got = explained_variance_calibrated([[0, 2], [4]], [[0, 1], [2]], [[0, 4, 8]], [[1, 2, 3]])
    assert got.value == pytest.approx(0.75) and got.reason is None


def test_explained_variance_can_be_negative() -> None:
    # Slope 2, intercept 0 as above; eval true [0, 1], calibrated pred [4, 0]:
    # SSE = 16 + 1 = 17, SST = 0.25 + 0.25 = 0.5 → 1 - 34 = -33.
    got = explained_variance_calibrated([[0, 2, 4]], [[0, 1, 2]], [[0, 1]], [[2, 0]])
    assert got.value == pytest.approx(-33.0)


def test_explained_variance_equals_r_squared_in_sample() -> None:
    rng = np.random.default_rng(3)
    true, pred = random_windows(rng, 5, noise=4.0)
    r = pearson_pooled(true, pred).value
    ev = explained_variance_calibrated(true, pred, true, pred).value
    assert r is not None and ev is not None and abs(ev - r * r) < 1e-9


def test_explained_variance_matches_openai_calibration_and_sklearn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "placeholder")
    calibrated = pytest.importorskip("neuron_explainer.explanations.calibrated_simulator")
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    for _ in range(10):
        cal_true, cal_pred = random_windows(rng, 4, noise=3.0)
        ev_true, ev_pred = random_windows(rng, 6, noise=3.0)
        # OpenAI's LinearCalibratedNeuronSimulator fits sklearn LinearRegression true ~ pred.
        sim = calibrated.LinearCalibratedNeuronSimulator(None)
        sim._calibrate_from_flattened_activations(
            np.concatenate(cal_true), np.concatenate(cal_pred)
        )
        mapped = sim.apply_calibration(np.concatenate(ev_pred).tolist())
        expected = metrics.r2_score(np.concatenate(ev_true), mapped)
        got = explained_variance_calibrated(cal_true, cal_pred, ev_true, ev_pred).value
        assert got is not None and abs(got - expected) < 1e-9


def test_explained_variance_undefined_cases() -> None:
    ok = [[0.0, 1.0, 2.0]]
    assert explained_variance_calibrated([], [], ok, ok).reason == "no calibration tokens"
    assert explained_variance_calibrated(ok, ok, [], []).reason == "no tokens"
    assert (
        explained_variance_calibrated(ok, [[3.0, 3.0, 3.0]], ok, ok).reason
        == "constant calibration predictions"
    )
    assert explained_variance_calibrated(ok, ok, [[2.0, 2.0]], [[0.0, 1.0]]).reason == (
        "constant activations"
    )
    # Constant evaluation predictions are defined: calibrated to a constant, EV ≤ 0.
    constant_pred = explained_variance_calibrated(ok, ok, ok, [[1.0, 1.0, 1.0]]).value
    assert constant_pred == pytest.approx(0.0)


# --- bootstrap_ci --------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_and_contains_estimate() -> None:
    rng = np.random.default_rng(5)
    true, pred = random_windows(rng, 30, noise=6.0)
    point = pearson_pooled(true, pred).value
    first = bootstrap_ci(true, pred, pearson_pooled, 300, 0.95, seed=7)
    again = bootstrap_ci(true, pred, pearson_pooled, 300, 0.95, seed=7)
    other = bootstrap_ci(true, pred, pearson_pooled, 300, 0.95, seed=8)
    assert first == again
    assert first != other
    low, high = first
    assert low is not None and high is not None and point is not None
    assert -1.0 <= low < point < high <= 1.0
    narrow = bootstrap_ci(true, pred, pearson_pooled, 300, 0.5, seed=7)
    assert narrow[0] is not None and narrow[1] is not None
    assert low <= narrow[0] < narrow[1] <= high


def test_bootstrap_matches_hand_resampling() -> None:
    # The same resampling written out: seed → window indices → pooled metric → percentiles.
    rng = np.random.default_rng(6)
    true, pred = random_windows(rng, 8, noise=4.0)
    picks = np.random.default_rng(11).integers(0, 8, size=(50, 8))
    values = []
    for row in picks:
        r = pearson_pooled([true[i] for i in row], [pred[i] for i in row]).value
        if r is not None:
            values.append(r)
    expected = tuple(np.quantile(values, [0.05, 0.95]))
    assert bootstrap_ci(true, pred, pearson_pooled, 50, 0.9, seed=11) == pytest.approx(expected)


def test_bootstrap_skips_undefined_resamples() -> None:
    # Two of three windows have constant true activations; resamples drawing only those are
    # undefined (probability (2/3)^3 ≈ 0.30 each) and skipped.
    true = [[0.0, 0.0], [0.0, 0.0], [0.0, 5.0]]
    pred = [[1.0, 2.0], [0.5, 0.0], [0.0, 4.0]]
    low, high = bootstrap_ci(true, pred, pearson_pooled, 200, 0.9, seed=0)
    assert low is not None and high is not None


def test_bootstrap_needs_half_the_resamples_defined() -> None:
    # A metric defined only when the first drawn window is one of the last k of ten windows:
    # defined in about k/10 of the resamples.
    windows = [[float(i)] for i in range(10)]

    def defined_if_first_at_least(threshold: int) -> Metric:
        def metric(t: Windows, p: Windows) -> MetricValue:
            return MetricValue(1.0) if t[0][0] >= threshold else MetricValue(None, "undefined")

        return metric

    mostly_defined = defined_if_first_at_least(3)  # ~70% defined
    mostly_undefined = defined_if_first_at_least(6)  # ~40% defined
    assert bootstrap_ci(windows, windows, mostly_defined, 200, 0.9, 0) == (1.0, 1.0)
    assert bootstrap_ci(windows, windows, mostly_undefined, 200, 0.9, 0) == (None, None)


def test_bootstrap_degenerate_inputs() -> None:
    assert bootstrap_ci([[1.0, 2.0]], [[1.0, 3.0]], pearson_pooled, 100, 0.95, 0) == (None, None)
    assert bootstrap_ci([[1, 2], [3]], [[1, 3], [2]], pearson_pooled, 0, 0.95, 0) == (None, None)
    with pytest.raises(ValueError):
        bootstrap_ci([[1, 2], [3]], [[1, 3], [2]], pearson_pooled, 10, 1.5, 0)
