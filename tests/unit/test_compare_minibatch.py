"""The minibatch CKA estimator (``compare.minibatch``) against its definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscribe.compare.minibatch import MinibatchCKA, _kernel, unbiased_hsic


def _hsic_by_definition(x: np.ndarray, y: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, written out term by term with explicit sums."""
    n = len(x)
    k, l_ = x @ x.T, y @ y.T
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l_, 0.0)
    trace = sum(k[i, j] * l_[j, i] for i in range(n) for j in range(n))
    ones = np.ones(n)
    middle = (ones @ k @ ones) * (ones @ l_ @ ones) / ((n - 1) * (n - 2))
    last = 2.0 / (n - 2) * (ones @ k @ l_ @ ones)
    return (trace + middle - last) / (n * (n - 3))


def test_unbiased_hsic_matches_its_definition():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 3))
    got = unbiased_hsic(_kernel(torch.from_numpy(x)), _kernel(torch.from_numpy(y)))
    assert got == pytest.approx(_hsic_by_definition(x, y), rel=1e-12)


def _feed(est: MinibatchCKA, sides: dict[str, torch.Tensor], batch: int) -> None:
    n = len(next(iter(sides.values())))
    for start in range(0, n, batch):
        est.add({k: v[start : start + batch] for k, v in sides.items()})
    est.finish()


def test_known_values():
    """A side against itself and against a rotated, shifted, rescaled copy: 1; against an
    independent side: near 0 (unbiased, not pulled up by width over tokens); minibatches cut
    across the batches fed."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 64, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(64, 64, generator=gen, dtype=torch.float64))
    rotated = (3.0 * x.double() @ q + 5.0).float()
    other = torch.randn(2000, 64, generator=gen)
    est = MinibatchCKA([("x", "x2"), ("x", "rot"), ("x", "other")], size=128)
    _feed(est, {"x": x, "x2": x.clone(), "rot": rotated, "other": other}, batch=50)
    assert est.n_tokens == 2000  # 15 full minibatches and a last one of 80
    assert est.value("x", "x2") == pytest.approx(1.0, abs=1e-12)
    assert est.value("x", "rot") == pytest.approx(1.0, abs=1e-3)
    assert abs(est.value("x", "other")) < 0.02


def test_close_to_the_corpus_estimate_on_a_shared_signal():
    """Two sides sharing a low-rank signal under independent noise: the minibatch estimate
    lands near the whole-corpus CKA, which is nearly unbiased with this many tokens."""
    from neuroscribe.compare.stats import LinearCKA

    gen = torch.Generator().manual_seed(1)
    z = torch.randn(20_000, 4, generator=gen)
    a = z @ torch.randn(4, 32, generator=gen) + 0.7 * torch.randn(20_000, 32, generator=gen)
    b = z @ torch.randn(4, 24, generator=gen) + 0.7 * torch.randn(20_000, 24, generator=gen)
    corpus = LinearCKA(32, 24)
    corpus.update(a, b)
    est = MinibatchCKA([("a", "b")], size=256)
    _feed(est, {"a": a, "b": b}, batch=1000)
    assert 0.3 < corpus.value() < 0.95
    assert est.value("a", "b") == pytest.approx(corpus.value(), abs=0.03)


def test_a_constant_side_and_no_data_are_undefined():
    est = MinibatchCKA([("a", "b")], size=16)
    assert np.isnan(est.value("a", "b"))
    _feed(est, {"a": torch.ones(64, 3), "b": torch.randn(64, 3)}, batch=16)
    assert np.isnan(est.value("a", "b"))
    with pytest.raises(ValueError, match="same tokens"):
        est.add({"a": torch.ones(3, 3), "b": torch.ones(4, 3)})
