"""Matching units of model A to units of model B from a similarity matrix.

Every function takes ``r`` [n_a, n_b]: Pearson r of activations (``stats.CrossCorrelation``) or
decoder cosine (``decoder_cosine``). NaN marks an undefined similarity (a constant unit) and never
wins a match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

Array = np.ndarray


@dataclass(frozen=True)
class Partners:
    """Each A unit's best B partner: ``index`` [n_a] (-1 where every r is NaN) and ``r`` [n_a]."""

    index: Array
    r: Array


@dataclass(frozen=True)
class Matching:
    """A one-to-one matching: A unit ``a[k]`` with B unit ``b[k]`` at similarity ``r[k]``."""

    a: Array
    b: Array
    r: Array

    def as_dict(self) -> dict[int, int]:
        return dict(zip(self.a.tolist(), self.b.tolist(), strict=True))


def best_partners(r: Array) -> Partners:
    """Each row's argmax over the finite entries (Gurnee et al.'s max-correlation partner)."""
    r = np.asarray(r, dtype=np.float64)
    finite = np.isfinite(r)
    filled = np.where(finite, r, -np.inf)
    index = filled.argmax(axis=1) if r.shape[1] else np.zeros(len(r), dtype=int)
    has_any = finite.any(axis=1)
    best = np.where(has_any, filled[np.arange(len(r)), index] if r.shape[1] else np.nan, np.nan)
    return Partners(np.where(has_any, index, -1), best)


def one_to_one(r: Array) -> Matching:
    """The one-to-one matching that maximises the summed similarity (Hungarian algorithm,
    ``scipy.optimize.linear_sum_assignment``); min(n_a, n_b) pairs. Pairs that could only be
    made through a NaN entry are left out."""
    from scipy.optimize import linear_sum_assignment

    r = np.asarray(r, dtype=np.float64)
    finite = np.isfinite(r)
    # A NaN costs more than any real pair, so it is used only when nothing else is left.
    worst = (np.abs(r[finite]).max() if finite.any() else 0.0) + 1.0
    cost = np.where(finite, -r, 2 * worst)
    rows, cols = linear_sum_assignment(cost)
    keep = finite[rows, cols]
    rows, cols = rows[keep], cols[keep]
    return Matching(rows, cols, r[rows, cols])


def universality(r: Array, threshold: float = 0.5) -> float:
    """Share of A units whose best partner has r >= ``threshold``, among the A units that have a
    defined r with some B unit; NaN when there are none."""
    partners = best_partners(r)
    defined = partners.index >= 0
    if not defined.any():
        return float("nan")
    return float(np.mean(partners.r[defined] >= threshold))


def decoder_cosine(w_a: Array | torch.Tensor, w_b: Array | torch.Tensor) -> Array:
    """Cosine similarity [n_a, n_b] between the decoder rows of two SAEs of one site.

    ``w_a`` [n_a, d_in] and ``w_b`` [n_b, d_in] in SAELens' ``W_dec`` layout (one row per latent).
    A zero row has no direction: its cosines are NaN.
    """
    a, b = (
        (w.detach().cpu().double().numpy() if isinstance(w, torch.Tensor) else np.asarray(w, float))
        for w in (w_a, w_b)
    )
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"decoders must be [latents, d_in] of one d_in: {a.shape}, {b.shape}")
    norm_a = np.linalg.norm(a, axis=1)
    norm_b = np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (a @ b.T) / np.outer(norm_a, norm_b)
    cos[norm_a == 0, :] = np.nan
    cos[:, norm_b == 0] = np.nan
    return np.clip(cos, -1.0, 1.0)
