"""Precision-based scores: average precision (area under the precision-recall curve) over tokens
and over windows, and F1 of "fires" at the calibrated cut.

NeuronEval (Oikarinen et al., ICML 2025) finds that AUPRC and F1 pass both of its metric sanity
tests (an explanation missing part of the concept, or with an unrelated concept added, must
score lower), where AUROC and correlation on top-and-random samples fail one. Unlike AUROC they
do not reward the many easy negatives of a sparse unit: a false positive costs precision.

The labels are the detection kinds' (``neuroscribe.score.detection``): a token or a window
*fires* when its (max) true activation is at least ``DETECTION_FRACTION`` of the unit's corpus
max. Both metrics are NULL with a reason when the scored examples hold one class only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuroscribe.score.detection import one_class, window_max
from neuroscribe.score.metrics import Metric, MetricValue, Windows, pool


def _checked(labels: Sequence[bool] | np.ndarray, values: Sequence[float] | np.ndarray,
             what: str) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=bool)
    v = np.asarray(values)
    if y.shape != v.shape or y.ndim != 1:
        raise ValueError(f"need labels and {what} of one length, got {y.shape} and {v.shape}")
    return y, v


def average_precision(
    labels: Sequence[bool] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    examples: str = "windows",
) -> MetricValue:
    """Σ_k (R_k − R_{k−1}) P_k over the distinct scores taken as thresholds from the highest
    down (all examples scoring at least the threshold predicted positive; tied scores enter
    together): sklearn's ``average_precision_score``, without interpolation. Predictions that
    are all equal give the share of positives."""
    y, s = _checked(labels, scores, "scores")
    undefined = one_class(y, examples)
    if undefined:
        return undefined
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        return MetricValue(None, "non-finite values")
    order = np.argsort(-s, kind="mergesort")
    ranked, hits = s[order], y[order]
    last = np.r_[np.flatnonzero(ranked[1:] != ranked[:-1]), ranked.size - 1]  # end of each tie
    true_pos = np.cumsum(hits)[last]
    precision = true_pos / (last + 1.0)
    recall = true_pos / float(y.sum())
    return MetricValue(float(np.sum(np.diff(np.r_[0.0, recall]) * precision)))


def f1(labels: Sequence[bool] | np.ndarray, predicted: Sequence[bool] | np.ndarray) -> MetricValue:
    """2 TP / (2 TP + FP + FN) (sklearn's ``f1_score``); None when one class is absent, as for
    the detection kinds (with no firing example there is nothing to find)."""
    y, p = _checked(labels, predicted, "predictions")
    p = p.astype(bool)
    undefined = one_class(y)
    if undefined:
        return undefined
    tp = float(np.sum(y & p))
    return MetricValue(2.0 * tp / (2.0 * tp + float(np.sum(~y & p)) + float(np.sum(y & ~p))))


def auprc_tokens(fire_at: float) -> Metric:
    """Average precision of the simulated activation of every pooled token against "the token's
    true activation is at least ``fire_at``"."""

    def metric(true: Windows, pred: Windows) -> MetricValue:
        t, p = pool(true, pred)
        return average_precision(t >= fire_at, p, "tokens")

    return metric


def auprc_windows(fire_at: float) -> Metric:
    """The same over windows: max simulated activation against "max true activation is at least
    ``fire_at``"."""

    def metric(true: Windows, pred: Windows) -> MetricValue:
        return average_precision(window_max(true) >= fire_at, window_max(pred))

    return metric


def f1_at_cut(fire_at: float, cut: float) -> Metric:
    """F1 over windows of "fires when max simulated activation > ``cut``"."""

    def metric(true: Windows, pred: Windows) -> MetricValue:
        return f1(window_max(true) >= fire_at, window_max(pred) > cut)

    return metric
