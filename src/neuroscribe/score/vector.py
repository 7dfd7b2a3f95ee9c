"""Score kinds vectorised over (explanation, simulator) pairs and bootstrap resamples at once.

Each *family* computes one kind of metric for P pairs that share a window layout (the same
number of windows, of the same lengths), for every row of a matrix of window *counts*
``C[r, i]`` (how many times window i is drawn in resample r; row 0 is all ones: the value
itself). A resample that draws window i twice pools its tokens twice, exactly as
``metrics.bootstrap_ci`` does with the windows listed twice, so the values equal those of the
scalar metrics in ``metrics``, ``detection`` and ``precision`` (to rounding; the tests check
both against each other) and so do their undefined cases and reasons.

A family reads ``true`` and ``pred`` as ``[P, L]`` token arrays (windows side by side; window i
starts at ``starts[i]``), per-pair parameters ``params[P, k]`` (a firing threshold, a cut, a
calibration line) and the counts ``C[R, n]``, and returns the values ``[P, R]`` and reason codes
``[P, R]`` (0: defined; else an index into its ``reasons``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from neuroscribe.score.metrics import pool

Family = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                  tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Vector:
    """How a kind's metric runs vectorised for one pair: its family and the pair's parameters
    (``ScoreKind.prepare`` returns it beside the scalar metric)."""

    family: str
    params: tuple[float, ...] = ()


def counts_matrix(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """``[1 + n_resamples, n]``: all ones, then the draws of ``metrics.bootstrap_ci`` (the same
    generator calls, so the same resamples) as counts per window."""
    ones = np.ones((1, n))
    if n < 2 or n_resamples <= 0:
        return ones
    picks = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    counts = np.zeros((n_resamples, n))
    np.add.at(counts, (np.arange(n_resamples)[:, None], picks), 1.0)
    return np.vstack([ones, counts])


def interval(values: np.ndarray, defined: np.ndarray, level: float,
             min_defined: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per row of ``values [P, R]`` over its defined entries (numpy's
    ``quantile``, linear method); NaN where fewer than ``min_defined`` of the row are defined."""
    n_rows, n_cols = values.shape
    m = defined.sum(axis=1)
    ordered = np.sort(np.where(defined, values, np.inf), axis=1)  # undefined ones last
    ok = (m > 0) & (m >= min_defined * n_cols)
    alpha = (1.0 - level) / 2.0
    out = []
    for q in (alpha, 1.0 - alpha):
        virtual = q * np.maximum(m - 1, 0)
        lo = np.floor(virtual).astype(int)
        hi = np.minimum(lo + 1, np.maximum(m - 1, 0))
        t = virtual - lo
        a = ordered[np.arange(n_rows), lo]
        b = ordered[np.arange(n_rows), np.where(ok, hi, lo)]
        with np.errstate(invalid="ignore"):  # inf - inf in rows left undefined
            diff = np.where(ok, b - a, 0.0)
        lerp = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)  # numpy's _lerp
        out.append(np.where(ok, lerp, np.nan))
    return out[0], out[1]


def _segments(starts: np.ndarray, length: int) -> np.ndarray:
    return np.diff(np.r_[starts, length]).astype(np.float64)


