"""Detection from stored simulations: does the simulator tell windows where the unit fires from
windows where it does not?

Each window is one example. Its *truth* is whether the unit fires there: the window's largest true
activation is at least ``DETECTION_FRACTION`` (0.3) of the unit's largest activation over the whole
corpus (``UnitStats.max``). A fraction of the unit's own maximum works the same for sparse SAE
features and for MLP neurons, whose activations are rarely exactly 0 (SiLU, GELU), so "above 0"
would call almost every window firing. 0.3 of the maximum is 3 on the simulators' 0-10 scale,
where OpenAI's prompts scale the maximum to 10. Its *score* is the window's largest simulated
activation. No new LLM call is needed.

- ``detection_auroc``: probability that a firing window scores higher than a silent one, ties
  counting half (Mann-Whitney U / (n_pos · n_neg)); equals sklearn's ``roc_auc_score``.
- ``detection_bacc``: balanced accuracy, (TPR + TNR) / 2, of "fires when score > cut", with the
  cut chosen on the calibration windows (``choose_cut``); equals sklearn's
  ``balanced_accuracy_score``.

Both are undefined (None with a reason) when the scored windows hold only one class. delphi caps
balanced accuracy at 0.5 there and sklearn's AUROC raises; we store NULL, because a score with
nothing to separate says nothing about the explanation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuroscribe.score.metrics import Metric, MetricValue, Windows, rankdata

DETECTION_FRACTION = 0.3
"""A window counts as firing when its max true activation is at least this share of the unit's
max activation over the corpus."""

SCALE_MIDPOINT = 5.0
"""Midpoint of the simulators' 0-10 scale: the fallback cut, and the tie-break between cuts."""


def window_max(windows: Windows) -> np.ndarray:
    """Largest value of each window (0.0 for an empty window)."""
    return np.array([float(np.max(w)) if len(w) else 0.0 for w in windows], dtype=np.float64)


def one_class(labels: np.ndarray, examples: str = "windows") -> MetricValue | None:
    """Why a metric over these labels (of ``examples``) is undefined (none, or one class only),
    or None."""
    if labels.size == 0:
        return MetricValue(None, f"no {examples}")
    if labels.all():
        return MetricValue(None, f"only firing {examples}")
    if not labels.any():
        return MetricValue(None, f"no firing {examples}")
    return None


def auroc(labels: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> MetricValue:
    """Area under the ROC curve from ranks: (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg),
    with R_pos the sum of the positives' average ranks (ties count half)."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"need labels and scores of one length, got {y.shape} and {s.shape}")
    undefined = one_class(y)
    if undefined:
        return undefined
    if not np.isfinite(s).all():
        return MetricValue(None, "non-finite values")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    rank_sum = float(rankdata(s)[y].sum())
    return MetricValue((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def balanced_accuracy(
    labels: Sequence[bool] | np.ndarray, predicted: Sequence[bool] | np.ndarray
) -> MetricValue:
    """(true positive rate + true negative rate) / 2; None when one class is absent."""
    y = np.asarray(labels, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"need labels and predictions of one length, got {y.shape} and {p.shape}")
    undefined = one_class(y)
    if undefined:
        return undefined
    return MetricValue(float((p[y].mean() + (~p[~y]).mean()) / 2.0))


def choose_cut(
    labels: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> tuple[float, str | None]:
    """The cut (predict "fires" when score > cut) with the best balanced accuracy on these
    (calibration) windows, and a note when it falls back to ``SCALE_MIDPOINT``.

    Candidates are the midpoints between consecutive distinct scores; among equally good ones the
    one closest to the scale midpoint wins. Fallback to the midpoint when there are no windows,
    when they hold one class only, or when every score is the same (nothing to choose between).
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.size == 0:
        return SCALE_MIDPOINT, "cut at scale midpoint: no calibration windows"
    if one_class(y) is not None:
        return SCALE_MIDPOINT, "cut at scale midpoint: calibration windows hold one class"
    distinct = np.unique(s)
    if distinct.size < 2:
        return SCALE_MIDPOINT, "cut at scale midpoint: constant calibration predictions"
    cuts = (distinct[1:] + distinct[:-1]) / 2.0
    accuracy = np.array([balanced_accuracy(y, s > c).value for c in cuts])
    best = cuts[accuracy == accuracy.max()]
    return float(best[np.argmin(np.abs(best - SCALE_MIDPOINT))]), None


def detection_metrics(fire_at: float, cut: float) -> dict[str, Metric]:
    """The two detection metrics over (true, predicted) windows, for a unit whose windows fire at
    max true activation >= ``fire_at``, and a decision cut ``cut`` on the max prediction."""

    def labels(true: Windows) -> np.ndarray:
        return window_max(true) >= fire_at

    def bacc(true: Windows, pred: Windows) -> MetricValue:
        return balanced_accuracy(labels(true), window_max(pred) > cut)

    def area(true: Windows, pred: Windows) -> MetricValue:
        return auroc(labels(true), window_max(pred))

    return {"detection_bacc": bacc, "detection_auroc": area}
