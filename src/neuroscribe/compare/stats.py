"""Streaming statistics between the units of two models on the same tokens.

Batches of activations ``a`` [tokens, n_a] and ``b`` [tokens, n_b], read on the same tokens, are
added up and never kept, so memory is O(n_a x n_b) (plus n_a^2 and n_b^2 for CKA) however long
the corpus. Each side's sums live in a ``Moments`` (count, sums, squares or the whole Gram matrix
X^T X); a ``CrossProducts`` holds A^T B for one pair of sides. A side compared with several
others (one site against every layer of another model) keeps one ``Moments`` for all of them.

Precision: each batch's products are computed in the batch's own dtype (float32 activations:
float32 matmuls, multi-threaded by torch; float64 input: float64) and reach float64 totals
every ``FLUSH_TOKENS`` tokens, so float32 rounding stays at a few thousand tokens' sum, never
the corpus's. Sums of raw products would
lose precision where means are large next to spreads (the cancellation in
``sum(ab) - n mean_a mean_b``), so each side is shifted by its first batch's means, close to the
final ones, before any product. Shifting changes no covariance. Where the Gram matrix is kept,
squares are its diagonal: a unit compared with a bitwise-equal copy of itself then gets r = 1
and CKA = 1 to float64 rounding, whatever the batch dtype.
"""

from __future__ import annotations

import numpy as np
import torch

Array = np.ndarray


def _as_tensor(x: Array | torch.Tensor, width: int, name: str) -> torch.Tensor:
    """``x`` as a 2-d CPU tensor of float32 (kept) or float64 (anything else)."""
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.dtype != torch.float32:
        t = t.to(torch.float64)
    if t.ndim != 2 or t.shape[1] != width:
        raise ValueError(f"{name} must be [tokens, {width}], got {list(t.shape)}")
    return t


FLUSH_TOKENS = 8192
"""Tokens of float32 products summed in a float32 buffer before it is added to the float64
total: fewer conversions of the big matrices, and float32 rounding over a few thousand tokens
only."""


def _add(total: Array, batch: torch.Tensor) -> None:
    np.add(total, batch.numpy(), out=total)  # float32 batch into the float64 total, no copy


class _ProductSum:
    """A float64 [rows, cols] total of x^T y over batches. Float64 batches are added to it
    directly; float32 ones through a float32 buffer (numpy-allocated, so memory tracers see it)
    that is flushed into the total every ``FLUSH_TOKENS`` tokens and before every read."""

    def __init__(self, rows: int, cols: int) -> None:
        self._total = np.zeros((rows, cols))
        self._buffer: torch.Tensor | None = None
        self._pending = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.dtype == torch.float64:
            torch.from_numpy(self._total).addmm_(x.T, y)
            return
        if self._buffer is None:
            self._buffer = torch.from_numpy(np.zeros(self._total.shape, dtype=np.float32))
        self._buffer.addmm_(x.T, y)
        self._pending += len(x)
        if self._pending >= FLUSH_TOKENS:
            self._flush()

    def _flush(self) -> None:
        if self._buffer is not None and self._pending:
            _add(self._total, self._buffer)
            self._buffer.zero_()
        self._pending = 0

    @property
    def value(self) -> Array:
        self._flush()
        return self._total


class Moments:
    """One side's running sums: tokens ``n``, ``sum``, ``sq`` (or the ``gram`` X^T X, whose
    diagonal is then ``sq``), all of the shifted values (see the module docstring)."""

    def __init__(self, width: int, gram: bool = False) -> None:
        self.width = width
        self.n = 0
        self.shift: Array | None = None  # [width]: the first batch's means
        self.sum = np.zeros(width)
        self._gram = _ProductSum(width, width) if gram else None
        self._sq = None if gram else np.zeros(width)

    def add(self, x: torch.Tensor) -> torch.Tensor:
        """Add a checked batch (``_as_tensor``); return it shifted, for the cross-products."""
        if not len(x):
            return x
        if self.shift is None:
            self.shift = x.double().mean(0).numpy()
        shifted = x - torch.from_numpy(self.shift).to(x.dtype)
        self.n += len(shifted)
        _add(self.sum, shifted.sum(0))
        if self._gram is not None:
            self._gram.add(shifted, shifted)
        else:
            assert self._sq is not None
            _add(self._sq, (shifted * shifted).sum(0))
        return shifted

    @property
    def gram(self) -> Array | None:
        """[width, width] sum of the shifted X^T X (None unless kept)."""
        return None if self._gram is None else self._gram.value

    @property
    def sq(self) -> Array:
        gram = self.gram
        return np.diagonal(gram) if gram is not None else self._sq  # type: ignore[return-value]

    @property
    def mean(self) -> Array:
        return self.sum / self.n

    def variance(self) -> Array:
        """Population variances (clipped at 0)."""
        return np.maximum(self.sq / self.n - self.mean**2, 0.0)

    def covariance(self) -> Array:
        """[width, width] population covariance; needs the Gram matrix."""
        gram = self.gram
        assert gram is not None, "covariance needs Moments(gram=True)"
        return gram / self.n - np.outer(self.mean, self.mean)

    def live(self, rel_tol: float = 1e-13) -> Array:
        """Which units vary: variance above ``rel_tol`` times the raw values' mean square."""
        assert self.shift is not None
        var = self.variance()
        return var > rel_tol * (var + (self.mean + self.shift) ** 2)


