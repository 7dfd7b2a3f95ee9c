"""Agreement statistics against hand-worked values, the krippendorff package and scipy."""

from __future__ import annotations

import warnings

import krippendorff
import numpy as np
import pytest
from scipy import stats

from neuroscribe.agree import krippendorff_alpha_interval, rankdata, spearman
from neuroscribe.agree.metrics import pairable_count
from neuroscribe.score import MetricValue

nan = float("nan")


# --- Krippendorff's alpha (interval) ------------------------------------------------------------


def test_alpha_by_hand() -> None:
    # Raters × items; item 4 has one value and is dropped. Pairable values: n = 6.
    # Item sums of squares: SS_1 = 0, SS_2 = 0, SS_3 = (3-3.5)² + (4-3.5)² = 0.5 (m_u = 2 each).
    # D_o = (1/n) Σ 2·m_u·SS_u/(m_u-1) = (1/6)·(2·2·0.5) = 1/3.
    # Pooled [1, 2, 3, 1, 2, 4]: Σv² = 35, mean 13/6, SS = 35 - 6·(13/6)² = 41/6.
    # D_e = 2·SS/(n-1) = 41/15.  alpha = 1 - (1/3)/(41/15) = 1 - 5/41 = 36/41.
    values = np.array([[1.0, 2.0, 3.0, nan], [1.0, 2.0, 4.0, 5.0]])
    got = krippendorff_alpha_interval(values)
    assert got.value == pytest.approx(36 / 41) and got.reason is None
    assert krippendorff.alpha(reliability_data=values, level_of_measurement="interval") == (
        pytest.approx(36 / 41)
    )
    assert pairable_count(values) == 3


def test_alpha_three_raters_by_hand() -> None:
    # Items: {0, 0, 3} (m=3) and {1, 2} (m=2); n = 5.
    # SS_1 = 1 + 1 + 4 = 6 (mean 1); SS_2 = 0.5.
    # D_o = (1/5)·(2·3·6/2 + 2·2·0.5/1) = (1/5)·(18 + 2) = 4.
    # Pooled [0, 0, 3, 1, 2]: mean 1.2, SS = Σv² - 5·1.44 = 14 - 7.2 = 6.8; D_e = 2·6.8/4 = 3.4.
    # alpha = 1 - 4/3.4 = -0.6/3.4 = -3/17 (worse than chance).
    values = np.array([[0.0, 1.0], [0.0, nan], [3.0, 2.0]])
    assert krippendorff_alpha_interval(values).value == pytest.approx(-3 / 17)


def test_alpha_matches_krippendorff_package_on_random_inputs() -> None:
    rng = np.random.default_rng(0)
    n_checked = n_undefined = 0
    for _ in range(60):
        n_raters, n_items = int(rng.integers(2, 6)), int(rng.integers(2, 15))
        truth = rng.normal(size=n_items)
        values = truth + rng.normal(scale=rng.uniform(0.1, 2.0), size=(n_raters, n_items))
        if rng.random() < 0.5:
            values = np.round(values * 2) / 2  # ties, as discrete simulator outputs give
        values[rng.random(values.shape) < 0.25] = nan
        if pairable_count(values) == 0:
            continue
        got = krippendorff_alpha_interval(values)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = krippendorff.alpha(reliability_data=values, level_of_measurement="interval")
        if got.value is None:
            # Every pairable value equal: the package divides 0 by 0 (or raises, when no
            # value differs at all); we store None with a reason.
            assert got.reason == "no variation" and np.isnan(expected)
            n_undefined += 1
        else:
            assert abs(got.value - expected) < 1e-9
            n_checked += 1
    assert n_checked > 30 and n_undefined >= 1


def test_alpha_perfect_agreement_is_one_and_scale_free() -> None:
    values = np.array([[0.0, 3.0, 7.0, nan], [0.0, 3.0, 7.0, 1.0]])
    assert krippendorff_alpha_interval(values).value == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    noisy = rng.normal(size=(3, 20))
    base = krippendorff_alpha_interval(noisy).value
    assert krippendorff_alpha_interval(noisy / 10 + 4).value == pytest.approx(base)


def test_alpha_undefined_cases() -> None:
    assert krippendorff_alpha_interval(np.full((3, 4), 2.5)) == MetricValue(None, "no variation")
    # The value that differs sits on an item with one rating, so it is not pairable.
    # (The krippendorff package raises on the first and returns NaN on the second.)
    assert krippendorff_alpha_interval([[1.0, 1.0, 9.0], [1.0, 1.0, nan]]).reason == "no variation"
    assert krippendorff_alpha_interval([[1.0, nan], [nan, 2.0]]) == MetricValue(
        None, "no pairable values"
    )
    assert krippendorff_alpha_interval(np.zeros((2, 0))).reason == "no pairable values"
    with pytest.raises(ValueError):
        krippendorff_alpha_interval([1.0, 2.0])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        krippendorff_alpha_interval([[1.0, np.inf], [1.0, 2.0]])


def test_alpha_memory_is_linear_in_values() -> None:
    # 3 simulators × 20,000 continuous predictions: the krippendorff package would build a
    # 60,000² coincidence matrix (~29 GB); the closed form needs a few arrays of 60,000.
    rng = np.random.default_rng(2)
    truth = rng.uniform(0, 1, size=20_000)
    values = truth + rng.normal(scale=0.1, size=(3, 20_000))
    value = krippendorff_alpha_interval(values).value
    assert value is not None and 0.85 < value < 0.95  # var(truth)/(var+noise) = 0.0833/0.0933


# --- Spearman ----------------------------------------------------------------------------------


def test_rankdata_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.integers(0, 5, size=int(rng.integers(1, 30))).astype(float)
        np.testing.assert_array_equal(rankdata(x), stats.rankdata(x, method="average"))
    np.testing.assert_array_equal(rankdata(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2])


def test_spearman_by_hand_with_ties() -> None:
    # x = [1, 2, 2, 3] → ranks [1, 2.5, 2.5, 4]; y = [1, 3, 2, 4] → ranks [1, 3, 2, 4].
    # Both rank means 2.5: dx = [-1.5, 0, 0, 1.5], dy = [-1.5, 0.5, -0.5, 1.5].
    # Σdx·dy = 4.5, Σdx² = 4.5, Σdy² = 5 → rho = 4.5/√22.5 = √0.9.
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]).value == pytest.approx(np.sqrt(0.9))


def test_spearman_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    for _ in range(40):
        n = int(rng.integers(3, 40))
        x = rng.integers(0, 6, size=n).astype(float)
        y = x + rng.integers(-3, 4, size=n)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        expected = stats.spearmanr(x, y).statistic
        got = spearman(x, y).value
        assert got is not None and abs(got - expected) < 1e-9


def test_spearman_drops_nan_pairs_and_undefined_cases() -> None:
    assert spearman([1, 2, nan, 3], [1, 3, 9, 2]).value == pytest.approx(0.5)
    assert spearman([1.0], [2.0]) == MetricValue(None, "too few pairs")
    assert spearman([], []) == MetricValue(None, "too few pairs")
    assert spearman([1, 1, 1], [1, 2, 3]) == MetricValue(None, "constant x")
    assert spearman([1, 2, 3], [4, 4, 4]) == MetricValue(None, "constant y")
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])