def _picked_min(per_window: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Smallest per-window value among the windows each resample draws: ``[P, R]``."""
    return np.where(c[None, :, :] > 0, per_window[:, None, :], np.inf).min(axis=2)


def _picked_any(flags: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (flags.astype(np.float64) @ c.T) > 0


def _moments(x: np.ndarray, starts: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
    """Resampled sums of ``x`` and ``x**2`` after shifting by each pair's mean (keeps the
    one-pass variance accurate), the shift, and the constancy test (min == max)."""
    shift = x.mean(axis=1, keepdims=True)
    s = x - shift
    sums = np.add.reduceat(s, starts, axis=1) @ c.T
    squares = np.add.reduceat(s * s, starts, axis=1) @ c.T
    low = _picked_min(np.minimum.reduceat(x, starts, axis=1), c)
    high = -_picked_min(-np.maximum.reduceat(x, starts, axis=1), c)
    return s, sums, squares, low == high


def _finite(*arrays: np.ndarray, starts: np.ndarray) -> np.ndarray:
    ok = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    return np.logical_and.reduceat(ok, starts, axis=1)


PEARSON_REASONS = ("", "no tokens", "non-finite values", "constant activations",
                   "constant predictions")


def pearson(true: np.ndarray, pred: np.ndarray, starts: np.ndarray, params: np.ndarray,
            c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``metrics.pearson_pooled``."""
    n_tok = c @ _segments(starts, true.shape[1])
    bad = _picked_any(~_finite(true, pred, starts=starts), c)
    with np.errstate(all="ignore"):
        ts, st, stt, t_const = _moments(true, starts, c)
        ps, sp, spp, p_const = _moments(pred, starts, c)
        stp = np.add.reduceat(ts * ps, starts, axis=1) @ c.T
        cov = stp - st * sp / n_tok
        r = cov / np.sqrt((stt - st * st / n_tok) * (spp - sp * sp / n_tok))
    code = _first(n_tok[None, :] == 0, bad, t_const, p_const)
    return np.clip(r, -1.0, 1.0), code


EV_REASONS = ("", "no calibration tokens", "no tokens", "non-finite values",
              "constant calibration predictions", "constant activations")
CALIBRATION_OK, NO_CALIBRATION_TOKENS, CALIBRATION_NOT_FINITE, CALIBRATION_CONSTANT = range(4)
"""The state of a pair's calibration (``params[:, 2]`` of ``explained_variance``)."""


def calibration_params(cal_true: Sequence[Sequence[float]],
                       cal_pred: Sequence[Sequence[float]]) -> tuple[float, float, float]:
    """(slope, intercept, calibration state) of the least-squares line ``true ~ a pred + b``
    on the calibration tokens, as ``metrics.explained_variance_calibrated`` fits it."""
    ct, cp = pool(cal_true, cal_pred)
    if ct.size == 0:
        return 0.0, 0.0, NO_CALIBRATION_TOKENS
    if not (np.isfinite(ct).all() and np.isfinite(cp).all()):
        return 0.0, 0.0, CALIBRATION_NOT_FINITE
    if cp.min() == cp.max():
        return 0.0, 0.0, CALIBRATION_CONSTANT
    dp = cp - cp.mean()
    slope = float(np.dot(dp, ct - ct.mean()) / np.dot(dp, dp))
    return slope, float(ct.mean() - slope * cp.mean()), CALIBRATION_OK