class CrossProducts:
    """Pearson r between every unit of side A and every unit of side B, from their ``Moments``
    and the cross-products A^T B of the shifted batches, added with ``add``."""

    def __init__(self, a: Moments, b: Moments) -> None:
        self.a, self.b = a, b
        self.n_a, self.n_b = a.width, b.width
        self._cross = _ProductSum(a.width, b.width)

    def add(self, shifted_a: torch.Tensor, shifted_b: torch.Tensor) -> None:
        """Add the batch as returned (shifted) by ``Moments.add`` of each side."""
        if len(shifted_a):
            self._cross.add(shifted_a, shifted_b.to(shifted_a.dtype))

    @property
    def cross(self) -> Array:
        """[n_a, n_b] sum over tokens of the shifted a^T b."""
        return self._cross.value

    @property
    def n(self) -> int:
        return self.a.n

    def covariance(self) -> Array:
        """[n_a, n_b] population covariance (divided by n)."""
        self._need_data()
        n = self.n
        return self.cross / n - np.outer(self.a.mean, self.b.mean)

    def variances(self) -> tuple[Array, Array]:
        """Population variances of A's [n_a] and B's [n_b] units (clipped at 0)."""
        self._need_data()
        return self.a.variance(), self.b.variance()

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
        self._need_data()
        return self.a.live(rel_tol), self.b.live(rel_tol)

    def cka(self) -> float:
        """Linear CKA = ||C_ab||_F^2 / (||C_aa||_F ||C_bb||_F) from centred covariances (both
        sides need their Gram matrix); NaN when either side is constant over every token."""
        denominator = np.linalg.norm(self.a.covariance()) * np.linalg.norm(self.b.covariance())
        if denominator == 0:
            return float("nan")
        cka = np.linalg.norm(self.covariance()) ** 2 / denominator
        return float(min(cka, 1.0))  # float32 products can round a whole CKA just past 1

    def _need_data(self) -> None:
        if self.n == 0:
            raise ValueError("no tokens accumulated yet")


class CrossCorrelation(CrossProducts):
    """Pearson r between every unit of A and every unit of B over all tokens seen, for one pair
    fed batch by batch (its own two ``Moments``)."""

    def __init__(self, n_a: int, n_b: int, gram: bool = False) -> None:
        super().__init__(Moments(n_a, gram), Moments(n_b, gram))

    def update(self, a: Array | torch.Tensor, b: Array | torch.Tensor) -> None:
        """Add a batch: ``a`` [tokens, n_a] and ``b`` [tokens, n_b], row i of both = token i."""
        ta = _as_tensor(a, self.n_a, "a")
        tb = _as_tensor(b, self.n_b, "b")
        if len(ta) != len(tb):
            raise ValueError(f"a has {len(ta)} tokens but b has {len(tb)}")
        if ta.dtype != tb.dtype:  # one dtype for the products: the wider
            ta, tb = ta.double(), tb.double()
        self.add(self.a.add(ta), self.b.add(tb))


class LinearCKA:
    """Linear centred kernel alignment between A's and B's activations, from one pass.

    CKA = ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), with Xc, Yc the centred [tokens, units]
    matrices; every Gram is rebuilt from raw sums, so no token is kept. ``cross`` is the
    ``CrossCorrelation`` filled by the same updates, so r comes from this pass too.
    """

    def __init__(self, n_a: int, n_b: int) -> None:
        self.cross = CrossCorrelation(n_a, n_b, gram=True)

    def update(self, a: Array | torch.Tensor, b: Array | torch.Tensor) -> None:
        self.cross.update(a, b)

    def value(self) -> float:
        """CKA in [0, 1]; NaN when either side is constant over every token."""
        self.cross._need_data()
        return self.cross.cka()
