"""Linear CKA between every pair of sites in memory that does not grow with the widths' product:
the minibatch estimator of Nguyen, Raghu & Kornblith (2021), for the site pairs whose whole
cross-covariance does not fit ``compare.cka_budget_mb``.

The positions read are gathered into minibatches of ``size`` tokens. For each minibatch and each
side, the linear kernel K = X X^T [size, size]; for each pair of sides, the unbiased HSIC
estimator (Song et al. 2012) of K and L. Over the corpus:

    CKA = sum_i HSIC(K_i, L_i) / sqrt(sum_i HSIC(K_i, K_i) * sum_i HSIC(L_i, L_i))

Unbiased, so two unrelated representations come out near 0 however wide they are (the corpus
estimator, biased, is pulled up by width over tokens), and a side against a bitwise copy of
itself gives exactly 1. It is a different estimator from the whole-corpus CKA of
``stats.CrossProducts.cka``: the warehouse records which one each site pair got.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

import torch

MIN_SIZE = 8
"""A last, partial minibatch smaller than this is dropped (the estimator needs 4 or more
tokens, and a handful would add mostly noise)."""


Kernel = tuple[torch.Tensor, torch.Tensor, float]
"""A kernel matrix with its diagonal zeroed, its row sums and its total."""


def _kernel(x: torch.Tensor) -> Kernel:
    """K with its diagonal zeroed, its row sums and its total, in float64."""
    k = (x @ x.T).double()
    k.fill_diagonal_(0.0)
    rows = k.sum(1)
    return k, rows, float(rows.sum())


def unbiased_hsic(k: Kernel, other: Kernel) -> float:
    """HSIC_1 of two kernels as ``_kernel`` returns them (diagonals zeroed), n >= 4."""
    (km, kr, ks), (lm, lr, ls) = k, other
    n = km.shape[0]
    trace = float((km * lm).sum())  # tr(K L), both symmetric
    value = trace + ks * ls / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(kr @ lr)
    return value / (n * (n - 3))


class MinibatchCKA:
    """Minibatch linear CKA for ``pairs`` of sides (any hashable keys), fed with ``add`` the
    same positions of every side, batch by batch."""

    def __init__(self, pairs: Iterable[tuple[Hashable, Hashable]], size: int = 256) -> None:
        if size < MIN_SIZE:
            raise ValueError(f"minibatch size must be at least {MIN_SIZE}, got {size}")
        self.pairs = list(pairs)
        self.sides = sorted({s for p in self.pairs for s in p}, key=repr)
        self.size = size
        self.n_tokens = 0
        """Tokens in the minibatches estimated so far."""
        self._pending: dict[Hashable, list[torch.Tensor]] = {s: [] for s in self.sides}
        self._pending_n = 0
        self._self = dict.fromkeys(self.sides, 0.0)
        self._cross = dict.fromkeys(self.pairs, 0.0)

    def add(self, acts: dict[Hashable, torch.Tensor]) -> None:
        """Add one batch: [tokens, width] per side (every side, the same tokens)."""
        n = {len(acts[s]) for s in self.sides}
        if len(n) != 1:
            raise ValueError(f"every side needs the same tokens, got {sorted(n)}")
        for s in self.sides:
            self._pending[s].append(acts[s])
        self._pending_n += n.pop()
        while self._pending_n >= self.size:
            self._estimate(self.size)

    def finish(self) -> None:
        """Estimate the last, partial minibatch (dropped when under ``MIN_SIZE`` tokens)."""
        if self._pending_n >= MIN_SIZE:
            self._estimate(self._pending_n)

    def _estimate(self, size: int) -> None:
        kernels = {}
        for s in self.sides:
            stacked = torch.cat(self._pending[s])
            kernels[s] = _kernel(stacked[:size])
            self._pending[s] = [stacked[size:]] if len(stacked) > size else []
        self._pending_n -= size
        self.n_tokens += size
        for s in self.sides:
            self._self[s] += unbiased_hsic(kernels[s], kernels[s])
        for a, b in self.pairs:
            self._cross[a, b] += unbiased_hsic(kernels[a], kernels[b])

    def value(self, a: Hashable, b: Hashable) -> float:
        """CKA of the pair (a, b), at most 1 (float rounding); unbiased, so unrelated sides
        can come out just below 0. NaN before any minibatch or when a side is constant over
        every token read."""
        denominator = self._self[a] * self._self[b]
        if self.n_tokens == 0 or denominator <= 0:
            return float("nan")
        return min(1.0, self._cross[a, b] / math.sqrt(denominator))
