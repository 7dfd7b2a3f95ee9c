"""Streaming statistics between the units of two models on the same tokens.

Both accumulators take batches of activations ``a`` [tokens, n_a] and ``b`` [tokens, n_b] read on
the same tokens, add them up in float64 and never keep the tokens, so memory is O(n_a x n_b) (plus
n_a^2 and n_b^2 for CKA) however long the corpus.

Sums of raw products lose precision when means are large next to spreads (the cancellation in
``sum(ab) - n mean_a mean_b``); each accumulator therefore shifts by the first batch's means,
which are close to the final ones, before summing. Shifting changes no covariance.
"""

from __future__ import annotations

import numpy as np
import torch

Array = np.ndarray


def _as_float64(x: Array | torch.Tensor, width: int, name: str) -> Array:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"{name} must be [tokens, {width}], got {list(x.shape)}")
    return x


class CrossCorrelation:
    """Pearson r between every unit of A and every unit of B over all tokens seen."""

    def __init__(self, n_a: int, n_b: int) -> None:
        self.n_a, self.n_b = n_a, n_b
        self.n = 0
        self.shift_a: Array | None = None  # [n_a]; see the module docstring
        self.shift_b: Array | None = None  # [n_b]
        self.sum_a = np.zeros(n_a)
        self.sum_b = np.zeros(n_b)
        self.sq_a = np.zeros(n_a)
        self.sq_b = np.zeros(n_b)
        self.cross = np.zeros((n_a, n_b))  # sum over tokens of (a - shift_a)^T (b - shift_b)

    def update(self, a: Array | torch.Tensor, b: Array | torch.Tensor) -> None:
        """Add a batch: ``a`` [tokens, n_a] and ``b`` [tokens, n_b], row i of both = token i."""
        a = _as_float64(a, self.n_a, "a")
        b = _as_float64(b, self.n_b, "b")
        if len(a) != len(b):
            raise ValueError(f"a has {len(a)} tokens but b has {len(b)}")
        if not len(a):
            return
        if self.shift_a is None or self.shift_b is None:
            self.shift_a, self.shift_b = a.mean(0), b.mean(0)
        a, b = a - self.shift_a, b - self.shift_b
        self.n += len(a)
        self.sum_a += a.sum(0)
        self.sum_b += b.sum(0)
        self.sq_a += np.einsum("ti,ti->i", a, a)
        self.sq_b += np.einsum("ti,ti->i", b, b)
        self.cross += a.T @ b

    def covariance(self) -> Array:
        """[n_a, n_b] population covariance (divided by n)."""
        self._need_data()
        n = self.n
        return self.cross / n - np.outer(self.sum_a / n, self.sum_b / n)

    def variances(self) -> tuple[Array, Array]:
        """Population variances of A's [n_a] and B's [n_b] units (clipped at 0)."""
        self._need_data()
        n = self.n
        var_a = np.maximum(self.sq_a / n - (self.sum_a / n) ** 2, 0.0)
        var_b = np.maximum(self.sq_b / n - (self.sum_b / n) ** 2, 0.0)
        return var_a, var_b

    def correlation(self, rel_tol: float = 1e-13) -> Array:
        """[n_a, n_b] Pearson r; NaN in the rows of constant A units and the columns of
        constant B units, because r is undefined there, not 0. Constant = variance at most
        ``rel_tol`` times the mean square (float32 rounding of a constant gives ~1e-15)."""
        var_a, var_b = self.variances()
        live_a, live_b = self.live(rel_tol)
        sd_a = np.where(live_a, np.sqrt(var_a), np.nan)
        sd_b = np.where(live_b, np.sqrt(var_b), np.nan)
        r = self.covariance() / np.outer(sd_a, sd_b)
        return np.clip(r, -1.0, 1.0)  # rounding can step just past +-1

    def live(self, rel_tol: float = 1e-13) -> tuple[Array, Array]:
        """Boolean masks [n_a], [n_b] of the units that vary over the tokens seen."""
        var_a, var_b = self.variances()
        assert self.shift_a is not None and self.shift_b is not None
        # Mean squares of the raw values, for a scale-free test of "constant".
        ms_a = var_a + (self.sum_a / self.n + self.shift_a) ** 2
        ms_b = var_b + (self.sum_b / self.n + self.shift_b) ** 2
        return var_a > rel_tol * ms_a, var_b > rel_tol * ms_b

    def _need_data(self) -> None:
        if self.n == 0:
            raise ValueError("no tokens accumulated yet")


class LinearCKA:
    """Linear centred kernel alignment between A's and B's activations, from one pass.

    CKA = ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), with Xc, Yc the centred [tokens, units]
    matrices; every Gram is rebuilt from raw sums, so no token is kept. ``cross`` is the same
    ``CrossCorrelation`` filled by the same updates, so r comes from this pass too.
    """

    def __init__(self, n_a: int, n_b: int) -> None:
        self.cross = CrossCorrelation(n_a, n_b)
        self.gram_a = np.zeros((n_a, n_a))  # sum of (a - shift_a)^T (a - shift_a)
        self.gram_b = np.zeros((n_b, n_b))

    def update(self, a: Array | torch.Tensor, b: Array | torch.Tensor) -> None:
        cc = self.cross
        a = _as_float64(a, cc.n_a, "a")
        b = _as_float64(b, cc.n_b, "b")
        cc.update(a, b)  # validates lengths and fixes the shifts
        if not len(a):
            return
        assert cc.shift_a is not None and cc.shift_b is not None
        a, b = a - cc.shift_a, b - cc.shift_b
        self.gram_a += a.T @ a
        self.gram_b += b.T @ b

    def value(self) -> float:
        """CKA in [0, 1]; NaN when either side is constant over every token."""
        cc = self.cross
        cov_ab = cc.covariance()
        mean_a, mean_b = cc.sum_a / cc.n, cc.sum_b / cc.n
        cov_aa = self.gram_a / cc.n - np.outer(mean_a, mean_a)
        cov_bb = self.gram_b / cc.n - np.outer(mean_b, mean_b)
        denominator = np.linalg.norm(cov_aa) * np.linalg.norm(cov_bb)
        if denominator == 0:
            return float("nan")
        return float(np.linalg.norm(cov_ab) ** 2 / denominator)
