"""Agreement statistics: Krippendorff's alpha (interval) and Spearman's rho.

Undefined values are ``MetricValue(None, reason)``, never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuroscribe.score.metrics import MetricValue, pearson, rankdata

__all__ = ["krippendorff_alpha_interval", "pairable_count", "rankdata", "spearman"]


def krippendorff_alpha_interval(values: np.ndarray | Sequence[Sequence[float]]) -> MetricValue:
    """Krippendorff's alpha for interval data, in closed form with O(number of values) memory.

    ``values`` is ``[n_raters, n_items]`` with NaN where a rater gave no value. Items with fewer
    than two values are not pairable and are dropped. With ``m_u`` values on item ``u``, ``n``
    pairable values in all, ``SS_u`` the sum of squared deviations from item ``u``'s mean and
    ``SS`` that of all pairable values from their grand mean, the squared differences over ordered
    pairs give

        D_o = (1/n) Σ_u 2 m_u SS_u / (m_u - 1)      (within items)
        D_e = 2 SS / (n - 1)                        (between any two pairable values)
        alpha = 1 - D_o / D_e

    which is the coincidence-matrix definition that the ``krippendorff`` package computes, without
    its matrix over distinct values (whose size grows with their square).

    Undefined (None): no item with two values ("no pairable values"), or every pairable value the
    same ("no variation": D_e = 0, so there is no spread against which to judge agreement; the
    ``krippendorff`` package raises here). Non-finite values other than NaN raise ValueError.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be [n_raters, n_items], got shape {v.shape}")
    if np.isinf(v).any():
        raise ValueError("values must be finite or NaN")
    present = ~np.isnan(v)
    m = present.sum(axis=0)
    pairable = m >= 2
    v, present, m = v[:, pairable], present[:, pairable], m[pairable]
    n = int(m.sum())
    if n == 0:
        return MetricValue(None, "no pairable values")
    filled = np.where(present, v, 0.0)
    pooled = filled[present]
    if pooled.min() == pooled.max():
        return MetricValue(None, "no variation")
    item_mean = filled.sum(axis=0) / m
    ss_item = np.where(present, (filled - item_mean) ** 2, 0.0).sum(axis=0)
    ss_total = float(((pooled - pooled.mean()) ** 2).sum())
    d_o = float((2.0 * m * ss_item / (m - 1)).sum()) / n
    d_e = 2.0 * ss_total / (n - 1)
    return MetricValue(1.0 - d_o / d_e)


def pairable_count(values: np.ndarray) -> int:
    """Number of items (columns) with at least two non-NaN values."""
    return int(((~np.isnan(np.asarray(values, dtype=np.float64))).sum(axis=0) >= 2).sum())


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> MetricValue:
    """Spearman's rho: Pearson r of average ranks (ties allowed).

    Pairs where either value is NaN are dropped first. Undefined (None) with fewer than two
    pairs ("too few pairs") or when either side is constant ("constant x" / "constant y").
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-d sequences of one length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if a.size < 2:
        return MetricValue(None, "too few pairs")
    if a.min() == a.max():
        return MetricValue(None, "constant x")
    if b.min() == b.max():
        return MetricValue(None, "constant y")
    return pearson(rankdata(a), rankdata(b))