def explained_variance(true: np.ndarray, pred: np.ndarray, starts: np.ndarray,
                       params: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``metrics.explained_variance_calibrated`` with the pair's calibration line
    ``(slope, intercept, calibration state)`` in ``params``."""
    slope, intercept, state = params[:, :1], params[:, 1:2], params[:, 2:3]
    n_tok = c @ _segments(starts, true.shape[1])
    bad = _picked_any(~_finite(true, pred, starts=starts), c)
    with np.errstate(all="ignore"):
        residual = true - (slope * pred + intercept)
        sse = np.add.reduceat(residual * residual, starts, axis=1) @ c.T
        _, st, stt, t_const = _moments(true, starts, c)
        value = 1.0 - sse / (stt - st * st / n_tok)
    code = _first(state == NO_CALIBRATION_TOKENS, n_tok[None, :] == 0,
                  bad | (state == CALIBRATION_NOT_FINITE), state == CALIBRATION_CONSTANT, t_const)
    return value, code


def _window_max(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.maximum.reduceat(x, starts, axis=1)


def _classes(labels: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resampled (examples, positives, the one-class code: 1 none, 2 only firing, 3 no
    firing, else 0)."""
    total = np.broadcast_to(c.sum(axis=1), (labels.shape[0], c.shape[0]))
    pos = labels.astype(np.float64) @ c.T
    return total, pos, _first(total == 0, pos == total, pos == 0)


def _reasons(examples: str) -> tuple[str, ...]:
    return ("", f"no {examples}", f"only firing {examples}", f"no firing {examples}",
            "non-finite values")


WINDOW_REASONS = _reasons("windows")
TOKEN_REASONS = _reasons("tokens")


def detection_bacc(true: np.ndarray, pred: np.ndarray, starts: np.ndarray, params: np.ndarray,
                   c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``detection.balanced_accuracy`` of "window max prediction > cut" (``params``: firing
    threshold, cut)."""
    y = _window_max(true, starts) >= params[:, :1]
    hit = _window_max(pred, starts) > params[:, 1:2]
    total, pos, code = _classes(y, c)
    with np.errstate(all="ignore"):
        tpr = (y & hit).astype(np.float64) @ c.T / pos
        tnr = (~y & ~hit).astype(np.float64) @ c.T / (total - pos)
    return (tpr + tnr) / 2.0, code


def f1(true: np.ndarray, pred: np.ndarray, starts: np.ndarray, params: np.ndarray,
       c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``precision.f1`` of "window max prediction > cut" (``params``: firing threshold, cut)."""
    y = _window_max(true, starts) >= params[:, :1]
    hit = _window_max(pred, starts) > params[:, 1:2]
    _, _, code = _classes(y, c)
    tp = (y & hit).astype(np.float64) @ c.T
    wrong = (y ^ hit).astype(np.float64) @ c.T
    with np.errstate(all="ignore"):
        return 2.0 * tp / (2.0 * tp + wrong), code


def pairwise_auroc(labels: np.ndarray, scores: np.ndarray, owner: np.ndarray,
                   c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``detection.auroc`` of examples ``[P, E]`` that belong to windows ``owner[E]``, each
    weighted by its window's count: Mann-Whitney U over every (firing, silent) pair of
    examples, ties counting half."""
    w = c[:, owner]  # [R, E]
    y = labels.astype(np.float64)
    total = np.broadcast_to(w.sum(axis=1), (labels.shape[0], c.shape[0]))
    pos = y @ w.T
    code = _first(total == 0, pos == total, pos == 0, _picked_any(~np.isfinite(scores), w))
    s = scores[:, :, None]
    beats = (s > scores[:, None, :]) + 0.5 * (s == scores[:, None, :])  # [P, E, E]
    beats = beats * y[:, :, None] * (1.0 - y)[:, None, :]
    u = np.einsum("per,re->pr", beats @ w.T, w)
    with np.errstate(all="ignore"):
        return u / (pos * (total - pos)), code


def detection_auroc(true: np.ndarray, pred: np.ndarray, starts: np.ndarray, params: np.ndarray,
                    c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``detection.auroc`` of the window max prediction (``params``: firing threshold)."""
    y = _window_max(true, starts) >= params[:, :1]
    return pairwise_auroc(y, _window_max(pred, starts), np.arange(len(starts)), c)


def average_precision(labels: np.ndarray, scores: np.ndarray, owner: np.ndarray,
                      c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``precision.average_precision`` of examples ``[P, E]`` in windows ``owner[E]``, each
    weighted by its window's count (a window drawn twice enters its examples twice, tied).

    Examples are grouped by distinct score, highest first (a tie enters together); per group
    and window, how many examples and how many firing ones. A resample's true and predicted
    positives at each threshold are then those cumulative counts times its window counts."""
    n_pairs, n_ex = scores.shape
    _, pos, code = _classes_weighted(labels, c[:, owner])
    code = np.where(code == 0, 4 * _picked_any(~np.isfinite(scores), c[:, owner]), code)
    order = np.argsort(-scores, axis=1, kind="mergesort")
    ranked = np.take_along_axis(scores, order, axis=1)
    hits = np.take_along_axis(labels, order, axis=1).astype(np.float64)
    new_group = np.ones((n_pairs, n_ex), dtype=bool)
    new_group[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    group = np.cumsum(new_group, axis=1) - 1  # [P, E] the tie group of each ranked example
    n_groups = int(group.max()) + 1 if n_ex else 0
    where = (np.repeat(np.arange(n_pairs), n_ex), group.ravel(), owner[order].ravel())
    examples = np.zeros((n_pairs, n_groups, c.shape[1]))
    firing = np.zeros_like(examples)
    np.add.at(examples, where, 1.0)
    np.add.at(firing, where, hits.ravel())
    tp = np.cumsum(firing, axis=1) @ c.T  # [P, G, R]; groups past a pair's last add nothing
    pp = np.cumsum(examples, axis=1) @ c.T
    gained = np.diff(tp, axis=1, prepend=0.0)
    with np.errstate(all="ignore"):
        precision = np.where(pp > 0, tp / np.where(pp > 0, pp, 1.0), 0.0)
        return (gained * precision).sum(axis=1) / pos, code


def _classes_weighted(labels: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    total = np.broadcast_to(w.sum(axis=1), (labels.shape[0], w.shape[0]))
    pos = labels.astype(np.float64) @ w.T
    return total, pos, _first(total == 0, pos == total, pos == 0)


def auprc_windows(true: np.ndarray, pred: np.ndarray, starts: np.ndarray, params: np.ndarray,
                  c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average precision over windows (``params``: firing threshold)."""
    y = _window_max(true, starts) >= params[:, :1]
    return average_precision(y, _window_max(pred, starts), np.arange(len(starts)), c)


def auprc_tokens(true: np.ndarray, pred: np.ndarray, starts: np.ndarray, params: np.ndarray,
                 c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average precision over tokens (``params``: firing threshold)."""
    return average_precision(true >= params[:, :1], pred, _owners(starts, true.shape[1]), c)


def _owners(starts: np.ndarray, length: int) -> np.ndarray:
    return np.repeat(np.arange(len(starts)), _segments(starts, length).astype(int))


def fuzz_bacc(true: np.ndarray, pred: np.ndarray, starts: np.ndarray, params: np.ndarray,
              c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``score.fuzz``'s balanced accuracy: items (labels 1/0, answers 1/0) grouped by window."""
    w = c[:, _owners(starts, true.shape[1])]
    y, hit = true > 0.5, pred > 0.5
    total, pos, code = _classes_weighted(y, w)
    with np.errstate(all="ignore"):
        tpr = (y & hit).astype(np.float64) @ w.T / pos
        tnr = (~y & ~hit).astype(np.float64) @ w.T / (total - pos)
    return (tpr + tnr) / 2.0, code


def fuzz_auroc(true: np.ndarray, pred: np.ndarray, starts: np.ndarray, params: np.ndarray,
               c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``score.fuzz``'s AUROC of the confidences: items grouped by window."""
    return pairwise_auroc(true > 0.5, pred, _owners(starts, true.shape[1]), c)


def _first(*conditions: np.ndarray) -> np.ndarray:
    """The 1-based index of the first true condition, elementwise (0: none)."""
    shape = np.broadcast_shapes(*(np.shape(x) for x in conditions))
    code = np.zeros(shape, dtype=np.int64)
    for i, cond in reversed(list(enumerate(conditions, start=1))):
        code = np.where(cond, i, code)
    return code


FAMILIES: dict[str, tuple[Family, tuple[str, ...]]] = {
    "pearson": (pearson, PEARSON_REASONS),
    "explained_variance": (explained_variance, EV_REASONS),
    "detection_bacc": (detection_bacc, WINDOW_REASONS),
    "detection_auroc": (detection_auroc, WINDOW_REASONS),
    "auprc_windows": (auprc_windows, WINDOW_REASONS),
    "auprc_tokens": (auprc_tokens, TOKEN_REASONS),
    "f1": (f1, WINDOW_REASONS),
    "fuzz_bacc": (fuzz_bacc, WINDOW_REASONS),
    "fuzz_auroc": (fuzz_auroc, WINDOW_REASONS),
}
"""Every family by name (``Vector.family``), with its reason strings by code."""
