"""Score metrics over per-token true and simulated activations.

Inputs are *windows*: a sequence of per-window sequences of floats (true activations, or a
simulator's predictions), aligned window by window and token by token. Every metric pools the
tokens of all windows before computing anything, as OpenAI's
``aggregate_scored_sequence_simulations`` does ("not equivalent to averaging across sequences").

An undefined value is a ``MetricValue(None, reason)``, never NaN and never 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

Windows = Sequence[Sequence[float]]
"""Per-window sequences of per-token values."""


class MetricValue(NamedTuple):
    """A metric's value, or None with the reason it is undefined."""

    value: float | None
    reason: str | None = None


Metric = Callable[[Windows, Windows], MetricValue]
"""A metric over aligned (true, predicted) windows."""


def pool(true: Windows, pred: Windows) -> tuple[np.ndarray, np.ndarray]:
    """Flatten aligned windows into two float64 token vectors; raises on any misalignment."""
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true windows but {len(pred)} predicted windows")
    for i, (t, p) in enumerate(zip(true, pred, strict=True)):
        if len(t) != len(p):
            raise ValueError(f"window {i}: {len(t)} true values but {len(p)} predictions")
    if not true:
        return np.zeros(0), np.zeros(0)
    return (
        np.concatenate([np.asarray(t, dtype=np.float64) for t in true]),
        np.concatenate([np.asarray(p, dtype=np.float64) for p in pred]),
    )


def pearson(x: np.ndarray, y: np.ndarray) -> MetricValue:
    """Pearson r of two equal-length vectors, with the same undefined cases as ``pearson_pooled``.

    Constancy is tested exactly (min == max) before centring: the mean of n copies of a value is
    not always that value in floating point, so centred sums alone would turn a constant vector
    into noise and return a meaningless r.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two 1-d vectors of one length, got {x.shape} and {y.shape}")
    if x.size == 0:
        return MetricValue(None, "no tokens")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return MetricValue(None, "non-finite values")
    if x.min() == x.max():
        return MetricValue(None, "constant activations")
    if y.min() == y.max():
        return MetricValue(None, "constant predictions")
    dx = x - x.mean()
    dy = y - y.mean()
    r = float(np.dot(dx, dy) / np.sqrt(np.dot(dx, dx) * np.dot(dy, dy)))
    return MetricValue(min(1.0, max(-1.0, r)))


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given the average of the ranks they span (scipy's ``method="average"``)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Start index of each run of equal values; a run spanning positions i..j gets (i+j)/2 + 1.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size] - 1
    run_rank = (starts + ends) / 2.0 + 1.0
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts + 1)
    return ranks


def pearson_pooled(true: Windows, pred: Windows) -> MetricValue:
    """Pearson r pooled over all tokens of all windows: OpenAI's correlation score.

    Equals ``np.corrcoef(np.concatenate(true), np.concatenate(pred))[0, 1]`` wherever that is
    finite. Undefined (None) when there are no tokens, when either side is constant (OpenAI gets
    NaN there), or when a value is not finite. The first argument is the true activations, so a
    constant first argument is reported as "constant activations".
    """
    return pearson(*pool(true, pred))


def explained_variance_calibrated(
    cal_true: Windows, cal_pred: Windows, eval_true: Windows, eval_pred: Windows
) -> MetricValue:
    """Out-of-sample R² of linearly calibrated predictions.

    Definition: fit ``true ≈ a * pred + b`` by ordinary least squares on the pooled calibration
    tokens (OpenAI's ``LinearCalibratedNeuronSimulator``), then on the pooled evaluation tokens
    return ``1 - Σ(t - (a p + b))² / Σ(t - mean(t))²``, the centred coefficient of determination
    (sklearn's ``r2_score``), not OpenAI's uncentred ``rsquared_score``. It is at most 1 and may
    be negative (the calibrated predictions do worse than the evaluation mean). When the
    calibration and evaluation tokens are the same it equals Pearson r squared.

    Undefined: no calibration or evaluation tokens, constant calibration predictions (slope not
    identified), constant evaluation activations (no variance to explain), non-finite values.
    """
    ct, cp = pool(cal_true, cal_pred)
    et, ep = pool(eval_true, eval_pred)
    if ct.size == 0:
        return MetricValue(None, "no calibration tokens")
    if et.size == 0:
        return MetricValue(None, "no tokens")
    if not all(np.isfinite(v).all() for v in (ct, cp, et, ep)):
        return MetricValue(None, "non-finite values")
    if cp.min() == cp.max():
        return MetricValue(None, "constant calibration predictions")
    if et.min() == et.max():
        return MetricValue(None, "constant activations")
    dp = cp - cp.mean()
    slope = float(np.dot(dp, ct - ct.mean()) / np.dot(dp, dp))
    intercept = float(ct.mean() - slope * cp.mean())
    residual = et - (slope * ep + intercept)
    centred = et - et.mean()
    return MetricValue(float(1.0 - np.dot(residual, residual) / np.dot(centred, centred)))


def bootstrap_ci(
    true_windows: Windows,
    pred_windows: Windows,
    metric: Metric,
    n_resamples: int,
    level: float,
    seed: int,
    min_defined: float = 0.5,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of ``metric``, resampling whole windows with replacement.

    Windows, not tokens, are the unit of resampling because tokens within a window are strongly
    dependent. Resamples where the metric is undefined are skipped; if fewer than ``min_defined``
    of the resamples are defined (or there are fewer than 2 windows, or ``n_resamples`` is 0) the
    interval is (None, None). Deterministic given ``seed``; the resampled window indices depend
    only on ``seed``, the number of windows and ``n_resamples``, so two metrics bootstrapped with
    one seed see the same resamples.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = len(true_windows)
    if len(pred_windows) != n:
        raise ValueError(f"{n} true windows but {len(pred_windows)} predicted windows")
    if n < 2 or n_resamples <= 0:
        return None, None
    true_arrays = [np.asarray(t, dtype=np.float64) for t in true_windows]
    pred_arrays = [np.asarray(p, dtype=np.float64) for p in pred_windows]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(n_resamples, n))
    values = []
    for row in picks:
        v = metric([true_arrays[i] for i in row], [pred_arrays[i] for i in row]).value
        if v is not None:
            values.append(v)
    if not values or len(values) < min_defined * n_resamples:
        return None, None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(np.asarray(values), [alpha, 1.0 - alpha])
    return float(low), float(high)
